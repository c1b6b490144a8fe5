#include "cli/common.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "runtime/control.hpp"
#include "runtime/front.hpp"
#include "runtime/worker_setup.hpp"

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

void warn_about_new_plugin(const runtime::Home& home, const std::string& plugin_dir) {
  auto load = images::load_plugin(plugin_dir, home.load_options());
  if (!load.plugin) {
    return;  // its errors were reported by develop/install already
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

}  // namespace mfserv::cli
