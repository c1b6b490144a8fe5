// find_nginx, validate and write_validated against the real nginx binary: every golden file
// passes `nginx -t`, and a configuration nginx rejects never replaces the installed one, with
// nginx's own words in the error (C15). Without nginx these tests are skipped with a warning,
// or fail under MFSERV_TESTS_MUST_RUN=1.
#include "nginx-gen/nginx_control.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <string>

#include <catch2/catch.hpp>

#include "golden_models.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "nginx_test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using mfserv::nginx::find_nginx;
using mfserv::nginx::render;
using mfserv::nginx::validate;
using mfserv::nginx::write_validated;
namespace testing = mfserv::nginx::testing;

namespace {

// The golden model NAME with every path below ROOT, and the files it includes created.
testing::GoldenCase golden_case_at(const std::string& name, const std::string& root) {
  for (auto& golden : testing::golden_cases(root)) {
    if (golden.name == name) {
      testing::prepare_front_dirs(golden.front);
      for (const auto& app : golden.apps) {
        if (!app.extra_conf_path.empty()) {
          testing::write_text(app.extra_conf_path, "add_header X-Extra yes always;\n");
        }
        if (!app.extra_conf_static_path.empty()) {
          testing::write_text(app.extra_conf_static_path, "expires 1h;\n");
        }
      }
      return golden;
    }
  }
  FAIL("no golden model named " << name);
  return {};
}

// A small valid configuration for write_validated.
std::string valid_text(const std::string& root) {
  auto golden = golden_case_at("two_apps", root);
  return render(golden.front, golden.apps);
}

}  // namespace

TEST_CASE("find_nginx honours MFSERV_NGINX", "[nginx-gen]") {
  testing::TempDir tmp;
  {
    testing::ScopedEnv env("MFSERV_NGINX", (tmp.path() + "/missing").c_str());
    auto found = find_nginx();
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().message().find("MFSERV_NGINX=" + tmp.path() + "/missing") !=
          std::string::npos);
  }
  const std::string fake = tmp.path() + "/bin/nginx";
  testing::write_text(fake, "#!/bin/sh\nexit 0\n");
  REQUIRE(::chmod(fake.c_str(), 0755) == 0);
  {
    testing::ScopedEnv env("MFSERV_NGINX", fake.c_str());
    auto found = find_nginx();
    REQUIRE(found.ok());
    CHECK(*found == fake);
  }
  {
    // PATH is searched in order; relative entries (the current directory) never count.
    testing::ScopedEnv env("MFSERV_NGINX", nullptr);
    testing::ScopedEnv path("PATH", ("relative/bin::" + tmp.path() + "/bin:/usr/sbin").c_str());
    auto found = find_nginx();
    REQUIRE(found.ok());
    CHECK(*found == fake);
  }
}

TEST_CASE("every golden configuration passes the real nginx -t", "[nginx-gen][nginx][golden]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  for (const auto& model : testing::golden_cases(testing::k_golden_root)) {
    INFO("golden file " << model.name);
    testing::TempDir tmp;
    auto golden = golden_case_at(model.name, tmp.path());
    auto golden_text = mfserv::read_file(testing::golden_path(model.name));
    REQUIRE(golden_text.ok());
    const std::string text = mfserv::replace_all(*golden_text, testing::k_golden_root, tmp.path());
    // The golden file, moved, is exactly what render() gives for the moved model.
    CHECK(text == render(golden.front, golden.apps));
    const std::string conf = tmp.path() + "/nginx.conf";
    testing::write_text(conf, text);
    auto valid = validate(nginx, conf, golden.front.error_log);
    INFO((valid.ok() ? std::string("valid") : valid.error().describe()));
    CHECK(valid.ok());
  }
}

TEST_CASE("validate quotes what nginx printed", "[nginx-gen][nginx]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  testing::TempDir tmp;
  const std::string conf = tmp.path() + "/broken.conf";
  testing::write_text(conf, "events {}\nhttp {\n    bogus_directive on;\n}\n");
  auto valid = validate(nginx, conf, tmp.path() + "/error.log");
  REQUIRE_FALSE(valid.ok());
  const std::string& message = valid.error().message();
  INFO(message);
  CHECK(mfserv::starts_with(message, "nginx -t rejected " + conf + ": "));
  CHECK(message.find("unknown directive \"bogus_directive\" in " + conf + ":3") !=
        std::string::npos);
}

TEST_CASE("validate reports a binary that cannot run", "[nginx-gen]") {
  testing::TempDir tmp;
  auto valid = validate(tmp.path() + "/no-nginx", tmp.path() + "/nginx.conf", "");
  REQUIRE_FALSE(valid.ok());
  CHECK(valid.error().code() == ENOENT);
  CHECK(valid.error().message().find(tmp.path() + "/no-nginx") != std::string::npos);
}

TEST_CASE("C15: write_validated installs only what nginx accepts", "[nginx-gen][nginx][C15]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  testing::TempDir tmp;
  const std::string conf = tmp.path() + "/nginx.conf";
  const std::string error_log = tmp.path() + "/log/nginx_error.log";
  const std::string good = valid_text(tmp.path());

  SECTION("a valid text replaces the file, with mode 0644") {
    testing::write_text(conf, "# previous\n");
    auto written = write_validated(nginx, conf, good, error_log);
    INFO((written.ok() ? std::string() : written.error().describe()));
    REQUIRE(written.ok());
    CHECK(*mfserv::read_file(conf) == good);
    struct stat st {};
    REQUIRE(::stat(conf.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    CHECK_FALSE(mfserv::path_exists(conf + ".new"));
  }

  SECTION("a rejected text leaves the installed file byte for byte") {
    REQUIRE(write_validated(nginx, conf, good, error_log).ok());
    const std::string before = *mfserv::read_file(conf);
    auto written = write_validated(nginx, conf, good + "bogus_directive on;\n", error_log);
    REQUIRE_FALSE(written.ok());
    INFO(written.error().message());
    CHECK(written.error().message().find("unknown directive \"bogus_directive\"") !=
          std::string::npos);
    CHECK(*mfserv::read_file(conf) == before);
    CHECK_FALSE(mfserv::path_exists(conf + ".new"));
  }

  SECTION("a plugin fragment nginx rejects is quoted with its file and line") {
    REQUIRE(write_validated(nginx, conf, good, error_log).ok());
    const std::string before = *mfserv::read_file(conf);
    auto golden = golden_case_at("extra_conf", tmp.path());
    const std::string fragment = golden.apps.at(0).extra_conf_path;
    testing::write_text(fragment, "# plugin fragment\nproxy_pass_header_typo X-Foo;\n");
    auto written = write_validated(nginx, conf, render(golden.front, golden.apps), error_log);
    REQUIRE_FALSE(written.ok());
    INFO(written.error().message());
    CHECK(written.error().message().find("unknown directive \"proxy_pass_header_typo\" in " +
                                         fragment + ":2") != std::string::npos);
    CHECK(*mfserv::read_file(conf) == before);
  }

  SECTION("a rejected first configuration creates nothing") {
    auto written = write_validated(nginx, conf, "http {", error_log);
    REQUIRE_FALSE(written.ok());
    CHECK_FALSE(mfserv::path_exists(conf));
    CHECK_FALSE(mfserv::path_exists(conf + ".new"));
  }
}
