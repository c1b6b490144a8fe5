// What clients see while things change and break (issue: supervision): a load loop through
// real nginx counts every non-2xx answer during restarts, reloads, max_age recycling and
// crashes; and cases C1-C6 of shared/cases.md.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Requests PATH in a loop from two client threads until stopped (bounded by MAX_DURATION).
class LoadLoop {
 public:
  LoadLoop(int port, std::string path, std::chrono::seconds max_duration = 120s)
      : m_port(port),
        m_path(std::move(path)),
        m_deadline(std::chrono::steady_clock::now() + max_duration) {
    for (int i = 0; i < 2; ++i) {
      m_threads.emplace_back([this] { loop(); });
    }
  }
  ~LoadLoop() { stop(); }

  void stop() {
    m_stop = true;
    for (auto& t : m_threads) {
      if (t.joinable()) {
        t.join();
      }
    }
  }
  int total() const { return m_total; }
  std::map<int, int> failures() {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_failures;
  }

 private:
  void loop() {
    while (!m_stop && std::chrono::steady_clock::now() < m_deadline) {
      auto response = http_get(m_port, m_path, "localhost", 30000);
      ++m_total;
      if (response.status < 200 || response.status >= 300) {
        std::lock_guard<std::mutex> lock(m_mutex);
        ++m_failures[response.status];
      }
    }
  }

  int m_port;
  std::string m_path;
  std::chrono::steady_clock::time_point m_deadline;
  std::atomic<bool> m_stop{false};
  std::atomic<int> m_total{0};
  std::mutex m_mutex;
  std::map<int, int> m_failures;
  std::vector<std::thread> m_threads;
};

std::string describe(const std::map<int, int>& failures) {
  std::string text;
  for (const auto& [status, count] : failures) {
    text += std::to_string(status) + " x" + std::to_string(count) + " ";
  }
  return text;
}

std::set<int> worker_pids(TempHome& home, const std::string& plugin) {
  std::set<int> pids;
  auto ps = home.ps();
  for (const auto& row : ps["processes"]) {
    if (row["plugin"] == plugin) {
      pids.insert(row["pid"].get<int>());
    }
  }
  return pids;
}

// Running, or not yet reaped: a zombie is gone for our purposes.
bool alive(int pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto end = stat.rfind(')');
  return end != std::string::npos && stat.size() > end + 2 && stat[end + 2] != 'Z';
}

// Stops LOAD; it must have run and seen no failed request.
void check_no_failed_request(LoadLoop& load) {
  load.stop();
  INFO("requests: " << load.total() << ", failures: " << describe(load.failures()));
  CHECK(load.total() > 20);
  CHECK(load.failures().empty());
}

bool all_running(TempHome& home, const std::string& plugin) {
  auto ps = home.ps();
  for (const auto& row : ps["processes"]) {
    if (row["plugin"] == plugin && (row["state"] != "running" || row["draining"] != 0)) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("restart PLUGIN under load: every worker replaced, no failed request",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto before = worker_pids(home, "alpha");
  LoadLoop load(port, "/alpha/main/sleep?s=0.05");
  std::this_thread::sleep_for(500ms);
  auto restart = run_mfserv({home.home_arg(), "restart", "alpha"});
  INFO(restart.err);
  REQUIRE(restart.exit_code == 0);
  REQUIRE(wait_until(
      [&] {
        auto now = worker_pids(home, "alpha");
        for (int pid : now) {
          if (before.count(pid)) {
            return false;
          }
        }
        return all_running(home, "alpha");
      },
      30s));
  std::this_thread::sleep_for(500ms);
  check_no_failed_request(load);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C1: max_age recycling of 8 workers under a request loop: not one 502",
          "[integration][root][supervision][C1]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("aged", testapp_plugin(8, "max_age = 2\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto first = worker_pids(home, "aged");
  LoadLoop load(port, "/aged/main/");
  std::this_thread::sleep_for(7s);
  load.stop();
  auto later = worker_pids(home, "aged");
  int replaced = 0;
  for (int pid : first) {
    replaced += later.count(pid) ? 0 : 1;
  }
  INFO("requests: " << load.total() << ", failures: " << describe(load.failures()));
  CHECK(replaced == 8);
  CHECK(load.total() > 50);
  CHECK(load.failures().empty());
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C5: 20 reloads under load: zero 5xx, old workers gone within their grace period",
          "[integration][root][supervision][C5]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2, "\n[custom]\nround = 0\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  std::string override_file = home.path() + "/config/plugins/alpha.ini";
  LoadLoop load(port, "/alpha/main/");
  for (int round = 1; round <= 20; ++round) {
    write_text(override_file, "[custom]\nround = " + std::to_string(round) + "\n");
    auto reload = run_mfserv({home.home_arg(), "reload"});
    INFO(reload.err);
    REQUIRE(reload.exit_code == 0);
    CHECK(reload.out.find("restarted alpha/main") != std::string::npos);
    std::this_thread::sleep_for(300ms);
  }
  REQUIRE(wait_until([&] { return all_running(home, "alpha"); }, 30s));
  load.stop();
  INFO("requests: " << load.total() << ", failures: " << describe(load.failures()));
  CHECK(load.failures().empty());
  // The last configuration is the one running, in exactly two workers.
  auto response = http_get(port, "/alpha/main/");
  REQUIRE(response.status == 200);
  auto seen = json::parse(response.body);
  CHECK(seen["env"]["MFSERV_CURRENT_PLUGIN_CUSTOM_ROUND"] == "20");
  CHECK(processes_mentioning(home.path() + "/run/sockets/app_alpha_main_").size() == 2);

  // A reload with nothing changed restarts nothing.
  auto pids = worker_pids(home, "alpha");
  auto idle = run_mfserv({home.home_arg(), "reload"});
  CHECK(idle.out.find("restarted") == std::string::npos);
  CHECK(worker_pids(home, "alpha") == pids);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("reload restarts only the app whose section changed: numprocesses alone restarts none",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  const std::string second = "[app_second]\n_cmd_and_args = " + testapp_command() +
                             "\nnumprocesses = 1\ngraceful_timeout = 5\n";
  home.add_plugin("alpha", testapp_plugin(1) + second);
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto pids_of = [&](const std::string& app) {
    std::map<int, int> pids;  // worker -> pid
    const json ps = home.ps();
    for (const auto& row : ps["processes"]) {
      if (row["plugin"] == "alpha" && row["app"] == app) {
        pids[row["worker"].get<int>()] = row["pid"].get<int>();
      }
    }
    return pids;
  };
  const auto main_before = pids_of("main");
  const auto second_before = pids_of("second");
  auto reload = [&](const std::string& config) {
    home.add_plugin("alpha", config);
    auto result = run_mfserv({home.home_arg(), "reload"});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
    return result.out;
  };
  // A comment: nothing restarts.
  CHECK(reload("# a comment\n" + testapp_plugin(1) + second) == "reloaded\n");
  // Only [app_second]'s numprocesses: one worker more, none replaced.
  std::string grown = second;
  grown.replace(grown.find("numprocesses = 1"), 16, "numprocesses = 2");
  CHECK(reload(testapp_plugin(1) + grown) == "resized alpha/second\nreloaded\n");
  CHECK(pids_of("second").size() == 2);
  CHECK(pids_of("second").at(1) == second_before.at(1));
  CHECK(pids_of("main") == main_before);
  // A key of [app_second]: only it restarts.
  CHECK(reload(testapp_plugin(1) + grown + "max_age = 3600\n") ==
        "restarted alpha/second\nreloaded\n");
  CHECK(pids_of("second").at(1) != second_before.at(1));
  CHECK(pids_of("main") == main_before);
  CHECK(http_get(port, "/alpha/main/").status == 200);
  CHECK(http_get(port, "/alpha/second/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a reload that changes numprocesses adds and removes workers with no failed request",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  std::string override_file = home.path() + "/config/plugins/alpha.ini";
  const std::string sockets = home.path() + "/run/sockets/";
  auto workers = [&] {
    std::set<int> wids;
    const auto ps = home.ps();  // held: a range-for over home.ps()[...] would dangle
    for (const auto& row : ps["processes"]) {
      if (row["plugin"] == "alpha") {
        wids.insert(row["worker"].get<int>());
      }
    }
    return wids;
  };
  LoadLoop load(port, "/alpha/main/sleep?s=0.02");
  for (int count : {3, 1, 2}) {
    write_text(override_file, "[app_main]\nnumprocesses = " + std::to_string(count) + "\n");
    auto reload = run_mfserv({home.home_arg(), "reload"});
    INFO("numprocesses " << count << ": " << reload.out << reload.err);
    REQUIRE(reload.exit_code == 0);
    std::set<int> expected;
    for (int wid = 1; wid <= count; ++wid) {
      expected.insert(wid);
    }
    bool settled =
        wait_until([&] { return workers() == expected && all_running(home, "alpha"); }, 30s);
    INFO("ps: " << home.ps()["processes"].dump());
    CHECK(settled);
    // Exactly COUNT programs serve, each on its own socket; a removed worker's socket is gone.
    CHECK(wait_until(
        [&] {
          return processes_mentioning(home.path() + "/run/sockets/app_alpha_main_").size() ==
                 static_cast<size_t>(count);
        },
        15s));
    for (int wid = 1; wid <= 3; ++wid) {
      CHECK(fs::exists(sockets + "app_alpha_main_" + std::to_string(wid) + ".socket") ==
            (wid <= count));
    }
    // Every worker answers through nginx.
    std::set<std::string> answered;
    CHECK(wait_until(
        [&] {
          auto response = http_get(port, "/alpha/main/");
          if (response.status == 200) {
            answered.insert(json::parse(response.body)["worker"].get<std::string>());
          }
          return answered.size() == static_cast<size_t>(count);
        },
        15s));
  }
  check_no_failed_request(load);
  CHECK_FALSE(fs::exists(home.instance_cgroup_v1_memory() + "/alpha/app_main/w3"));
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a new version that never becomes ready leaves the previous worker serving",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // An override may only change keys of sections the plugin has.
  home.add_plugin("alpha", testapp_plugin(1, "\n[custom]\nfail_at_start = 0\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto before = worker_pids(home, "alpha");
  REQUIRE(before.size() == 1);
  const int old_pid = *before.begin();
  std::string override_file = home.path() + "/config/plugins/alpha.ini";
  LoadLoop load(port, "/alpha/main/");
  write_text(override_file, "[custom]\nfail_at_start = 1\n");
  auto failing = run_mfserv({home.home_arg(), "reload"});
  CHECK(failing.exit_code == 4);  // reload waits for it, and says so
  CHECK(failing.err.find("alpha/main did not restart (worker 1: exit 1; its previous version "
                         "keeps serving") != std::string::npos);
  // The new incarnation keeps failing; the old one keeps answering.
  CHECK(wait_until(
      [&] {
        auto row = home.ps()["processes"][0];
        return row["restarts"].get<int>() >= 2 && row["draining"] == 1;
      },
      20s));
  CHECK(alive(old_pid));
  // status says the app still serves, from its previous version.
  CHECK(run_mfserv({home.home_arg(), "status"}).out.find("its previous version still serves") !=
        std::string::npos);
  auto response = http_get(port, "/alpha/main/");
  REQUIRE(response.status == 200);
  CHECK(json::parse(response.body)["pid"] != nullptr);
  // Fixed: the next version becomes ready and only then the old one goes.
  fs::remove(override_file);
  REQUIRE(run_mfserv({home.home_arg(), "reload"}).exit_code == 0);
  CHECK(wait_until([&] { return !alive(old_pid) && all_running(home, "alpha"); }, 30s));
  check_no_failed_request(load);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a replacement slow to start: the previous worker serves until the new one answers",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1, "\n[custom]\nstart_seconds = 0\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto before = worker_pids(home, "alpha");
  REQUIRE(before.size() == 1);
  const int old_pid = *before.begin();
  // Which configuration answered: the old one starts at once, the new one after 3 s.
  auto answered_by = [&] {
    auto response = http_get(port, "/alpha/main/");
    if (response.status != 200) {
      return std::string("status " + std::to_string(response.status));
    }
    return json::parse(response.body)["env"]["MFSERV_CURRENT_PLUGIN_CUSTOM_START_SECONDS"]
        .get<std::string>();
  };
  LoadLoop load(port, "/alpha/main/");
  write_text(home.path() + "/config/plugins/alpha.ini", "[custom]\nstart_seconds = 3\n");
  // reload answers once the new incarnation serves.
  auto reload = std::async(std::launch::async, [&] {
    return run_mfserv({home.home_arg(), "reload"}).exit_code;
  });
  // The new incarnation is not listening yet: its readiness must not be read from the old
  // one's answers on a shared socket.
  std::this_thread::sleep_for(1500ms);
  CHECK(alive(old_pid));
  CHECK(answered_by() == "0");
  REQUIRE(reload.get() == 0);
  CHECK(answered_by() == "3");
  CHECK(wait_until([&] { return !alive(old_pid); }, 15s));
  check_no_failed_request(load);
  // No replacement socket is left behind.
  for (const auto& entry : fs::directory_iterator(home.path() + "/run/sockets")) {
    CHECK(entry.path().filename().string().rfind(".n", 0) != 0);
  }
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("max_age shorter than a worker's drain: recycling waits for it, never stops",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // Each incarnation takes 2 s to finish after its stop signal; max_age asks every second.
  home.add_plugin("aged", testapp_plugin(1, "max_age = 1\n\n[custom]\ncleanup_seconds = 2\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  LoadLoop load(port, "/aged/main/");
  std::set<int> seen;
  auto deadline = std::chrono::steady_clock::now() + 12s;
  while (std::chrono::steady_clock::now() < deadline && seen.size() < 4) {
    for (int pid : worker_pids(home, "aged")) {
      if (pid > 0) {
        seen.insert(pid);
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  load.stop();
  INFO("incarnations seen: " << seen.size() << "; requests: " << load.total()
                             << ", failures: " << describe(load.failures()));
  CHECK(seen.size() >= 4);
  CHECK(load.failures().empty());
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("reload adds and removes plugins without touching the others",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1));
  home.add_plugin("beta", testapp_plugin(1));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto alpha = worker_pids(home, "alpha");
  home.add_plugin("gamma", testapp_plugin(1));
  fs::remove(home.path() + "/plugins/beta");
  auto reload = run_mfserv({home.home_arg(), "reload"});
  INFO(reload.out << reload.err);
  CHECK(reload.out.find("started gamma/main") != std::string::npos);
  CHECK(reload.out.find("stopped beta/main") != std::string::npos);
  // reload answers once nginx serves its new configuration.
  CHECK(http_get(port, "/gamma/main/").status == 200);
  CHECK(http_get(port, "/beta/main/").status == 404);
  CHECK(worker_pids(home, "alpha") == alpha);
  // beta stops once nginx's workers of the previous configuration are gone.
  CHECK(wait_until(
      [&] { return processes_mentioning(home.path() + "/run/sockets/app_beta_main").empty(); },
      15s));
  // Its cgroups go with it, the plugin's own level included (it used to stay until stop).
  CHECK(wait_until([&] { return !fs::exists(home.instance_cgroup_v1_memory() + "/beta"); }, 10s));
  CHECK(fs::exists(home.instance_cgroup_v1_memory() + "/alpha"));
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("reload answers once nginx serves the new configuration",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  // A script that reloads then calls the new URL (or no longer the old one) gets what it just
  // asked for, with no retry: nginx reloads asynchronously, reload waits for it.
  for (int round = 1; round <= 4; ++round) {
    const std::string added = "p" + std::to_string(round);
    home.add_plugin(added, testapp_plugin(1));
    if (round > 1) {
      fs::remove(home.path() + "/plugins/p" + std::to_string(round - 1));
    }
    auto reload = run_mfserv({home.home_arg(), "reload"});
    INFO(reload.out << reload.err);
    REQUIRE(reload.exit_code == 0);
    CHECK(http_get(port, "/" + added + "/main/").status == 200);
    if (round > 1) {
      CHECK(http_get(port, "/p" + std::to_string(round - 1) + "/main/").status == 404);
    }
  }
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("reload waits for the apps it starts and names those that do not start",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  home.add_plugin("good", testapp_plugin(2));
  home.add_plugin("bad", test_general() +
                             "[app_main]\n_cmd_and_args = /bin/sh -c 'exit 3'\nnumprocesses = 1\n");
  auto reload = run_mfserv({home.home_arg(), "reload"});
  INFO(reload.out << reload.err);
  CHECK(reload.exit_code == 4);                // as `run --detach` when apps fail to start
  CHECK(reload.out == "started good/main\n");  // bad/main is named once, as not started
  CHECK(reload.err.find("bad/main did not start (worker 1: exit 3; see `mfserv logs bad/main`)") !=
        std::string::npos);
  // good's two workers were ready when reload answered.
  const json ps = home.ps();
  int ready = 0;
  for (const auto& row : ps["processes"]) {
    ready += row["plugin"] == "good" && row["state"] == "running" ? 1 : 0;
  }
  CHECK(ready == 2);
  CHECK(http_get(port, "/good/main/").status == 200);
  CHECK(http_get(port, "/alpha/main/").status == 200);

  // A changed app: every worker replaced by the time reload answers.
  const auto good_before = worker_pids(home, "good");
  home.add_plugin("good", testapp_plugin(2, "max_age = 3600\n"));
  auto changed = run_mfserv({home.home_arg(), "reload"});
  INFO(changed.out << changed.err);
  CHECK(changed.out.find("restarted good/main") != std::string::npos);
  const auto good_after = worker_pids(home, "good");
  CHECK(good_after.size() == 2);
  for (int pid : good_after) {
    CHECK(good_before.count(pid) == 0);
  }
  // A change that does not start: named, and the previous version keeps serving.
  home.add_plugin(
      "alpha",
      test_general() + "[app_main]\n_cmd_and_args = /bin/sh -c 'exit 5'\nnumprocesses = 1\n");
  auto broken = run_mfserv({home.home_arg(), "reload"});
  INFO(broken.out << broken.err);
  CHECK(broken.exit_code == 4);
  CHECK(broken.err.find("alpha/main did not restart (worker 1: exit 5; its previous version keeps "
                        "serving; see `mfserv logs alpha/main`)") != std::string::npos);
  CHECK(http_get(port, "/alpha/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("shrinking an app during its rolling restart ends the restart for the workers removed",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(3, "\n[custom]\nstart_seconds = 2\n"));
  REQUIRE(home.start(free_port()).exit_code == 0);
  const std::string override_file = home.path() + "/config/plugins/alpha.ini";
  write_text(override_file, "[custom]\nstart_seconds = 1.5\n");
  auto rolling = std::async(std::launch::async, [&] {
    return run_mfserv({home.home_arg(), "reload"});
  });
  std::this_thread::sleep_for(2500ms);  // worker 1 replaced, worker 2 being replaced
  write_text(override_file, "[custom]\nstart_seconds = 1.5\n[app_main]\nnumprocesses = 1\n");
  auto shrunk = run_mfserv({home.home_arg(), "reload"});
  INFO(shrunk.out << shrunk.err);
  CHECK(shrunk.exit_code == 0);
  CHECK(shrunk.out == "resized alpha/main\nreloaded\n");
  CHECK(shrunk.err.find("not ready") == std::string::npos);  // it used to wait 10 s for it
  auto first = rolling.get();
  INFO(first.out << first.err);
  CHECK(first.exit_code == 0);
  CHECK(first.err.find("not ready") == std::string::npos);
  // Grown again: the new worker is not replaced by what is left of the restart.
  write_text(override_file, "[custom]\nstart_seconds = 1.5\n[app_main]\nnumprocesses = 2\n");
  const std::size_t log_before = read_text(home.path() + "/log/mfserv.log").size();
  auto grown = run_mfserv({home.home_arg(), "reload"});
  INFO(grown.out << grown.err);
  CHECK(grown.out == "resized alpha/main\nreloaded\n");
  CHECK(grown.err.find("not ready") == std::string::npos);
  std::this_thread::sleep_for(2500ms);
  CHECK(read_text(home.path() + "/log/mfserv.log").find("worker 2: replacing", log_before) ==
        std::string::npos);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a reload waiting for its apps gets a clear error when mfserv stops or dies meanwhile",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1, "\n[custom]\nstart_seconds = 0\n"));
  REQUIRE(home.start(free_port()).exit_code == 0);
  write_text(home.path() + "/config/plugins/alpha.ini", "[custom]\nstart_seconds = 30\n");
  auto reload = std::async(std::launch::async, [&] {
    return run_mfserv({home.home_arg(), "reload"});
  });
  std::this_thread::sleep_for(1s);
  SECTION("stop") {
    CHECK(home.stop().exit_code == 0);
    auto answer = reload.get();
    INFO(answer.out << answer.err);
    CHECK(answer.exit_code == 1);  // it used to say "reloaded"
    CHECK(answer.err.find("mfserv is stopping (stop requested): what the reload started or "
                          "restarted may not have become ready") != std::string::npos);
  }
  SECTION("kill -9") {
    const int supervisor = home.ps()["service"]["pid"];
    REQUIRE(::kill(supervisor, SIGKILL) == 0);
    auto answer = reload.get();
    INFO(answer.out << answer.err);
    CHECK(answer.exit_code == 1);
    CHECK(answer.err.find("closed the connection without answering: it has probably exited") !=
          std::string::npos);
    CHECK(home.stop().exit_code == 0);  // what it left
  }
}

TEST_CASE("kill -9 of one of two workers every 200 ms: no failed GET",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  LoadLoop load(port, "/alpha/main/");
  auto deadline = std::chrono::steady_clock::now() + 4s;
  int kills = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto ps = home.ps();
    for (const auto& row : ps["processes"]) {
      if (row["worker"] == 1 && row["pid"].get<int>() > 0) {
        kills += ::kill(row["pid"].get<int>(), SIGKILL) == 0 ? 1 : 0;
      }
    }
    std::this_thread::sleep_for(200ms);
  }
  load.stop();
  INFO("kills: " << kills << ", requests: " << load.total()
                 << ", failures: " << describe(load.failures()));
  CHECK(kills >= 5);
  CHECK(load.failures().empty());
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C2 and C3: stop lets a 3 s request finish and a 1 s cleanup complete",
          "[integration][root][supervision][C2][C3]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  std::string shared = fs::path(home.path()).parent_path().string() + "/shared";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::all);
  std::string marker = shared + "/term.log";
  home.add_plugin("slow", testapp_plugin(1,
                                         "\n[custom]\ncleanup_seconds = 1\n"
                                         "term_marker = " +
                                             marker + "\n"));
  write_text(home.path() + "/config/plugins/slow.ini",
             "[app_main]\nwritable_paths = " + shared + "\n");
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  HttpResponse long_request;
  std::thread client(
      [&] { long_request = http_get(port, "/slow/main/sleep?s=3", "localhost", 20000); });
  std::this_thread::sleep_for(500ms);
  auto stopped = home.stop();
  client.join();
  CHECK(stopped.exit_code == 0);
  CHECK(long_request.status == 200);  // nginx stopped after the worker, not before
  CHECK(read_text(marker).find("cleanup done after 1.0 s") != std::string::npos);
}

TEST_CASE("C4: a worker dying 0.5 s after each start: growing delays, no busy supervisor",
          "[integration][root][supervision][C4]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("good", testapp_plugin(1));
  home.add_plugin("flaky", test_general() +
                               "[extra_daemon_crash]\n_cmd_and_args = /bin/sh -c "
                               "'sleep 0.5; exit 1'\nnumprocesses = 1\n");
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  int supervisor = home.ps()["service"]["pid"];
  auto cpu_ticks = [&] {
    auto stat = read_text("/proc/" + std::to_string(supervisor) + "/stat");
    auto fields = mfserv::split(stat.substr(stat.rfind(')') + 2), ' ');
    return std::stol(fields[11]) + std::stol(fields[12]);  // utime + stime
  };
  long ticks_before = cpu_ticks();
  std::this_thread::sleep_for(8s);
  long ticks = cpu_ticks() - ticks_before;
  json row;
  auto ps = home.ps();
  for (const auto& r : ps["processes"]) {
    if (r["plugin"] == "flaky") {
      row = r;
    }
  }
  INFO(row.dump());
  // 0.1+0.2+0.4+0.8+1.6+3.2 s of backoff plus 0.5 s runs: about 6 restarts in 8 s, not 16.
  CHECK(row["restarts"].get<int>() >= 4);
  CHECK(row["restarts"].get<int>() <= 7);
  CHECK(row["crash_loop"] == true);
  CHECK(row["last_exit"] == "exit 1");
  CHECK(ticks < sysconf(_SC_CLK_TCK));  // under 1 s of CPU in 8 s
  std::string log = read_text(home.path() + "/log/mfserv.log");
  CHECK(log.find("flaky/crash worker 1 exited (exit 1), restarting") != std::string::npos);
  CHECK(http_get(port, "/good/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a worker that recovers from a crash loop is healthy again once it runs stably",
          "[integration][root][supervision][C4]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // Fails until the flag exists (HOME/var/plugins/NAME is the plugin's own writable folder).
  const std::string flag = home.path() + "/var/plugins/recover/ok";
  home.add_plugin("recover", test_general() +
                                 "[extra_daemon_main]\n_cmd_and_args = /bin/sh -c 'test -e " +
                                 flag + " || exit 1; exec sleep 1000'\nnumprocesses = 1\n");
  (void)home.start(free_port());  // exit 4: the daemon failed to start
  auto row = [&] {
    const json ps = home.ps();
    for (const auto& r : ps["processes"]) {
      if (r["plugin"] == "recover") {
        return r;
      }
    }
    return json();
  };
  REQUIRE(wait_until([&] { return row()["crash_loop"] == true; }, 10s));
  CHECK(run_mfserv({home.home_arg(), "status"}).exit_code != 0);
  write_text(flag, "");
  // Backoff (at most a few seconds here), then a stable run (10 s): no longer a crash loop,
  // without any further exit (it used to stay flagged until the next one).
  CHECK(
      wait_until([&] { return row()["state"] == "running" && row()["crash_loop"] == false; }, 30s));
  auto status = run_mfserv({home.home_arg(), "status"});
  INFO(status.out);
  CHECK(status.exit_code == 0);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE(
    "a crash-looping worker is refused at once: its requests go to the other worker or "
    "get a 502, never wait for the timeout",
    "[integration][root][supervision][C4]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // Worker 2 of "half" and the only worker of "down" exit at once, again and again; timeout
  // 30: a request held in a dead worker's backlog would come back as a 504 after 30 s.
  const std::string crashing_second =
      "/bin/sh -c 'case {unix_socket_path} in *_2.socket) exit 1;; esac; exec " +
      testapp_command() + "'";
  home.add_plugin("half", test_general() + "[app_main]\n_cmd_and_args = " + crashing_second +
                              "\nnumprocesses = 2\ntimeout = 30\n");
  home.add_plugin("down", test_general() +
                              "[app_main]\n_cmd_and_args = /bin/sh -c 'exit 1'\nnumprocesses = "
                              "1\ntimeout = 30\n");
  int port = free_port();
  (void)home.start(port);  // exit 4: some workers failed to start
  REQUIRE(wait_until(
      [&] {
        return crash_looping_workers(home, "half") > 0 && crash_looping_workers(home, "down") > 0;
      },
      15s));
  // Between its restarts: every GET is served by worker 1.
  for (int i = 0; i < 20; ++i) {
    auto response = http_get(port, "/half/main/");
    INFO(i << ": " << response.status);
    CHECK(response.status == 200);
  }
  // Nothing serves "down": 502 at once, not a 504 after its timeout.
  auto response = http_get(port, "/down/main/");
  CHECK(response.status == 502);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a crash-looping worker that dies before it answers never holds a request",
          "[integration][root][supervision][C4]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // Worker 2 lives 2 s and never listens. Its starts used to reopen the app's socket: each
  // request nginx passed it then waited those 2 s before being retried on worker 1.
  const std::string command =
      "/bin/sh -c 'case {unix_socket_path} in *_2.socket) sleep 2; exit "
      "1;; esac; exec " +
      testapp_command() + "'";
  home.add_plugin(
      "alpha", test_general() + "[app_main]\n_cmd_and_args = " + command + "\nnumprocesses = 2\n");
  int port = free_port();
  (void)home.start(port);  // exit 4: worker 2 never starts
  REQUIRE(wait_until([&] { return crash_looping_workers(home, "alpha", 2) == 1; }, 30s));
  // Through two more of its starts: every request answered by worker 1 at once.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  std::chrono::milliseconds slowest{0};
  int requests = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto begin = std::chrono::steady_clock::now();
    CHECK(http_get(port, "/alpha/main/").status == 200);
    slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - begin));
    ++requests;
    std::this_thread::sleep_for(50ms);
  }
  INFO(requests << " requests, slowest " << slowest.count() << " ms");
  CHECK(slowest < 1500ms);  // 2 s when held by a start that was going to fail
  CHECK(home.stop().exit_code == 0);
  CHECK(fs::is_empty(home.path() + "/run/sockets"));
}

TEST_CASE("a request that kills its worker is retried once: it takes at most two workers down",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(4));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  CHECK(http_get(port, "/alpha/main/exit").status == 502);
  auto restarts = [&] {
    int total = 0;
    const json ps = home.ps();
    for (const auto& row : ps["processes"]) {
      total += row["restarts"].get<int>();
    }
    return total;
  };
  REQUIRE(wait_until([&] { return restarts() >= 2 && all_running(home, "alpha"); }, 10s));
  std::this_thread::sleep_for(300ms);
  CHECK(restarts() == 2);  // every one of the 4 used to die
  CHECK(http_get(port, "/alpha/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("the readiness probe reads the whole answer: no broken pipe in the app's log",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // The body comes 0.2 s after the headers: a probe that closes at the first bytes makes
  // that write fail (it did, with a traceback per start in the log).
  home.add_plugin("alpha", testapp_plugin(2, "_http_test_endpoint = /slowbody\n"));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  REQUIRE(run_mfserv({home.home_arg(), "restart", "alpha"}).exit_code == 0);
  REQUIRE(wait_until([&] { return all_running(home, "alpha"); }, 10s));
  std::this_thread::sleep_for(500ms);  // the last body is written by then
  const std::string log = read_text(home.path() + "/log/app_alpha_main.log");
  INFO(log);
  CHECK(log.find("Broken pipe") == std::string::npos);
  CHECK(log.find("BrokenPipeError") == std::string::npos);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("restarting a daemon stops it before its new incarnation starts: never two at once",
          "[integration][root][supervision][C6]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("bg", test_general() +
                            "[extra_daemon_consumer]\n_cmd_and_args = /bin/sh -c 'echo start; "
                            "trap \"echo stop; exit 0\" TERM; while :; do sleep 0.1; done'\n"
                            "numprocesses = 1\ngraceful_timeout = 5\n");
  REQUIRE(home.start(free_port()).exit_code == 0);
  const std::string log = home.path() + "/log/extra_bg_consumer.log";
  REQUIRE(wait_until([&] { return read_text(log) == "start\n"; }, 5s));
  auto restarted = run_mfserv({home.home_arg(), "restart", "bg/consumer"});
  CHECK(restarted.out == "bg/consumer: restarting\n");  // the name ps shows
  CHECK(wait_until([&] { return read_text(log) == "start\nstop\nstart\n"; }, 10s));
  INFO(read_text(log));
  // The same for a reload that changes it: stop, then start.
  home.add_plugin("bg", test_general() +
                            "[extra_daemon_consumer]\n_cmd_and_args = /bin/sh -c 'echo start; "
                            "trap \"echo stop; exit 0\" TERM; while :; do sleep 0.1; done'\n"
                            "numprocesses = 1\ngraceful_timeout = 4\n");
  auto reloaded = run_mfserv({home.home_arg(), "reload"});
  CHECK(reloaded.out == "restarted bg/consumer\nreloaded\n");
  CHECK(wait_until([&] { return read_text(log) == "start\nstop\nstart\nstop\nstart\n"; }, 10s));
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C6: an extra daemon with numprocesses = 2: two processes, a log, no route",
          "[integration][root][supervision][C6]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("bg", test_general() +
                            "[extra_daemon_ticker]\n_cmd_and_args = /bin/sh -c 'echo tick "
                            "$MFSERV_CURRENT_APP_WORKER; exec sleep 1000'\nnumprocesses = 2\n"
                            "graceful_timeout = 2\n");
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto ps = home.ps();
  int daemons = 0;
  for (const auto& row : ps["processes"]) {
    if (row["plugin"] == "bg") {
      ++daemons;
      CHECK(row["kind"] == "daemon");
      CHECK(row["state"] == "running");
      CHECK(row["socket"] == "");
    }
  }
  CHECK(daemons == 2);
  std::string log_path = home.path() + "/log/extra_bg_ticker.log";
  REQUIRE(wait_until([&] { return read_text(log_path).find("tick 2") != std::string::npos; }, 5s));
  CHECK(read_text(log_path).find("tick 1") != std::string::npos);
  auto conf = run_mfserv({home.home_arg(), "nginx-conf"});
  CHECK(conf.out.find("ticker") == std::string::npos);
  CHECK(http_get(port, "/bg/").status == 404);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("stop and start PLUGIN/APP: held workers stay down, the rest serve",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  home.add_plugin("beta", testapp_plugin(1));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  REQUIRE(run_mfserv({home.home_arg(), "stop", "alpha/main"}).exit_code == 0);
  REQUIRE(wait_until(
      [&] {
        auto ps = home.ps();
        for (const auto& row : ps["processes"]) {
          if (row["plugin"] == "alpha" && row["state"] != "stopped") {
            return false;
          }
        }
        return true;
      },
      10s));
  CHECK(http_get(port, "/alpha/main/", "localhost", 5000).status == 502);
  CHECK(http_get(port, "/beta/main/").status == 200);
  // A stopped worker has no pid: the table shows "-", never -1.
  auto table = run_mfserv({home.home_arg(), "ps"});
  REQUIRE(table.exit_code == 0);
  int stopped_rows = 0;
  std::istringstream lines(table.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("alpha/main", 0) == 0) {
      ++stopped_rows;
      CHECK(line.find(" -1 ") == std::string::npos);
      CHECK(line.find(" - stopped ") != std::string::npos);
    }
  }
  CHECK(stopped_rows == 2);
  // Held on purpose is not a fault for `status`, but it says the app is down and why.
  auto status = run_mfserv({home.home_arg(), "status"});
  INFO(status.out << status.err);
  CHECK(status.exit_code == 0);
  CHECK(status.out.find("0/2 workers running, 2 stopped by `mfserv stop` until `mfserv start "
                        "alpha/main`") != std::string::npos);
  REQUIRE(run_mfserv({home.home_arg(), "start", "alpha"}).exit_code == 0);
  REQUIRE(wait_until([&] { return all_running(home, "alpha"); }, 10s));
  CHECK(http_get(port, "/alpha/main/").status == 200);
  // Asking again says nothing was to be done.
  CHECK(run_mfserv({home.home_arg(), "start", "alpha"}).out == "alpha/main: already running\n");
  CHECK(run_mfserv({home.home_arg(), "stop", "beta"}).out == "beta/main: stopping\n");
  CHECK(run_mfserv({home.home_arg(), "stop", "beta"}).out == "beta/main: already stopped\n");
  auto unknown = run_mfserv({home.home_arg(), "restart", "nope"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("no running plugin or app matches 'nope'") != std::string::npos);
  // A held app's sockets go with the supervisor too, and with the plugin when it leaves.
  REQUIRE(run_mfserv({home.home_arg(), "stop", "beta"}).exit_code == 0);
  REQUIRE(run_mfserv({home.home_arg(), "stop", "alpha"}).exit_code == 0);
  fs::remove(home.path() + "/plugins/beta");
  REQUIRE(run_mfserv({home.home_arg(), "reload"}).exit_code == 0);
  CHECK(wait_until([&] { return !fs::exists(home.path() + "/run/sockets/app_beta_main_1.socket"); },
                   15s));
  CHECK(home.stop().exit_code == 0);
  CHECK(fs::is_empty(home.path() + "/run/sockets"));
}

// A supervisor killed with -9 leaves nginx and the workers serving in its cgroups: the next
// `run` cleans them up before it starts, and so does `stop` (it used to answer "no mfserv is
// running" while they went on serving).
TEST_CASE("after kill -9 of the supervisor: run again or stop cleans up",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto ps = home.ps();
  int supervisor = ps["service"]["pid"];
  auto old_workers = worker_pids(home, "alpha");
  int old_nginx = ps["nginx"]["pid"];
  REQUIRE(::kill(supervisor, SIGKILL) == 0);
  REQUIRE(wait_until([&] { return !alive(supervisor); }, 5s));
  CHECK(http_get(port, "/alpha/main/").status == 200);  // the orphans still serve
  // A replacement's staging socket, as a kill during a rolling restart leaves it (it used to
  // stay for good), and a file that is not a socket (never removed).
  const std::string staging = home.path() + "/run/sockets/.n7";
  const std::string not_a_socket = home.path() + "/run/sockets/notes.txt";
  {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, staging.c_str(), sizeof addr.sun_path - 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
  }
  write_text(not_a_socket, "mine\n");
  // status and ps say what was left serving.
  auto status = run_mfserv({home.home_arg(), "status"});
  CHECK(status.exit_code == 3);
  CHECK(status.err.find("no mfserv is running for home " + home.path() +
                        "; its killed supervisor left ") != std::string::npos);
  CHECK(status.err.find("processes that may still serve: `mfserv --home " + home.path() +
                        " stop` stops them") != std::string::npos);

  SECTION("run again") {
    auto again = home.start(port);
    INFO(again.err << read_text(home.path() + "/log/mfserv.log"));
    REQUIRE(again.exit_code == 0);
    for (int pid : old_workers) {
      CHECK_FALSE(alive(pid));
    }
    CHECK_FALSE(alive(old_nginx));
    CHECK(processes_mentioning(home.path() + "/run/sockets/app_alpha_main_").size() ==
          2);  // never two copies
    CHECK(read_text(home.path() + "/log/mfserv.log").find("left in") != std::string::npos);
    CHECK_FALSE(fs::exists(staging));
  }
  SECTION("stop") {
    auto stopped = home.stop();
    INFO(stopped.out << stopped.err);
    CHECK(stopped.exit_code == 0);
    CHECK(stopped.out.find("mfserv was not running (its supervisor was killed): stopped the ") ==
          0);
    CHECK(stopped.out.find("processes it left in ") != std::string::npos);
    for (int pid : old_workers) {
      CHECK(wait_until([&] { return !alive(pid); }, 5s));
    }
    CHECK(wait_until([&] { return !alive(old_nginx); }, 5s));
    CHECK_FALSE(fs::exists(home.instance_cgroup_v1_memory()));
    CHECK_FALSE(fs::exists(staging));
    CHECK(read_text(not_a_socket) == "mine\n");
    fs::remove(not_a_socket);
    CHECK(home.stop().exit_code == 3);  // nothing left
    REQUIRE(home.start(port).exit_code == 0);
  }
  CHECK(http_get(port, "/alpha/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a reload with a broken config keeps that plugin running and says so",
          "[integration][root][supervision][reload]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  std::string dir = home.add_plugin("alpha", testapp_plugin(1));
  home.add_plugin("beta", testapp_plugin(1));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto pids = worker_pids(home, "alpha");
  write_text(dir + "/config.ini", testapp_plugin(1, "numprocesses = lots\n"));
  auto reload = run_mfserv({home.home_arg(), "reload"});
  INFO(reload.out << reload.err);
  CHECK(reload.exit_code == 1);
  CHECK(reload.err.find("config.ini") != std::string::npos);
  CHECK(reload.err.find("keep running their previous configuration: alpha") != std::string::npos);
  CHECK(worker_pids(home, "alpha") == pids);
  CHECK(http_get(port, "/alpha/main/").status == 200);
  CHECK(http_get(port, "/beta/main/").status == 200);
  // logs and exec say why alpha does not load; logs still shows the running version's log.
  auto logs = run_mfserv({home.home_arg(), "logs", "-n", "1", "alpha/main"});
  CHECK(logs.exit_code == 0);
  CHECK(logs.err.find("warning: plugin alpha does not load: " + fs::canonical(dir).string() +
                      "/config.ini:") != std::string::npos);
  CHECK(logs.err.find("the running version's logs follow") != std::string::npos);
  auto exec = run_mfserv({home.home_arg(), "exec", "alpha/main", "--", "true"});
  CHECK(exec.exit_code != 0);
  CHECK(exec.err.find("plugin alpha does not load: ") != std::string::npos);
  CHECK(exec.err.find("a running mfserv keeps its previous version; fix it, then `mfserv "
                      "reload`") != std::string::npos);
  // nginx-conf shows what nginx runs, alpha's routes included (it used to regenerate from the
  // folders and leave alpha out).
  auto conf = run_mfserv({home.home_arg(), "nginx-conf"});
  CHECK(conf.exit_code == 0);
  CHECK(conf.out == read_text(home.path() + "/run/nginx.conf"));
  CHECK(conf.out.find("app_alpha_main_1.socket") != std::string::npos);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("an app whose socket cannot be made fails alone while the others serve",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("good", testapp_plugin(1));
  const std::string name(100, 'n');  // socket path over 108 bytes
  const std::string dir = home.add_plugin(name, testapp_plugin(1));
  // add_plugin keeps no output: develop it again to read what develop says at once.
  REQUIRE(run_mfserv({home.home_arg(), "plugin", "uninstall", name}).exit_code == 0);
  auto developed = run_mfserv({home.home_arg(), "plugin", "develop", dir});
  INFO(developed.err);
  CHECK(developed.exit_code == 0);
  CHECK(developed.err.find("warning: " + name + "/main: its worker socket") != std::string::npos);
  CHECK(developed.err.find("it will not start until then") != std::string::npos);
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err);
  CHECK(started.exit_code == 4);
  // Which names to shorten, and by how much (it used to say only "use a shorter --home").
  CHECK(started.err.find("over the 107 a unix socket allows: shorten the plugin or app name by") !=
        std::string::npos);
  CHECK(http_get(port, "/good/main/").status == 200);
  const nlohmann::json ps = home.ps();
  bool reported = false;
  for (const auto& row : ps["processes"]) {
    reported = reported ||
               (row["plugin"] == name &&
                row.value("error", std::string()).find("shorten the plugin") != std::string::npos);
  }
  CHECK(reported);
  CHECK(home.stop().exit_code == 0);
}
