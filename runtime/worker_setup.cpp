#include "runtime/worker_setup.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "images/ini.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::runtime {

std::string plugin_var_dir(const Home& home, const images::PluginConfig& plugin) {
  return home.root + "/var/plugins/" + plugin.name;
}

std::vector<std::string> worker_env(const Home& home, const images::PluginConfig& plugin,
                                    const images::AppConfig& app, int wid,
                                    const std::string& socket_path, int port) {
  std::vector<std::string> env;
  env.push_back("PATH=" + plugin.dir + "/bin:/usr/local/bin:/usr/bin:/bin");
  env.emplace_back("LANG=C.UTF-8");
  env.emplace_back("PYTHONUNBUFFERED=1");
  env.emplace_back("HOME=/tmp");  // the sandbox's private, writable /tmp
  if (plugin.add_plugin_dir_to_python_path) {
    env.push_back("PYTHONPATH=" + plugin.dir);
  }
  env.push_back("MFSERV_HOME=" + home.root);
  env.push_back("MFSERV_PLUGIN_VAR_DIR=" + plugin_var_dir(home, plugin));
  if (port > 0) {
    env.push_back("MFSERV_NGINX_PORT=" + std::to_string(port));
  }
  env.push_back("MFSERV_CURRENT_PLUGIN_NAME=" + plugin.name);
  env.push_back("MFSERV_CURRENT_PLUGIN_DIR=" + plugin.dir);
  env.push_back("MFSERV_CURRENT_APP_NAME=" + app.name);
  if (wid > 0) {
    env.push_back("MFSERV_CURRENT_APP_WORKER=" + std::to_string(wid));
  }
  env.push_back(std::string("MFSERV_CURRENT_APP_DEBUG=") + (app.debug ? "1" : "0"));
  if (!socket_path.empty()) {
    env.push_back("MFSERV_SOCKET=" + socket_path);
  }
  for (const auto& [key, value] : plugin.env) {
    env.push_back(key + "=" + value);
  }
  return env;
}

namespace {
// A fresh tmpfs in every sandbox (canonical paths: a plugin folder is realpath'd).
constexpr const char* k_private_tmp[] = {"/tmp", "/var/tmp", "/dev/shm"};
}  // namespace

std::shared_ptr<const std::vector<std::string>> hidden_plugin_dirs(
    const Home& home, const std::vector<images::PluginConfig>& plugins) {
  // Plugins in the home, or under a private tmpfs (a dev link in /tmp), are gone from the
  // sandbox already: one mount less each, per worker start.
  auto covered = [&home](const std::string& dir) {
    if (starts_with(dir, home.root + "/")) {
      return true;
    }
    for (const char* tmp : k_private_tmp) {
      if (starts_with(dir, std::string(tmp) + "/")) {
        return true;
      }
    }
    return false;
  };
  std::vector<std::string> dirs;
  for (const auto& plugin : plugins) {
    if (!covered(plugin.dir)) {
      dirs.push_back(plugin.dir);
    }
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  return std::make_shared<const std::vector<std::string>>(std::move(dirs));
}

isolation::SandboxSpec sandbox_spec(const Home& home,
                                    std::shared_ptr<const std::vector<std::string>> hidden,
                                    const images::PluginConfig& plugin,
                                    const images::AppConfig& app) {
  isolation::SandboxSpec spec;
  spec.hostname = app.name + "." + plugin.name;
  spec.network_none = app.network == "none";
  spec.user = app.user.empty() ? k_default_worker_user : app.user;
  spec.seccomp = app.seccomp != "off";
  spec.private_tmp.assign(std::begin(k_private_tmp), std::end(k_private_tmp));
  spec.hide.push_back(home.root);
  if (spec.network_none) {
    // Host daemons' unix sockets (databases, D-Bus...) live there: no network means none
    // of them either. With the network, /run stays (DNS resolvers live there on systemd).
    spec.hide.push_back("/run");
    spec.hide.push_back("/var/run");
  }
  // Installed plugins live in the home, hidden above; the list may name this plugin too,
  // shown again read-only below.
  spec.hide_shared = std::move(hidden);
  spec.readonly.push_back(plugin.dir);
  spec.readonly.insert(spec.readonly.end(), app.readonly_paths.begin(), app.readonly_paths.end());
  spec.writable = app.writable_paths;
  spec.writable.push_back(plugin_var_dir(home, plugin));
  return spec;
}

std::map<std::string, std::string> app_fingerprints(const Home& home,
                                                    const images::PluginConfig& plugin) {
  std::string common = plugin.dir + "\n";
  // .files.json (installed archives) holds every file's sha256: a new version with the same
  // config.ini still counts as a change. Dev links are judged by their config only.
  if (auto files = read_file(plugin.dir + "/.files.json")) {
    common += *files + "\n";
  }
  // What an app's workers see of config.ini and its overrides: every key but those of the
  // other apps' sections and its own numprocesses (workers are added or removed for that);
  // comments and layout do not count. Each file is read and parsed once for every app.
  std::vector<std::string> configs{plugin.dir + "/config.ini"};
  for (const auto& dir : home.load_options().override_dirs) {
    configs.push_back(dir + "/" + plugin.name + ".ini");
  }
  std::vector<images::IniEntry> entries;
  for (const auto& file : configs) {
    entries.push_back({"", "", "", file, 0});  // where each file starts, present or not
    if (auto content = read_file(file)) {
      auto parsed = images::parse_ini(*content, file).entries;
      entries.insert(entries.end(), parsed.begin(), parsed.end());
    }
  }
  std::map<std::string, std::string> fingerprints;
  for (const auto& app : plugin.apps) {
    std::string text = common;
    for (const auto& entry : entries) {
      if (entry.key.empty()) {
        text += entry.file + "\n";
        continue;
      }
      const bool other_app =
          (entry.section.rfind("app_", 0) == 0 || entry.section.rfind("extra_daemon_", 0) == 0) &&
          entry.section != app.section;
      if (other_app || (entry.section == app.section && entry.key == "numprocesses")) {
        continue;
      }
      text += entry.section + "." + entry.key + "=" + entry.value + "\n";
    }
    fingerprints[app.section] = fmt::format("{:016x}-{}", fnv1a_64(text), text.size());
  }
  return fingerprints;
}

Status check_sandbox_policy(const Home& home, const images::PluginConfig& plugin,
                            const images::AppConfig& app) {
  if (app.sandbox_keys_from_plugin.empty()) {
    return {};
  }
  std::string keys;
  for (const auto& key : app.sandbox_keys_from_plugin) {
    keys += (keys.empty() ? "" : ", ") + key;
  }
  return Error(plugin.dir + "/config.ini sets " + keys + " in [" + app.section +
               "]: a plugin cannot widen its own sandbox; an administrator may set these in " +
               home.config_dir() + "/plugins/" + plugin.name + ".ini or /etc/mfserv/plugins/" +
               plugin.name + ".ini");
}

std::string missing_plugin_message(const Home& home, const images::LoadReport& report,
                                   const std::string& name) {
  const std::string link = home.plugins_dir() + "/" + name;
  std::error_code error;
  const std::string dir = std::filesystem::canonical(link, error).string();
  if (name.empty() || name.find('/') != std::string::npos || error) {
    return "no plugin named '" + name + "' is installed in " + home.root +
           " (see `mfserv plugin list`)";
  }
  for (const auto& diagnostic : report.diagnostics) {
    if (diagnostic.severity == images::Diagnostic::Severity::Error &&
        (diagnostic.file.rfind(dir + "/", 0) == 0 ||
         diagnostic.file.find("/plugins/" + name + ".ini") != std::string::npos)) {
      return "plugin " + name + " does not load: " + diagnostic.describe() +
             " (a running mfserv keeps its previous version; fix it, then `mfserv reload`)";
    }
  }
  return "plugin " + name + " does not load (see `mfserv plugin list`)";
}

std::string app_log_path(const Home& home, const images::PluginConfig& plugin,
                         const images::AppConfig& app) {
  return app_log_path(home, plugin.name, app.name, app.kind == images::AppConfig::Kind::App);
}

std::string app_log_path(const Home& home, const std::string& plugin, const std::string& name,
                         bool is_app) {
  return home.log_dir() + "/" + (is_app ? "app_" : "extra_") + plugin + "_" + name + ".log";
}

std::string app_cgroup(const Home& home, const images::PluginConfig& plugin,
                       const images::AppConfig& app) {
  return home.cgroup_root() + "/" + plugin.name + "/" + app.section;
}

}  // namespace mfserv::runtime
