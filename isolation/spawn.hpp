// Starting a supervised process: create it in its cgroup (clone3 CLONE_INTO_CGROUP on v2),
// else fork and join the cgroup before exec; wire its fds, exec. Between fork and exec the
// child only makes system calls on memory prepared before the fork; a failing step is reported
// through a close-on-exec pipe and the child _exit()s, so the caller either gets a process that
// runs the target program or an error naming the step and errno, never a half-prepared process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "isolation/sandbox.hpp"
#include "util/result.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::isolation {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is the program's path
  std::vector<std::string> env;   // "KEY=VALUE"; LISTEN_PID is added when listen_fd >= 0
  std::string workdir;
  int output_fd = -1;                 // stdout and stderr (the log file); /dev/null when < 0
  bool inherit_stdio = false;         // keep the caller's 0, 1 and 2 (`mfserv exec`)
  int listen_fd = -1;                 // passed as fd 3 with LISTEN_FDS=1 (sd_listen_fds convention)
  std::vector<int> cgroup_procs_fds;  // see CgroupBackend::open_procs
  // The leaf's directory (CgroupBackend::open_dir, v2 only): when set and the kernel has
  // clone3 CLONE_INTO_CGROUP (5.7+), the process is born in that cgroup; otherwise (ENOSYS,
  // EINVAL, E2BIG: older kernels, seccomp'd clone3) it joins through cgroup_procs_fds.
  int cgroup_dir_fd = -1;
  std::vector<std::pair<int, std::uint64_t>> rlimits;  // RLIMIT_*, value (soft = hard)
  mode_t umask = 0007;
  bool new_session = true;  // setsid: the terminal's Ctrl-C goes to the supervisor only
  // When set: the process is a small init (PID 1 of new namespaces) that enters the sandbox,
  // forks the program, forwards signals to it, reaps zombies and exits with its status
  // (128+N when the program died of signal N).
  PreparedSandbox* sandbox = nullptr;
};

struct Spawned {
  pid_t pid = -1;
  UniqueFd pidfd;
  // True: clone3 created it in spec.cgroup_dir_fd's cgroup. False: it wrote its pid into
  // cgroup.procs before exec.
  bool born_in_cgroup = false;
};

Result<Spawned> spawn(const SpawnSpec& spec);

// The app command as MFSERV ran it: through the shell, replaced by the program.
std::vector<std::string> shell_argv(const std::string& command);

}  // namespace mfserv::isolation
