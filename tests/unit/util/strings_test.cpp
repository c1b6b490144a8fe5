#include "util/strings.hpp"

#include <catch2/catch.hpp>

TEST_CASE("fnv1a_64 matches the reference values", "[unit][util]") {
  CHECK(mfserv::fnv1a_64("") == 0xcbf29ce484222325ull);
  CHECK(mfserv::fnv1a_64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(mfserv::fnv1a_64("foobar") == 0x85944171f73967e8ull);
}
