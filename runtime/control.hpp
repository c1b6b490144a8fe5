// The control socket (HOME/run/control.sock): one JSON request per connection, one JSON
// answer. The CLI is a thin client of it; the supervisor serves it from its event loop.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/home.hpp"
#include "util/result.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::runtime {

// Sends REQUEST and returns the answer. With no supervisor running: an Error saying so.
Result<nlohmann::json> control_call(const Home& home, const nlohmann::json& request,
                                    int timeout_ms = 15000);

// Binds the control socket (mode 0600: root only), replacing a stale one.
Result<UniqueFd> control_listen(const Home& home);

// Reads one request line from a freshly accepted connection (bounded in size and time).
Result<nlohmann::json> control_read_request(int fd);
void control_write_answer(int fd, const nlohmann::json& answer);

}  // namespace mfserv::runtime
