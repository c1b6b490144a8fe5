// `mfserv run` itself, linked only into mfserv-supervisor: `mfserv run` execs that smaller
// executable so that the long-lived supervisor never maps what only the CLI needs (libarchive
// and its chain, nettle, CLI11's command tree).
#pragma once

#include <string>

namespace mfserv::cli {

// Runs the supervisor for the home HOME_OPTION names (empty: $MFSERV_HOME, else the default);
// PORT > 0 overrides mfserv.ini. Returns the exit code (commands.hpp).
int run_supervisor(const std::string& home_option, int port, bool detach);

}  // namespace mfserv::cli
