// `mfserv run`, carried out by mfserv-supervisor (supervisor_main.cpp): loads the plugins and
// runs the supervisor in the foreground, or detached with a pipe that reports readiness.
#include "cli/run_command.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "runtime/front.hpp"
#include "runtime/settings.hpp"
#include "runtime/supervisor.hpp"
#include "util/fs.hpp"

namespace mfserv::cli {
namespace {

using nlohmann::json;

void print_urls(const runtime::Home& home, const std::vector<images::PluginConfig>& plugins,
                int port) {
  for (const auto& route : runtime::front_routes(home, plugins)) {
    if (route.prefix_routing) {
      fmt::print("  http://127.0.0.1:{}/{}/{}/\n", port, route.plugin, route.app);
    }
  }
}

int run_foreground(const runtime::Home& home, std::vector<images::PluginConfig> plugins,
                   const runtime::FrontSettings& front) {
  const int port = front.port;
  runtime::RunOptions options;
  options.home = home;
  options.front = front;
  options.log_sink = [](const std::string& line) { fmt::print(stderr, "{}", line); };
  auto plugins_copy = plugins;
  options.on_ready = [&home, plugins_copy, port](const std::vector<std::string>& failed) {
    for (const auto& label : failed) {
      fmt::print(stderr, "mfserv: {} failed to start (see {}/log)\n", label, home.root);
    }
    fmt::print("mfserv is serving on port {} (Ctrl-C stops everything):\n", port);
    print_urls(home, plugins_copy, port);
    std::fflush(stdout);
  };
  runtime::Supervisor supervisor(std::move(options), std::move(plugins));
  if (auto st = supervisor.prepare(); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  if (auto st = supervisor.run(); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  return k_exit_ok;
}

int run_detached(const runtime::Home& home, std::vector<images::PluginConfig> plugins,
                 const runtime::FrontSettings& front) {
  const int port = front.port;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    print_error("creating a pipe to the supervisor failed");
    return k_exit_error;
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    print_error("fork failed");
    return k_exit_error;
  }
  if (pid == 0) {
    ::close(fds[0]);
    int report_fd = fds[1];
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::close(null_fd);
    auto report = [&report_fd](const json& message) {
      if (report_fd < 0) {
        return;
      }
      (void)write_all(report_fd, message.dump() + "\n", "the readiness report");
      ::close(report_fd);
      report_fd = -1;
    };
    runtime::RunOptions options;
    options.home = home;
    options.front = front;
    options.on_ready = [&report](const std::vector<std::string>& failed) {
      report({{"ok", true}, {"failed", failed}});
    };
    runtime::Supervisor supervisor(std::move(options), std::move(plugins));
    auto st = supervisor.prepare();
    if (st) {
      st = supervisor.run();
    }
    if (!st) {
      report({{"ok", false}, {"error", st.error().describe()}});
      std::exit(k_exit_error);
    }
    std::exit(k_exit_ok);
  }
  ::close(fds[1]);
  auto text = read_all(fds[0], "the supervisor's report");
  ::close(fds[0]);
  json message;
  try {
    message = json::parse(text ? *text : std::string());
  } catch (const json::exception&) {
    print_error("the supervisor exited before it was ready: see " + home.supervisor_log());
    return k_exit_error;
  }
  if (!message.value("ok", false)) {
    print_error(message.value("error", std::string("unknown error")));
    return k_exit_error;
  }
  auto failed = message["failed"].get<std::vector<std::string>>();
  for (const auto& label : failed) {
    print_error(label + " failed to start (see " + home.log_dir() + ")");
  }
  fmt::print("mfserv is running (pid {}) on port {}\n", pid, port);
  return failed.empty() ? k_exit_ok : k_exit_apps_failed;
}

}  // namespace

int run_supervisor(const std::string& home_option, int port, bool detach) {
  auto home = open_home(home_option);
  if (!home) {
    return k_exit_error;
  }
  if (auto st = runtime::prepare_home(*home); !st) {
    print_error(st.error().describe());
    return k_exit_error;
  }
  auto settings = load_front_settings(*home, port);
  if (!settings) {
    return k_exit_error;
  }
  auto plugins = load_and_report(*home);
  return detach ? run_detached(*home, std::move(plugins), *settings)
                : run_foreground(*home, std::move(plugins), *settings);
}

}  // namespace mfserv::cli
