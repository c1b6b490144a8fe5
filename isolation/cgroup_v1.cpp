// cgroup v1 backend (legacy and hybrid hosts): one hierarchy per controller, at the mount
// points libcgroup reported (cgroup_detect.cpp). Directories are made and removed, and limits
// written, through the kernel interface so that a failure names the exact file and value, and
// so that libcgroup's tables never have to be loaded in the long-lived supervisor.
// Kernel reference: Documentation/admin-guide/cgroup-v1/{memory,pids,freezer-subsystem}.rst.
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <thread>

#include "isolation/cgroup_backends.hpp"
#include "isolation/cgroup_fs.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::isolation {
namespace {

class V1Backend final : public CgroupBackend {
 public:
  explicit V1Backend(std::map<std::string, std::string> mounts) : m_mounts(std::move(mounts)) {}

  std::string mode() const override { return "v1"; }

  std::string describe() const override {
    std::string text = "cgroup v1 (controllers:";
    for (const auto& [name, mount] : m_mounts) {
      text += " " + name;
    }
    return text + ")";
  }

  Status create(const std::string& rel, const CgroupLimits& limits) override {
    if (auto st = require_controllers(limits); !st) {
      return st.error().with_context("cgroup " + rel);
    }
    for (const auto& [name, mount] : m_mounts) {
      std::string path = mount;
      for (const auto& part : split(rel, '/')) {
        if (part.empty()) {
          continue;
        }
        path += "/" + part;
        if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
          return Error::from_errno("creating cgroup " + path);
        }
      }
    }
    return apply_limits(rel, limits);
  }

  Result<std::vector<UniqueFd>> open_procs(const std::string& rel) override {
    std::vector<UniqueFd> fds;
    for (const auto& [name, mount] : m_mounts) {
      std::string path = mount + "/" + rel + "/cgroup.procs";
      UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd) {
        return Error::from_errno("opening " + path);
      }
      fds.push_back(std::move(fd));
    }
    return fds;
  }

  std::vector<pid_t> pids(const std::string& rel) override {
    return subtree_pids(dir("memory", rel));
  }

  Status kill_all(const std::string& rel, int timeout_ms) override {
    // v1 has no cgroup.kill: freeze the group so nothing forks while we walk it, kill every
    // pid, thaw so the kills are delivered, and repeat until the group is empty.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool has_freezer = m_mounts.count("freezer") != 0;
    if (pids(rel).empty()) {
      return {};  // the usual case after a worker's exit: its PID namespace took everything
    }
    for (;;) {
      std::string freezer_dir = has_freezer ? dir("freezer", rel) : "";
      bool frozen = has_freezer && is_directory(freezer_dir) &&
                    write_control(freezer_dir, "freezer.state", "FROZEN").ok();
      auto pid_list = pids(rel);
      for (pid_t pid : pid_list) {
        ::kill(pid, SIGKILL);
      }
      if (frozen) {
        // Thaw every cgroup of the subtree: one left FROZEN by itself (a crashed run) stays
        // frozen when its parent thaws ("self-state", cgroup-v1/freezer-subsystem.rst), and
        // a frozen task does not act on SIGKILL.
        for (const auto& d : subtree_dirs_deepest_first(freezer_dir)) {
          (void)write_control(d, "freezer.state", "THAWED");
        }
      }
      if (pid_list.empty()) {
        return {};
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Error("killing cgroup " + display_path(rel) + ": " +
                     std::to_string(pid_list.size()) + " processes still there");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  Status remove(const std::string& rel) override {
    // rmdir rather than libcgroup's cgroup_delete_cgroup_ext(), which moves the tasks it
    // finds to the parent instead of failing.
    for (const auto& [name, mount] : m_mounts) {
      if (auto st = remove_subtree(dir(name, rel)); !st) {
        return st;
      }
    }
    return {};
  }

  Status remove_if_empty(const std::string& rel) override {
    for (const auto& [name, mount] : m_mounts) {
      auto st = remove_cgroup(dir(name, rel));
      if (!st && st.error().code() != EBUSY) {
        return st;
      }
    }
    return {};
  }

  Result<UniqueFd> watch_oom(const std::string& rel) override {
    // cgroup-v1/memory.rst, "OOM Control": write "<eventfd> <fd of memory.oom_control>" to
    // cgroup.event_control. The eventfd is signalled when this memcg or an ancestor hits its
    // limit (mem_cgroup_oom_notify walks the OOMing memcg's subtree), and once when the
    // cgroup is removed. The other two fds may be closed once registered.
    std::string memory_dir = dir("memory", rel);
    UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!event) {
      return Error::from_errno("watching OOM kills in " + memory_dir + ": eventfd");
    }
    UniqueFd control(::open((memory_dir + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC));
    if (!control) {
      return Error::from_errno("opening " + memory_dir + "/memory.oom_control");
    }
    std::string registration = std::to_string(event.get()) + " " + std::to_string(control.get());
    if (auto st = write_control(memory_dir, "cgroup.event_control", registration); !st) {
      return st.error().with_context("registering an OOM eventfd");
    }
    return event;
  }

  CgroupCheck check() const override {
    CgroupCheck report;
    report.layout = has_cgroup2_mount() ? "hybrid" : "v1";
    report.backend = "v1";
    std::string memory_mount = m_mounts.count("memory") != 0 ? m_mounts.at("memory") : "";
    report.hierarchy_root = memory_mount;
    report.own_cgroup = own_cgroup("memory");
    report.base = display_path("");
    for (const auto& [name, mount] : m_mounts) {
      report.controllers.push_back(name);
    }
    for (const char* controller : {"memory", "pids", "cpu"}) {
      if (m_mounts.count(controller) == 0) {
        report.missing.emplace_back(controller);
        report.notes.push_back(std::string("no v1 ") + controller +
                               " hierarchy: limits that need it will stop their app");
      }
    }
    report.swap_limit = path_exists(memory_mount + "/memory.memsw.limit_in_bytes");
    if (!report.swap_limit) {
      report.notes.push_back(
          "no memory.memsw.* (swap accounting off: swapaccount=1 on the "
          "kernel command line): swap_max cannot be enforced");
    }
    if (m_mounts.count("freezer") == 0) {
      report.notes.push_back(
          "no v1 freezer: stopping a cgroup kills pid by pid without "
          "freezing, a fast forker may need several rounds");
    }
    return report;
  }

  CgroupUsage usage(const std::string& rel) override {
    CgroupUsage usage;
    std::string memory_dir = dir("memory", rel);
    usage.memory_current = read_number(memory_dir + "/memory.usage_in_bytes");
    // v1 reports "unlimited" as a huge page-rounded number; keep only real limits.
    auto limit = read_number(memory_dir + "/memory.limit_in_bytes");
    if (limit && *limit < (1ULL << 62)) {
      usage.memory_limit = limit;
    }
    // The v1 oom_kill counter is local to each memcg: add the subtree up.
    for (const auto& d : subtree_dirs_deepest_first(memory_dir)) {
      usage.oom_kills += read_keyed_value(d + "/memory.oom_control", "oom_kill").value_or(0);
    }
    return usage;
  }

  std::string display_path(const std::string& rel) const override { return "memory:/" + rel; }

 private:
  std::string dir(const std::string& controller, const std::string& rel) const {
    auto it = m_mounts.find(controller);
    return it == m_mounts.end() ? std::string() : it->second + "/" + rel;
  }

  Status require_controllers(const CgroupLimits& limits) const {
    auto need = [&](bool wanted, const char* controller, const char* key) -> Status {
      if (wanted && m_mounts.count(controller) == 0) {
        return Error(std::string(key) + " needs the v1 '" + controller +
                     "' controller, which this host does not mount");
      }
      return {};
    };
    for (auto st : {need(limits.pids_max.has_value(), "pids", "pids_max"),
                    need(limits.cpu_weight.has_value(), "cpu", "cpu_weight"),
                    need(!limits.cpu_max.empty(), "cpu", "cpu_max")}) {
      if (!st) {
        return st;
      }
    }
    return {};
  }

  static bool has_cgroup2_mount() {
    auto mounts = read_file("/proc/self/mounts");
    return mounts && mounts->find(" cgroup2 ") != std::string::npos;
  }

  // Every limit, set or not: one a reload removed goes back to the kernel's default (an
  // existing cgroup keeps what was written before). Resets skip a controller that is absent.
  Status apply_limits(const std::string& rel, const CgroupLimits& limits) {
    auto reset = [](const std::string& d, const char* file, const char* value) -> Status {
      return path_exists(d + "/" + file) ? write_control(d, file, value) : Status{};
    };
    std::string memory_dir = dir("memory", rel);
    bool has_memsw = path_exists(memory_dir + "/memory.memsw.limit_in_bytes");
    // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes (EINVAL,
    // cgroup-v1/memory.rst 2.5): lift memsw first, so that a larger or no limit works.
    Status st =
        has_memsw ? write_control(memory_dir, "memory.memsw.limit_in_bytes", "-1") : Status{};
    if (st) {
      st = limits.memory_max ? write_control(memory_dir, "memory.limit_in_bytes",
                                             std::to_string(*limits.memory_max))
                             : reset(memory_dir, "memory.limit_in_bytes", "-1");
    }
    // memsw is memory+swap: memory_max + swap_max keeps swap use at swap_max. Hosts booted
    // without swap accounting have no memsw file; CgroupCheck::swap_limit reports that.
    if (st && limits.memory_max && limits.swap_max && has_memsw) {
      st = write_control(memory_dir, "memory.memsw.limit_in_bytes",
                         std::to_string(*limits.memory_max + *limits.swap_max));
    }
    if (st) {
      st = limits.memory_high ? write_control(memory_dir, "memory.soft_limit_in_bytes",
                                              std::to_string(*limits.memory_high))
                              : reset(memory_dir, "memory.soft_limit_in_bytes", "-1");
    }
    if (st) {
      st = limits.pids_max
               ? write_control(dir("pids", rel), "pids.max", std::to_string(*limits.pids_max))
               : reset(dir("pids", rel), "pids.max", "max");
    }
    if (st) {
      // cpu.shares default 1024 matches cpu.weight default 100.
      st = limits.cpu_weight
               ? write_control(
                     dir("cpu", rel), "cpu.shares",
                     std::to_string(std::max<std::uint64_t>(2, *limits.cpu_weight * 1024 / 100)))
               : reset(dir("cpu", rel), "cpu.shares", "1024");
    }
    if (st && !limits.cpu_max.empty()) {
      auto parts = split(limits.cpu_max, ' ');
      std::string period = parts.size() > 1 ? parts[1] : "100000";
      std::string quota = parts[0] == "max" ? "-1" : parts[0];
      st = write_control(dir("cpu", rel), "cpu.cfs_period_us", period);
      if (st) {
        st = write_control(dir("cpu", rel), "cpu.cfs_quota_us", quota);
      }
    } else if (st) {
      st = reset(dir("cpu", rel), "cpu.cfs_quota_us", "-1");
    }
    return st;
  }

  std::map<std::string, std::string> m_mounts;
};

}  // namespace

std::unique_ptr<CgroupBackend> make_v1_backend(std::map<std::string, std::string> mounts) {
  return std::make_unique<V1Backend>(std::move(mounts));
}

}  // namespace mfserv::isolation
