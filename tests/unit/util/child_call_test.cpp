#include "util/child_call.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

namespace {
int g_touched = 0;
}

TEST_CASE("call_in_child runs in another process and keeps its side effects there",
          "[unit][util]") {
  auto answer = mfserv::call_in_child([]() -> mfserv::Result<std::string> {
    g_touched = 42;
    return std::to_string(::getpid()) + " " + std::string(100000, 'x');
  });
  REQUIRE(answer);
  auto space = answer->find(' ');
  CHECK(std::stoi(answer->substr(0, space)) != ::getpid());
  CHECK(answer->size() - space - 1 == 100000);  // more than a pipe buffer crosses whole
  CHECK(g_touched == 0);
}

TEST_CASE("call_in_child returns the child's error and says when the child died", "[unit][util]") {
  auto failed = mfserv::call_in_child(
      []() -> mfserv::Result<std::string> { return mfserv::Error("user 'x' does not exist"); });
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message() == "user 'x' does not exist");
  auto empty = mfserv::call_in_child([]() -> mfserv::Result<std::string> { return std::string(); });
  REQUIRE(empty);
  CHECK(empty->empty());
  auto died = mfserv::call_in_child([]() -> mfserv::Result<std::string> { ::_exit(3); });
  REQUIRE_FALSE(died);
  CHECK(died.error().message() == "a helper process died before it answered");
}
