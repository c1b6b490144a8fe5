// The home lock: a second mfserv on the same home is refused with the holder's pid, or without
// one while the holder has not written it yet; never with an empty "(pid )".
#include "runtime/home.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

#include "../images/temp_dir.hpp"

using mfserv::images::test::TempDir;
using mfserv::runtime::Home;
using mfserv::runtime::lock_home;
using mfserv::runtime::prepare_home;

TEST_CASE("home lock: a second holder is refused with the first one's pid") {
  TempDir dir;
  Home home{dir.path()};
  REQUIRE(prepare_home(home));
  auto first = lock_home(home);
  REQUIRE(first);
  auto second = lock_home(home);
  REQUIRE_FALSE(second);
  std::string message = second.error().describe();
  CHECK(message.find("(pid " + std::to_string(::getpid()) + ")") != std::string::npos);
  CHECK(message.find("mfserv --home " + dir.path() + " stop") != std::string::npos);
}

TEST_CASE("home lock: a holder that has not written its pid yet gives no empty pid") {
  // The window between the holder's flock and its pwrite of the pid: the file is locked and
  // still empty.
  TempDir dir;
  Home home{dir.path()};
  REQUIRE(prepare_home(home));
  std::string lock = home.lock_path();
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);
  auto second = lock_home(home);
  ::close(fd);
  REQUIRE_FALSE(second);
  std::string message = second.error().describe();
  CHECK(message.find("(pid )") == std::string::npos);
  CHECK(message.find("already used by a running mfserv") != std::string::npos);
}
