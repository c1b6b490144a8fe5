#include "isolation/cgroup_fs.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::isolation {

static void collect_dirs(const std::string& dir, std::vector<std::string>& out) {
  for (const auto& name : list_dir(dir)) {
    std::string child = dir + "/" + name;
    struct stat st{};
    if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      collect_dirs(child, out);
    }
  }
  out.push_back(dir);
}

std::vector<std::string> subtree_dirs_deepest_first(const std::string& dir) {
  std::vector<std::string> out;
  if (is_directory(dir)) {
    collect_dirs(dir, out);
  }
  return out;
}

std::vector<pid_t> subtree_pids(const std::string& dir) {
  std::vector<pid_t> pids;
  for (const auto& d : subtree_dirs_deepest_first(dir)) {
    auto content = read_file(d + "/cgroup.procs");
    if (!content) {
      continue;
    }
    for (const auto& line : split(*content, '\n')) {
      if (auto pid = parse_int(line)) {
        pids.push_back(static_cast<pid_t>(*pid));
      }
    }
  }
  return pids;
}

Status remove_subtree(const std::string& dir) {
  for (const auto& d : subtree_dirs_deepest_first(dir)) {
    if (::rmdir(d.c_str()) != 0 && errno != ENOENT) {
      return Error::from_errno("removing cgroup " + d);
    }
  }
  return {};
}

std::optional<std::uint64_t> read_keyed_value(const std::string& path, const std::string& key) {
  auto content = read_file(path);
  if (!content) {
    return std::nullopt;
  }
  std::istringstream in(*content);
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == key) {
      return value;
    }
  }
  return std::nullopt;
}

std::optional<std::uint64_t> read_number(const std::string& path) {
  auto content = read_file(path);
  if (!content) {
    return std::nullopt;
  }
  std::string t = trim(*content);
  if (t == "max") {
    return std::nullopt;
  }
  if (auto v = parse_int(t); v && *v >= 0) {
    return static_cast<std::uint64_t>(*v);
  }
  return std::nullopt;
}

Status write_control(const std::string& dir, const std::string& file, const std::string& value) {
  if (auto st = write_existing(dir + "/" + file, value); !st) {
    return Error("setting " + file + "=" + value + " in " + dir, st.error().code());
  }
  return {};
}

}  // namespace mfserv::isolation
