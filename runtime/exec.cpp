#include "runtime/exec.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include "images/plugin.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/spawn.hpp"
#include "runtime/worker_setup.hpp"
#include "util/fs.hpp"

namespace mfserv::runtime {

Result<int> exec_in_app(const Home& home, const std::string& plugin_name,
                        const std::string& app_name, const std::vector<std::string>& argv) {
  if (argv.empty()) {
    return Error("nothing to run: give a command after --");
  }
  if (!home_is_locked(home)) {
    return Error("no mfserv is running for home " + home.root +
                 ": exec runs inside a running app's cgroup");
  }
  auto report = images::load_plugins(home.plugins_dir(), home.load_options());
  const images::PluginConfig* plugin = nullptr;
  for (const auto& candidate : report.plugins) {
    if (candidate.name == plugin_name) {
      plugin = &candidate;
    }
  }
  if (!plugin) {
    return Error(missing_plugin_message(home, report, plugin_name));
  }
  const images::AppConfig* app = plugin->find_app(app_name);
  if (!app) {
    return Error("plugin " + plugin_name + " has no app or daemon named '" + app_name + "'");
  }
  if (auto st = check_sandbox_policy(home, *plugin, *app); !st) {
    return st.error();
  }
  auto cgroups = isolation::detect_cgroups();
  if (!cgroups) {
    return cgroups.error();
  }
  std::string parent = app_cgroup(home, *plugin, *app);
  if ((*cgroups)->pids(parent).empty()) {
    return Error(plugin_name + "/" + app_name + " is not running: start it first");
  }
  std::string leaf = parent + "/exec-" + std::to_string(::getpid());
  if (auto st = (*cgroups)->create(leaf, {}); !st) {
    return st.error();
  }
  auto sandbox = isolation::prepare_sandbox(
      sandbox_spec(home, hidden_plugin_dirs(home, report.plugins), *plugin, *app));
  if (!sandbox) {
    (void)(*cgroups)->remove(leaf);
    return sandbox.error();
  }
  auto procs = (*cgroups)->open_procs(leaf);
  if (!procs) {
    (void)(*cgroups)->remove(leaf);
    return procs.error();
  }
  isolation::SpawnSpec spec;
  std::string command;
  for (const auto& arg : argv) {
    // Single-quoted for /bin/sh: every quote closed, escaped, reopened.
    std::string quoted = "'";
    for (char c : arg) {
      quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    command += (command.empty() ? "" : " ") + quoted + "'";
  }
  spec.argv = isolation::shell_argv(command);
  spec.env = worker_env(home, *plugin, *app, 0, "", 0);
  spec.workdir = plugin->app_workdir(*app);
  spec.inherit_stdio = true;
  spec.new_session = false;
  spec.sandbox = &*sandbox;
  for (const auto& fd : *procs) {
    spec.cgroup_procs_fds.push_back(fd.get());
  }
  auto leaf_dir = (*cgroups)->open_dir(leaf);  // v2: born there (clone3 CLONE_INTO_CGROUP)
  spec.cgroup_dir_fd = leaf_dir ? leaf_dir->get() : -1;
  auto spawned = isolation::spawn(spec);
  int exit_code = 127;
  if (spawned) {
    int status = 0;
    while (::waitpid(spawned->pid, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  (void)(*cgroups)->kill_all(leaf, 2000);
  (void)(*cgroups)->remove(leaf);
  if (!spawned) {
    return spawned.error();
  }
  return exit_code;
}

}  // namespace mfserv::runtime
