// Value parsers and safety checks on their own (images/values.cpp, schema.cpp closest_key).
#include "images/values.hpp"

#include <catch2/catch.hpp>

#include "images/schema.hpp"

using namespace mfserv::images;

TEST_CASE("values: integers in a range", "[images][values]") {
  CHECK(*parse_int_in(" 42 ", 0, 100) == 42);
  CHECK_FALSE(parse_int_in("101", 0, 100).ok());
  CHECK(parse_int_in("101", 0, 100).error().message() == "expected an integer from 0 to 100");
  CHECK_FALSE(parse_int_in("4.5", 0, 100).ok());
  CHECK_FALSE(parse_int_in("", 0, 100).ok());
  CHECK_FALSE(parse_int_in("99999999999999999999", 0, 100).ok());
}

TEST_CASE("values: byte limits", "[images][values]") {
  CHECK(**parse_byte_limit("64M") == 64ULL << 20);
  CHECK(**parse_byte_limit("1g") == 1ULL << 30);
  CHECK(**parse_byte_limit("4096") == 4096);
  CHECK_FALSE(*parse_byte_limit("max"));
  CHECK_FALSE(*parse_byte_limit("MAX"));
  CHECK_FALSE(*parse_byte_limit(""));
  CHECK_FALSE(parse_byte_limit("64 potatoes").ok());
  CHECK_FALSE(parse_byte_limit("99999999999T").ok());
}

TEST_CASE("values: cpu.max", "[images][values]") {
  CHECK(*parse_cpu_max("") == "");
  CHECK(*parse_cpu_max("50000") == "50000 100000");
  CHECK(*parse_cpu_max("  200000   1000000 ") == "200000 1000000");
  CHECK(*parse_cpu_max("MAX") == "max 100000");
  CHECK_FALSE(parse_cpu_max("999").ok());
  CHECK_FALSE(parse_cpu_max("50000 999").ok());
  CHECK_FALSE(parse_cpu_max("50000 1000001").ok());
  CHECK_FALSE(parse_cpu_max("50%").ok());
}

TEST_CASE("values: URL prefixes and extra routes", "[images][values]") {
  CHECK(*parse_url_prefix("") == "");
  CHECK(*parse_url_prefix("/static") == "/static");
  CHECK(*parse_url_prefix("/a/b.c/~d_e-f") == "/a/b.c/~d_e-f");
  for (const char* bad : {"/", "static", "/static/", "//a", "/a//b", "/.", "/a/../b", "/a b",
                          "/a;b", "/a{b", "/$x", "/a\"b", "/a#b", "/a?b", "/é"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_url_prefix(bad).ok());
  }
  CHECK(parse_extra_routes("")->empty());
  CHECK(parse_extra_routes("null")->empty());
  CHECK(*parse_extra_routes("/") == std::vector<std::string>{"/"});
  CHECK(*parse_extra_routes(" /a ; /b/c ;") == std::vector<std::string>{"/a", "/b/c"});
  for (const char* bad : {"/a/", "//", "a", "/a;b", "/x\ny", "/a;/b/"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_extra_routes(bad).ok());
  }
}

TEST_CASE("values: DNS names and vhost lists", "[images][values]") {
  CHECK(is_dns_name("a.example.com"));
  CHECK(is_dns_name("x-1"));
  CHECK(is_dns_name(std::string(63, 'a') + ".com"));
  CHECK_FALSE(is_dns_name(std::string(64, 'a') + ".com"));
  CHECK_FALSE(is_dns_name(""));
  CHECK_FALSE(is_dns_name("a..b"));
  CHECK_FALSE(is_dns_name("-a.b"));
  CHECK_FALSE(is_dns_name("a-.b"));
  CHECK_FALSE(is_dns_name("a_b.c"));
  CHECK_FALSE(is_dns_name("*.example.com"));
  CHECK(*parse_vhosts("a.com, b.org;c.net") == std::vector<std::string>{"a.com", "b.org", "c.net"});
  CHECK(parse_vhosts(" null ")->empty());
  CHECK_FALSE(parse_vhosts("a.com;b;c d").ok());
}

TEST_CASE("values: paths written into nginx.conf", "[images][values]") {
  CHECK(check_nginx_safe_path("").ok());
  CHECK(check_nginx_safe_path("/static").ok());
  CHECK(check_nginx_safe_path("public/assets-1.2_x").ok());
  for (const char* bad : {"..", "a/../b", "a..b", "a b", "a\tb", "a'b", "a\"b", "a`b", "a;b", "a{b",
                          "a}b", "$x", "a#b", "a\\b", "a\nb", "a\x01"}) {
    CAPTURE(bad);
    CHECK_FALSE(check_nginx_safe_path(bad).ok());
  }
}

TEST_CASE("values: sandbox path lists", "[images][values]") {
  CHECK(*parse_path_list("/a, b/c ,,", "/plugin") == std::vector<std::string>{"/a", "/plugin/b/c"});
  CHECK(parse_path_list("", "/plugin")->empty());
  CHECK_FALSE(parse_path_list("/a/../b", "/p").ok());
  CHECK_FALSE(parse_path_list("..", "/p").ok());
  CHECK_FALSE(parse_path_list("/a\x01", "/p").ok());
}

TEST_CASE("values: users, versions and plugin names", "[images][values]") {
  CHECK(check_user("www-data").ok());
  CHECK(check_user("_svc").ok());
  CHECK(check_user("1000").ok());
  CHECK_FALSE(check_user("Root").ok());
  CHECK_FALSE(check_user("1user").ok());
  CHECK_FALSE(check_user("a b").ok());
  CHECK_FALSE(check_user("99999999999").ok());
  CHECK_FALSE(check_user(std::string(33, 'a')).ok());

  CHECK(is_version_string("1.0.0"));
  CHECK(is_version_string("1.0.0-rc_1"));
  CHECK_FALSE(is_version_string("1.0 beta"));
  CHECK_FALSE(is_version_string("V1"));
  CHECK_FALSE(is_version_string(""));

  CHECK(check_plugin_name("foo-bar_1").ok());
  for (const char* bad :
       {"", "plugin_x", "__x", "base", "config", "a;b", "../x", "a b", "a/b", "-x", "--home"}) {
    CAPTURE(bad);
    CHECK_FALSE(check_plugin_name(bad).ok());
  }
  CHECK(check_plugin_name("-x").error().message().find("must not start with '-'") !=
        std::string::npos);
  CHECK(check_plugin_name("x-").ok());
}

TEST_CASE("values: quote_value keeps messages on one short line", "[images][values]") {
  CHECK(quote_value("abc") == "'abc'");
  CHECK(quote_value("a\nb\x01") == "'a\\nb\\x01'");
  std::string quoted = quote_value(std::string(500, 'x'));
  CHECK(quoted.size() < 70);
  CHECK_THAT(quoted, Catch::EndsWith("...'"));
}

TEST_CASE("schema: closest_key", "[images][values]") {
  std::vector<std::string_view> keys = {"numprocesses", "timeout", "memory_max", "debug"};
  CHECK(closest_key("numprocess", keys) == "numprocesses");
  CHECK(closest_key("timout", keys) == "timeout");
  CHECK(closest_key("memory_mx", keys) == "memory_max");
  CHECK(closest_key("debg", keys) == "debug");
  CHECK(closest_key("zzz", keys) == "");
  CHECK(closest_key("workers", keys) == "");
}
