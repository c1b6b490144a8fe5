// mfserv's entry point: the command line (CLI11) and nothing else.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/check_command.hpp"
#include "cli/commands.hpp"
#include "cli/plugin_commands.hpp"

using namespace mfserv::cli;

int main(int argc, char** argv) {
  CLI::App app{"mfserv: a private PaaS for web-service plugins behind nginx"};
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success, 1 failure (the message says why), 2 bad command line,\n"
      "3 no mfserv running for this home, 4 `run --detach` or `reload`: some apps failed to "
      "start.");
  Globals globals;
  app.add_option("--home", globals.home,
                 "instance folder (default: $MFSERV_HOME, else /var/lib/mfserv as root, "
                 "~/.local/share/mfserv otherwise)")
      ->check(non_empty_home);

  int port = 0;  // 0: HOME/config/mfserv.ini, else 18868
  bool detach = false;
  auto* run = app.add_subcommand("run", "start nginx and every installed plugin");
  run->add_option("--port", port, "nginx port")->check(CLI::Range(1, 65535));
  run->add_flag("--detach", detach, "return once every app is ready (non-zero if some failed)");

  std::string target;
  auto* stop = app.add_subcommand("stop", "stop mfserv gracefully, or only PLUGIN[/APP]");
  stop->add_option("PLUGIN[/APP]", target, "stop only these workers (they stay stopped)");
  auto* start = app.add_subcommand("start", "start PLUGIN[/APP] again after `stop PLUGIN[/APP]`");
  start->add_option("PLUGIN[/APP]", target)->required();
  auto* restart = app.add_subcommand("restart", "rolling restart of PLUGIN[/APP]");
  restart->add_option("PLUGIN[/APP]", target)->required();
  auto* reload = app.add_subcommand(
      "reload", "re-read every plugin, apply only what changed (same as SIGHUP)");
  auto* status = app.add_subcommand(
      "status", "health of the service and of each plugin (non-zero when anything is unhealthy)");
  status->add_flag("--json", globals.json, "machine-readable output");
  auto* ps = app.add_subcommand("ps", "one row per worker");
  ps->add_flag("--json", globals.json, "machine-readable output");

  std::string logs_target;
  int logs_lines = 100;
  bool logs_follow = false;
  auto* logs = app.add_subcommand("logs", "the log of PLUGIN[/APP]'s workers (HOME/log)");
  logs->add_option("PLUGIN[/APP]", logs_target, "a plugin (all its apps and daemons) or one app")
      ->required();
  logs->add_option("-n,--lines", logs_lines, "how many last lines (default 100)")
      ->check(CLI::Validator(
          [](const std::string& text) {
            return text.find_first_not_of("0123456789") == std::string::npos && !text.empty() &&
                           text.size() <= 9
                       ? std::string()
                       : "expected a number of lines, 0 to 999999999";
          },
          "N"));
  logs->add_flag("-f,--follow", logs_follow, "then print what is appended, until Ctrl-C");

  std::string exec_target;
  std::vector<std::string> exec_command;
  auto* exec = app.add_subcommand("exec", "run a command in an app's sandbox and cgroup");
  exec->add_option("PLUGIN/APP", exec_target, "the app (PLUGIN alone means PLUGIN/main)")
      ->required();
  exec->add_option("COMMAND", exec_command, "the command, after --")->required();

  auto* check = app.add_subcommand(
      "check", "what this host offers mfserv: cgroups, namespaces, seccomp, nginx, the port");
  check->add_option("--port", port, "the port to check (default: the home's)")
      ->check(CLI::Range(1, 65535));
  check->add_flag("--json", globals.json, "machine-readable output");

  auto* nginx_conf = app.add_subcommand("nginx-conf", "print the generated nginx configuration");
  nginx_conf
      ->add_option("--port", port,
                   "nginx port (default: the running instance's, else mfserv.ini's)")
      ->check(CLI::Range(1, 65535));

  auto* plugin = app.add_subcommand("plugin", "manage plugins");
  plugin->require_subcommand(1);
  std::string develop_dir;
  auto* develop = plugin->add_subcommand("develop", "link a plugin working copy into the home");
  develop->add_option("DIR", develop_dir, "plugin folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  auto* list = plugin->add_subcommand("list", "installed plugins");
  list->add_flag("--json", globals.json, "machine-readable output");
  std::string new_template;
  std::string new_name;
  std::string new_dir;
  auto* plugin_new = plugin->add_subcommand("new", "create a plugin folder from a template");
  plugin_new
      ->add_option("--template", new_template,
                   "python-wsgi, python-aiohttp, node, static or daemon")
      ->required();
  plugin_new->add_option("NAME", new_name, "plugin name")->required();
  plugin_new->add_option("--dir", new_dir, "folder to create it in (default: the current one)");
  std::string build_dir;
  std::string build_output;
  auto* build = plugin->add_subcommand(
      "build", "pack a plugin folder into NAME-VERSION-RELEASE.metwork.mfserv.plugin");
  build->add_option("DIR", build_dir, "plugin folder")->required()->check(CLI::ExistingDirectory);
  build->add_option("--output", build_output, "folder for the archive (default: the current one)");
  std::string install_file;
  bool install_force = false;
  auto* install = plugin->add_subcommand("install", "install a .plugin archive into the home");
  install->add_option("FILE", install_file, ".plugin archive")->required();
  install->add_flag("--force", install_force, "replace an installed version or a dev link");
  std::string hotswap_file;
  auto* hotswap = plugin->add_subcommand(
      "hotswap", "replace a running plugin with a new .plugin version, no request failing");
  hotswap->add_option("FILE", hotswap_file, "the .plugin archive")->required();
  std::string uninstall_name;
  auto* uninstall = plugin->add_subcommand("uninstall", "remove an installed plugin or dev link");
  uninstall->add_option("NAME", uninstall_name, "plugin name")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::RequiredError& e) {
    // "A subcommand is required" also answers a misspelt one: name the word instead.
    const bool in_plugin = plugin->parsed();
    auto extra = (in_plugin ? plugin : &app)->remaining();
    if (!extra.empty()) {
      std::fprintf(stderr, "mfserv: unknown command '%s%s'; see `mfserv%s --help`\n",
                   in_plugin ? "plugin " : "", extra.front().c_str(), in_plugin ? " plugin" : "");
      return k_exit_usage;
    }
    int rc = app.exit(e);
    return rc == 0 ? 0 : k_exit_usage;
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : k_exit_usage;
  }

  if (run->parsed()) {
    return cmd_run(globals, port, detach);
  }
  if (stop->parsed()) {
    return target.empty() ? cmd_stop(globals) : cmd_control(globals, "stop", target);
  }
  if (start->parsed()) {
    return cmd_control(globals, "start", target);
  }
  if (restart->parsed()) {
    return cmd_control(globals, "restart", target);
  }
  if (reload->parsed()) {
    return cmd_control(globals, "reload", "");
  }
  if (status->parsed()) {
    return cmd_status(globals);
  }
  if (ps->parsed()) {
    return cmd_ps(globals);
  }
  if (logs->parsed()) {
    return cmd_logs(globals, logs_target, logs_lines, logs_follow);
  }
  if (exec->parsed()) {
    return cmd_exec(globals, exec_target, exec_command);
  }
  if (check->parsed()) {
    return cmd_check(globals, port);
  }
  if (nginx_conf->parsed()) {
    return cmd_nginx_conf(globals, port);
  }
  if (develop->parsed()) {
    return cmd_plugin_develop(globals, develop_dir);
  }
  if (list->parsed()) {
    return cmd_plugin_list(globals);
  }
  if (plugin_new->parsed()) {
    return cmd_plugin_new(new_template, new_name, new_dir);
  }
  if (build->parsed()) {
    return cmd_plugin_build(build_dir, build_output);
  }
  if (install->parsed()) {
    return cmd_plugin_install(globals, install_file, install_force);
  }
  if (hotswap->parsed()) {
    return cmd_plugin_hotswap(globals, hotswap_file);
  }
  if (uninstall->parsed()) {
    return cmd_plugin_uninstall(globals, uninstall_name);
  }
  return k_exit_usage;
}
