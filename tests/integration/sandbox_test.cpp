// Isolation seen from inside real workers and `mfserv exec`: namespaces, read-only host,
// private /tmp, the unprivileged user, no capabilities, no_new_privs, seccomp.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "harness.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string k_general =
    "[general]\n_version = 1.0.0\n_summary = sandbox test\n_license = MIT\n"
    "_url = https://example.invalid\n_maintainer = tests\n_vendor = tests\n\n";

std::string probe_plugin(const std::string& extra = "") {
  return k_general + "[app_main]\n_cmd_and_args = " + testapp_command() +
         "\nnumprocesses = 1\ngraceful_timeout = 5\n" + extra;
}

void check_locked_down(const json& seen) {
  INFO(seen.dump(2));
  CHECK(seen["uid"] != 0);
  CHECK(seen["cap_eff"] == "0000000000000000");
  CHECK(seen["cap_prm"] == "0000000000000000");
  CHECK(seen["cap_bnd"] == "0000000000000000");
  CHECK(seen["cap_inh"] == "0000000000000000");
  CHECK(seen["cap_amb"] == "0000000000000000");
  CHECK(seen["no_new_privs"] == "1");
  CHECK(seen["seccomp"] == "2");
  CHECK(seen["mount"] == "EPERM");
  CHECK(seen["unshare"] == "EPERM");
  CHECK(seen["ptrace"] == "EPERM");
  CHECK(seen["write_usr"] != 0);
  CHECK(seen["write_tmp"] == 0);
  CHECK(seen["hostname"] == "main.probe");
  // Its own PID namespace: the sandbox's init is 1, nothing of the host is visible.
  CHECK(seen["pids"][0] == 1);
  CHECK(seen["pids"].size() <= 6);
}

}  // namespace

TEST_CASE("a worker runs locked down in its own namespaces", "[integration][root][sandbox]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  std::string other = home.add_plugin("other", probe_plugin());
  home.add_plugin("probe", probe_plugin());
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);

  auto response =
      http_get(port, "/probe/main/probe?other=" + other + "&port=" + std::to_string(port) +
                         "&var=" + home.path() + "/var/plugins/probe");
  REQUIRE(response.status == 200);
  auto seen = json::parse(response.body);
  check_locked_down(seen);
  // /tmp is private: only the mount point of this test's plugin folder (itself under /tmp).
  for (const auto& entry : seen["tmp"]) {
    CHECK(home.path().rfind("/tmp/" + entry.get<std::string>() + "/", 0) == 0);
  }
  CHECK(seen["tmp"].size() <= 1);
  CHECK(seen["other_visible"] == false);  // another plugin's folder is hidden
  CHECK(seen["write_other"] != 0);
  CHECK(seen["write_var"] == 0);    // the plugin's own var folder is writable
  CHECK(seen["tcp_connect"] == 0);  // network = host by default
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("network = none: no outbound connection, nginx still reaches the worker",
          "[integration][root][sandbox]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("probe", probe_plugin("network = none\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto response = http_get(port, "/probe/main/probe?port=" + std::to_string(port));
  REQUIRE(response.status == 200);
  auto seen = json::parse(response.body);
  INFO(seen.dump());
  CHECK(seen["tcp_connect"] != 0);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("mfserv exec runs a command in the app's sandbox and cgroup",
          "[integration][root][sandbox][exec]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  std::string other = home.add_plugin("other", probe_plugin());
  std::string probe_dir = home.add_plugin("probe", probe_plugin());

  auto not_running = run_mfserv({home.home_arg(), "exec", "probe/main", "--", "true"});
  CHECK(not_running.exit_code == 3);
  CHECK(not_running.err.find("no mfserv is running") != std::string::npos);

  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto probe = run_mfserv({home.home_arg(), "exec", "probe/main", "--", "/usr/bin/python3",
                           probe_dir + "/sandbox_probe.py", "other=" + other});
  INFO(probe.err);
  REQUIRE(probe.exit_code == 0);
  auto seen = json::parse(probe.out);
  check_locked_down(seen);
  CHECK(seen["other_visible"] == false);

  // Its exit code comes back; arguments reach it unchanged.
  auto code = run_mfserv({home.home_arg(), "exec", "probe", "--", "/bin/sh", "-c",
                          "echo \"$1\"; exit 7", "sh", "it's a b"});
  CHECK(code.exit_code == 7);
  CHECK(code.out == "it's a b\n");
  // It ran in the app's cgroup: on v1 the memory cgroup shows it.
  auto cgroup = run_mfserv({home.home_arg(), "exec", "probe", "--", "cat", "/proc/self/cgroup"});
  CHECK(cgroup.out.find("/probe/app_main/exec-") != std::string::npos);

  // 100 sandboxes later: no zombie, no leftover cgroup, the supervisor is fine.
  for (int i = 0; i < 100; ++i) {
    REQUIRE(run_mfserv({home.home_arg(), "exec", "probe", "--", "true"}).exit_code == 0);
  }
  int supervisor = home.ps()["service"]["pid"];
  // No zombie left among the supervisor's children.
  auto zombies = run_command(
      {"sh", "-c",
       "ps -eo ppid=,stat= | awk '$1 == " + std::to_string(supervisor) + " && $2 ~ /^Z/' | wc -l"});
  CHECK(mfserv::trim(zombies.out) == "0");
  CHECK(fs::exists("/proc/" + std::to_string(supervisor)));
  for (const auto& entry :
       fs::directory_iterator(home.instance_cgroup_v1_memory() + "/probe/app_main")) {
    CHECK(entry.path().filename().string().rfind("exec-", 0) != 0);
  }
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("stop's signal reaches the app through the sandbox's init",
          "[integration][root][sandbox]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  std::string shared = home.path() + "/../shared";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::all);
  std::string marker = fs::weakly_canonical(shared).string() + "/term.log";
  home.add_plugin("probe", probe_plugin("\n[custom]\nterm_marker = " + marker + "\n"));
  // Writable paths widen the sandbox: only the administrator's override file may set them.
  write_text(home.path() + "/config/plugins/probe.ini",
             "[app_main]\nwritable_paths = " + fs::weakly_canonical(shared).string() + "\n");
  REQUIRE(home.start(free_port()).exit_code == 0);
  CHECK(home.stop().exit_code == 0);
  CHECK(read_text(marker).find("SIGTERM") != std::string::npos);
}

TEST_CASE("a sandbox that cannot be set up is a clear error and nothing runs",
          "[integration][root][sandbox]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("good", probe_plugin());
  home.add_plugin("nowhere", probe_plugin());
  home.add_plugin("nobody_here", probe_plugin());
  home.add_plugin("greedy", probe_plugin());
  home.add_plugin("numeric", probe_plugin());
  // A uid is accepted by the config check: it must be accepted at start too.
  const bool has_65534 = ::getpwuid(65534) != nullptr;
  write_text(home.path() + "/config/plugins/numeric.ini", "[app_main]\nuser = 65534\n");
  write_text(home.path() + "/config/plugins/nowhere.ini",
             "[app_main]\nwritable_paths = /nonexistent/mfserv-data\n");
  write_text(home.path() + "/config/plugins/nobody_here.ini",
             "[app_main]\nuser = no-such-user-mfserv\n");
  // A plugin granting itself root, no seccomp and a writable host is refused.
  write_text(home.path() + "/plugins/greedy/config.ini",
             probe_plugin("user = root\nseccomp = off\nwritable_paths = /\n"));
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err);
  CHECK(started.exit_code == 4);  // some apps failed to start
  CHECK(started.err.find("/nonexistent/mfserv-data") != std::string::npos);
  CHECK(started.err.find("no-such-user-mfserv") != std::string::npos);
  // The fix is an administrator's: config.ini may not set `user`.
  CHECK(started.err.find("set another `user` in the app's override file "
                         "(HOME/config/plugins/PLUGIN.ini") != std::string::npos);
  if (has_65534) {
    CHECK(started.err.find("'65534'") == std::string::npos);
    for (const auto& row : home.ps()["processes"]) {
      if (row["plugin"] == "numeric") {
        CHECK(row["error"] == "");
      }
    }
  }
  CHECK(started.err.find("sets user, seccomp, writable_paths in [app_main]: a plugin cannot "
                         "widen its own sandbox") != std::string::npos);
  CHECK(processes_mentioning(home.path() + "/run/sockets/app_greedy_main").empty());
  CHECK(run_mfserv({home.home_arg(), "exec", "greedy", "--", "id"}).exit_code != 0);
  CHECK(processes_mentioning(home.path() + "/run/sockets/app_nowhere_main").empty());
  CHECK(processes_mentioning(home.path() + "/run/sockets/app_nobody_here_main").empty());
  CHECK(http_get(port, "/good/main/").status == 200);
  CHECK(http_get(port, "/nowhere/main/").status == 502);
  // ps and status in text say why, not only --json and the log.
  auto ps = run_mfserv({home.home_arg(), "ps"});
  CHECK(ps.out.find("nobody_here/main worker 1: ") != std::string::npos);
  CHECK(ps.out.find("user 'no-such-user-mfserv' does not exist") != std::string::npos);
  auto status = run_mfserv({home.home_arg(), "status"});
  INFO(status.out);
  CHECK(status.out.find("user 'no-such-user-mfserv' does not exist") != std::string::npos);
  CHECK(home.stop().exit_code == 0);
}

// A config.ini that widens its own sandbox used to be refused only when mfserv started it;
// `plugin develop` says so at once (and still links it: an administrator may allow it).
TEST_CASE("plugin develop warns about a config.ini that widens its sandbox",
          "[integration][sandbox]") {
  TempHome home;
  std::string dir = home.add_plugin("greedy", probe_plugin("user = root\nseccomp = off\n"));
  auto again = run_mfserv({home.home_arg(), "plugin", "develop", dir});
  INFO(again.out << again.err);
  CHECK(again.exit_code == 0);
  CHECK(again.err.find("mfserv: warning: ") != std::string::npos);
  CHECK(again.err.find("sets user, seccomp in [app_main]: a plugin cannot widen its own "
                       "sandbox") != std::string::npos);
  CHECK(again.err.find("(greedy/main will not start until then)") != std::string::npos);
  std::string good = home.add_plugin("good", probe_plugin());
  auto quiet = run_mfserv({home.home_arg(), "plugin", "develop", good});
  CHECK(quiet.err.find("warning") == std::string::npos);
}

TEST_CASE("an app refused its sandbox never runs: not on restart nor start nor reload",
          "[integration][root][sandbox]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("good", probe_plugin());
  // A label longer than short-string storage: a freed one reads as garbage, not by luck.
  const std::string name = "greedy_plugin_with_a_long_name";
  home.add_plugin(name, probe_plugin("seccomp = off\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 4);
  const std::string sockets = home.path() + "/run/sockets/app_" + name;
  for (const char* command : {"restart", "start"}) {
    auto result = run_mfserv({home.home_arg(), command, name + "/main"});
    INFO(command << ": " << result.out << result.err);
    CHECK(result.exit_code == 1);
    CHECK(result.err.find("cannot start") != std::string::npos);
    CHECK(result.err.find("a plugin cannot widen its own sandbox") != std::string::npos);
  }
  std::this_thread::sleep_for(500ms);
  CHECK(processes_mentioning(sockets).empty());
  // A reload that keeps it refused says so; removing it leaves the supervisor serving.
  write_text(home.path() + "/plugins/" + name + "/config.ini",
             probe_plugin("seccomp = off\nmax_age = 100\n"));
  auto reload = run_mfserv({home.home_arg(), "reload"});
  INFO(reload.out << reload.err);
  CHECK(reload.exit_code == 1);
  CHECK(reload.err.find("cannot start " + name + "/main") != std::string::npos);
  CHECK(processes_mentioning(sockets).empty());
  fs::remove_all(home.path() + "/plugins/" + name);
  auto removed = run_mfserv({home.home_arg(), "reload"});
  INFO(removed.out << removed.err);
  CHECK(removed.exit_code == 0);
  CHECK(removed.out.find("stopped " + name + "/main") != std::string::npos);
  CHECK(http_get(port, "/good/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}
