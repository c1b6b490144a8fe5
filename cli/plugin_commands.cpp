// `mfserv plugin new|build|install|uninstall` (see plugin_commands.hpp).
#include "cli/plugin_commands.hpp"

#include <chrono>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "cli/common.hpp"
#include "images/archive.hpp"
#include "images/template.hpp"
#include "runtime/control.hpp"
#include "runtime/home.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::cli {
namespace {

void print_warnings(const std::vector<images::Diagnostic>& diagnostics) {
  for (const auto& diagnostic : diagnostics) {
    fmt::print(stderr, "mfserv: warning: {}\n", diagnostic.describe());
  }
}

std::string current_dir() {
  char buffer[4096];
  return ::getcwd(buffer, sizeof buffer) ? std::string(buffer) : std::string(".");
}

// The home, prepared; nullopt (printed) when that fails.
std::optional<runtime::Home> prepared_home(const Globals& globals) {
  auto home = runtime::resolve_home(globals.home);
  if (!home) {
    print_error(home.error().describe());
    return std::nullopt;
  }
  if (auto status = runtime::prepare_home(*home); !status) {
    print_error(status.error().describe());
    return std::nullopt;
  }
  return *home;
}

// Serializes installs and uninstalls of one home.
std::string plugins_lock(const runtime::Home& home) {
  return home.run_dir() + "/plugins.lock";
}

// Stops the plugin's workers (uninstall stops its apps first) and waits until they are gone.
bool stop_plugin_if_running(const runtime::Home& home, const std::string& name) {
  if (!runtime::home_is_locked(home)) {
    return true;
  }
  auto answer = runtime::control_call(home, {{"cmd", "stop"}, {"target", name}});
  if (!answer || !answer->value("ok", false)) {
    return true;  // not running in the supervisor: nothing to stop
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    auto ps = runtime::control_call(home, {{"cmd", "ps"}});
    if (!ps) {
      return true;
    }
    bool running = false;
    for (const auto& row : (*ps)["processes"]) {
      running = running ||
                (row["plugin"] == name && row["state"] != "stopped" && row["state"] != "failed");
    }
    if (!running) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  print_error("the workers of " + name + " did not stop in 5 minutes; nothing was uninstalled");
  return false;
}

}  // namespace

int cmd_plugin_new(const std::string& template_name, const std::string& name,
                   const std::string& dir) {
  auto created =
      images::create_plugin_from_template(template_name, name, dir.empty() ? current_dir() : dir);
  if (!created) {
    print_error(created.error().describe());
    return k_exit_error;
  }
  fmt::print("plugin {} created from template {} in {}\n", name, template_name, created->dir);
  if (path_exists(created->dir + "/package.json")) {
    fmt::print("first: `npm install` in {} (its dependencies; `plugin build` does it itself)\n",
               created->dir);
  }
  fmt::print(
      "next: `mfserv plugin develop {0}` to run it from there, or `mfserv plugin build "
      "{0}` then `mfserv plugin install FILE`\n",
      created->dir);
  return k_exit_ok;
}

int cmd_plugin_build(const std::string& dir, const std::string& output_dir) {
  auto npm = images::install_node_modules(dir);
  if (!npm) {
    print_error(npm.error().describe());
    return k_exit_error;
  }
  auto built = images::build_plugin_archive(dir, output_dir.empty() ? current_dir() : output_dir);
  if (!built) {
    print_error(built.error().describe());
    return k_exit_error;
  }
  fmt::print("plugin file is ready at {} ({} files, {})\n", built->path, built->files,
             format_bytes(built->size));
  return k_exit_ok;
}

int cmd_plugin_install(const Globals& globals, const std::string& file, bool force) {
  auto home = prepared_home(globals);
  if (!home) {
    return k_exit_error;
  }
  images::InstallOptions options;
  options.plugins_dir = home->plugins_dir();
  options.lock_path = plugins_lock(*home);
  options.load = home->load_options();
  options.force = force;
  auto installed = images::install_plugin_archive(file, options);
  if (!installed) {
    print_error(installed.error().describe());
    return k_exit_error;
  }
  print_warnings(installed->warnings);
  warn_about_new_plugin(*home, installed->plugin.home);
  if (installed->legacy_manifest) {
    fmt::print(stderr,
               "mfserv: warning: {} was built by MFSERV: its files were checked against "
               "its list, but it has no checksums to verify\n",
               file);
  }
  const auto& plugin = installed->plugin;
  if (installed->replaced) {
    const auto& old = *installed->replaced;
    std::string was =
        old.dev_link ? "the dev link to " + old.home : "version " + old.version + "-" + old.release;
    fmt::print("plugin {} {}-{} installed in {}, replacing {}\n", plugin.name, plugin.version,
               plugin.release, plugin.home, was);
  } else {
    fmt::print("plugin {} {}-{} installed in {}\n", plugin.name, plugin.version, plugin.release,
               plugin.home);
  }
  return apply_if_running(*home, "the plugin is installed");
}

int cmd_plugin_hotswap(const Globals& globals, const std::string& file) {
  auto home = prepared_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!runtime::home_is_locked(*home)) {
    print_error("no mfserv is running for home " + home->root +
                ": hotswap replaces a running plugin (use `plugin install --force` otherwise)");
    return k_exit_not_running;
  }
  // The new version replaces the folder atomically; the reload then replaces each worker
  // with an overlap (new incarnation first, old one drained), so no request fails.
  return cmd_plugin_install(globals, file, true);
}

int cmd_plugin_uninstall(const Globals& globals, const std::string& name) {
  auto home = prepared_home(globals);
  if (!home) {
    return k_exit_error;
  }
  if (!stop_plugin_if_running(*home, name)) {
    return k_exit_error;
  }
  auto removed = images::uninstall_plugin(name, home->plugins_dir(), plugins_lock(*home),
                                          home->load_options());
  if (!removed) {
    print_error(removed.error().describe());
    return k_exit_error;
  }
  if (removed->dev_link) {
    fmt::print("plugin {} uninstalled (the dev link; {} is untouched)\n", name, removed->home);
  } else {
    fmt::print("plugin {} uninstalled\n", name);
  }
  return apply_if_running(*home, "the plugin is uninstalled and its workers are stopped");
}

}  // namespace mfserv::cli
