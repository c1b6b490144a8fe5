// What every command of both executables (`mfserv` and `mfserv-supervisor`) shares: printing
// an error the one way, opening the home, loading the plugins with their diagnostics.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "images/plugin.hpp"
#include "runtime/home.hpp"
#include "runtime/settings.hpp"

namespace mfserv::cli {

// "mfserv: MESSAGE" on stderr.
void print_error(const std::string& message);
// The home --home (or $MFSERV_HOME, or the default) names; nullopt (printed) when invalid.
std::optional<runtime::Home> open_home(const std::string& home_option);
// HOME/config/mfserv.ini, PORT > 0 overriding its port; nullopt (printed) when invalid.
std::optional<runtime::FrontSettings> load_front_settings(const runtime::Home& home, int port);
// The running supervisor's "service" object of `ps` (pid, port, nginx_user...): empty when no
// supervisor answers.
nlohmann::json running_service(const runtime::Home& home);
// The port this home's running instance serves on (`run --port` may differ from mfserv.ini);
// 0 when none runs or it does not answer.
int running_port(const runtime::Home& home);
// After `plugin develop` or `plugin install`: warns now about each app of the plugin in
// PLUGIN_DIR whose config.ini widens its own sandbox, refused at start only otherwise, and
// about each extra route or vhost dropped between it and the other plugins.
void warn_about_new_plugin(const runtime::Home& home, const std::string& plugin_dir);
// Prints every diagnostic; returns the plugins that loaded.
std::vector<images::PluginConfig> load_and_report(const runtime::Home& home);

// A running supervisor takes a plugin change at once: `reload` starts, restarts (rolling),
// resizes or stops only what the change touched; prints what it did. WHAT_CHANGED begins the
// error message ("the change is installed"). Returns the exit code (4: apps did not start).
int apply_if_running(const runtime::Home& home, const std::string& what_changed);
// What a reload answer did, one line each, PREFIX first.
void print_reload_answer(const nlohmann::json& answer, const std::string& prefix);

}  // namespace mfserv::cli
