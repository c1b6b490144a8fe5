#include "cli/commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/common.hpp"
#include "images/plugin.hpp"
#include "images/store.hpp"
#include "isolation/cgroup.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "runtime/control.hpp"
#include "runtime/exec.hpp"
#include "runtime/front.hpp"
#include "runtime/home.hpp"
#include "runtime/settings.hpp"
#include "runtime/status.hpp"
#include "runtime/supervisor.hpp"
#include "runtime/worker_setup.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::cli {
namespace {

using nlohmann::json;

bool home_is_running(const runtime::Home& home) {
  return runtime::home_is_locked(home);
}

std::optional<runtime::Home> open_home(const Globals& globals) {
  return cli::open_home(globals.home);
}

std::string format_duration(std::uint64_t seconds) {
  if (seconds < 120) {
    return fmt::format("{}s", seconds);
  }
  if (seconds < 7200) {
    return fmt::format("{}m", seconds / 60);
  }
  return fmt::format("{}h", seconds / 3600);
}

std::string memory_cell(const json& row) {
  auto text = [](const json& value) {
    return value.is_number() ? format_bytes(value.get<std::uint64_t>()) : std::string("-");
  };
  std::string limit = row["worker_memory_limit"].is_number() ? text(row["worker_memory_limit"])
                                                             : text(row["memory_limit"]);
  if (limit == "-") {
    limit = "max";
  }
  return text(row["memory_current"]) + "/" + limit;
}

}  // namespace

// `mfserv run` becomes mfserv-supervisor (the same pid, so that a service manager's main
// process is the supervisor itself), found beside this executable as mfserv-init is.
int cmd_run(const Globals& globals, int port, bool detach) {
  std::string path = beside_self("mfserv-supervisor");
  if (path.empty()) {
    print_error("cannot find the mfserv executable through /proc/self/exe: is /proc mounted?");
    return k_exit_error;
  }
  std::vector<std::string> args{path};
  if (!globals.home.empty()) {
    args.insert(args.end(), {"--home", globals.home});
  }
  if (port > 0) {
    args.insert(args.end(), {"--port", std::to_string(port)});
  }
  if (detach) {
    args.emplace_back("--detach");
  }
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::execv(path.c_str(), argv.data());
  print_error("cannot run " + path + ": " + std::strerror(errno) +
              "; it is built beside mfserv (scripts/build) and must be installed with it");
  return k_exit_error;
}

// No supervisor holds HOME: says so, and what a killed one left serving, if anything.
int report_not_running(const runtime::Home& home) {
  std::string note;
  if (is_directory(home.root)) {
    if (auto cgroups = isolation::detect_cgroups()) {
      if (const auto left = (*cgroups)->pids(home.cgroup_root()).size(); left > 0) {
        note = fmt::format(
            "; its killed supervisor left {} processes that may still serve: `mfserv --home {} "
            "stop` stops them, `mfserv --home {} run` replaces them",
            left, home.root, home.root);
      }
    }
  }
  print_error("no mfserv is running for home " + home.root + note);
  return k_exit_not_running;
}

// No supervisor holds HOME. One killed with -9 leaves nginx and the workers serving in its
// cgroups: stop them now rather than at the next `run` only.
int stop_leftovers(const runtime::Home& home) {
  auto not_running = [&home] {
    print_error("no mfserv is running for home " + home.root);
    return k_exit_not_running;
  };
  if (!is_directory(home.root)) {
    return not_running();
  }
  auto cgroups = isolation::detect_cgroups();
  if (!cgroups) {
    return not_running();
  }
  if ((*cgroups)->pids(home.cgroup_root()).empty()) {
    return not_running();
  }
  auto lock = runtime::lock_home(home);  // no `run` may start while they are stopped
  if (!lock) {
    print_error(lock.error().describe());
    return k_exit_error;
  }
  auto stopped = runtime::stop_leftovers(**cgroups, home);
  if (!stopped) {
    print_error(stopped.error().with_context("stopping what an earlier run left").describe());
    return k_exit_error;
  }
  fmt::print(
      "mfserv was not running (its supervisor was killed): stopped the {} processes it left "
      "in {}\n",
      *stopped, (*cgroups)->display_path(home.cgroup_root()));
  return k_exit_ok;
}

int cmd_stop(const Globals& globals) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!runtime::home_is_locked(*home)) {
    return stop_leftovers(*home);
  }
  auto answer = runtime::control_call(*home, {{"cmd", "stop"}});
  if (!answer) {
    print_error(answer.error().describe());
    return k_exit_error;
  }
  // The supervisor holds the home's lock until everything it started is gone, then exits.
  int pid = answer->value("pid", -1);
  int pidfd = pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1;
  auto exited = [pidfd] {
    pollfd pfd{pidfd, POLLIN, 0};
    return pidfd < 0 || ::poll(&pfd, 1, 0) == 1;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  while (runtime::home_is_locked(*home) || !exited()) {
    if (std::chrono::steady_clock::now() > deadline) {
      print_error("mfserv is still stopping after 10 minutes; see " + home->supervisor_log());
      return k_exit_error;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (pidfd >= 0) {
    ::close(pidfd);
  }
  fmt::print("mfserv stopped\n");
  return k_exit_ok;
}

int cmd_control(const Globals& globals, const std::string& command, const std::string& target) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!runtime::home_is_locked(*home)) {
    return report_not_running(*home);
  }
  auto answer = runtime::control_call(*home, {{"cmd", command}, {"target", target}},
                                      command == "reload" ? runtime::k_reload_timeout_ms : 15000);
  if (!answer) {
    print_error(answer.error().describe());
    return k_exit_error;
  }
  for (const auto& line : answer->value("diagnostics", json::array())) {
    fmt::print(stderr, "mfserv: {}\n", line.get<std::string>());
  }
  if (command == "reload") {
    // What the reload did, failed or not: a broken mfserv.ini or plugin fails it, while the
    // other plugins' changes still apply.
    print_reload_answer(*answer, "");
  }
  if (!answer->value("ok", false)) {
    print_error(answer->value("error", std::string("failed")));
    // Like `run --detach` when only apps it started failed: the reload itself applied.
    return answer->value("start_failed_only", false) ? k_exit_apps_failed : k_exit_error;
  }
  if (command == "reload") {
    fmt::print("reloaded\n");
    return k_exit_ok;
  }
  const json unchanged = answer->value("unchanged", json::array());
  for (const auto& label : (*answer)["groups"]) {
    const bool already = std::find(unchanged.begin(), unchanged.end(), label) != unchanged.end();
    fmt::print("{}: {}\n", label.get<std::string>(),
               command == "stop"    ? (already ? "already stopped" : "stopping")
               : command == "start" ? (already ? "already running" : "starting")
                                    : "restarting");
  }
  return k_exit_ok;
}

int cmd_status(const Globals& globals) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!runtime::home_is_locked(*home)) {
    return report_not_running(*home);
  }
  auto checks = runtime::check_health(*home);
  if (!checks) {
    print_error(checks.error().describe());
    return k_exit_error;
  }
  bool healthy = true;
  json rows = json::array();
  for (const auto& check : *checks) {
    healthy = healthy && check.ok;
    rows.push_back({{"subject", check.subject},
                    {"check", check.what},
                    {"ok", check.ok},
                    {"detail", check.detail}});
  }
  if (globals.json) {
    fmt::print("{}\n", json{{"healthy", healthy}, {"checks", rows}}.dump(2));
  } else {
    for (const auto& check : *checks) {
      fmt::print("- {:<32} {:<20} {:<5} {}\n", check.subject, check.what, check.ok ? "OK" : "FAIL",
                 check.detail);
    }
    fmt::print("{}\n", healthy ? "healthy" : "UNHEALTHY");
  }
  return healthy ? k_exit_ok : k_exit_error;
}

int cmd_ps(const Globals& globals) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!runtime::home_is_locked(*home)) {
    return report_not_running(*home);
  }
  auto answer = runtime::control_call(*home, {{"cmd", "ps"}});
  if (!answer) {
    print_error(answer.error().describe());
    return k_exit_error;
  }
  answer->erase("ok");
  if (globals.json) {
    fmt::print("{}\n", answer->dump(2));
    return k_exit_ok;
  }
  constexpr const char* k_row_format = "{:<28} {:>3} {:>8} {:<9} {:>6} {:>8} {:<10} {:<14} {}\n";
  fmt::print(fmt::runtime(k_row_format), "PLUGIN/APP", "W", "PID", "STATE", "UPTIME", "RESTARTS",
             "LAST EXIT", "MEMORY", "CGROUP");
  auto print_row = [&](const json& row) {
    std::string label = row["kind"] == "nginx" ? std::string("nginx")
                                               : row["plugin"].get<std::string>() + "/" +
                                                     row["app"].get<std::string>();
    std::string last_exit = row["last_exit"].get<std::string>();
    int pid = row["pid"].get<int>();
    fmt::print(fmt::runtime(k_row_format), label, row["worker"].get<int>(),
               pid > 0 ? std::to_string(pid) : std::string("-"), row["state"].get<std::string>(),
               format_duration(row["uptime_s"].get<std::uint64_t>()), row["restarts"].get<int>(),
               last_exit.empty() ? "-" : last_exit, memory_cell(row),
               row["cgroup"].get<std::string>());
  };
  for (const auto& row : (*answer)["processes"]) {
    print_row(row);
  }
  if ((*answer)["nginx"].is_object()) {
    print_row((*answer)["nginx"]);
  }
  // Why a worker cannot start does not fit a column: one line each, under the table.
  for (const auto& row : (*answer)["processes"]) {
    std::string error = row.value("error", std::string());
    if (!error.empty()) {
      fmt::print("{}/{} worker {}: {}\n", row["plugin"].get<std::string>(),
                 row["app"].get<std::string>(), row["worker"].get<int>(), error);
    }
  }
  return k_exit_ok;
}

int cmd_exec(const Globals& globals, const std::string& target,
             const std::vector<std::string>& command) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  auto slash = target.find('/');
  std::string plugin = target.substr(0, slash);
  std::string app = slash == std::string::npos ? "main" : target.substr(slash + 1);
  auto code = runtime::exec_in_app(*home, plugin, app, command);
  if (!code) {
    print_error(code.error().describe());
    return home_is_running(*home) ? k_exit_error : k_exit_not_running;
  }
  return *code;
}

namespace {

// tail(1) on FILES: -F follows each file by name, through log rotation and re-creation.
int exec_tail(const std::vector<std::string>& files, int lines, bool follow) {
  std::vector<std::string> argv = {"tail", "-n", std::to_string(lines)};
  if (follow) {
    argv.push_back("-F");
  }
  argv.insert(argv.end(), files.begin(), files.end());
  std::vector<char*> raw;
  for (auto& arg : argv) {
    raw.push_back(arg.data());
  }
  raw.push_back(nullptr);
  std::fflush(nullptr);
  ::execvp("tail", raw.data());
  print_error(std::string("running tail failed: ") + std::strerror(errno));
  return k_exit_error;
}

}  // namespace

int cmd_logs(const Globals& globals, const std::string& target, int lines, bool follow) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  const auto slash = target.find('/');
  const std::string plugin_name = target.substr(0, slash);
  const std::string app_name = slash == std::string::npos ? "" : target.substr(slash + 1);
  auto report = images::load_plugins(home->plugins_dir(), home->load_options());
  auto plugin = std::find_if(report.plugins.begin(), report.plugins.end(),
                             [&](const auto& p) { return p.name == plugin_name; });
  if (plugin == report.plugins.end() && target == "nginx") {
    // The front's own log, as `ps` lists nginx (its access log is HOME/log/nginx_access.log).
    return exec_tail({home->log_dir() + "/nginx_error.log"}, lines, follow);
  }
  if (plugin == report.plugins.end()) {
    // A config that does not load now: a running mfserv still runs its previous version,
    // whose apps `ps` names.
    const std::string why = runtime::missing_plugin_message(*home, report, plugin_name);
    std::vector<std::string> files;
    if (runtime::home_is_locked(*home)) {
      if (auto ps = runtime::control_call(*home, {{"cmd", "ps"}})) {
        for (const auto& row : (*ps)["processes"]) {
          const std::string app = row.value("app", "");
          const std::string file =
              runtime::app_log_path(*home, plugin_name, app, row.value("kind", "") != "daemon");
          if (row.value("plugin", "") == plugin_name && (app_name.empty() || app == app_name) &&
              std::find(files.begin(), files.end(), file) == files.end() && path_exists(file)) {
            files.push_back(file);
          }
        }
      }
    }
    if (files.empty()) {
      print_error(why);
      return k_exit_error;
    }
    fmt::print(stderr, "mfserv: warning: {}; the running version's logs follow\n", why);
    return exec_tail(files, lines, follow);
  }
  std::vector<std::string> files;
  if (app_name.empty()) {
    for (const auto& app : plugin->apps) {
      if (app.numprocesses > 0) {
        files.push_back(runtime::app_log_path(*home, *plugin, app));
      }
    }
  } else if (const images::AppConfig* app = plugin->find_app(app_name)) {
    if (app->numprocesses <= 0) {
      print_error(fmt::format(
          "{}/{} has no worker (numprocesses = 0), hence no log; set numprocesses in [{}] of {}",
          plugin_name, app_name, app->section, plugin->dir + "/config.ini"));
      return k_exit_error;
    }
    files.push_back(runtime::app_log_path(*home, *plugin, *app));
  } else {
    std::vector<std::string> names;
    for (const auto& known : plugin->apps) {
      names.push_back(known.name);
    }
    print_error(fmt::format(
        "plugin {} has no app '{}'; its apps: {}", plugin_name, app_name,
        names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "))));
    return k_exit_error;
  }
  if (files.empty()) {
    print_error(fmt::format(
        "plugin {} has no worker (every app has numprocesses = 0), hence no log", plugin_name));
    return k_exit_error;
  }
  const std::vector<std::string> expected = files;
  std::erase_if(files, [](const std::string& file) { return !path_exists(file); });
  if (files.empty() && !follow) {
    print_error(fmt::format("no log yet for {} in {}/log: it is written once a worker runs", target,
                            home->root));
    return k_exit_error;
  }
  if (files.empty()) {  // follow: tail -F waits for the files
    files = expected;
  }
  return exec_tail(files, lines, follow);
}

int cmd_nginx_conf(const Globals& globals, int port) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  auto settings = load_front_settings(*home, port);
  if (!settings) {
    return k_exit_error;
  }
  // A running instance: the configuration its nginx runs (the last one nginx accepted, with
  // the plugins a broken edit left as they were), unless another port is asked for.
  const nlohmann::json running = running_service(*home);
  if (port <= 0 && !running.empty()) {
    if (auto text = read_file(home->nginx_conf())) {
      fmt::print("{}", *text);
      return k_exit_ok;
    }
  }
  if (port <= 0 && running.value("port", 0) > 0) {
    settings->port = running["port"].get<int>();
  }
  if (running.contains("nginx_user")) {
    settings->nginx_user = running["nginx_user"].get<std::string>();
  }
  auto plugins = load_and_report(*home);
  fmt::print("{}", nginx::render(runtime::front_config(*home, *settings),
                                 runtime::front_routes(*home, plugins)));
  return k_exit_ok;
}

int cmd_plugin_develop(const Globals& globals, const std::string& dir) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (auto st = runtime::prepare_home(*home); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  auto installed = images::develop(home->plugins_dir(), dir, home->load_options());
  if (!installed) {
    print_error(installed.error().describe());
    return k_exit_error;
  }
  fmt::print("plugin {} linked: {}/{} -> {}\n", installed->name, home->plugins_dir(),
             installed->name, installed->home);
  if (!installed->replaced_link.empty()) {
    fmt::print("it was linked to {} before\n", installed->replaced_link);
  }
  warn_about_new_plugin(*home, installed->home);
  // Not applied at once, unlike install: a folder under development is linked first, edited,
  // then started by `mfserv reload`.
  if (runtime::home_is_locked(*home)) {
    fmt::print("mfserv is running: `mfserv reload` starts this plugin\n");
  }
  return k_exit_ok;
}

int cmd_plugin_list(const Globals& globals) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  auto plugins = images::list_installed(home->plugins_dir(), home->load_options());
  if (globals.json) {
    json rows = json::array();
    for (const auto& p : plugins) {
      rows.push_back({{"name", p.name},
                      {"version", p.version},
                      {"release", p.release},
                      {"home", p.home},
                      {"dev_link", p.dev_link}});
    }
    fmt::print("{}\n", rows.dump(2));
    return k_exit_ok;
  }
  fmt::print("Installed plugins ({})\n", plugins.size());
  fmt::print("{:<24} {:<12} {:<8} {:<9} {}\n", "NAME", "VERSION", "RELEASE", "DEV LINK", "HOME");
  for (const auto& p : plugins) {
    fmt::print("{:<24} {:<12} {:<8} {:<9} {}\n", p.name, p.version, p.release,
               p.dev_link ? "yes" : "no", p.home);
  }
  return k_exit_ok;
}

}  // namespace mfserv::cli
