// The loop of PID 1 in every sandbox, shared by mfserv-init (sandbox_init_main.cpp) and by the
// in-process fallback of spawn.cpp. libc calls only: it runs in a static program of its own.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mfserv::isolation {

// Forwards every signal but SIGCHLD to PROGRAM, reaps every child, and exits with PROGRAM's
// status (128+N when it died of signal N); the kernel then kills whatever is left in the PID
// namespace. Every signal must be blocked already: they are taken with sigwaitinfo, so none
// is lost between the fork of PROGRAM and this loop (pending signals survive execve).
[[noreturn]] inline void run_sandbox_init(pid_t program) {
  sigset_t all;
  sigfillset(&all);
  for (;;) {
    // Reap first: PROGRAM may be gone already.
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == program) {
        ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      }
    }
    siginfo_t info{};
    int sig = ::sigwaitinfo(&all, &info);
    if (sig > 0 && sig != SIGCHLD) {
      ::kill(program, sig);
    }
  }
}

}  // namespace mfserv::isolation
