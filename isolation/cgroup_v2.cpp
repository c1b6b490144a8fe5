// cgroup v2 backend: one unified hierarchy, driven through the kernel interface directly:
// controllers are enabled top-down in cgroup.subtree_control, and cgroup.kill, cgroup.events,
// memory.events and delegation have no libcgroup counterpart. When systemd (or another
// manager) delegated a cgroup to the supervisor, every path is below that cgroup and nothing
// above it is written. Kernel reference: Documentation/admin-guide/cgroup-v2.rst.
#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "isolation/cgroup_backends.hpp"
#include "isolation/cgroup_fs.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::isolation {
namespace {

// The controllers mfserv enables below its base, and the ones `check` reports.
constexpr const char* k_controllers[] = {"memory", "pids", "cpu"};
constexpr int k_subtree_busy_ms = 1000;

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::vector<std::string> read_words(const std::string& path) {
  std::vector<std::string> words;
  if (auto content = read_file(path)) {
    for (const auto& word : split(trim(*content), ' ')) {
      if (!word.empty()) {
        words.push_back(word);
      }
    }
  }
  return words;
}

std::vector<std::string> controllers_needed(const CgroupLimits& limits) {
  std::vector<std::string> needed;
  if (limits.memory_max || limits.memory_high) {
    needed.emplace_back("memory");
  }
  if (limits.pids_max) {
    needed.emplace_back("pids");
  }
  if (limits.cpu_weight || !limits.cpu_max.empty()) {
    needed.emplace_back("cpu");
  }
  return needed;
}

bool kernel_at_least(int major, int minor) {
  struct utsname name {};
  if (::uname(&name) != 0) {
    return false;
  }
  auto parts = split(name.release, '.');
  auto have_major = parts.size() > 0 ? parse_int(parts[0]) : std::nullopt;
  auto have_minor = parts.size() > 1 ? parse_int(parts[1]) : std::nullopt;
  if (!have_major || !have_minor) {
    return false;
  }
  return *have_major > major || (*have_major == major && *have_minor >= minor);
}

class V2Backend final : public CgroupBackend {
 public:
  V2Backend(std::string mount, V2Base base)
      : m_mount(std::move(mount)),
        m_base(std::move(base)),
        m_base_dir(m_base.rel.empty() ? m_mount : m_mount + join_cgroup_path("", m_base.rel)) {}

  std::string mode() const override { return "v2"; }

  std::string describe() const override {
    auto controllers = read_file(m_base_dir + "/cgroup.controllers");
    std::string text = "cgroup v2 at " + m_mount +
                       " (controllers: " + (controllers ? trim(*controllers) : "?") + ")";
    if (m_base.delegated) {
      text += ", delegated base " + display_path("") + " (" + m_base.source + ")";
    }
    return text;
  }

  Status create(const std::string& rel, const CgroupLimits& limits) override {
    // Controllers are enabled on the way down from the base; each parent must hold no
    // process itself ("no internal process constraint"), which enter_leaf() ensures for a
    // delegated base and which holds for mfserv's own subtree.
    auto needed = controllers_needed(limits);
    std::string path = m_base_dir;
    for (const auto& part : split(rel, '/')) {
      if (part.empty()) {
        continue;
      }
      if (auto st = enable_controllers(path, needed); !st) {
        return st.error().with_context("creating cgroup " + display_path(rel));
      }
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

  Result<UniqueFd> open_dir(const std::string& rel) override {
    // clone3(2): "cgroup: ... a file descriptor referring to a cgroup v2 directory", opened
    // O_RDONLY or O_PATH.
    std::string path = dir(rel);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      return Error::from_errno("opening cgroup " + path);
    }
    return fd;
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
      // "populated" of cgroup.events stays 1 until the last task of the subtree has exited,
      // which cgroup.procs alone does not show (an exiting task leaves it earlier).
      bool populated = read_keyed_value(d + "/cgroup.events", "populated").value_or(0) != 0;
      auto pid_list = pids(rel);
      if (!populated && pid_list.empty()) {
        return {};
      }
      if (has_kill) {
        // cgroup.kill: SIGKILL to the whole subtree, safe against concurrent forks; frozen
        // tasks die too (cgroup-v2.rst, "cgroup.kill").
        (void)write_control(d, "cgroup.kill", "1");
      } else {
        (void)write_control(d, "cgroup.freeze", "1");
        for (pid_t pid : subtree_pids(d)) {
          ::kill(pid, SIGKILL);
        }
        (void)write_control(d, "cgroup.freeze", "0");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Error("killing cgroup " + display_path(rel) + ": " +
                     std::to_string(pid_list.size()) + " processes still there");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  Status remove(const std::string& rel) override { return remove_subtree(dir(rel)); }

  Status remove_if_empty(const std::string& rel) override {
    auto st = remove_cgroup(dir(rel));
    if (!st && st.error().code() == EBUSY) {
      return {};
    }
    return st;
  }

  CgroupUsage usage(const std::string& rel) override {
    CgroupUsage usage;
    std::string d = dir(rel);
    usage.memory_current = read_number(d + "/memory.current");
    usage.memory_limit = read_number(d + "/memory.max");
    // memory.events is hierarchical: kills in child cgroups count here too (cgroup-v2.rst,
    // "memory.events"; memory.events.local has this cgroup's own).
    usage.oom_kills = read_keyed_value(d + "/memory.events", "oom_kill").value_or(0);
    return usage;
  }

  std::string display_path(const std::string& rel) const override {
    return join_cgroup_path(m_base.rel, rel);
  }

  Status enter_leaf() override {
    if (!m_base.delegated) {
      return {};
    }
    std::string leaf = m_base_dir + "/" + k_supervisor_leaf;
    if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
      return Error::from_errno("creating the supervisor's leaf cgroup " + leaf);
    }
    // Every process of the base moves (normally the supervisor alone; systemd starts a
    // service's main process there). Writing a pid moves its whole thread group.
    for (pid_t pid : cgroup_pids(m_base_dir)) {
      auto st = write_control(leaf, "cgroup.procs", std::to_string(pid));
      if (!st && st.error().code() != ESRCH) {
        return st.error().with_context("moving the supervisor into its leaf cgroup");
      }
    }
    return {};
  }

  Result<UniqueFd> watch_oom(const std::string& rel) override {
    // "A value change in this file generates a file modified event" (cgroup-v2.rst,
    // memory.events): inotify IN_MODIFY on it. It also fires for the max/high counters.
    std::string path = dir(rel) + "/memory.events";
    UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd) {
      return Error::from_errno("watching " + path + ": inotify_init1");
    }
    if (::inotify_add_watch(fd.get(), path.c_str(), IN_MODIFY) < 0) {
      return Error::from_errno("watching " + path);
    }
    return fd;
  }

  CgroupCheck check() const override {
    CgroupCheck report;
    report.layout = "v2";
    report.backend = "v2";
    report.hierarchy_root = m_mount;
    report.own_cgroup = own_cgroup("");
    report.base = display_path("");
    report.delegated = m_base.delegated;
    report.delegation_source = m_base.source;
    auto available = read_words(m_base_dir + "/cgroup.controllers");
    for (const char* controller : k_controllers) {
      (contains(available, controller) ? report.controllers : report.missing)
          .emplace_back(controller);
    }
    // The v2 freezer is part of the core (cgroup.freeze, Linux 5.2+), not a controller.
    std::string probe = probe_dir();
    if (!probe.empty()) {
      report.swap_limit = path_exists(probe + "/memory.swap.max");
      report.kill_file = path_exists(probe + "/cgroup.kill");
    } else {
      auto cmdline = read_file("/proc/cmdline");
      report.swap_limit = !(cmdline && cmdline->find("swapaccount=0") != std::string::npos);
      report.kill_file = kernel_at_least(5, 14);
    }
    if (!m_base.delegated && report.own_cgroup != "/" && !report.own_cgroup.empty()) {
      report.notes.push_back("mfserv runs in " + report.own_cgroup +
                             " without delegation: its cgroups go below the hierarchy root; "
                             "under systemd, run it with Delegate=yes");
    }
    if (m_base.delegated && !cgroup_pids(m_base_dir).empty()) {
      report.notes.push_back("the delegated cgroup " + report.base +
                             " still holds processes: the supervisor enters its leaf first");
    }
    for (const auto& controller : report.missing) {
      report.notes.push_back("the " + controller + " controller is not available in " +
                             report.base + ": limits that need it will stop their app");
    }
    if (!report.swap_limit) {
      report.notes.push_back(
          "no memory.swap.max (swapaccount=0 or a kernel without swap): "
          "swap_max cannot be enforced");
    }
    return report;
  }

 private:
  std::string dir(const std::string& rel) const { return m_base_dir + "/" + rel; }

  // A non-root cgroup with the memory controller, to see which optional files exist.
  std::string probe_dir() const {
    if (!m_base.rel.empty() && path_exists(m_base_dir + "/memory.max")) {
      return m_base_dir;
    }
    for (const auto& name : list_dir(m_base_dir)) {
      std::string child = m_base_dir + "/" + name;
      if (path_exists(child + "/memory.max")) {
        return child;
      }
    }
    return "";
  }

  // Enables memory, pids and cpu for the children of PATH where available. A controller
  // in NEEDED that cannot be enabled is an error (C11: never run unlimited instead).
  Status enable_controllers(const std::string& path, const std::vector<std::string>& needed) {
    auto available = read_words(path + "/cgroup.controllers");
    auto enabled = read_words(path + "/cgroup.subtree_control");
    for (const auto& controller : needed) {
      if (!contains(available, controller)) {
        std::string hint = path == m_base_dir && m_base.delegated
                               ? "; the manager that delegated it must enable it in the "
                                 "parent (systemd: Delegate=" +
                                     controller + ")"
                               : "";
        return Error("the " + controller + " controller is not available in " + path +
                     " (cgroup.controllers: " + join_words(available) + ")" + hint);
      }
    }
    std::vector<std::string> to_enable;
    for (const char* controller : k_controllers) {
      if (contains(available, controller) && !contains(enabled, controller)) {
        to_enable.emplace_back(controller);
      }
    }
    if (to_enable.empty()) {
      return {};
    }
    // "No internal process constraint" (cgroup-v2.rst): a non-root cgroup with processes
    // cannot enable domain controllers (EBUSY). Worse, the threaded ones (pids, cpu) are
    // accepted and turn it into a thread root, after which memory fails with EOPNOTSUPP; so
    // nothing is written while processes are there. A process that just left may still be
    // listed for a moment.
    if (path != m_mount) {
      auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(k_subtree_busy_ms);
      while (!cgroup_pids(path).empty()) {
        if (std::chrono::steady_clock::now() > deadline) {
          return Error("cannot enable controllers in " + path +
                           ": it holds processes (cgroup-v2.rst, no internal process "
                           "constraint); the supervisor calls enter_leaf() first",
                       EBUSY);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    for (const auto& controller : to_enable) {
      auto st = write_control_retrying(path, "cgroup.subtree_control", "+" + controller,
                                       k_subtree_busy_ms);
      if (!st && contains(needed, controller)) {
        return st;
      }
    }
    return {};
  }

  static std::string join_words(const std::vector<std::string>& words) {
    std::string text;
    for (const auto& word : words) {
      text += (text.empty() ? "" : " ") + word;
    }
    return text.empty() ? "none" : text;
  }

  // Every limit, set or not: one a reload removed goes back to the kernel's default (an
  // existing cgroup keeps what was written before), where its controller is enabled.
  static Status apply_limits(const std::string& d, const CgroupLimits& limits) {
    auto write = [&](const char* file, const std::optional<std::string>& value,
                     const char* unset) -> Status {
      if (!path_exists(d + "/" + file)) {
        if (!value) {
          return {};  // nothing asked, nothing to reset
        }
        return Error(std::string("cannot apply ") + file + "=" + *value + " in " + d +
                     ": the file does not exist (controller not enabled for this cgroup)");
      }
      return write_control(d, file, value ? *value : unset);
    };
    auto text = [](const std::optional<std::uint64_t>& value) {
      return value ? std::optional<std::string>(std::to_string(*value)) : std::nullopt;
    };
    // swap_max applies together with memory_max; absent when swap accounting is off
    // (CgroupCheck::swap_limit reports that).
    const std::optional<std::uint64_t> swap = limits.memory_max ? limits.swap_max : std::nullopt;
    Status st = write("memory.max", text(limits.memory_max), "max");
    if (st && path_exists(d + "/memory.swap.max")) {
      st = write("memory.swap.max", text(swap), "max");
    }
    if (st) {
      st = write("memory.high", text(limits.memory_high), "max");
    }
    if (st) {
      st = write("pids.max", text(limits.pids_max), "max");
    }
    if (st) {
      st = write("cpu.weight", text(limits.cpu_weight), "100");
    }
    if (st) {
      st = write("cpu.max",
                 limits.cpu_max.empty() ? std::nullopt : std::optional<std::string>(limits.cpu_max),
                 "max");
    }
    return st;
  }

  std::string m_mount;
  V2Base m_base;
  std::string m_base_dir;
};

}  // namespace

std::unique_ptr<CgroupBackend> make_v2_backend(std::string root) {
  return make_v2_backend(std::move(root), V2Base{});
}

std::unique_ptr<CgroupBackend> make_v2_backend(std::string root, V2Base base) {
  return std::make_unique<V2Backend>(std::move(root), std::move(base));
}

}  // namespace mfserv::isolation
