// mfserv-init: PID 1 of every sandbox. The sandbox's first process (a fork of the supervisor)
// enters the sandbox, forks the program, then execs this small static program in its own
// place, so that an idle sandbox keeps a few pages of its own instead of a copy of the
// supervisor's memory (and no unprivileged process holds that copy). Usage: mfserv-init PID,
// with every signal blocked (the mask survives execve); see run_sandbox_init.
#include <signal.h>

#include <cstdlib>

#include "isolation/sandbox_init.hpp"

int main(int argc, char** argv) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  char* end = nullptr;
  long program = argc == 2 ? std::strtol(argv[1], &end, 10) : 0;
  if (program <= 0 || end == nullptr || *end != '\0') {
    return 127;
  }
  mfserv::isolation::run_sandbox_init(static_cast<pid_t>(program));
}
