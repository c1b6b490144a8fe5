// How many connections wait in a listening unix socket's backlog, not yet accepted: the
// kernel's sock_diag netlink interface (unix_diag, UDIAG_SHOW_RQLEN), as ss(8) reads it.
// See sock_diag(7). Where unix_diag is missing (a kernel without the module), an error.
#pragma once

#include <cstdint>

#include "util/result.hpp"

namespace mfserv {

Result<std::uint32_t> unix_listen_backlog(int listen_fd);

}  // namespace mfserv
