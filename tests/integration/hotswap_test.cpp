// A running supervisor picks up installs, uninstalls and hotswaps of `.plugin` archives
// without a restart of anything else, and a hotswap under load fails no request.
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "harness.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string plugin_config(const std::string& version) {
  return "[general]\n_version = " + version +
         "\n_summary = hotswap test\n_license = MIT\n_url = https://example.invalid\n"
         "_maintainer = tests\n_vendor = tests\n\n[app_main]\n_cmd_and_args = " +
         testapp_command() +
         "\nnumprocesses = 2\ngraceful_timeout = 5\n\n[custom]\nversion = " + version + "\n";
}

// Builds NAME at VERSION into OUT and returns the archive's path.
std::string build_archive(const std::string& work, const std::string& out, const std::string& name,
                          const std::string& version) {
  std::string dir = work + "/" + version + "/" + name;
  write_text(dir + "/config.ini", plugin_config(version));
  copy_fixtures(dir);
  write_text(dir + "/.layerapi2_label", "plugin_" + name + "@mfserv\n");
  auto built = run_mfserv({"plugin", "build", dir, "--output", out});
  INFO(built.out << built.err);
  REQUIRE(built.exit_code == 0);
  return out + "/" + name + "-" + version + "-1.metwork.mfserv.plugin";
}

std::string served_version(int port, const std::string& name) {
  auto response = http_get(port, "/" + name + "/main/");
  if (response.status != 200) {
    return "";
  }
  return json::parse(response.body)["env"].value("MFSERV_CURRENT_PLUGIN_CUSTOM_VERSION", "");
}

}  // namespace

TEST_CASE("install, hotswap and uninstall reach a running mfserv and hotswap fails no request",
          "[integration][root][hotswap]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  std::string base = fs::path(home.path()).parent_path().string();
  std::string v1 = build_archive(base + "/work", base + "/out", "swap", "1.0.0");
  std::string v2 = build_archive(base + "/work", base + "/out", "swap", "2.0.0");
  std::string other = build_archive(base + "/work", base + "/out", "other", "1.0.0");
  REQUIRE(run_mfserv({home.home_arg(), "plugin", "install", v1}).exit_code == 0);
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  REQUIRE(served_version(port, "swap") == "1.0.0");

  // A new plugin installed while running starts without touching the others.
  auto installed = run_mfserv({home.home_arg(), "plugin", "install", other});
  INFO(installed.out << installed.err);
  CHECK(installed.out.find("running mfserv: started other/main") != std::string::npos);
  REQUIRE(wait_until([&] { return served_version(port, "other") == "1.0.0"; }, 15s));

  std::atomic<bool> stop{false};
  std::atomic<int> total{0};
  std::atomic<int> failed{0};
  std::thread client([&] {
    while (!stop) {
      auto response = http_get(port, "/swap/main/", "localhost", 30000);
      ++total;
      if (response.status != 200) {
        ++failed;
      }
    }
  });
  std::this_thread::sleep_for(500ms);
  auto swapped = run_mfserv({home.home_arg(), "plugin", "hotswap", v2});
  INFO(swapped.out << swapped.err);
  CHECK(swapped.exit_code == 0);
  CHECK(swapped.out.find("running mfserv: restarted swap/main") != std::string::npos);
  bool both_new = wait_until(
      [&] {
        return served_version(port, "swap") == "2.0.0" && served_version(port, "swap") == "2.0.0" &&
               served_version(port, "swap") == "2.0.0";
      },
      30s);
  std::this_thread::sleep_for(1s);
  stop = true;
  client.join();
  CHECK(both_new);
  INFO("requests " << total << ", failed " << failed);
  CHECK(total > 20);
  CHECK(failed == 0);

  // Uninstall stops the plugin's workers first, then its route goes away.
  auto removed = run_mfserv({home.home_arg(), "plugin", "uninstall", "other"});
  INFO(removed.out << removed.err);
  CHECK(removed.exit_code == 0);
  // nginx reloads asynchronously after SIGHUP.
  CHECK(wait_until([&] { return http_get(port, "/other/main/").status == 404; }, 10s));
  CHECK(processes_mentioning(home.path() + "/run/sockets/app_other_main").empty());
  CHECK(served_version(port, "swap") == "2.0.0");
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("hotswap without a running mfserv says so", "[integration][hotswap]") {
  TempHome home;
  auto result = run_mfserv({home.home_arg(), "plugin", "hotswap", "/nonexistent.plugin"});
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("no mfserv is running") != std::string::npos);
}
