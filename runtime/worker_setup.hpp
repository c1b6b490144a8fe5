// What every process of an app gets, shared by the supervisor's workers and `mfserv exec`:
// its environment and the shape of its sandbox.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "isolation/sandbox.hpp"
#include "runtime/home.hpp"
#include "util/result.hpp"

namespace mfserv::runtime {

constexpr const char* k_default_worker_user = "mfserv";

// HOME/var/plugins/NAME: the plugin's own writable folder (owned by its worker user).
std::string plugin_var_dir(const Home& home, const images::PluginConfig& plugin);

// WID 0 and an empty SOCKET_PATH for a one-off command; PORT 0 when unknown.
std::vector<std::string> worker_env(const Home& home, const images::PluginConfig& plugin,
                                    const images::AppConfig& app, int wid,
                                    const std::string& socket_path, int port);

// The plugin folders a sandbox hides besides the home: those outside it (dev links), which
// hiding the home does not cover, except under /tmp, /var/tmp and /dev/shm (a private tmpfs
// covers them). One list for all apps, shared by their sandboxes.
std::shared_ptr<const std::vector<std::string>> hidden_plugin_dirs(
    const Home& home, const std::vector<images::PluginConfig>& plugins);

// Hides the home and every other plugin (HIDDEN, from hidden_plugin_dirs), shows the plugin
// read-only and its writable paths (plus its var folder) read-write.
isolation::SandboxSpec sandbox_spec(const Home& home,
                                    std::shared_ptr<const std::vector<std::string>> hidden,
                                    const images::PluginConfig& plugin,
                                    const images::AppConfig& app);

// For each app of PLUGIN (by section), what changes whenever what makes its workers changes:
// the plugin's folder, its .files.json (which holds every file's sha256), and the keys of
// config.ini and its override files but those of the other apps' sections and the app's
// numprocesses; as a 64-bit FNV-1a of them and their length. A reload restarts the apps whose
// fingerprint changed. Not
// a sha256: the supervisor does not link nettle (run_command.hpp), and a plugin's author gains
// nothing from a crafted collision that shipping any other change would not give.
std::map<std::string, std::string> app_fingerprints(const Home& home,
                                                    const images::PluginConfig& plugin);

// A plugin cannot widen its own sandbox: `user`, `seccomp`, `writable_paths` and
// `readonly_paths` must come from an override file the administrator wrote.
Status check_sandbox_policy(const Home& home, const images::PluginConfig& plugin,
                            const images::AppConfig& app);

// Why NAME is not among REPORT's plugins: not installed, or installed with a config that
// does not load now (its first error, and that a running mfserv keeps its previous version).
std::string missing_plugin_message(const Home& home, const images::LoadReport& report,
                                   const std::string& name);

// HOME/log/app_PLUGIN_APP.log, or extra_PLUGIN_NAME.log for an [extra_daemon_NAME]: every
// worker's stdout and stderr, appended.
std::string app_log_path(const Home& home, const images::PluginConfig& plugin,
                         const images::AppConfig& app);
// The same from names, as `ps` gives them (IS_APP false: an extra daemon).
std::string app_log_path(const Home& home, const std::string& plugin, const std::string& name,
                         bool is_app);

// The app's cgroup, relative to the hierarchy root.
std::string app_cgroup(const Home& home, const images::PluginConfig& plugin,
                       const images::AppConfig& app);

}  // namespace mfserv::runtime
