// Loading plugins: a plugin folder → its name → its layered config.ini → sections checked
// one by one (schema.cpp) → the model, with every problem of every plugin collected before
// anything starts. Also the model's small helpers (command placeholders, workdir).
#include <algorithm>
#include <cctype>
#include <map>

#include "images/layers.hpp"
#include "images/plugin.hpp"
#include "images/plugin_dir.hpp"
#include "images/schema.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

using Severity = Diagnostic::Severity;

constexpr std::string_view k_app_prefix = "app_";
constexpr std::string_view k_daemon_prefix = "extra_daemon_";
constexpr std::string_view k_env_prefix = "MFSERV_CURRENT_PLUGIN_";

// MFSERV (mfplugin configuration.py) upper-cases and turns '-' into '_'; any other character
// that cannot be in a shell variable name becomes '_' too.
std::string env_part(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    out += std::isalnum(u) ? static_cast<char>(std::toupper(u)) : '_';
  }
  return out;
}

void export_env(const LayeredSection& section, PluginConfig& plugin) {
  for (const LayeredValue& value : section.values) {
    if (!starts_with(value.key, "_")) {
      plugin.env[std::string(k_env_prefix) + env_part(section.name) + "_" + env_part(value.key)] =
          value.value;
    }
  }
}

// [app_NAME] / [extra_daemon_NAME]: NAME, or nullopt (reported) when it is not allowed.
std::optional<std::string> section_app_name(const LayeredSection& section, std::string_view prefix,
                                            std::vector<Diagnostic>& diagnostics) {
  std::string name = section.name.substr(prefix.size());
  if (!is_valid_name(name)) {
    diagnostics.push_back(make_diagnostic(
        Severity::Error, section.file, section.line, "",
        "invalid section name [" + section.name + "]: the name after '" + std::string(prefix) +
            "' must be letters, digits, '_' and '-' only (it ends up in paths, cgroup names "
            "and nginx.conf)"));
    return std::nullopt;
  }
  return name;
}

void check_unique_names(const std::vector<AppConfig>& apps, const std::vector<AppConfig>& daemons,
                        const std::vector<LayeredSection>& sections,
                        std::vector<Diagnostic>& diagnostics) {
  for (const AppConfig& daemon : daemons) {
    for (const AppConfig& app : apps) {
      if (app.name == daemon.name) {
        auto it = std::find_if(sections.begin(), sections.end(),
                               [&](const LayeredSection& s) { return s.name == daemon.section; });
        diagnostics.push_back(make_diagnostic(Severity::Error, it->file, it->line, "",
                                              "[" + daemon.section + "] and [" + app.section +
                                                  "] have the same name '" + app.name +
                                                  "': rename one of them"));
      }
    }
  }
}

bool has_error(const std::vector<Diagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::Error; });
}

}  // namespace

std::string Diagnostic::describe() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ":" + std::to_string(line);
    }
    out += ": ";
  }
  if (severity == Severity::Warning) {
    out += "warning: ";
  }
  if (!key.empty()) {
    size_t dot = key.find('.');
    if (dot == std::string::npos) {
      out += key + ": ";
    } else {
      out += "[" + key.substr(0, dot) + "] " + key.substr(dot + 1) + ": ";
    }
  }
  return out + message;
}

const AppConfig* PluginConfig::find_app(const std::string& app_name) const {
  for (const AppConfig& app : apps) {
    if (app.name == app_name) {
      return &app;
    }
  }
  for (const AppConfig& app : apps) {
    if (app.section == app_name) {
      return &app;
    }
  }
  return nullptr;
}

std::string PluginConfig::app_workdir(const AppConfig& app) const {
  std::string candidate = dir + "/" + app.name;
  return is_directory(candidate) ? candidate : dir;
}

bool LoadReport::has_errors() const {
  return has_error(diagnostics);
}

PluginLoad load_plugin(const std::string& dir, const LoadOptions& options) {
  PluginLoad load;
  std::vector<Diagnostic>& diagnostics = load.diagnostics;
  auto resolved = real_path(dir);
  if (!resolved || !is_directory(*resolved)) {
    std::string why = resolved ? "not a folder" : resolved.error().describe();
    diagnostics.push_back(
        make_diagnostic(Severity::Error, dir, 0, "", "not a plugin folder: " + why));
    return load;
  }
  PluginConfig plugin;
  plugin.dir = *resolved;
  plugin.dev_link = is_symlink(dir);

  // 1. The name; overrides are looked up by name, so only a valid one reads them.
  std::optional<std::string> name = read_plugin_name(plugin.dir, diagnostics);
  std::vector<std::string> override_files;
  if (name) {
    plugin.name = *name;
    for (const std::string& override_dir : options.override_dirs) {
      override_files.push_back(override_dir + "/" + *name + ".ini");
    }
  }

  // 2. config.ini, then each override file.
  const std::string config_ini = plugin.dir + "/config.ini";
  std::vector<LayeredSection> sections = read_layers(config_ini, override_files, diagnostics);

  // 3. Each section by kind; every non-'_' key reaches the processes' environment.
  std::vector<AppConfig> apps;
  std::vector<AppConfig> daemons;
  bool has_general = false;
  for (const LayeredSection& section : sections) {
    if (section.name == "general") {
      has_general = true;
      parse_general_section(section, plugin, diagnostics);
    } else if (section.name == "internal") {
      // MFSERV's hotswap bookkeeping ([internal] disable_nginx_conf): accepted, not used.
    } else if (starts_with(section.name, "custom")) {
      for (const LayeredValue& value : section.values) {
        plugin.custom[section.name][value.key] = value.value;
      }
    } else if (starts_with(section.name, k_app_prefix)) {
      if (auto app_name = section_app_name(section, k_app_prefix, diagnostics)) {
        apps.push_back(
            parse_app_section(section, AppConfig::Kind::App, *app_name, plugin.dir, diagnostics));
      }
    } else if (starts_with(section.name, k_daemon_prefix)) {
      if (auto daemon_name = section_app_name(section, k_daemon_prefix, diagnostics)) {
        daemons.push_back(parse_app_section(section, AppConfig::Kind::ExtraDaemon, *daemon_name,
                                            plugin.dir, diagnostics));
      }
    } else {
      diagnostics.push_back(make_diagnostic(
          Severity::Error, section.file, section.line, "",
          "unknown section [" + section.name +
              "]: expected [general], [app_NAME], [extra_daemon_NAME] or [custom...]"));
      continue;
    }
    export_env(section, plugin);
  }
  if (!has_general && path_exists(config_ini)) {
    diagnostics.push_back(make_diagnostic(Severity::Error, config_ini, 0, "general._version",
                                          "missing: config.ini needs a [general] section "
                                          "with _version"));
  }
  check_unique_names(apps, daemons, sections, diagnostics);

  plugin.apps = std::move(apps);
  plugin.apps.insert(plugin.apps.end(), daemons.begin(), daemons.end());
  if (name && !has_error(diagnostics)) {
    load.plugin = std::move(plugin);
  }
  return load;
}

LoadReport load_plugins(const std::string& plugins_dir, const LoadOptions& options) {
  LoadReport report;
  std::map<std::string, std::string> seen;  // plugin name -> folder
  for (const std::string& entry : list_dir(plugins_dir)) {
    if (starts_with(entry, ".")) {
      continue;
    }
    const std::string path = plugins_dir + "/" + entry;
    if (!is_directory(path)) {
      if (is_symlink(path)) {
        report.diagnostics.push_back(
            make_diagnostic(Severity::Warning, path, 0, "",
                            "dangling link (its working copy is gone), skipped: uninstall it"));
      }
      continue;
    }
    PluginLoad load = load_plugin(path, options);
    report.diagnostics.insert(report.diagnostics.end(), load.diagnostics.begin(),
                              load.diagnostics.end());
    if (!load.plugin) {
      continue;
    }
    const std::string& name = load.plugin->name;
    if (auto it = seen.find(name); it != seen.end()) {
      report.diagnostics.push_back(
          make_diagnostic(Severity::Error, path, 0, "",
                          "plugin " + name + " is also installed as " + it->second +
                              ": remove one of them (this one is skipped)"));
      continue;
    }
    if (name != entry) {
      report.diagnostics.push_back(make_diagnostic(
          Severity::Warning, path, 0, "",
          "folder name '" + entry + "' differs from the plugin's name '" + name + "'"));
    }
    seen.emplace(name, path);
    report.plugins.push_back(std::move(*load.plugin));
  }
  std::sort(report.plugins.begin(), report.plugins.end(),
            [](const PluginConfig& a, const PluginConfig& b) { return a.name < b.name; });
  return report;
}

std::string expand_command(const PluginConfig& plugin, const AppConfig& app,
                           const std::string& unix_socket_path) {
  const std::pair<std::string_view, std::string> placeholders[] = {
      {"{unix_socket_path}", unix_socket_path},
      {"{timeout}", std::to_string(app.timeout)},
      {"{plugin_name}", plugin.name},
      {"{plugin_dir}", plugin.dir},
      {"{app_name}", app.name},
      {"{debug_extra_options}", app.debug ? app.debug_extra_options : ""},
  };
  // One pass: a substituted value is never scanned again (a path may contain "{timeout}").
  const std::string& command = app.cmd_and_args;
  std::string out;
  size_t pos = 0;
  while (pos < command.size()) {
    bool replaced = false;
    if (command[pos] == '{') {
      for (const auto& [placeholder, value] : placeholders) {
        if (command.compare(pos, placeholder.size(), placeholder) == 0) {
          out += value;
          pos += placeholder.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) {
      out += command[pos];
      ++pos;
    }
  }
  return out;
}

}  // namespace mfserv::images
