// Integration-test harness: a fresh temporary home per test, the built mfserv binary run as a
// user would run it, a small HTTP client for 127.0.0.1, and the skip rule of the suite.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mfserv::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the built mfserv with ARGS (environment: the test's, plus EXTRA_ENV).
CommandResult run_mfserv(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& extra_env = {});
// Runs any command (argv[0] looked up in PATH).
CommandResult run_command(const std::vector<std::string>& argv);

struct HttpResponse {
  int status = 0;                              // 0: no answer
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};
HttpResponse http_get(int port, const std::string& path, const std::string& host = "localhost",
                      int timeout_ms = 10000);

int free_port();
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);
std::string source_path(const std::string& relative);  // in the repository
std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);

// A temporary home (and a folder for plugin sources) removed at the end of the test, after
// stopping any mfserv still running on it.
class TempHome {
 public:
  TempHome();
  ~TempHome();
  TempHome(const TempHome&) = delete;
  TempHome& operator=(const TempHome&) = delete;

  const std::string& path() const { return m_path; }
  std::string home_arg() const { return "--home=" + m_path; }
  // Writes a plugin folder NAME with CONFIG as config.ini (plus FILES) and links it in.
  std::string add_plugin(const std::string& name, const std::string& config,
                         const std::map<std::string, std::string>& files = {});
  // Links an example of the repository in.
  void add_example(const std::string& name);
  // `run --detach` on PORT; returns the command's result.
  CommandResult start(int port);
  CommandResult stop();
  nlohmann::json ps();
  std::string instance_cgroup_v1_memory() const;  // /sys/fs/cgroup/memory/mfserv/hXXXX
  // The worker processes of this home's nginx master (none when it is not running).
  std::vector<pid_t> nginx_workers() const;

 private:
  std::string m_path;
  std::string m_sources;
};

// Root-only tests call this first: false (and a warning) when they cannot run here; under
// MFSERV_TESTS_MUST_RUN=1 a skip is a failure instead.
bool require_root();
// Processes whose command line mentions TEXT.
std::vector<pid_t> processes_mentioning(const std::string& text);
// {plugin_dir}/testapp.py: copy_fixtures(DIR) puts it (and sandbox_probe.py) in DIR;
// TempHome::add_plugin does it for its plugins.
std::string testapp_command();
void copy_fixtures(const std::string& dir);
// The [general] section of a test plugin, then a blank line.
std::string test_general();
// How many workers of PLUGIN (only worker WORKER when not 0) `ps` shows as crash-looping.
int crash_looping_workers(TempHome& home, const std::string& plugin, int worker = 0);
// A plugin of NUMPROCESSES testapp workers (graceful_timeout 5) with EXTRA lines in [app_main].
std::string testapp_plugin(int numprocesses, const std::string& extra = "");

}  // namespace mfserv::test
