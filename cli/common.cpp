#include "cli/common.hpp"

#include <pwd.h>
#include <sys/stat.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "runtime/control.hpp"
#include "runtime/front.hpp"
#include "runtime/worker_setup.hpp"
#include "util/fs.hpp"

namespace mfserv::cli {

void print_error(const std::string& message) {
  fmt::print(stderr, "mfserv: {}\n", message);
}

std::optional<runtime::Home> open_home(const std::string& home_option) {
  auto home = runtime::resolve_home(home_option);
  if (!home) {
    print_error(home.error().describe());
    return std::nullopt;
  }
  return *home;
}

std::optional<runtime::FrontSettings> load_front_settings(const runtime::Home& home, int port) {
  auto settings = runtime::load_settings(home);
  if (!settings) {
    print_error(settings.error().describe());
    return std::nullopt;
  }
  if (port > 0) {
    settings->port = port;  // --port overrides HOME/config/mfserv.ini
    settings->port_from_command_line = true;
  }
  return *settings;
}

nlohmann::json running_service(const runtime::Home& home) {
  if (!runtime::home_is_locked(home)) {
    return nlohmann::json::object();
  }
  auto answer = runtime::control_call(home, {{"cmd", "ps"}});
  return answer ? (*answer)["service"] : nlohmann::json::object();
}

int running_port(const runtime::Home& home) {
  return running_service(home).value("port", 0);
}

namespace {

// package.json lists dependencies and node_modules is not there yet.
bool needs_npm_install(const std::string& dir) {
  if (path_exists(dir + "/node_modules")) {
    return false;
  }
  auto text = read_file(dir + "/package.json");
  if (!text) {
    return false;
  }
  const auto json = nlohmann::json::parse(*text, nullptr, false);
  return json.is_object() && json.contains("dependencies") && json["dependencies"].is_object() &&
         !json["dependencies"].empty();
}

}  // namespace

void warn_about_new_plugin(const runtime::Home& home, const std::string& plugin_dir) {
  auto load = images::load_plugin(plugin_dir, home.load_options());
  if (!load.plugin) {
    return;  // its errors were reported by develop/install already
  }
  // The workers run as the mfserv user (unless an override names another): a folder on the
  // way it cannot traverse makes every worker fail at start.
  if (const struct passwd* pw = ::getpwnam(runtime::k_default_worker_user)) {
    const std::string blocking = untraversable_dir(load.plugin->dir, pw->pw_uid, pw->pw_gid, true);
    struct stat st {};
    if (!blocking.empty() && ::stat(blocking.c_str(), &st) == 0) {
      fmt::print(stderr,
                 "mfserv: warning: the workers' user ({}) cannot reach {}: {} is mode {:04o}; "
                 "run `chmod o+x {}` or keep the plugin in a folder it can traverse (its workers "
                 "will not start until then)\n",
                 runtime::k_default_worker_user, load.plugin->dir, blocking, st.st_mode & 07777,
                 blocking);
    }
  }
  // A node plugin with dependencies needs its node_modules: `plugin build` runs npm install,
  // develop does not.
  if (needs_npm_install(load.plugin->dir)) {
    fmt::print(stderr,
               "mfserv: warning: {} has dependencies in package.json but no node_modules: run "
               "`npm install` there (`plugin build` does it for an archive)\n",
               load.plugin->dir);
  }
  // Its routes against the other plugins', either way: its own claims dropped, or another
  // plugin's claims on its URLs.
  std::vector<runtime::DroppedClaim> dropped;
  (void)runtime::front_routes(
      home, images::load_plugins(home.plugins_dir(), home.load_options()).plugins, &dropped);
  for (const auto& drop : dropped) {
    if (drop.plugin == load.plugin->name || drop.owner == load.plugin->name) {
      fmt::print(stderr, "mfserv: warning: {}\n", drop.message);
    }
  }
  for (const auto& app : load.plugin->apps) {
    if (app.kind == images::AppConfig::Kind::App && app.numprocesses > 0) {
      if (auto st = runtime::check_worker_socket_path(home, load.plugin->name, app.name,
                                                      app.numprocesses);
          !st) {
        fmt::print(stderr, "mfserv: warning: {} (it will not start until then)\n",
                   st.error().describe());
      }
    }
    if (auto st = runtime::check_sandbox_policy(home, *load.plugin, app); !st) {
      fmt::print(stderr, "mfserv: warning: {} ({} will not start until then)\n",
                 st.error().describe(), load.plugin->name + "/" + app.name);
    }
  }
}

std::vector<images::PluginConfig> load_and_report(const runtime::Home& home) {
  auto report = images::load_plugins(home.plugins_dir(), home.load_options());
  for (const auto& diagnostic : report.diagnostics) {
    bool error = diagnostic.severity == images::Diagnostic::Severity::Error;
    fmt::print(stderr, "mfserv: {}: {}\n", error ? "error" : "warning", diagnostic.describe());
  }
  if (report.has_errors()) {
    fmt::print(stderr, "mfserv: plugins with errors are skipped; the others run\n");
  }
  std::vector<runtime::DroppedClaim> dropped;
  (void)runtime::front_routes(home, report.plugins, &dropped);
  for (const auto& drop : dropped) {
    fmt::print(stderr, "mfserv: warning: {}\n", drop.message);
  }
  return std::move(report.plugins);
}

// A running supervisor takes the change at once: `reload` starts, restarts (rolling) or
// stops only what the change touched.
int apply_if_running(const runtime::Home& home, const std::string& what_changed) {
  if (!runtime::home_is_locked(home)) {
    return k_exit_ok;
  }
  auto answer = runtime::control_call(home, {{"cmd", "reload"}, {"target", ""}},
                                      runtime::k_reload_timeout_ms);
  if (!answer) {
    print_error(what_changed + ", but reloading the running mfserv failed: " +
                answer.error().describe() + " (run `mfserv reload`)");
    return k_exit_error;
  }
  for (const auto& line : answer->value("diagnostics", nlohmann::json::array())) {
    fmt::print(stderr, "mfserv: {}\n", line.get<std::string>());
  }
  print_reload_answer(*answer, "running mfserv: ");
  if (!answer->value("ok", false)) {
    print_error(what_changed + ", but the running mfserv reports: " +
                answer->value("error", std::string("unknown error")));
    return answer->value("start_failed_only", false) ? k_exit_apps_failed : k_exit_error;
  }
  return k_exit_ok;
}

void print_reload_answer(const nlohmann::json& answer, const std::string& prefix) {
  if (const std::string file = answer.value("settings", ""); !file.empty()) {
    fmt::print("{}applied {}\n", prefix, file);
  }
  // An app reported as not started is named once, in the error.
  const nlohmann::json not_started = answer.value("not_started", nlohmann::json::array());
  for (const char* what : {"started", "restarted", "resized", "stopped"}) {
    for (const auto& label : answer.value(what, nlohmann::json::array())) {
      if (std::find(not_started.begin(), not_started.end(), label) == not_started.end()) {
        fmt::print("{}{} {}\n", prefix, what, label.get<std::string>());
      }
    }
  }
}

}  // namespace mfserv::cli
