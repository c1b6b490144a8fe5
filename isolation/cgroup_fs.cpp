// cgroupfs helpers shared by the v1 and v2 backends (see cgroup_fs.hpp).
#include "isolation/cgroup_fs.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::isolation {
namespace {

constexpr int k_transient_busy_ms = 1000;

void collect_dirs(const std::string& dir, std::vector<std::string>& out) {
  for (const auto& name : list_subdirs(dir)) {
    collect_dirs(dir + "/" + name, out);
  }
  out.push_back(dir);
}

bool has_child_cgroup(const std::string& dir) {
  return !list_subdirs(dir).empty();
}

}  // namespace

std::vector<std::string> subtree_dirs_deepest_first(const std::string& dir) {
  std::vector<std::string> out;
  if (is_directory(dir)) {
    collect_dirs(dir, out);
  }
  return out;
}

std::vector<pid_t> cgroup_pids(const std::string& dir) {
  std::vector<pid_t> pids;
  auto content = read_file(dir + "/cgroup.procs");
  if (!content) {
    return pids;
  }
  for (const auto& line : split(*content, '\n')) {
    if (auto pid = parse_int(line)) {
      pids.push_back(static_cast<pid_t>(*pid));
    }
  }
  return pids;
}

std::vector<pid_t> subtree_pids(const std::string& dir) {
  std::vector<pid_t> pids;
  for (const auto& d : subtree_dirs_deepest_first(dir)) {
    auto here = cgroup_pids(d);
    pids.insert(pids.end(), here.begin(), here.end());
  }
  return pids;
}

Status remove_cgroup(const std::string& dir) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(k_transient_busy_ms);
  for (;;) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
      return {};
    }
    auto error = Error::from_errno("removing cgroup " + dir);
    if (error.code() != EBUSY || !cgroup_pids(dir).empty() || has_child_cgroup(dir) ||
        std::chrono::steady_clock::now() > deadline) {
      return error;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Status remove_subtree(const std::string& dir) {
  for (const auto& d : subtree_dirs_deepest_first(dir)) {
    if (auto st = remove_cgroup(d); !st) {
      return st;
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

Status write_control_retrying(const std::string& dir, const std::string& file,
                              const std::string& value, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto st = write_control(dir, file, value);
    if (st || st.error().code() != EBUSY || std::chrono::steady_clock::now() > deadline) {
      return st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string own_cgroup(const std::string& controller) {
  auto content = read_file("/proc/self/cgroup");
  if (!content) {
    return "";
  }
  // Lines are "ID:CONTROLLERS:PATH"; v2 is "0::PATH" (cgroups(7)).
  for (const auto& line : split(*content, '\n')) {
    auto first = line.find(':');
    auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) {
      continue;
    }
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controller.empty()) {
      if (controllers.empty()) {
        return path;
      }
      continue;
    }
    for (const auto& name : split(controllers, ',')) {
      if (name == controller) {
        return path;
      }
    }
  }
  return "";
}

std::string join_cgroup_path(const std::string& base, const std::string& rel) {
  std::string out;
  for (const auto* part : {&base, &rel}) {
    for (const auto& piece : split(*part, '/')) {
      if (!piece.empty()) {
        out += "/" + piece;
      }
    }
  }
  return out.empty() ? "/" : out;
}

}  // namespace mfserv::isolation
