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
// `reload` answers once nginx serves the change (3 s at most) and the apps it started are
// ready (10 s at most), after loading and checking every plugin.
constexpr int k_reload_timeout_ms = 60000;

// Who may use the control socket besides root: the group "mfserv" (operators), never the
// user "mfserv" (the workers' default account, whose primary group it is). -1 when that
// group or user does not exist. Looked up in a child (NSS modules stay out of the caller).
struct ControlAccess {
  gid_t operators_gid = static_cast<gid_t>(-1);
  uid_t workers_uid = static_cast<uid_t>(-1);
};
ControlAccess control_access();

// Binds the control socket, replacing a stale one: mode 0660 with group OPERATORS_GID, or
// 0600 (root only) when it is -1.
Result<UniqueFd> control_listen(const Home& home, gid_t operators_gid = static_cast<gid_t>(-1));

// The uid of the process at the other end of a control connection, or -1.
uid_t control_peer_uid(int fd);

// Reads one request line from a freshly accepted connection (bounded in size and time).
Result<nlohmann::json> control_read_request(int fd);
void control_write_answer(int fd, const nlohmann::json& answer);

}  // namespace mfserv::runtime
