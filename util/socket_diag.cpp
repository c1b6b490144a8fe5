// sock_diag(7) request for one unix socket, by inode, asking for its queue lengths: for a
// listening socket the receive queue length is the number of pending connections.
#include "util/socket_diag.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "util/unique_fd.hpp"

namespace mfserv {

Result<std::uint32_t> unix_listen_backlog(int listen_fd) {
  struct stat st {};
  if (::fstat(listen_fd, &st) != 0) {
    return Error::from_errno("fstat of a listening socket");
  }
  UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) {
    return Error::from_errno("opening a sock_diag netlink socket");
  }
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_states = ~0U;
  message.request.udiag_ino = static_cast<__u32>(st.st_ino);
  message.request.udiag_show = UDIAG_SHOW_RQLEN;
  message.request.udiag_cookie[0] = ~0U;  // INET_DIAG_NOCOOKIE: any socket with this inode
  message.request.udiag_cookie[1] = ~0U;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return Error::from_errno("sock_diag request");
  }
  alignas(nlmsghdr) char buffer[1024];
  ssize_t n = ::recv(nl.get(), buffer, sizeof buffer, 0);
  if (n < 0) {
    return Error::from_errno("sock_diag answer");
  }
  auto* header = reinterpret_cast<nlmsghdr*>(buffer);
  if (!NLMSG_OK(header, static_cast<unsigned>(n))) {
    return Error("sock_diag: a truncated answer");
  }
  if (header->nlmsg_type == NLMSG_ERROR) {
    auto* error = static_cast<nlmsgerr*>(NLMSG_DATA(header));
    return Error("sock_diag: unix_diag refused the request", -error->error);
  }
  auto* diag = static_cast<unix_diag_msg*>(NLMSG_DATA(header));
  int length = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof *diag));
  for (auto* attr = reinterpret_cast<rtattr*>(diag + 1); RTA_OK(attr, length);
       attr = RTA_NEXT(attr, length)) {
    if (attr->rta_type == UNIX_DIAG_RQLEN) {
      unix_diag_rqlen lengths{};
      std::memcpy(&lengths, RTA_DATA(attr), sizeof lengths);
      return lengths.udiag_rqueue;
    }
  }
  return Error("sock_diag: no queue length in the answer");
}

}  // namespace mfserv
