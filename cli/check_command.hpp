// `mfserv check`: what this host offers mfserv (design.md §2), before anything is started:
// the cgroup layout, controllers and delegation, the namespaces and seccomp the sandbox needs,
// nginx, the workers' user and whether nginx will be able to bind the configured port (C18).
#pragma once

#include "cli/commands.hpp"

namespace mfserv::cli {

// PORT 0: HOME/config/mfserv.ini's, else the default. Exit 0 when everything mfserv needs is
// there, 1 otherwise (each missing thing is named with what to do about it).
int cmd_check(const Globals& globals, int port);

}  // namespace mfserv::cli
