// The `mfserv` commands. The only code that prints for humans; each returns the exit code.
#pragma once

#include <string>
#include <vector>

namespace mfserv::cli {

// Exit codes, listed in `mfserv --help`.
constexpr int k_exit_ok = 0;
constexpr int k_exit_error = 1;        // the command failed (the message says why)
constexpr int k_exit_usage = 2;        // bad command line
constexpr int k_exit_not_running = 3;  // no supervisor runs for this home
constexpr int k_exit_apps_failed = 4;  // run --detach, reload: some apps could not start

// CLI11 check for --home: an empty value (`--home ""`, an unset variable) would silently mean
// the default home, someone else's instance perhaps.
inline std::string non_empty_home(const std::string& value) {
  return value.empty() ? "empty: give the instance folder, or leave --home out for the default"
                       : "";
}

struct Globals {
  std::string home;
  bool json = false;
};

int cmd_run(const Globals& globals, int port, bool detach);
int cmd_stop(const Globals& globals);
// stop/start/restart PLUGIN[/APP] and reload: one request to the running supervisor.
int cmd_control(const Globals& globals, const std::string& command, const std::string& target);
int cmd_ps(const Globals& globals);
int cmd_status(const Globals& globals);
int cmd_nginx_conf(const Globals& globals, int port);
int cmd_exec(const Globals& globals, const std::string& target,
             const std::vector<std::string>& command);
// The last LINES lines of PLUGIN[/APP]'s log files (tail), then what follows when FOLLOW.
int cmd_logs(const Globals& globals, const std::string& target, int lines, bool follow);
int cmd_plugin_develop(const Globals& globals, const std::string& dir);
int cmd_plugin_list(const Globals& globals);

}  // namespace mfserv::cli
