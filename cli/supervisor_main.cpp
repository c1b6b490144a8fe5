// mfserv-supervisor: what `mfserv run` execs (same pid, same arguments after `run`). It sits
// beside `mfserv` and links only the supervisor's side (see run_command.hpp).
#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/run_command.hpp"

using namespace mfserv::cli;

int main(int argc, char** argv) {
  CLI::App app{"mfserv-supervisor: the process `mfserv run` becomes (use `mfserv run`)"};
  std::string home;
  int port = 0;
  bool detach = false;
  app.add_option("--home", home, "instance folder")->check(non_empty_home);
  app.add_option("--port", port, "nginx port")->check(CLI::Range(1, 65535));
  app.add_flag("--detach", detach, "return once every app is ready");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : k_exit_usage;
  }
  return run_supervisor(home, port, detach);
}
