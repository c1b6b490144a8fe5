// The plugin model: what a plugin's layered config.ini says, validated and with MFSERV's
// defaults applied. Loading needs no privileges; everything else in mfserv reads this model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mfserv::images {

struct Diagnostic {
  enum class Severity { Error, Warning };
  Severity severity = Severity::Error;
  std::string file;     // the file the problem is in (config.ini or an override file)
  int line = 0;         // 1-based; 0 when the problem is not tied to a line
  std::string key;      // "section.key" or "" when not tied to a key
  std::string message;  // what is wrong and what to do

  // "FILE:LINE: [section] key: message" (parts omitted when unknown).
  std::string describe() const;
};

// One [app_NAME] or [extra_daemon_NAME] section.
struct AppConfig {
  enum class Kind { App, ExtraDaemon };
  Kind kind = Kind::App;
  std::string name;     // NAME, matches ^[A-Za-z0-9_-]+$
  std::string section;  // "app_NAME" or "extra_daemon_NAME"

  std::string cmd_and_args;  // placeholders not expanded (see expand_command)
  int numprocesses = 0;      // 0: no worker, no upstream (MFSERV)
  int timeout = 60;          // seconds; <= 0 in the file falls back to 60
  int graceful_timeout =
      0;  // seconds; default timeout + smart_stop_delay + 10 (apps), 10 (daemons)
  int smart_stop_signal = 15;
  int smart_stop_delay = 3;
  int smart_start_delay = 3;
  bool debug = false;               // forces numprocesses 1 and max_age 0
  std::string debug_extra_options;  // _debug_extra_options: {debug_extra_options} when debug
  int max_age = 0;                  // seconds; 0: never recycled
  std::uint64_t rlimit_as = 0;      // 0: unset
  std::uint64_t rlimit_nofile = 0;
  std::uint64_t rlimit_stack = 0;
  std::uint64_t rlimit_fsize = 0;

  // Limits new in mfserv (cgroups). nullopt: not limited.
  std::optional<std::uint64_t> memory_max;         // the app as a whole
  std::optional<std::uint64_t> worker_memory_max;  // each worker
  std::optional<std::uint64_t> memory_high;
  std::uint64_t swap_max = 0;
  std::optional<std::uint64_t> pids_max;
  std::optional<std::uint64_t> cpu_weight;  // 1..10000
  std::string cpu_max;                      // "QUOTA PERIOD" or "max PERIOD", "" unset
  std::string user;                         // "" means the default unprivileged user
  std::string network = "host";             // host | none
  std::vector<std::string> readonly_paths;
  std::vector<std::string> writable_paths;
  std::string seccomp = "default";  // default | off
  // Keys that widen the sandbox (user, seccomp, writable_paths, readonly_paths) set by the
  // plugin's own config.ini rather than by an administrator's override file: the runtime
  // refuses to start such an app (a plugin must not grant itself privileges).
  std::vector<std::string> sandbox_keys_from_plugin;

  // Routing (apps only).
  bool prefix_based_routing = true;
  bool virtualdomain_based_routing = false;
  std::vector<std::string> virtualdomain_extra_vhosts;
  bool static_routing = true;
  std::string static_url_prefix = "/static";  // "" or starting with '/'
  std::string static_directory = "/static";   // relative to the app's workdir
  std::vector<std::string> extra_routes;      // prefix_based_routing_extra_routes
  std::string extra_nginx_conf_filename;      // relative to the plugin dir, "" none
  std::string extra_nginx_conf;               // that file's text as checked at load

  std::string http_test_endpoint;  // "" none
  int http_test_expected_status_code = 200;
  std::string http_test_expected_body = "OK";
  int http_test_timeout = 10;
};

struct PluginConfig {
  std::string name;       // from .layerapi2_label (plugin_NAME@mfserv) or the folder's name
  std::string dir;        // absolute, symlinks resolved
  bool dev_link = false;  // installed with `plugin develop` (a link to a working copy)

  std::string version;
  std::string release = "1";
  std::string summary;
  std::string license;
  std::string url;
  std::string maintainer;
  std::string vendor;
  bool add_plugin_dir_to_python_path = true;

  std::vector<AppConfig> apps;  // [app_*] then [extra_daemon_*], in file order
  // Every non-'_' key of every section, as MFSERV_CURRENT_PLUGIN_{SECTION}_{KEY} (upper case).
  std::map<std::string, std::string> env;
  // [custom*] sections, free keys.
  std::map<std::string, std::map<std::string, std::string>> custom;

  // By NAME ("main", as `ps` shows it), else by section ("extra_daemon_main", "app_main"),
  // which tells an app and a daemon of the same name apart.
  const AppConfig* find_app(const std::string& name) const;
  // The app's working directory: {dir}/{app} when it exists, else {dir}.
  std::string app_workdir(const AppConfig& app) const;
};

// Where overrides are read from, in order after the plugin's own config.ini:
// HOME/config/plugins/NAME.ini, then /etc/mfserv/plugins/NAME.ini (tests pass their own).
struct LoadOptions {
  std::vector<std::string> override_dirs;
};

struct PluginLoad {
  std::optional<PluginConfig> plugin;   // nullopt when there is at least one error
  std::vector<Diagnostic> diagnostics;  // every error and warning, not just the first
};

// Loads and validates one plugin folder.
PluginLoad load_plugin(const std::string& dir, const LoadOptions& options);

struct LoadReport {
  std::vector<PluginConfig> plugins;    // those without errors, sorted by name
  std::vector<Diagnostic> diagnostics;  // of every plugin
  bool has_errors() const;
};

// Loads every plugin under PLUGINS_DIR (folders and links to folders); a broken plugin is
// reported and skipped, the others load.
LoadReport load_plugins(const std::string& plugins_dir, const LoadOptions& options);

// Substitutes {unix_socket_path} {timeout} {plugin_name} {plugin_dir} {app_name}
// {debug_extra_options} in the app's _cmd_and_args.
std::string expand_command(const PluginConfig& plugin, const AppConfig& app,
                           const std::string& unix_socket_path);

}  // namespace mfserv::images
