// A plugin folder on disk and its name (see plugin_dir.hpp).
#include "images/plugin_dir.hpp"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <memory>

#include "images/layers.hpp"
#include "images/values.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

constexpr std::string_view k_label_prefix = "plugin_";
constexpr std::string_view k_label_suffix = "@mfserv";

std::string without_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

}  // namespace

Result<std::string> real_path(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr),
                                                       &std::free);
  if (!resolved) {
    return Error::from_errno("resolving " + path);
  }
  return std::string(resolved.get());
}

bool is_symlink(const std::string& path) {
  struct stat st {};
  std::string link = without_trailing_slashes(path);
  return ::lstat(link.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::string base_name(const std::string& path) {
  std::string trimmed = without_trailing_slashes(path);
  size_t slash = trimmed.rfind('/');
  return slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
}

std::optional<std::string> read_plugin_name(const std::string& dir,
                                            std::vector<Diagnostic>& diagnostics) {
  const std::string label_path = dir + "/.layerapi2_label";
  std::string name;
  std::string where = dir;
  int line = 0;
  if (path_exists(label_path)) {
    where = label_path;
    line = 1;
    auto content = read_file(label_path);
    if (!content) {
      diagnostics.push_back(make_diagnostic(Diagnostic::Severity::Error, label_path, 0, "",
                                            content.error().describe()));
      return std::nullopt;
    }
    std::string label = trim(*content);
    if (label.size() <= k_label_prefix.size() + k_label_suffix.size() ||
        !starts_with(label, k_label_prefix) ||
        label.compare(label.size() - k_label_suffix.size(), k_label_suffix.size(),
                      k_label_suffix) != 0) {
      diagnostics.push_back(
          make_diagnostic(Diagnostic::Severity::Error, label_path, 1, "",
                          "expected plugin_NAME@mfserv, found " + quote_value(label)));
      return std::nullopt;
    }
    name = label.substr(k_label_prefix.size(),
                        label.size() - k_label_prefix.size() - k_label_suffix.size());
  } else {
    name = base_name(dir);
  }
  if (auto status = check_plugin_name(name); !status) {
    diagnostics.push_back(
        make_diagnostic(Diagnostic::Severity::Error, where, line, "", status.error().message()));
    return std::nullopt;
  }
  return name;
}

}  // namespace mfserv::images
