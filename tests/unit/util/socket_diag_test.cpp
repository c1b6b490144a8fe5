#include "util/socket_diag.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "util/unique_fd.hpp"

using mfserv::UniqueFd;

TEST_CASE("unix_listen_backlog counts the connections not yet accepted", "[unit][util]") {
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(listener);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // An abstract address: nothing on disk, no privilege.
  std::string name = "mfserv-backlog-test-" + std::to_string(::getpid());
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), length) == 0);
  REQUIRE(::listen(listener.get(), 16) == 0);

  auto empty = mfserv::unix_listen_backlog(listener.get());
  REQUIRE(empty);
  CHECK(*empty == 0);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::connect(clients.back().get(), reinterpret_cast<sockaddr*>(&addr), length) == 0);
  }
  auto three = mfserv::unix_listen_backlog(listener.get());
  REQUIRE(three);
  CHECK(*three == 3);
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(accepted);
  auto two = mfserv::unix_listen_backlog(listener.get());
  REQUIRE(two);
  CHECK(*two == 2);
}

TEST_CASE("unix_listen_backlog names what is not a socket", "[unit][util]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  CHECK_FALSE(mfserv::unix_listen_backlog(read_end.get()));
}
