// One front end for cgroups, one backend per hierarchy kind (v2 unified, v1 controllers),
// chosen at run time by detect_cgroups(). Paths given to a backend are relative to the
// hierarchy root ("mfserv/h1a2b3c4/plugin/app/w1"); the backend knows where that lives.
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
  // Every pid in REL and below.
  virtual std::vector<pid_t> pids(const std::string& rel) = 0;
  // Sends SIGKILL to every process in REL and below until none is left (or TIMEOUT_MS).
  virtual Status kill_all(const std::string& rel, int timeout_ms) = 0;
  // Removes REL and everything below it (leaves first). Missing is fine.
  virtual Status remove(const std::string& rel) = 0;
  virtual CgroupUsage usage(const std::string& rel) = 0;
  // Where REL lives, for humans ("memory:/mfserv/..." on v1, "/mfserv/..." on v2).
  virtual std::string display_path(const std::string& rel) const = 0;
};

// Writes the decimal pid of the calling process into each fd. Async-signal-safe: meant for
// the child between fork and exec. Returns 0 or the errno of the failing write.
int join_cgroup_fds(const int* fds, int count);

// Finds the host's cgroup layout (libcgroup's mount table) and returns the backend to use:
// v2 when the memory controller is on a cgroup2 hierarchy, v1 when it is on a v1 one.
Result<std::unique_ptr<CgroupBackend>> detect_cgroups();

}  // namespace mfserv::isolation
