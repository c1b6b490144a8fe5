// One front end for cgroups, one backend per hierarchy kind (v2 unified, v1 controllers),
// chosen at run time by detect_cgroups(). Paths given to a backend ("rel") are relative to
// the backend's base: the hierarchy root, or on v2 the cgroup systemd (or another manager)
// delegated to the supervisor ("mfserv/h1a2b3c4/plugin/app/w1"); the backend knows where
// that lives and never writes above it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/result.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::isolation {

struct CgroupLimits {
  std::optional<std::uint64_t> memory_max;
  std::optional<std::uint64_t> memory_high;
  std::optional<std::uint64_t> swap_max;  // applied only together with memory_max
  std::optional<std::uint64_t> pids_max;
  std::optional<std::uint64_t> cpu_weight;  // 1..10000 (v2 scale)
  std::string cpu_max;                      // "QUOTA PERIOD" | "max PERIOD" | ""
};

// What `mfserv check` reports about the host's cgroups (see CgroupBackend::check).
struct CgroupCheck {
  std::string layout;          // "v2" (unified), "hybrid" (v1 + a cgroup2 mount), "v1"
  std::string backend;         // "v2" | "v1": the backend mfserv uses
  std::string hierarchy_root;  // the cgroup2 mount, or the v1 memory controller's mount
  std::string own_cgroup;      // this process's cgroup in that hierarchy (/proc/self/cgroup)
  std::string base;            // where mfserv's cgroups go, as display_path("") shows it
  bool delegated = false;      // v2: base is a cgroup delegated to us (systemd Delegate=yes)
  // How delegation was recognised: "user.delegate xattr", "MFSERV_CGROUP_DELEGATED=1", ...
  std::string delegation_source;
  std::vector<std::string> controllers;  // of memory, pids, cpu, freezer: usable below base
  std::vector<std::string> missing;      // of memory, pids, cpu: not usable (limits will fail)
  // memory.swap.max (v2) / memory.memsw.limit_in_bytes (v1) exists: swap_max is enforced.
  bool swap_limit = false;
  bool kill_file = false;          // cgroup.kill (v2, Linux 5.14+); else freeze + kill each pid
  std::vector<std::string> notes;  // one line each, for humans
};

struct CgroupUsage {
  std::optional<std::uint64_t> memory_current;
  std::optional<std::uint64_t> memory_limit;  // nullopt: unlimited
  std::uint64_t oom_kills = 0;                // kernel OOM kills of tasks in this cgroup
};

class CgroupBackend {
 public:
  virtual ~CgroupBackend() = default;

  // "v2" or "v1"; and a line for `mfserv check` / logs.
  virtual std::string mode() const = 0;
  virtual std::string describe() const = 0;

  // Creates REL (and missing parents) and applies LIMITS. A limit that cannot be applied is
  // an error naming it: the caller must not run anything unlimited in its place.
  virtual Status create(const std::string& rel, const CgroupLimits& limits) = 0;
  // Files to write a pid into to join REL, opened now so that a child can join between fork
  // and exec with nothing but write(2).
  virtual Result<std::vector<UniqueFd>> open_procs(const std::string& rel) = 0;
  // REL's directory, opened for clone3(CLONE_INTO_CGROUP) (SpawnSpec::cgroup_dir_fd): a child
  // is then born in REL. v2 only: an error on v1, whose callers keep to open_procs.
  virtual Result<UniqueFd> open_dir(const std::string& rel) {
    return Error("opening cgroup " + rel + " for clone3: CLONE_INTO_CGROUP needs cgroup v2");
  }
  // Every pid in REL and below.
  virtual std::vector<pid_t> pids(const std::string& rel) = 0;
  // Sends SIGKILL to every process in REL and below until none is left (or TIMEOUT_MS).
  virtual Status kill_all(const std::string& rel, int timeout_ms) = 0;
  // Removes REL and everything below it (leaves first). Missing is fine.
  virtual Status remove(const std::string& rel) = 0;
  virtual CgroupUsage usage(const std::string& rel) = 0;
  // Where REL lives, for humans ("memory:/mfserv/..." on v1, "/mfserv/..." on v2).
  virtual std::string display_path(const std::string& rel) const = 0;

  // The subtree of one mfserv home, relative to the base: "mfserv/<instance>".
  virtual std::string root_for(const std::string& instance) const { return "mfserv/" + instance; }

  // C9: moves every process of the delegated base cgroup (the supervisor, right after
  // detect_cgroups()) into the leaf "<base>/supervisor", so that controllers can be enabled
  // in the base's cgroup.subtree_control ("no internal processes" rule, cgroup-v2.rst).
  // Nothing to do (and success) on v1 and when the base is the hierarchy root.
  virtual Status enter_leaf() { return {}; }

  // A non-blocking fd that becomes readable (poll/epoll/sd-event, EPOLLIN) when an OOM kill
  // may have happened in REL: v2 inotify on memory.events, v1 an eventfd registered on
  // memory.oom_control. Watch the worker's leaf: on v1 the notification reaches the cgroup
  // that hit its limit and the cgroups below it, so a leaf sees both its own and its app's
  // OOMs. On readable: drain_oom_watch(fd), then compare usage(REL).oom_kills with the value
  // kept at start (on v1 the event can come just before the counter moves: check again when
  // the process exits). The fd also fires once when REL is removed (v1).
  virtual Result<UniqueFd> watch_oom(const std::string& rel) {
    return Error("watching OOM kills in " + rel + ": not supported by this backend");
  }

  // rmdir of REL alone: fine when missing or when it still has child cgroups or processes.
  // For shared parents such as "mfserv" (remove() would take other homes' empty leaves).
  virtual Status remove_if_empty(const std::string& /*rel*/) { return {}; }

  // The host's layout, controllers, delegation and swap accounting, for `mfserv check`.
  virtual CgroupCheck check() const {
    CgroupCheck report;
    report.backend = mode();
    return report;
  }
};

// Reads the events an OOM watch fd has queued, so that it polls as not readable again.
void drain_oom_watch(int fd);

// Writes the decimal pid of the calling process into each fd. Async-signal-safe: meant for
// the child between fork and exec. Returns 0 or the errno of the failing write.
int join_cgroup_fds(const int* fds, int count);

// Finds the host's cgroup layout (libcgroup's mount table) and returns the backend to use:
// v2 when the memory controller is on a cgroup2 hierarchy, v1 when it is on a v1 one. On v2
// the base is this process's own cgroup when that is delegated: not "/", writable, and
// marked with the "user.delegate"/"trusted.delegate" xattr systemd sets for Delegate=yes,
// or MFSERV_CGROUP_DELEGATED=1 in the environment (=0 turns delegation off). A process in
// "<delegated>/supervisor" (after enter_leaf) gets "<delegated>" as its base again.
Result<std::unique_ptr<CgroupBackend>> detect_cgroups();

}  // namespace mfserv::isolation
