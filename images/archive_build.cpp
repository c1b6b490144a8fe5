// `plugin build`: a plugin folder → NAME-VERSION-RELEASE.metwork.mfserv.plugin (see
// archive.hpp). Reproducible: entries sorted by path, one fixed date, uid/gid 0 named root,
// a pax (restricted) tar, gzip without its timestamp; the documents come last so that each
// file is read once, hashed while it is written.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <memory>

#include "images/archive.hpp"
#include "images/archive_entries.hpp"
#include "images/archive_ignore.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::images {

namespace {

namespace af = archive_format;

constexpr std::size_t k_chunk = 64 * 1024;

struct SourceEntry {
  std::string rel;   // relative to the plugin folder; "" is the folder itself
  std::string path;  // absolute
  mode_t type = 0;   // S_IFREG, S_IFDIR or S_IFLNK
  unsigned mode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
  std::string target;  // links
};

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<std::vector<std::string>> read_dir_names(const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) {
    return Error::from_errno("reading folder " + path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") {
      names.push_back(std::move(name));
    }
    errno = 0;
  }
  if (errno != 0) {
    return Error::from_errno("reading folder " + path);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::string> read_link_target(const std::string& path) {
  std::string buffer(PATH_MAX, '\0');
  ssize_t n = ::readlink(path.c_str(), buffer.data(), buffer.size());
  if (n < 0) {
    return Error::from_errno("reading link " + path);
  }
  buffer.resize(static_cast<size_t>(n));
  return buffer;
}

// Everything under DIR that goes into the archive, folders before their content.
Status collect(const std::string& root, const std::string& rel, const ReleaseIgnore& ignore,
               std::vector<SourceEntry>& out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  auto names = read_dir_names(dir);
  if (!names) {
    return names.error();
  }
  for (const std::string& name : *names) {
    const std::string child_rel = rel.empty() ? name : rel + "/" + name;
    const std::string path = root + "/" + child_rel;
    if (rel.empty() && (name == af::k_files_json || name == af::k_metadata_json)) {
      continue;  // regenerated (a folder that was installed from an archive has them)
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      return Error::from_errno("reading " + path);
    }
    const bool is_dir = S_ISDIR(st.st_mode);
    if (ignore.ignored(child_rel, is_dir)) {
      continue;
    }
    if (S_ISREG(st.st_mode) && ends_with(name, af::k_suffix)) {
      continue;  // an earlier build
    }
    SourceEntry entry;
    entry.rel = child_rel;
    entry.path = path;
    entry.mode = st.st_mode & 0777;
    entry.mtime = st.st_mtim.tv_sec;
    if (S_ISREG(st.st_mode)) {
      entry.type = S_IFREG;
      entry.size = static_cast<std::uint64_t>(st.st_size);
    } else if (is_dir) {
      entry.type = S_IFDIR;
    } else if (S_ISLNK(st.st_mode)) {
      entry.type = S_IFLNK;
      auto target = read_link_target(path);
      if (!target) {
        return target.error();
      }
      if (auto status = af::check_symlink_target(child_rel, *target); !status) {
        return Error(path + ": " + status.error().message() +
                     "; an installed plugin may not point outside its folder: copy what it "
                     "points to into the plugin or list the link in .releaseignore");
      }
      entry.target = *target;
      entry.size = entry.target.size();
    } else {
      return Error(path +
                   ": a device, fifo or socket cannot be packed: remove it or list it "
                   "in .releaseignore");
    }
    out.push_back(std::move(entry));
    if (is_dir) {
      if (auto status = collect(root, child_rel, ignore, out); !status) {
        return status;
      }
    }
  }
  return {};
}

Result<std::int64_t> build_timestamp(const BuildOptions& options,
                                     const std::vector<SourceEntry>& entries) {
  if (options.timestamp) {
    return *options.timestamp;
  }
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch && *epoch) {
    auto parsed = parse_int(epoch);
    if (!parsed || *parsed < 0) {
      return Error("SOURCE_DATE_EPOCH=" + std::string(epoch) +
                   " is not a number of seconds since 1970: fix or unset it");
    }
    return static_cast<std::int64_t>(*parsed);
  }
  // Files and links only: a folder's date changes when a build is written into it.
  std::int64_t newest = 0;
  for (const SourceEntry& entry : entries) {
    if (entry.type != S_IFDIR) {
      newest = std::max(newest, entry.mtime);
    }
  }
  return newest;
}

std::string iso_date(std::int64_t seconds) {
  std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  ::gmtime_r(&time, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) {
    return "unknown";
  }
  return name;
}

// Writes the archive's entries one by one with the same fixed attributes.
class ArchiveOutput {
 public:
  ArchiveOutput(archive* handle, std::int64_t timestamp)
      : m_handle(handle), m_timestamp(timestamp) {}

  Status header(const std::string& rel, mode_t type, unsigned mode, std::uint64_t size,
                const std::string& target = "") {
    af::ArchiveEntry entry(archive_entry_new());
    if (!entry) {
      return Error("allocating an archive entry", ENOMEM);
    }
    std::string name = std::string(af::k_top_folder) + (rel.empty() ? "" : "/" + rel);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), type);
    archive_entry_set_perm(entry.get(), static_cast<mode_t>(mode));
    archive_entry_set_size(entry.get(), type == S_IFREG ? static_cast<la_int64_t>(size) : 0);
    if (type == S_IFLNK) {
      archive_entry_set_symlink(entry.get(), target.c_str());
    }
    archive_entry_set_mtime(entry.get(), static_cast<time_t>(m_timestamp), 0);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_uname(entry.get(), "root");
    archive_entry_set_gname(entry.get(), "root");
    if (archive_write_header(m_handle, entry.get()) != ARCHIVE_OK) {
      return Error("writing the entry " + name + ": " + af::archive_message(m_handle));
    }
    return {};
  }

  Status data(const void* bytes, size_t size, const std::string& what) {
    if (archive_write_data(m_handle, bytes, size) != static_cast<la_ssize_t>(size)) {
      return Error("writing " + what + " into the archive: " + af::archive_message(m_handle));
    }
    return {};
  }

  // A document made here (.metadata.json, .files.json).
  Status document(const std::string& rel, const std::string& content) {
    if (auto status = header(rel, S_IFREG, 0644, content.size()); !status) {
      return status;
    }
    return data(content.data(), content.size(), rel);
  }

 private:
  archive* m_handle;
  std::int64_t m_timestamp;
};

// Streams the file into the archive and hashes it on the way.
Result<std::string> pack_file(ArchiveOutput& output, const SourceEntry& entry) {
  UniqueFd fd(::open(entry.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return Error::from_errno("opening " + entry.path);
  }
  if (auto status = output.header(entry.rel, S_IFREG, entry.mode, entry.size); !status) {
    return status.error();
  }
  af::Sha256 hash;
  std::vector<char> buffer(k_chunk);
  std::uint64_t done = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Error::from_errno("reading " + entry.path);
    }
    if (n == 0) {
      break;
    }
    auto count = static_cast<std::uint64_t>(n);
    if (done + count > entry.size) {
      break;
    }
    hash.update(buffer.data(), count);
    if (auto status = output.data(buffer.data(), count, entry.path); !status) {
      return status.error();
    }
    done += count;
  }
  if (done != entry.size) {
    return Error(entry.path + " changed while the archive was being built: build again");
  }
  return hash.hex_digest();
}

Result<PluginConfig> load_for_build(const std::string& dir) {
  PluginLoad load = load_plugin(dir, LoadOptions{});
  if (!load.plugin) {
    std::string message = "cannot build " + dir + ": the plugin has errors";
    for (const Diagnostic& diagnostic : load.diagnostics) {
      message += "\n" + diagnostic.describe();
    }
    return Error(message);
  }
  return std::move(*load.plugin);
}

Status write_archive(int fd, const PluginConfig& plugin, const std::vector<SourceEntry>& entries,
                     std::int64_t timestamp, const std::string& build_host, BuildResult& result) {
  af::ArchiveWriter writer(archive_write_new());
  if (!writer) {
    return Error("creating an archive writer", ENOMEM);
  }
  if (archive_write_add_filter_gzip(writer.get()) != ARCHIVE_OK ||
      archive_write_set_options(writer.get(), "gzip:!timestamp") != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(writer.get()) != ARCHIVE_OK ||
      archive_write_open_fd(writer.get(), fd) != ARCHIVE_OK) {
    return Error("setting up the tar.gz writer: " + af::archive_message(writer.get()));
  }
  ArchiveOutput output(writer.get(), timestamp);

  struct stat root {};
  if (::stat(plugin.dir.c_str(), &root) != 0) {
    return Error::from_errno("reading " + plugin.dir);
  }
  if (auto status = output.header("", S_IFDIR, root.st_mode & 0777, 0); !status) {
    return status;
  }
  std::vector<af::ManifestEntry> manifest;
  for (const SourceEntry& entry : entries) {
    af::ManifestEntry item;
    item.path = entry.rel;
    item.mode = entry.mode;
    item.size = entry.size;
    if (entry.type == S_IFDIR) {
      if (auto status = output.header(entry.rel, S_IFDIR, entry.mode, 0); !status) {
        return status;
      }
      continue;
    }
    if (entry.type == S_IFLNK) {
      if (auto status = output.header(entry.rel, S_IFLNK, entry.mode, 0, entry.target); !status) {
        return status;
      }
      item.type = af::ManifestEntry::Type::Symlink;
      item.target = entry.target;
      item.sha256 = af::sha256_hex(entry.target);
    } else {
      auto digest = pack_file(output, entry);
      if (!digest) {
        return digest.error();
      }
      item.sha256 = *digest;
      result.size += entry.size;
    }
    manifest.push_back(std::move(item));
  }

  af::Metadata metadata;
  metadata.name = plugin.name;
  metadata.version = plugin.version;
  metadata.release = plugin.release;
  metadata.build_host = build_host;
  metadata.build_date = iso_date(timestamp);
  metadata.size = std::to_string(result.size);
  metadata.summary = plugin.summary;
  metadata.license = plugin.license;
  metadata.packager = plugin.maintainer;
  metadata.vendor = plugin.vendor;
  metadata.url = plugin.url;
  const std::string metadata_json = af::render_metadata_json(metadata);
  af::ManifestEntry metadata_item;
  metadata_item.path = std::string(af::k_metadata_json);
  metadata_item.mode = 0644;
  metadata_item.size = metadata_json.size();
  metadata_item.sha256 = af::sha256_hex(metadata_json);
  manifest.push_back(metadata_item);
  result.files = manifest.size() - 1;

  if (auto status = output.document(std::string(af::k_metadata_json), metadata_json); !status) {
    return status;
  }
  if (auto status = output.document(std::string(af::k_files_json), af::render_files_json(manifest));
      !status) {
    return status;
  }
  if (archive_write_close(writer.get()) != ARCHIVE_OK) {
    return Error("finishing the archive: " + af::archive_message(writer.get()));
  }
  return {};
}

}  // namespace

Result<BuildResult> build_plugin_archive(const std::string& dir, const std::string& output_dir,
                                         const BuildOptions& options) {
  auto plugin = load_for_build(dir);
  if (!plugin) {
    return plugin.error();
  }
  auto ignore = ReleaseIgnore::read(plugin->dir + "/.releaseignore");
  if (!ignore) {
    return ignore.error().with_context("reading .releaseignore");
  }
  std::vector<SourceEntry> entries;
  if (auto status = collect(plugin->dir, "", *ignore, entries); !status) {
    return status.error().with_context("cannot build " + dir);
  }
  auto timestamp = build_timestamp(options, entries);
  if (!timestamp) {
    return timestamp.error();
  }

  BuildResult result;
  result.name = plugin->name;
  result.version = plugin->version;
  result.release = plugin->release;
  const std::string file_name =
      plugin->name + "-" + plugin->version + "-" + plugin->release + std::string(af::k_suffix);
  if (auto status = make_dirs(output_dir, 0755); !status) {
    return status.error().with_context("preparing the output folder");
  }
  result.path = output_dir + "/" + file_name;

  // Written next to its final name, renamed when complete: never a half-written archive.
  std::string temporary = output_dir + "/." + file_name + ".XXXXXX";
  UniqueFd fd(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!fd) {
    return Error::from_errno("creating a file in " + output_dir);
  }
  const std::string build_host = options.build_host.empty() ? host_name() : options.build_host;
  Status written = write_archive(fd.get(), *plugin, entries, *timestamp, build_host, result);
  if (written && ::fchmod(fd.get(), 0644) != 0) {
    written = Error::from_errno("setting the mode of " + temporary);
  }
  if (written && ::fsync(fd.get()) != 0) {
    written = Error::from_errno("writing " + temporary);
  }
  fd.reset();
  if (written && ::rename(temporary.c_str(), result.path.c_str()) != 0) {
    written = Error::from_errno("renaming " + temporary + " to " + result.path);
  }
  if (!written) {
    ::unlink(temporary.c_str());
    return written.error().with_context("cannot build " + dir);
  }
  return result;
}

Result<bool> install_node_modules(const std::string& dir) {
  if (!path_exists(dir + "/package.json") || path_exists(dir + "/node_modules")) {
    return false;
  }
  // Prepared before fork: the child only makes system calls.
  const char* argv[] = {"npm",        "install",          "--no-audit", "--no-fund",
                        "--omit=dev", "--loglevel=error", nullptr};
  std::string directory = dir;
  pid_t pid = ::fork();
  if (pid < 0) {
    return Error::from_errno("starting npm install");
  }
  if (pid == 0) {
    // npm's progress goes to stderr: stdout stays the command's result.
    if (::chdir(directory.c_str()) != 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
      ::_exit(126);
    }
    ::execvp(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return Error::from_errno("waiting for npm install");
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return Error("npm install in " + dir +
                 ": npm was not found; install Node.js and npm, or "
                 "run npm install there yourself");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error("npm install in " + dir +
                 " failed (see its output above): fix package.json "
                 "or run npm install there yourself");
  }
  return true;
}

}  // namespace mfserv::images
