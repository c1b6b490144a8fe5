#include "cli/commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "images/plugin.hpp"
#include "images/store.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "runtime/control.hpp"
#include "runtime/exec.hpp"
#include "runtime/front.hpp"
#include "runtime/home.hpp"
#include "runtime/settings.hpp"
#include "runtime/status.hpp"
#include "runtime/supervisor.hpp"
#include "util/strings.hpp"

namespace mfserv::cli {
namespace {

using nlohmann::json;

bool home_is_running(const runtime::Home& home) {
  return runtime::home_is_locked(home);
}

void print_error(const std::string& message) {
  fmt::print(stderr, "mfserv: {}\n", message);
}

std::optional<runtime::Home> open_home(const Globals& globals) {
  auto home = runtime::resolve_home(globals.home);
  if (!home) {
    print_error(home.error().describe());
    return std::nullopt;
  }
  return *home;
}

// Prints every diagnostic; returns the plugins that loaded.
std::vector<images::PluginConfig> load_and_report(const runtime::Home& home) {
  auto report = images::load_plugins(home.plugins_dir(), home.load_options());
  for (const auto& diagnostic : report.diagnostics) {
    bool error = diagnostic.severity == images::Diagnostic::Severity::Error;
    fmt::print(stderr, "mfserv: {}: {}\n", error ? "error" : "warning", diagnostic.describe());
  }
  if (report.has_errors()) {
    fmt::print(stderr, "mfserv: plugins with errors are skipped; the others run\n");
  }
  return std::move(report.plugins);
}

void print_urls(const runtime::Home& home, const std::vector<images::PluginConfig>& plugins,
                int port) {
  for (const auto& route : runtime::front_routes(home, plugins)) {
    if (route.prefix_routing) {
      fmt::print("  http://127.0.0.1:{}/{}/{}/\n", port, route.plugin, route.app);
    }
  }
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

int run_foreground(const runtime::Home& home, std::vector<images::PluginConfig> plugins,
                   const runtime::FrontSettings& front) {
  const int port = front.port;
  runtime::RunOptions options;
  options.home = home;
  options.front = front;
  options.log_sink = [](const std::string& line) { fmt::print(stderr, "{}", line); };
  auto plugins_copy = plugins;
  options.on_ready = [&home, plugins_copy, port](const std::vector<std::string>& failed) {
    for (const auto& label : failed) {
      fmt::print(stderr, "mfserv: {} failed to start (see {}/log)\n", label, home.root);
    }
    fmt::print("mfserv is serving on port {} (Ctrl-C stops everything):\n", port);
    print_urls(home, plugins_copy, port);
    std::fflush(stdout);
  };
  runtime::Supervisor supervisor(std::move(options), std::move(plugins));
  if (auto st = supervisor.prepare(); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  if (auto st = supervisor.run(); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  return k_exit_ok;
}

int run_detached(const runtime::Home& home, std::vector<images::PluginConfig> plugins,
                 const runtime::FrontSettings& front) {
  const int port = front.port;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    print_error("creating a pipe to the supervisor failed");
    return k_exit_error;
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    print_error("fork failed");
    return k_exit_error;
  }
  if (pid == 0) {
    ::close(fds[0]);
    int report_fd = fds[1];
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::close(null_fd);
    auto report = [&report_fd](const json& message) {
      if (report_fd < 0) {
        return;
      }
      std::string text = message.dump() + "\n";
      (void)!::write(report_fd, text.data(), text.size());
      ::close(report_fd);
      report_fd = -1;
    };
    runtime::RunOptions options;
    options.home = home;
    options.front = front;
    options.on_ready = [&report](const std::vector<std::string>& failed) {
      report({{"ok", true}, {"failed", failed}});
    };
    runtime::Supervisor supervisor(std::move(options), std::move(plugins));
    auto st = supervisor.prepare();
    if (st) {
      st = supervisor.run();
    }
    if (!st) {
      report({{"ok", false}, {"error", st.error().describe()}});
      std::exit(k_exit_error);
    }
    std::exit(k_exit_ok);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fds[0]);
  json message;
  try {
    message = json::parse(text);
  } catch (const json::exception&) {
    print_error("the supervisor exited before it was ready: see " + home.supervisor_log());
    return k_exit_error;
  }
  if (!message.value("ok", false)) {
    print_error(message.value("error", std::string("unknown error")));
    return k_exit_error;
  }
  auto failed = message["failed"].get<std::vector<std::string>>();
  for (const auto& label : failed) {
    print_error(label + " failed to start (see " + home.log_dir() + ")");
  }
  fmt::print("mfserv is running (pid {}) on port {}\n", pid, port);
  return failed.empty() ? k_exit_ok : k_exit_apps_failed;
}

}  // namespace

int cmd_run(const Globals& globals, int port, bool detach) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (auto st = runtime::prepare_home(*home); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  auto settings = runtime::load_settings(*home);
  if (!settings) {
    print_error(settings.error().describe());
    return k_exit_error;
  }
  if (port > 0) {
    settings->port = port;  // --port overrides HOME/config/mfserv.ini
  }
  auto plugins = load_and_report(*home);
  return detach ? run_detached(*home, std::move(plugins), *settings)
                : run_foreground(*home, std::move(plugins), *settings);
}

int cmd_stop(const Globals& globals) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!runtime::home_is_locked(*home)) {
    print_error("no mfserv is running for home " + home->root);
    return k_exit_not_running;
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
    print_error("no mfserv is running for home " + home->root);
    return k_exit_not_running;
  }
  auto answer = runtime::control_call(*home, {{"cmd", command}, {"target", target}});
  if (!answer) {
    print_error(answer.error().describe());
    return k_exit_error;
  }
  for (const auto& line : answer->value("diagnostics", json::array())) {
    fmt::print(stderr, "mfserv: {}\n", line.get<std::string>());
  }
  if (!answer->value("ok", false)) {
    print_error(answer->value("error", std::string("failed")));
    return k_exit_error;
  }
  if (command == "reload") {
    for (const char* what : {"started", "restarted", "stopped"}) {
      for (const auto& label : (*answer)[what]) {
        fmt::print("{} {}\n", what, label.get<std::string>());
      }
    }
    fmt::print("reloaded\n");
    return k_exit_ok;
  }
  for (const auto& label : (*answer)["groups"]) {
    fmt::print("{}: {}\n", label.get<std::string>(),
               command == "stop"    ? "stopping"
               : command == "start" ? "starting"
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
    print_error("no mfserv is running for home " + home->root);
    return k_exit_not_running;
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
    print_error("no mfserv is running for home " + home->root);
    return k_exit_not_running;
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

int cmd_nginx_conf(const Globals& globals, int port) {
  auto home = open_home(globals);
  if (!home) {
    return k_exit_error;
  }
  auto settings = runtime::load_settings(*home);
  if (!settings) {
    print_error(settings.error().describe());
    return k_exit_error;
  }
  if (port > 0) {
    settings->port = port;  // --port overrides HOME/config/mfserv.ini
  } else if (runtime::home_is_locked(*home)) {
    // A running instance may have been given another port by `run --port`: show its own.
    if (auto answer = runtime::control_call(*home, {{"cmd", "ps"}})) {
      settings->port = (*answer)["service"].value("port", settings->port);
    }
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
