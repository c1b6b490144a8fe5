// The walking skeleton end to end: the built mfserv, real nginx, real Python and Node
// workers, real v1/v2 cgroups. Each test has its own home and port.
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "harness.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;
using namespace std::chrono_literals;

namespace {

std::vector<nlohmann::json> rows_of(const nlohmann::json& ps, const std::string& plugin) {
  std::vector<nlohmann::json> rows;
  for (const auto& row : ps["processes"]) {
    if (row["plugin"] == plugin) {
      rows.push_back(row);
    }
  }
  return rows;
}

// Running, or not yet reaped by its parent: a zombie is gone for our purposes.
bool alive(pid_t pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto end = stat.rfind(')');
  return end != std::string::npos && stat.size() > end + 2 && stat[end + 2] != 'Z';
}

}  // namespace

TEST_CASE("the four examples answer through nginx", "[integration][root][examples]") {
  if (!require_root()) {
    return;
  }
  REQUIRE(fs::exists(source_path("examples/hello_node/node_modules/express")));
  TempHome home;
  for (const char* example : {"hello_flask", "hello_aiohttp", "hello_node", "hello_static"}) {
    home.add_example(example);
  }
  int port = free_port();
  auto started = home.start(port);
  INFO(started.out << started.err << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);

  for (const char* plugin : {"hello_flask", "hello_aiohttp", "hello_node"}) {
    for (const std::string& path :
         {"/" + std::string(plugin) + "/main/", "/" + std::string(plugin) + "/"}) {
      auto response = http_get(port, path);
      INFO(plugin << " " << path << " -> " << response.status << " " << response.body);
      CHECK(response.status == 200);
      CHECK(response.body.find(std::string("Hello from ") + plugin) != std::string::npos);
      CHECK(response.body.find("path " + path) != std::string::npos);
    }
  }
  auto index = http_get(port, "/hello_static/");
  CHECK(index.status == 200);
  CHECK(index.body.find("Hello from hello_static") != std::string::npos);
  auto css = http_get(port, "/hello_static/main/static/site.css");
  CHECK(css.status == 200);
  CHECK(css.body.find("font-family") != std::string::npos);

  auto stopped = home.stop();
  CHECK(stopped.exit_code == 0);
}

TEST_CASE("ps lists each worker in its app's cgroup with the app's memory limit",
          "[integration][root][cgroups]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2, "memory_max = 64M\n"));
  home.add_plugin("beta", testapp_plugin(2, "memory_max = 96M\n"));
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);

  auto ps = home.ps();
  INFO(ps.dump(2));
  CHECK(ps["processes"].size() == 4);
  std::set<std::string> cgroups;
  std::set<int> pids;
  for (const auto& [plugin, limit] : {std::pair{"alpha", 64ULL << 20}, {"beta", 96ULL << 20}}) {
    auto rows = rows_of(ps, plugin);
    REQUIRE(rows.size() == 2);
    for (const auto& row : rows) {
      CHECK(row["state"] == "running");
      CHECK(row["memory_limit"] == limit);
      CHECK(row["memory_current"].is_number());
      std::string cgroup = row["cgroup"];
      CHECK(cgroup.find("/" + std::string(plugin) + "/app_main/w" +
                        std::to_string(row["worker"].get<int>())) != std::string::npos);
      cgroups.insert(cgroup);
      pids.insert(row["pid"].get<int>());
    }
  }
  CHECK(cgroups.size() == 4);
  CHECK(pids.size() == 4);

  // What the kernel says, not only what ps says.
  if (ps["service"]["cgroup_mode"] == "v1") {
    std::string app_dir = home.instance_cgroup_v1_memory() + "/alpha/app_main";
    CHECK(mfserv::trim(read_text(app_dir + "/memory.limit_in_bytes")) == "67108864");
    auto row = rows_of(ps, "alpha").front();
    std::string procs =
        read_text(app_dir + "/w" + std::to_string(row["worker"].get<int>()) + "/cgroup.procs");
    CHECK(procs.find(std::to_string(row["pid"].get<int>())) != std::string::npos);
  }
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a worker killed with SIGKILL comes back and the app keeps answering",
          "[integration][root][supervision]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  auto before = rows_of(home.ps(), "alpha");
  REQUIRE(before.size() == 2);
  int old_pid = before[0]["pid"];
  REQUIRE(::kill(old_pid, SIGKILL) == 0);

  // The socket stays open while the worker restarts: requests wait instead of failing.
  for (int i = 0; i < 20; ++i) {
    auto response = http_get(port, "/alpha/main/");
    CHECK(response.status == 200);
  }
  nlohmann::json row;
  REQUIRE(wait_until(
      [&] {
        row = rows_of(home.ps(), "alpha")[0];
        return row["state"] == "running" && row["pid"] != old_pid;
      },
      10s));
  CHECK(row["restarts"] == 1);
  CHECK(row["last_exit"] == "signal 9");
  CHECK(http_get(port, "/alpha/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a memory hog is killed by its app's limit, reported as oom and restarted",
          "[integration][root][cgroups][oom]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("hog", testapp_plugin(1, "memory_max = 64M\n"));
  home.add_plugin("calm", testapp_plugin(1));
  int port = free_port();
  REQUIRE(home.start(port).exit_code == 0);
  int old_pid = rows_of(home.ps(), "hog")[0]["pid"];

  auto hog = http_get(port, "/hog/main/hog", "localhost", 30000);
  CHECK(hog.status == 502);  // the worker died under the request

  nlohmann::json row;
  REQUIRE(wait_until(
      [&] {
        row = rows_of(home.ps(), "hog")[0];
        return row["state"] == "running" && row["pid"] != old_pid;
      },
      15s));
  INFO(row.dump());
  CHECK(row["last_exit"] == "oom");
  CHECK(row["oom_kills"].get<int>() >= 0);
  CHECK(row["restarts"] == 1);
  CHECK(http_get(port, "/hog/main/").status == 200);
  auto calm = rows_of(home.ps(), "calm")[0];
  CHECK(calm["restarts"] == 0);
  CHECK(http_get(port, "/calm/main/").status == 200);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("stop leaves no process, socket or cgroup behind", "[integration][root][stop]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // A worker that leaves a detached grandchild behind: the cgroup must catch it.
  home.add_plugin("leaky", testapp_plugin(2), {{"main/.keep", ""}});
  home.add_plugin("forker", test_general() +
                                "[extra_daemon_bg]\n_cmd_and_args = /bin/sh -c 'setsid sleep 1000 "
                                "& exec sleep 1000'\nnumprocesses = 1\ngraceful_timeout = 2\n");
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);
  auto ps = home.ps();
  std::vector<int> pids;
  for (const auto& row : ps["processes"]) {
    pids.push_back(row["pid"]);
  }
  pids.push_back(ps["nginx"]["pid"]);
  REQUIRE(pids.size() == 4);
  std::string supervisor_pid = std::to_string(ps["service"]["pid"].get<int>());
  REQUIRE(wait_until([&] { return processes_mentioning("sleep 1000").size() >= 2; }, 5s));

  auto stopped = home.stop();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  for (int pid : pids) {
    CHECK_FALSE(alive(pid));
  }
  CHECK_FALSE(alive(std::stoi(supervisor_pid)));
  CHECK(processes_mentioning("sleep 1000").empty());
  CHECK(processes_mentioning(home.path()).empty());
  for (const auto& name : mfserv::list_dir(home.path() + "/run/sockets")) {
    FAIL_CHECK("socket left behind: " << name);
  }
  CHECK_FALSE(fs::exists(home.path() + "/run/control.sock"));
  CHECK_FALSE(fs::exists(home.instance_cgroup_v1_memory()));
  CHECK(home.stop().exit_code == 3);  // nothing runs any more
}

// `run` execs mfserv-supervisor, which maps none of the CLI's libraries; user lookups and
// libcgroup's mount table happen in short-lived children, so no NSS module stays loaded.
TEST_CASE("the supervisor maps only what it uses", "[integration][root][run]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("plain", testapp_plugin(2));
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err);
  REQUIRE(started.exit_code == 0);
  int pid = home.ps()["service"]["pid"].get<int>();
  std::string proc = "/proc/" + std::to_string(pid);
  CHECK(fs::read_symlink(proc + "/exe").filename() == "mfserv-supervisor");
  std::string maps = read_text(proc + "/maps");
  for (const char* library : {"libarchive", "libnettle", "libxml2", "libicu", "libnss_"}) {
    INFO(library);
    CHECK(maps.find(library) == std::string::npos);
  }
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("run without mfserv-supervisor beside mfserv says what is missing",
          "[integration][run]") {
  TempHome home;
  fs::create_directories(home.path());
  std::string copy = home.path() + "/lonely-mfserv";
  fs::copy_file(MFSERV_BINARY, copy);
  fs::permissions(copy, fs::perms::owner_all);
  auto result = run_command({copy, home.home_arg(), "run"});
  CHECK(result.exit_code == 1);
  CHECK(result.err.find("cannot run " + home.path() + "/mfserv-supervisor: No such file") !=
        std::string::npos);
  CHECK(result.err.find("built beside mfserv") != std::string::npos);
  CHECK_FALSE(fs::exists(home.path() + "/run/control.sock"));
}

TEST_CASE("a broken plugin is reported with file, line and key while the good one serves",
          "[integration][root][config]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("good", testapp_plugin(1));
  // Written straight into the home: `plugin develop` would refuse it.
  write_text(home.path() + "/plugins/broken/config.ini",
             testapp_plugin(1, "workers = 4\nmemory_max = lots\n"));
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err);
  CHECK(started.exit_code == 0);
  std::string config = home.path() + "/plugins/broken/config.ini";
  CHECK(started.err.find(config + ":13") != std::string::npos);
  CHECK(started.err.find("workers") != std::string::npos);
  CHECK(started.err.find(config + ":14") != std::string::npos);
  CHECK(started.err.find("memory_max") != std::string::npos);
  CHECK(http_get(port, "/good/main/").status == 200);
  CHECK(http_get(port, "/broken/main/").status == 404);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("logs shows a plugin's or an app's log and follows it", "[integration][root][logs]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1, "") +
                               "[extra_daemon_ticker]\n_cmd_and_args = /bin/sh -c 'echo line-1; "
                               "echo line-2; echo line-3; exec sleep 600'\n" +
                               "[app_idle]\nnumprocesses = 0\n");
  const std::string log = home.path() + "/log/extra_alpha_ticker.log";
  auto missing = run_mfserv({home.home_arg(), "logs", "alpha/extra_daemon_ticker"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no log yet for alpha/extra_daemon_ticker") != std::string::npos);

  REQUIRE(home.start(free_port()).exit_code == 0);
  REQUIRE(wait_until([&] { return read_text(log).find("line-3") != std::string::npos; }, 10s));

  auto last = run_mfserv({home.home_arg(), "logs", "-n", "2", "alpha/extra_daemon_ticker"});
  CHECK(last.exit_code == 0);
  CHECK(last.out == "line-2\nline-3\n");
  // The daemon by the name `ps` shows too.
  CHECK(run_mfserv({home.home_arg(), "logs", "-n", "1", "alpha/ticker"}).out == "line-3\n");
  auto negative = run_mfserv({home.home_arg(), "logs", "-n", "-3", "alpha"});
  CHECK(negative.exit_code == 2);
  CHECK(negative.err.find("expected a number of lines, 0 to 999999999") != std::string::npos);
  auto huge = run_mfserv({home.home_arg(), "logs", "-n", "99999999999999999999", "alpha"});
  CHECK(huge.exit_code == 2);
  CHECK(huge.err.find("expected a number of lines, 0 to 999999999") != std::string::npos);
  // nginx, as ps lists it: its error log.
  CHECK(run_mfserv({home.home_arg(), "logs", "-n", "0", "nginx"}).exit_code == 0);
  // The whole plugin: each of its files under a header.
  auto all = run_mfserv({home.home_arg(), "logs", "alpha"});
  CHECK(all.exit_code == 0);
  CHECK(all.out.find("==> " + home.path() + "/log/app_alpha_main.log <==") != std::string::npos);
  CHECK(all.out.find("==> " + log + " <==\nline-1\nline-2\nline-3\n") != std::string::npos);

  auto no_app = run_mfserv({home.home_arg(), "logs", "alpha/nope"});
  INFO(no_app.err);
  CHECK(no_app.exit_code == 1);
  CHECK(no_app.err.find("plugin alpha has no app 'nope'; its apps: main, idle, ticker") !=
        std::string::npos);
  auto idle = run_mfserv({home.home_arg(), "logs", "alpha/idle"});
  CHECK(idle.exit_code == 1);
  CHECK(idle.err.find("alpha/idle has no worker (numprocesses = 0), hence no log; set "
                      "numprocesses in [app_idle] of ") != std::string::npos);
  auto no_plugin = run_mfserv({home.home_arg(), "logs", "nope"});
  CHECK(no_plugin.exit_code == 1);
  CHECK(no_plugin.err.find("no plugin named 'nope' is installed in " + home.path()) !=
        std::string::npos);

  // -f prints what is appended later, until stopped.
  auto following = std::async(std::launch::async, [&] {
    return run_command({"timeout", "3", MFSERV_BINARY, home.home_arg(), "logs", "-f", "-n", "0",
                        "alpha/extra_daemon_ticker"});
  });
  std::this_thread::sleep_for(1s);
  {
    std::ofstream out(log, std::ios::app);
    out << "line-4 appended\n";
  }
  auto followed = following.get();
  CHECK(followed.out == "line-4 appended\n");
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("the control socket serves root and the mfserv group but never the workers' user",
          "[integration][root][control]") {
  if (!require_root()) {
    return;
  }
  const struct group* mfserv_group = ::getgrnam("mfserv");
  const struct passwd* mfserv_user = ::getpwnam("mfserv");
  REQUIRE(mfserv_group != nullptr);  // scripts/install-deps creates both
  REQUIRE(mfserv_user != nullptr);
  const std::string gid = std::to_string(mfserv_group->gr_gid);
  const std::string worker_uid = std::to_string(mfserv_user->pw_uid);
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1));
  REQUIRE(home.start(free_port()).exit_code == 0);
  struct stat st {};
  REQUIRE(::stat((home.path() + "/run/control.sock").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);
  CHECK(st.st_gid == mfserv_group->gr_gid);

  // setpriv: another uid, with or without the mfserv group, as an operator's login would be.
  auto as = [&](const std::string& uid, const std::string& groups,
                const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"setpriv", "--reuid=" + uid, "--regid=" + uid};
    argv.push_back(groups.empty() ? "--clear-groups" : "--groups=" + groups);
    argv.push_back(MFSERV_BINARY);
    argv.push_back(home.home_arg());
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };
  auto operator_ps = as("4242", gid, {"ps", "--json"});
  INFO(operator_ps.err);
  CHECK(operator_ps.exit_code == 0);
  CHECK(operator_ps.out.find("\"alpha\"") != std::string::npos);
  CHECK(as("4242", gid, {"restart", "alpha"}).exit_code == 0);
  auto operator_logs = as("4242", gid, {"logs", "alpha"});
  INFO(operator_logs.err);
  CHECK(operator_logs.exit_code == 0);

  auto stranger = as("4242", "", {"ps"});
  CHECK(stranger.exit_code == 1);
  CHECK(stranger.err.find("permission denied (root and members of the mfserv group may use it)") !=
        std::string::npos);

  // The workers' own user is in the group (its primary one), and is refused by the supervisor.
  for (const char* command : {"ps", "stop"}) {
    auto worker = as(worker_uid, gid, {command});
    INFO(command << ": " << worker.err);
    CHECK(worker.exit_code != 0);
    CHECK(worker.err.find("the workers' user may not control mfserv") != std::string::npos);
  }
  CHECK(home.ps()["service"]["state"] == "running");
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE(
    "plugin develop warns when the workers cannot reach the folder or node_modules is missing",
    "[integration][root][config]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  const std::string closed = home.path() + "/../closed-" + std::to_string(::getpid());
  const std::string dir = closed + "/nodeapp";
  fs::create_directories(dir);
  fs::permissions(closed, fs::perms(0700));
  write_text(dir + "/config.ini", testapp_plugin(1));
  write_text(dir + "/package.json", R"({"dependencies": {"express": "^4.21.2"}})");
  auto developed = run_mfserv({home.home_arg(), "plugin", "develop", dir});
  INFO(developed.err);
  CHECK(developed.exit_code == 0);
  const std::string real_closed = fs::canonical(closed).string();
  CHECK(developed.err.find("warning: the workers' user (mfserv) cannot reach " + real_closed +
                           "/nodeapp: " + real_closed + " is mode 0700") != std::string::npos);
  CHECK(developed.err.find("has dependencies in package.json but no node_modules: run `npm "
                           "install`") != std::string::npos);
  fs::remove_all(closed);
  // Reachable and with nothing to install: no warning.
  const std::string open = home.path() + "/../open-" + std::to_string(::getpid());
  fs::create_directories(open + "/plain");
  write_text(open + "/plain/config.ini", testapp_plugin(1));
  write_text(open + "/plain/package.json", R"({"dependencies": {}})");
  auto quiet = run_mfserv({home.home_arg(), "plugin", "develop", open + "/plain"});
  CHECK(quiet.exit_code == 0);
  CHECK(quiet.err.find("warning") == std::string::npos);
  fs::remove_all(open);
}

TEST_CASE("an unknown command is named and not taken for a missing one", "[integration][cli]") {
  for (const auto& [args, word] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"frobnicate"}, "'frobnicate'"},
           {{"plugin", "frobnicate"}, "'plugin frobnicate'"},
           {{"--home=/nonexistent/mfserv", "logz", "x"}, "'logz'"}}) {
    auto result = run_mfserv(args);
    INFO(result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.err.find("unknown command " + word) != std::string::npos);
  }
  CHECK(run_mfserv({}).err.find("A subcommand is required") != std::string::npos);
}

// Without mfserv-init beside it the supervisor still isolates each app, but its PID 1 is a
// copy of the supervisor: said in the log, not silent.
TEST_CASE("run without mfserv-init beside it warns in the log", "[integration][root][run]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("plain", testapp_plugin(1));
  std::string bin = home.path() + "-bin";
  fs::create_directories(bin);
  std::string cli_dir = fs::path(MFSERV_BINARY).parent_path();
  for (const char* name : {"mfserv", "mfserv-supervisor"}) {
    fs::copy_file(cli_dir + "/" + name, bin + "/" + name);
    fs::permissions(bin + "/" + name, fs::perms::owner_all);
  }
  int port = free_port();
  auto started = run_command(
      {bin + "/mfserv", home.home_arg(), "run", "--detach", "--port", std::to_string(port)});
  INFO(started.err);
  CHECK(started.exit_code == 0);
  CHECK(http_get(port, "/plain/main/").status == 200);
  CHECK(read_text(home.path() + "/log/mfserv.log")
            .find("mfserv-init is not beside this executable") != std::string::npos);
  CHECK(run_command({bin + "/mfserv", home.home_arg(), "stop"}).exit_code == 0);
  fs::remove_all(bin);
}

// `--home "$UNSET"` used to mean the default home: another instance's, perhaps.
TEST_CASE("an empty --home is refused, not taken for the default", "[integration][cli]") {
  // $MFSERV_HOME names a temporary home: were the empty value taken for the default again,
  // `run --detach` would start an instance there, and the home's end stops it.
  TempHome fallback;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--home", "", "ps"}, {"--home", "", "status"}, {"--home", "", "run", "--detach"}}) {
    auto result = run_mfserv(args, {{"MFSERV_HOME", fallback.path()}});
    INFO(args.back() << ": " << result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.err.find("--home: empty: give the instance folder") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(fallback.path()));
}

TEST_CASE("start-up problems are clear errors before anything starts",
          "[integration][root][errors]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1));

  SECTION("stop and ps without a supervisor") {
    auto stop = home.stop();
    CHECK(stop.exit_code == 3);
    CHECK(stop.err.find("no mfserv is running") != std::string::npos);
    auto ps = run_mfserv({home.home_arg(), "ps"});
    CHECK(ps.exit_code == 3);
  }
  SECTION("commands that only read create no home (a mistyped --home leaves nothing)") {
    const std::string missing = home.path() + "/../typo/home";
    for (const char* command : {"ps", "status", "stop", "reload"}) {
      auto result = run_mfserv({"--home=" + missing, command});
      INFO(command << ": " << result.err);
      CHECK(result.exit_code == 3);
      CHECK(result.err.find("no mfserv is running") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(home.path() + "/../typo"));
  }
  SECTION("a port already in use") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    int port = ntohs(addr.sin_port);
    auto started = home.start(port);
    ::close(fd);
    CHECK(started.exit_code == 1);
    CHECK(started.err.find("port " + std::to_string(port) + " is already in use") !=
          std::string::npos);
    CHECK(processes_mentioning(home.path()).empty());
    CHECK_FALSE(fs::exists(home.instance_cgroup_v1_memory()));
  }
  SECTION("no nginx") {
    auto started =
        run_mfserv({home.home_arg(), "run", "--detach", "--port", std::to_string(free_port())},
                   {{"MFSERV_NGINX", "/nonexistent/nginx"}});
    CHECK(started.exit_code == 1);
    CHECK(started.err.find("nginx") != std::string::npos);
    CHECK(processes_mentioning(home.path()).empty());
  }
  SECTION("a home another mfserv holds") {
    int port = free_port();
    REQUIRE(home.start(port).exit_code == 0);
    auto second = home.start(free_port());
    CHECK(second.exit_code == 1);
    CHECK(second.err.find("already used by a running mfserv") != std::string::npos);
    CHECK(http_get(port, "/alpha/main/").status == 200);  // the first one is untouched
    CHECK(home.stop().exit_code == 0);
  }
}

TEST_CASE("an OOM kill of a worker's child is reported while the worker keeps serving",
          "[integration][root][cgroups][oom]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // The worker's shell first runs a child that needs 256 MiB (killed), then serves.
  home.add_plugin("parent", test_general() +
                                "[app_main]\n_cmd_and_args = /bin/sh -c \"/usr/bin/python3 "
                                "-c 'x = b\\\"x\\\" * (256 << 20)'; exec " +
                                testapp_command() + "\"\nnumprocesses = 1\nmemory_max = 64M\n");
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);
  CHECK(http_get(port, "/parent/main/").status == 200);
  REQUIRE(wait_until(
      [&] {
        return read_text(home.path() + "/log/mfserv.log")
                   .find("for lack of memory (oom, 1 so far)") != std::string::npos;
      },
      5s));
  auto row = rows_of(home.ps(), "parent")[0];
  CHECK(row["restarts"] == 0);
  CHECK(row["oom_kills"].get<int>() >= 1);
  CHECK(home.stop().exit_code == 0);
}
