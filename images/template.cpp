// Plugin templates (see template.hpp).
#include "images/template.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "images/plugin_dir.hpp"
#include "images/values.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

#ifndef MFSERV_TEMPLATES_DIR
#error "MFSERV_TEMPLATES_DIR must name the folder of the plugin templates"
#endif

namespace mfserv::images {

namespace {

constexpr std::string_view k_name_placeholder = "{{name}}";

Status write_new_file(const std::string& path, const std::string& content, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) {
    return Error::from_errno("creating " + path);
  }
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Error::from_errno("writing " + path);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

// Copies the template folder FROM into TO (which exists), substituting NAME.
Status copy_template(const std::string& from, const std::string& to, const std::string& rel,
                     const std::string& name, std::vector<std::string>& files) {
  for (const std::string& entry : list_dir(from)) {
    const std::string source = from + "/" + entry;
    const std::string target = to + "/" + entry;
    const std::string entry_rel = rel.empty() ? entry : rel + "/" + entry;
    struct stat st {};
    if (::lstat(source.c_str(), &st) != 0) {
      return Error::from_errno("reading the template file " + source);
    }
    if (S_ISDIR(st.st_mode)) {
      if (::mkdir(target.c_str(), st.st_mode & 0777) != 0) {
        return Error::from_errno("creating " + target);
      }
      if (auto status = copy_template(source, target, entry_rel, name, files); !status) {
        return status;
      }
    } else if (S_ISREG(st.st_mode)) {
      auto content = read_file(source);
      if (!content) {
        return content.error().with_context("reading the template");
      }
      std::string text = replace_all(std::move(*content), k_name_placeholder, name);
      if (auto status = write_new_file(target, text, st.st_mode & 0777); !status) {
        return status;
      }
      files.push_back(entry_rel);
    } else {
      return Error("template file " + source +
                   " is neither a file nor a folder: reinstall "
                   "mfserv's templates");
    }
  }
  return {};
}

}  // namespace

std::string templates_dir() {
  const char* env = std::getenv("MFSERV_TEMPLATES_DIR");
  return env && *env ? std::string(env) : std::string(MFSERV_TEMPLATES_DIR);
}

std::vector<std::string> list_templates() {
  std::vector<std::string> names;
  const std::string dir = templates_dir();
  for (const std::string& entry : list_dir(dir)) {
    if (!starts_with(entry, ".") && is_directory(dir + "/" + entry)) {
      names.push_back(entry);
    }
  }
  return names;
}

Result<NewPlugin> create_plugin_from_template(const std::string& template_name,
                                              const std::string& name,
                                              const std::string& parent_dir) {
  std::vector<std::string> available = list_templates();
  if (std::find(available.begin(), available.end(), template_name) == available.end()) {
    std::string known;
    for (const std::string& candidate : available) {
      known += (known.empty() ? "" : ", ") + candidate;
    }
    if (known.empty()) {
      return Error("no plugin templates in " + templates_dir() +
                   ": set MFSERV_TEMPLATES_DIR to the templates folder of mfserv");
    }
    return Error("unknown template " + quote_value(template_name) + ": choose one of " + known);
  }
  if (auto status = check_plugin_name(name); !status) {
    return Error("invalid plugin name " + quote_value(name) + ": " + status.error().message());
  }
  if (auto status = make_dirs(parent_dir, 0755); !status) {
    return status.error();
  }
  auto parent = real_path(parent_dir);
  if (!parent) {
    return parent.error();
  }
  NewPlugin result;
  result.dir = *parent + "/" + name;
  if (path_exists(result.dir)) {
    return Error(result.dir + " already exists: choose another name or another --dir");
  }

  std::string staging = *parent + "/." + name + ".new-XXXXXX";
  if (::mkdtemp(staging.data()) == nullptr) {
    return Error::from_errno("creating a folder in " + *parent);
  }
  Status status =
      copy_template(templates_dir() + "/" + template_name, staging, "", name, result.files);
  // mkdtemp(3) made it private; a plugin folder is read by nginx's workers (static files).
  if (status && ::chmod(staging.c_str(), 0755) != 0) {
    status = Error::from_errno("setting the mode of " + staging);
  }
  if (status &&
      ::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, result.dir.c_str(), RENAME_NOREPLACE) != 0) {
    // A file system without RENAME_NOREPLACE: plain rename(2), NAME was checked above.
    if (errno != EINVAL || ::rename(staging.c_str(), result.dir.c_str()) != 0) {
      status = Error::from_errno("renaming " + staging + " to " + result.dir);
    }
  }
  if (!status) {
    std::error_code ignored;
    std::filesystem::remove_all(staging, ignored);
    return status.error().with_context("creating plugin " + name);
  }
  std::sort(result.files.begin(), result.files.end());
  return result;
}

}  // namespace mfserv::images
