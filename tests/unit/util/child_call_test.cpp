#include "util/child_call.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "util/strings.hpp"

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

TEST_CASE("fnv1a_64 matches the reference values", "[unit][util]") {
  CHECK(mfserv::fnv1a_64("") == 0xcbf29ce484222325ull);
  CHECK(mfserv::fnv1a_64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(mfserv::fnv1a_64("foobar") == 0x85944171f73967e8ull);
}
