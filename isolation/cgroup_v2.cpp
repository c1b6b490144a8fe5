// cgroup v2 backend: one unified hierarchy. Uses the kernel interface directly: controllers
// must be enabled top-down in cgroup.subtree_control, and cgroup.kill / memory.events have no
// libcgroup counterpart. Kernel reference: Documentation/admin-guide/cgroup-v2.rst.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "isolation/cgroup_backends.hpp"
#include "isolation/cgroup_fs.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::isolation {
namespace {

class V2Backend final : public CgroupBackend {
 public:
  explicit V2Backend(std::string root) : m_root(std::move(root)) {}

  std::string mode() const override { return "v2"; }

  std::string describe() const override {
    auto controllers = read_file(m_root + "/cgroup.controllers");
    return "cgroup v2 at " + m_root + " (controllers: " + (controllers ? trim(*controllers) : "?") +
           ")";
  }

  Status create(const std::string& rel, const CgroupLimits& limits) override {
    // Enable memory, pids and cpu on the way down; each parent must hold no process itself
    // ("no internal processes"), which holds for mfserv's own subtree.
    std::string path = m_root;
    for (const auto& part : split(rel, '/')) {
      if (part.empty()) {
        continue;
      }
      enable_controllers(path);
      path += "/" + part;
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        return Error::from_errno("creating cgroup " + path);
      }
    }
    return apply_limits(path, limits);
  }

  Result<std::vector<UniqueFd>> open_procs(const std::string& rel) override {
    std::vector<UniqueFd> fds;
    std::string path = dir(rel) + "/cgroup.procs";
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
      return Error::from_errno("opening " + path);
    }
    fds.push_back(std::move(fd));
    return fds;
  }

  std::vector<pid_t> pids(const std::string& rel) override { return subtree_pids(dir(rel)); }

  Status kill_all(const std::string& rel, int timeout_ms) override {
    std::string d = dir(rel);
    if (!is_directory(d)) {
      return {};
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool has_kill = path_exists(d + "/cgroup.kill");  // Linux 5.14+
    for (;;) {
      auto pid_list = pids(rel);
      if (pid_list.empty()) {
        return {};
      }
      if (has_kill) {
        (void)write_control(d, "cgroup.kill", "1");
      } else {
        (void)write_control(d, "cgroup.freeze", "1");
        for (pid_t pid : subtree_pids(d)) {
          ::kill(pid, SIGKILL);
        }
        (void)write_control(d, "cgroup.freeze", "0");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Error("killing cgroup " + rel + ": " + std::to_string(pid_list.size()) +
                     " processes still there");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  Status remove(const std::string& rel) override { return remove_subtree(dir(rel)); }

  CgroupUsage usage(const std::string& rel) override {
    CgroupUsage usage;
    std::string d = dir(rel);
    usage.memory_current = read_number(d + "/memory.current");
    usage.memory_limit = read_number(d + "/memory.max");
    // memory.events is hierarchical: kills in child cgroups count here too.
    usage.oom_kills = read_keyed_value(d + "/memory.events", "oom_kill").value_or(0);
    return usage;
  }

  std::string display_path(const std::string& rel) const override { return "/" + rel; }

 private:
  std::string dir(const std::string& rel) const { return m_root + "/" + rel; }

  static void enable_controllers(const std::string& path) {
    auto available = read_file(path + "/cgroup.controllers");
    if (!available) {
      return;
    }
    for (const char* controller : {"memory", "pids", "cpu"}) {
      if (available->find(controller) != std::string::npos) {
        (void)write_existing(path + "/cgroup.subtree_control", std::string("+") + controller);
      }
    }
  }

  Status apply_limits(const std::string& d, const CgroupLimits& limits) {
    auto write = [&](bool wanted, const char* file, const std::string& value) -> Status {
      if (!wanted) {
        return {};
      }
      if (!path_exists(d + "/" + file)) {
        return Error(std::string("cannot apply ") + file + " in " + d +
                     ": the controller is not enabled for this cgroup");
      }
      return write_control(d, file, value);
    };
    if (limits.memory_max) {
      if (auto st = write(true, "memory.max", std::to_string(*limits.memory_max)); !st) {
        return st;
      }
      if (limits.swap_max && path_exists(d + "/memory.swap.max")) {
        if (auto st = write(true, "memory.swap.max", std::to_string(*limits.swap_max)); !st) {
          return st;
        }
      }
    }
    for (auto st : {
             write(limits.memory_high.has_value(), "memory.high",
                   limits.memory_high ? std::to_string(*limits.memory_high) : ""),
             write(limits.pids_max.has_value(), "pids.max",
                   limits.pids_max ? std::to_string(*limits.pids_max) : ""),
             write(limits.cpu_weight.has_value(), "cpu.weight",
                   limits.cpu_weight ? std::to_string(*limits.cpu_weight) : ""),
             write(!limits.cpu_max.empty(), "cpu.max", limits.cpu_max),
         }) {
      if (!st) {
        return st;
      }
    }
    return {};
  }

  std::string m_root;
};

}  // namespace

std::unique_ptr<CgroupBackend> make_v2_backend(std::string root) {
  return std::make_unique<V2Backend>(std::move(root));
}

}  // namespace mfserv::isolation
