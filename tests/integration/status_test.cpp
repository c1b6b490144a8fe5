// C17: `mfserv status` exits non-zero when a plugin crash-loops, when its `_http_test_*`
// check fails, or when nginx is down; zero when all is well.
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "harness.hpp"
#include "util/strings.hpp"

using namespace mfserv::test;
using namespace std::chrono_literals;

namespace {

const std::string k_general =
    "[general]\n_version = 1.0.0\n_summary = status test\n_license = MIT\n"
    "_url = https://example.invalid\n_maintainer = tests\n_vendor = tests\n\n";

std::string app(const std::string& name, const std::string& body) {
  return k_general + "[app_main]\n_cmd_and_args = " + testapp_command() +
         "\nnumprocesses = 1\n_http_test_endpoint = /" + name +
         "/main/\n_http_test_expected_status_code = 200\n_http_test_expected_body = " + body + "\n";
}

}  // namespace

TEST_CASE("C17: status is zero when all is well, non-zero for each kind of trouble",
          "[integration][root][status][C17]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("fine", app("fine", "\"pid\""));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);

  auto all_well = run_mfserv({home.home_arg(), "status"});
  INFO(all_well.out << all_well.err);
  CHECK(all_well.exit_code == 0);
  CHECK(all_well.out.find("fine/main") != std::string::npos);
  CHECK(all_well.out.find("healthy") != std::string::npos);

  SECTION("an http test that fails") {
    mfserv::test::write_text(home.path() + "/config/plugins/fine.ini",
                             "[app_main]\nnumprocesses = 1\n");
    // The expected body is private (`_` key): use a second plugin whose check cannot pass.
    home.add_plugin("wrong", app("wrong", "this text is not in the answer"));
    REQUIRE(run_mfserv({home.home_arg(), "reload"}).exit_code == 0);
    REQUIRE(wait_until([&] { return http_get(port, "/wrong/main/").status == 200; }, 15s));
    auto status = run_mfserv({home.home_arg(), "status"});
    INFO(status.out);
    CHECK(status.exit_code == 1);
    CHECK(status.out.find("wrong/main") != std::string::npos);
    CHECK(status.out.find("FAIL") != std::string::npos);
    CHECK(status.out.find("UNHEALTHY") != std::string::npos);
  }
  SECTION("a crash-looping plugin") {
    home.add_plugin("loop", k_general +
                                "[extra_daemon_x]\n_cmd_and_args = /bin/sh -c 'exit 2'\n"
                                "numprocesses = 2\n");
    // 4 when its third exit came before reload answered (it waits for what it starts).
    const int reloaded = run_mfserv({home.home_arg(), "reload"}).exit_code;
    CHECK((reloaded == 0 || reloaded == 4));
    REQUIRE(wait_until([&] { return crash_looping_workers(home, "loop") == 2; }, 15s));
    auto status = run_mfserv({home.home_arg(), "status", "--json"});
    INFO(status.out);
    CHECK(status.exit_code == 1);
    auto report = nlohmann::json::parse(status.out);
    CHECK(report["healthy"] == false);
    bool named = false;
    for (const auto& check : report["checks"]) {
      // Each worker named (only the last one was).
      named =
          named || (check["subject"] == "loop/x" && check["ok"] == false &&
                    check["detail"].get<std::string>().find("worker 1 crash-loops (last exit: exit "
                                                            "2); worker 2 crash-loops") == 0);
    }
    CHECK(named);
  }
  SECTION("nginx down") {
    int nginx = home.ps()["nginx"]["pid"];
    auto family = run_command(
        {"sh", "-c", "pgrep -P " + std::to_string(nginx) + "; echo " + std::to_string(nginx)});
    auto pids = mfserv::split(mfserv::trim(family.out), '\n');
    for (const auto& pid : pids) {
      ::kill(std::stoi(pid), SIGSTOP);
    }
    auto status = run_mfserv({home.home_arg(), "status"});
    for (const auto& pid : pids) {
      ::kill(std::stoi(pid), SIGCONT);
    }
    INFO(status.out);
    CHECK(status.exit_code == 1);
    CHECK(status.out.find("nginx") != std::string::npos);
  }
  CHECK(home.stop().exit_code == 0);
  auto after = run_mfserv({home.home_arg(), "status"});
  CHECK(after.exit_code == 3);
}
