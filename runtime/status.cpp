#include "runtime/status.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "images/plugin.hpp"
#include "runtime/control.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::runtime {
namespace {

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string body;
  std::string error;
};

// One HTTP/1.0 GET to 127.0.0.1:PORT, bounded by TIMEOUT_S.
HttpAnswer http_get(int port, const std::string& path, int timeout_s) {
  HttpAnswer answer;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    answer.error = fmt::format("cannot connect to 127.0.0.1:{}", port);
    return answer;
  }
  std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: mfserv-status\r\n\r\n";
  (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  char buffer[8192];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      answer.error = fmt::format("no answer within {} s", timeout_s);
      return answer;
    }
    pollfd pfd{fd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
      continue;
    }
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n <= 0) {
      break;
    }
    data.append(buffer, static_cast<size_t>(n));
  }
  auto end = data.find("\r\n\r\n");
  if (data.compare(0, 5, "HTTP/") != 0 || end == std::string::npos || data.size() < 12) {
    answer.error = "not an HTTP answer";
    return answer;
  }
  answer.status = std::atoi(data.substr(9, 3).c_str());
  answer.body = data.substr(end + 4);
  return answer;
}

}  // namespace

Result<std::vector<HealthCheck>> check_health(const Home& home) {
  auto ps = control_call(home, {{"cmd", "ps"}});
  if (!ps) {
    return ps.error();
  }
  std::vector<HealthCheck> checks;
  const auto& service = (*ps)["service"];
  int port = service.value("port", 0);
  checks.push_back({"service", "supervisor", service.value("state", "") == "running",
                    fmt::format("{} (pid {}, port {})", service.value("state", "?"),
                                service.value("pid", 0), port)});

  const auto& nginx = (*ps)["nginx"];
  auto health = http_get(port, "/__health", 5);
  bool nginx_ok =
      nginx.is_object() && nginx.value("state", "") == "running" && health.status == 200;
  checks.push_back(
      {"nginx", "processes+/__health", nginx_ok,
       fmt::format("{}, /__health {}", nginx.is_object() ? nginx.value("state", "?") : "absent",
                   health.status ? std::to_string(health.status) : health.error)});

  // Processes, per app: every worker running, none crash-looping. Workers an operator stopped
  // (`mfserv stop PLUGIN[/APP]`) are not a fault, but the detail says so: the app may not serve.
  struct Counts {
    int up = 0;
    int total = 0;
    int held = 0;
  };
  std::map<std::string, Counts> running;
  std::map<std::string, std::vector<std::string>> problems;  // one line per worker
  for (const auto& row : (*ps)["processes"]) {
    std::string label = row["plugin"].get<std::string>() + "/" + row["app"].get<std::string>();
    Counts& counts = running[label];
    ++counts.total;
    const int worker = row["worker"].get<int>();
    // A replacement that fails while the previous version keeps serving (restart, reload).
    const std::string serving =
        row.value("draining", 0) > 0 ? ", its previous version still serves" : "";
    if (row.value("crash_loop", false)) {
      problems[label].push_back(fmt::format("worker {} crash-loops (last exit: {}{})", worker,
                                            row.value("last_exit", "?"), serving));
    }
    if (row["state"] == "running") {
      ++counts.up;
    } else if (row.value("held", false)) {
      ++counts.held;
    } else if (!row.value("crash_loop", false)) {
      std::string error = row.value("error", std::string());
      problems[label].push_back(fmt::format("worker {} is {}{}{}", worker,
                                            row["state"].get<std::string>(),
                                            error.empty() ? "" : ": " + error, serving));
    }
  }
  for (const auto& [label, counts] : running) {
    auto problem = problems.find(label);
    std::string detail = fmt::format("{}/{} workers running", counts.up, counts.total);
    if (counts.held > 0) {
      detail +=
          fmt::format(", {} stopped by `mfserv stop` until `mfserv start {}`", counts.held, label);
    }
    checks.push_back(
        {label, "processes", problem == problems.end(),
         problem == problems.end() ? detail : fmt::format("{}", fmt::join(problem->second, "; "))});
  }

  // The plugins' own HTTP checks, through nginx as a client would.
  auto report = images::load_plugins(home.plugins_dir(), home.load_options());
  for (const auto& plugin : report.plugins) {
    for (const auto& app : plugin.apps) {
      if (app.kind != images::AppConfig::Kind::App || app.http_test_endpoint.empty()) {
        continue;
      }
      std::string label = plugin.name + "/" + app.name;
      auto answer = http_get(port, app.http_test_endpoint, app.http_test_timeout);
      bool ok = answer.status == app.http_test_expected_status_code &&
                answer.body.find(app.http_test_expected_body) != std::string::npos;
      std::string seen = answer.status
                             ? fmt::format("{} -> {}", app.http_test_endpoint, answer.status)
                             : app.http_test_endpoint + ": " + answer.error;
      if (!ok && answer.status) {
        seen += fmt::format(" (expected {} with \"{}\" in the body)",
                            app.http_test_expected_status_code, app.http_test_expected_body);
      }
      checks.push_back({label, "http", ok, seen});
    }
  }
  return checks;
}

}  // namespace mfserv::runtime
