// mfserv's entry point: the command line (CLI11) and nothing else.
#include <CLI/CLI.hpp>

#include "cli/commands.hpp"

using namespace mfserv::cli;

int main(int argc, char** argv) {
  CLI::App app{"mfserv: a private PaaS for web-service plugins behind nginx"};
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success, 1 failure (the message says why), 2 bad command line,\n"
      "3 no mfserv running for this home, 4 `run --detach`: some apps failed to start.");
  Globals globals;
  app.add_option("--home", globals.home,
                 "instance folder (default: $MFSERV_HOME, else /var/lib/mfserv as root)");

  int port = 18868;
  bool detach = false;
  auto* run = app.add_subcommand("run", "start nginx and every installed plugin");
  run->add_option("--port", port, "nginx port")->check(CLI::Range(1, 65535));
  run->add_flag("--detach", detach, "return once every app is ready (non-zero if some failed)");

  auto* stop = app.add_subcommand("stop", "stop the running mfserv gracefully");
  auto* ps = app.add_subcommand("ps", "one row per worker");
  ps->add_flag("--json", globals.json, "machine-readable output");

  auto* nginx_conf = app.add_subcommand("nginx-conf", "print the generated nginx configuration");
  nginx_conf->add_option("--port", port, "nginx port")->check(CLI::Range(1, 65535));

  auto* plugin = app.add_subcommand("plugin", "manage plugins");
  plugin->require_subcommand(1);
  std::string develop_dir;
  auto* develop = plugin->add_subcommand("develop", "link a plugin working copy into the home");
  develop->add_option("DIR", develop_dir, "plugin folder")->required()->check(CLI::ExistingDirectory);
  auto* list = plugin->add_subcommand("list", "installed plugins");
  list->add_flag("--json", globals.json, "machine-readable output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : k_exit_usage;
  }

  if (run->parsed()) {
    return cmd_run(globals, port, detach);
  }
  if (stop->parsed()) {
    return cmd_stop(globals);
  }
  if (ps->parsed()) {
    return cmd_ps(globals);
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
  return k_exit_usage;
}
