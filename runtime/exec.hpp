// `mfserv exec PLUGIN/APP -- CMD...`: a one-off command in that app's sandbox and cgroup, with
// the caller's terminal attached, like `docker exec`.
#pragma once

#include <string>
#include <vector>

#include "runtime/home.hpp"
#include "util/result.hpp"

namespace mfserv::runtime {

// Runs ARGV (argv[0] looked up in the sandbox's PATH by /bin/sh) and returns its exit code
// (128+N when killed by signal N). Needs the supervisor to run: the app's cgroup is its.
Result<int> exec_in_app(const Home& home, const std::string& plugin_name,
                        const std::string& app_name, const std::vector<std::string>& argv);

}  // namespace mfserv::runtime
