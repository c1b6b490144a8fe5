#include "isolation/spawn.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "isolation/cgroup.hpp"
#include "isolation/sandbox_init.hpp"

namespace mfserv::isolation {
namespace {

// What the child reports when a step fails.
struct ChildFailure {
  int step;
  int error;
  int sandbox_step;
};

enum Step : int {
  k_step_session = 1,
  k_step_cgroup,
  k_step_fds,
  k_step_rlimit,
  k_step_chdir,
  k_step_exec,
  k_step_sandbox,
  k_step_clone,
};

const char* step_name(int step) {
  switch (step) {
    case k_step_session:
      return "creating a session";
    case k_step_cgroup:
      return "joining the cgroup";
    case k_step_fds:
      return "setting up stdio and the listening socket";
    case k_step_rlimit:
      return "applying rlimits";
    case k_step_chdir:
      return "entering the working directory";
    case k_step_exec:
      return "executing the command";
    case k_step_sandbox:
      return "entering the sandbox";
    case k_step_clone:
      return "starting the program inside the sandbox";
    default:
      return "an unknown step";
  }
}

[[noreturn]] void fail(int pipe_fd, int step, SandboxStep sandbox_step = SandboxStep::k_none) {
  ChildFailure failure{step, errno, static_cast<int>(sandbox_step)};
  (void)!::write(pipe_fd, &failure, sizeof failure);
  ::_exit(127);
}

// Writes the decimal value of PID and a '\0' to OUT (16 bytes are enough), allocation-free.
void format_decimal(char* out, pid_t pid) {
  char digits[16];
  int n = 0;
  long value = pid;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  for (int i = 0; i < n; ++i) {
    out[i] = digits[n - 1 - i];
  }
  out[n] = '\0';
}

// Writes the decimal value of PID over the digits reserved after the '=' of ENTRY.
void fill_pid(char* entry, pid_t pid) {
  format_decimal(std::strchr(entry, '=') + 1, pid);
}

void reset_signals() {
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    signal(sig, SIG_DFL);
  }
}

[[noreturn]] void run_child(const SpawnSpec& spec, char* const* argv, char* const* envp,
                            char* listen_pid_entry, int null_fd, int pipe_fd, bool born_in_cgroup) {
  PreparedSandbox* sandbox = spec.sandbox;
  // Keep the failure pipe clear of the fds set up below (0-3).
  if (pipe_fd <= 3) {
    pipe_fd = ::fcntl(pipe_fd, F_DUPFD_CLOEXEC, 10);
  }
  if (sandbox) {
    // The init takes signals with sigwaitinfo; the program gets a clean mask after fork.
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) {
      signal(sig, SIG_DFL);
    }
  } else {
    reset_signals();
  }
  if (spec.new_session && ::setsid() < 0) {
    fail(pipe_fd, k_step_session);
  }
  // First of all, so that everything below is charged to the worker's cgroup (nothing to do
  // when clone3 created the process there).
  if (!born_in_cgroup) {
    if (int err = join_cgroup_fds(spec.cgroup_procs_fds.data(),
                                  static_cast<int>(spec.cgroup_procs_fds.size()));
        err != 0) {
      errno = err;
      fail(pipe_fd, k_step_cgroup);
    }
  }
  // Every source fd is >= 3 (the supervisor's own stdio holds 0-2), so targets 0-2 never
  // clobber a source; fd 3 is set last.
  int out = spec.output_fd >= 0 ? spec.output_fd : null_fd;
  if (!spec.inherit_stdio && (::dup2(null_fd, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0)) {
    fail(pipe_fd, k_step_fds);
  }
  if (spec.listen_fd >= 0) {
    if (spec.listen_fd == 3) {
      if (::fcntl(3, F_SETFD, 0) < 0) {
        fail(pipe_fd, k_step_fds);
      }
    } else if (::dup2(spec.listen_fd, 3) < 0) {
      fail(pipe_fd, k_step_fds);
    }
  }
  // The init program's fd, right after the failure pipe (fds 0-3 are final by now).
  int init_fd = -1;
  if (sandbox && sandbox->init_fd >= 0) {
    init_fd = pipe_fd + 1;
    if (sandbox->init_fd != init_fd && ::dup3(sandbox->init_fd, init_fd, O_CLOEXEC) < 0) {
      init_fd = -1;
    }
  }
  // Nothing else of the supervisor's may reach the program, nor stay open in a sandbox's
  // init: close everything but the failure pipe and the init program (both close-on-exec).
  int first_closed = spec.listen_fd >= 0 ? 4 : 3;
  if (pipe_fd > first_closed) {
    ::syscall(SYS_close_range, first_closed, pipe_fd - 1, 0);
  }
  ::syscall(SYS_close_range, std::max((init_fd >= 0 ? init_fd : pipe_fd) + 1, first_closed), ~0U,
            0);
  SandboxStep sandbox_step = SandboxStep::k_none;
  if (sandbox) {
    if (int err = enter_sandbox_mounts(*sandbox, &sandbox_step); err != 0) {
      errno = err;
      fail(pipe_fd, k_step_sandbox, sandbox_step);
    }
  }
  for (const auto& [resource, value] : spec.rlimits) {
    struct rlimit limit {
      value, value
    };
    if (::setrlimit(resource, &limit) < 0) {
      fail(pipe_fd, k_step_rlimit);
    }
  }
  ::umask(spec.umask);
  if (!spec.workdir.empty() && ::chdir(spec.workdir.c_str()) < 0) {
    fail(pipe_fd, k_step_chdir);
  }
  if (sandbox) {
    if (int err = enter_sandbox_identity(*sandbox, &sandbox_step); err != 0) {
      errno = err;
      fail(pipe_fd, k_step_sandbox, sandbox_step);
    }
    pid_t program = ::fork();
    if (program < 0) {
      fail(pipe_fd, k_step_clone);
    }
    if (program > 0) {
      ::close(pipe_fd);  // the program's exec (or failure) now decides what the parent reads
      if (init_fd >= 0) {
        // This copy of the supervisor's memory becomes mfserv-init, signals still blocked.
        char pid_text[16];
        format_decimal(pid_text, program);
        char init_name[] = "mfserv-init";
        char* init_argv[] = {init_name, pid_text, nullptr};
        char* init_envp[] = {nullptr};
        ::syscall(SYS_execveat, init_fd, "", init_argv, init_envp, AT_EMPTY_PATH);
      }
      run_sandbox_init(program);  // no init program, or it could not be executed
    }
    reset_signals();
  }
  if (spec.listen_fd >= 0) {
    fill_pid(listen_pid_entry, ::getpid());
  }
  ::execve(argv[0], argv, envp);
  fail(pipe_fd, k_step_exec);
}

// Set once clone3 CLONE_INTO_CGROUP turned out to be missing: later spawns go straight to
// the fork + cgroup.procs path.
bool g_clone3_into_cgroup_missing = false;

// clone3(2) with CLONE_INTO_CGROUP (Linux 5.7+, cgroup v2 only): the child starts in the
// cgroup of CGROUP_DIR_FD, so it is never charged to, nor counted in, the supervisor's cgroup
// and a kill of its leaf cannot miss it; CLONE_PIDFD gives its pidfd with no pid-reuse window.
// No stack: like fork, the child runs on a copy of the caller's (single-threaded) memory.
// Returns the pid (0 in the child) or -1 with errno. The errors that mean "not available
// here" are ENOSYS (before 5.3, or clone3 denied by a seccomp profile, which answers ENOSYS
// so that callers fall back), E2BIG (5.3-5.6 do not know the cgroup field) and EINVAL
// (unknown flag); anything else (EBUSY, EOPNOTSUPP, EPERM...) is what writing cgroup.procs
// would hit too.
pid_t clone_into_cgroup(int namespace_flags, int cgroup_dir_fd, int* pidfd) {
  struct clone_args args {};
  args.flags = static_cast<std::uint64_t>(static_cast<unsigned>(namespace_flags)) |
               CLONE_INTO_CGROUP | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<std::uintptr_t>(pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<std::uint64_t>(cgroup_dir_fd);
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, CLONE_ARGS_SIZE_VER2));
}

bool clone3_missing(int error) {
  return error == ENOSYS || error == E2BIG || error == EINVAL;
}

}  // namespace

std::vector<std::string> shell_argv(const std::string& command) {
  return {"/bin/sh", "-c", "exec " + command};
}

Result<Spawned> spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) {
    return Error("spawning: empty command");
  }
  // Everything the child needs is allocated here, before fork.
  std::vector<std::string> env = spec.env;
  if (spec.listen_fd >= 0) {
    env.emplace_back("LISTEN_FDS=1");
    env.emplace_back("LISTEN_FDNAMES=http");
    env.emplace_back("LISTEN_PID=0000000000000000");
  }
  std::vector<char*> argv;
  for (const auto& arg : spec.argv) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  char* listen_pid_entry = nullptr;
  for (auto& entry : env) {
    envp.push_back(entry.data());
    if (entry.rfind("LISTEN_PID=", 0) == 0) {
      listen_pid_entry = entry.data();
    }
  }
  envp.push_back(nullptr);

  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) {
    return Error::from_errno("opening /dev/null");
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) {
    return Error::from_errno("creating the start-up pipe");
  }
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  // A sandboxed process is born in its new namespaces (clone with fork semantics: the
  // supervisor is single-threaded, so the child's copy of its memory is consistent), and on
  // v2 in its cgroup too; elsewhere it joins its cgroup itself before exec.
  int namespace_flags = spec.sandbox ? sandbox_clone_flags(*spec.sandbox) : 0;
  pid_t pid = -1;
  int pidfd = -1;
  bool born_in_cgroup = false;
  if (spec.cgroup_dir_fd >= 0 && !g_clone3_into_cgroup_missing) {
    pid = clone_into_cgroup(namespace_flags, spec.cgroup_dir_fd, &pidfd);
    if (pid == 0) {
      run_child(spec, argv.data(), envp.data(), listen_pid_entry, null_fd.get(), write_end.get(),
                true);
    }
    if (pid > 0) {
      born_in_cgroup = true;
    } else if (clone3_missing(errno)) {
      g_clone3_into_cgroup_missing = true;
    } else {
      return Error::from_errno(std::string("starting ") + spec.argv[0] +
                               ": creating the process in its cgroup (clone3 CLONE_INTO_CGROUP)");
    }
  }
  if (!born_in_cgroup) {
    pid = spec.sandbox ? static_cast<pid_t>(::syscall(SYS_clone, namespace_flags | SIGCHLD, nullptr,
                                                      nullptr, nullptr, 0))
                       : ::fork();
    if (pid < 0) {
      return Error::from_errno(spec.sandbox ? "creating the sandbox namespaces" : "fork");
    }
    if (pid == 0) {
      run_child(spec, argv.data(), envp.data(), listen_pid_entry, null_fd.get(), write_end.get(),
                false);
    }
  }
  UniqueFd child_pidfd(pidfd);
  write_end.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(read_end.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    ::waitpid(pid, nullptr, 0);
    std::string step = step_name(failure.step);
    if (failure.step == k_step_sandbox) {
      step += std::string(" (") + to_string(static_cast<SandboxStep>(failure.sandbox_step)) + ")";
    }
    return Error(std::string("starting ") + spec.argv[0] + ": " + step, failure.error);
  }
  Spawned spawned;
  spawned.pid = pid;
  spawned.born_in_cgroup = born_in_cgroup;
  if (child_pidfd) {
    spawned.pidfd = std::move(child_pidfd);
  } else {
    spawned.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  }
  return spawned;
}

}  // namespace mfserv::isolation
