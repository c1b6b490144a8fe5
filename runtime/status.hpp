// `mfserv status`: the health of the service and of each plugin — process checks from the
// supervisor, plus each app's `_http_test_*` request through nginx (MFSERV's status checks).
#pragma once

#include <string>
#include <vector>

#include "runtime/home.hpp"
#include "util/result.hpp"

namespace mfserv::runtime {

struct HealthCheck {
  std::string subject;  // "service", "nginx", "PLUGIN/APP"
  std::string what;     // "processes", "http", ...
  bool ok = false;
  std::string detail;  // what was seen
};

// Every check, in order; an Error only when no supervisor answers.
Result<std::vector<HealthCheck>> check_health(const Home& home);

}  // namespace mfserv::runtime
