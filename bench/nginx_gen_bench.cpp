// How long the nginx front takes to follow a change: generation (plugins → model → text) at
// 100, 500 and 1000 plugins of 2 apps, to show it is linear in the number of apps; then, for
// 500 × 2, generation + `nginx -t` and atomic install + reload of a real nginx (SIGHUP, until
// a new worker answers /__health), against the 1 s target of issue 7.
// Not a test: it prints figures and ratios. Usage: mfserv_nginx_gen_bench [RUNS]
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "nginx-gen/nginx_control.hpp"
#include "runtime/front.hpp"
#include "util/fs.hpp"
#include "util/unique_fd.hpp"

using namespace mfserv;

namespace {

constexpr int k_apps_per_plugin = 2;
constexpr int k_workers_per_app = 2;
constexpr double k_target_ms = 1000.0;

double now_ms() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "mfserv_nginx_gen_bench: %s\n", what.c_str());
  std::exit(1);
}

// PLUGINS plugins of two apps ("main", which also gets /PLUGIN, and "api" with an extra
// route), two workers each: what `images::load_plugins` would give.
std::vector<images::PluginConfig> make_plugins(const std::string& root, int plugins) {
  std::vector<images::PluginConfig> out;
  for (int i = 0; i < plugins; ++i) {
    images::PluginConfig plugin;
    plugin.name = "plugin" + std::to_string(i);
    plugin.dir = root + "/src/" + plugin.name;
    for (const char* name : {"main", "api"}) {
      images::AppConfig app;
      app.name = name;
      app.section = std::string("app_") + name;
      app.numprocesses = k_workers_per_app;
      if (app.name == "api") {
        app.extra_routes = {"/api/v" + std::to_string(i)};
        app.timeout = 300;
      }
      plugin.apps.push_back(app);
    }
    out.push_back(std::move(plugin));
  }
  return out;
}

// The whole generation as `mfserv run` does it: settings → front, plugins → routes → text.
// RUNNING_FLAG replaces the home's flag file when not empty.
std::string generate(const runtime::Home& home, const runtime::FrontSettings& settings,
                     const std::vector<images::PluginConfig>& plugins,
                     const std::string& running_flag = "") {
  nginx::FrontConfig front = runtime::front_config(home, settings);
  if (!running_flag.empty()) {
    front.running_flag = running_flag;
  }
  return nginx::render(front, runtime::front_routes(home, plugins));
}

// GET /__health on 127.0.0.1:PORT; the status code, 0 when nothing answered.
int health(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return 0;
  }
  timeval timeout{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string request = "GET /__health HTTP/1.0\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return 0;
  }
  char head[16] = {};
  ssize_t n = ::recv(fd.get(), head, sizeof head - 1, MSG_WAITALL);
  return n >= 12 ? std::atoi(head + 9) : 0;
}

int free_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  socklen_t length = sizeof address;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    fail("no free port");
  }
  return ntohs(address.sin_port);
}

// nginx in the foreground on CONF, reaped at the end whatever happens.
class Nginx {
 public:
  Nginx(const std::string& binary, const std::string& conf, const std::string& error_log) {
    m_pid = ::fork();
    if (m_pid == 0) {
      ::execl(binary.c_str(), binary.c_str(), "-c", conf.c_str(), "-e", error_log.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (m_pid < 0) {
      fail("fork failed");
    }
  }
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;
  ~Nginx() {
    ::kill(m_pid, SIGQUIT);
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(m_pid, nullptr, WNOHANG) == m_pid) {
        return;
      }
      ::usleep(10000);
    }
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
  }
  pid_t pid() const { return m_pid; }
  bool exited() { return ::waitpid(m_pid, nullptr, WNOHANG) == m_pid; }

 private:
  pid_t m_pid = -1;
};

// Median generation time of PLUGINS × 2 apps over RUNS runs; prints one table row.
double bench_generation(const runtime::Home& home, int plugins, int runs) {
  const auto model = make_plugins(home.root, plugins);
  const runtime::FrontSettings settings;
  std::vector<double> times;
  size_t bytes = generate(home, settings, model).size();  // warm-up, not counted
  for (int run = 0; run < runs; ++run) {
    const double start = now_ms();
    bytes = generate(home, settings, model).size();
    times.push_back(now_ms() - start);
  }
  const double ms = median(times);
  const int apps = plugins * k_apps_per_plugin;
  std::printf("  %7d %6d %9.2f %9.2f %9zu\n", plugins, apps, ms, ms * 1000.0 / apps, bytes / 1024);
  return ms * 1000.0 / apps;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 9;
  auto nginx_binary = nginx::find_nginx();
  if (!nginx_binary) {
    fail(nginx_binary.error().describe());
  }
  char pattern[] = "/tmp/mfserv-nginx-bench-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    fail("mkdtemp failed");
  }
  const runtime::Home home{pattern};
  ::chmod(home.root.c_str(), 0755);  // nginx's workers look at the running flag below it
  for (const std::string& dir : {home.run_dir(), home.log_dir(), home.tmp_dir() + "/nginx"}) {
    if (auto made = make_dirs(dir, 0755); !made) {
      fail(made.error().describe());
    }
  }

  std::printf(
      "nginx front generation (settings + plugins -> model -> nginx.conf text),\n"
      "%d apps per plugin, %d workers per app, median of %d runs\n\n",
      k_apps_per_plugin, k_workers_per_app, runs);
  std::printf("  %7s %6s %9s %9s %9s\n", "plugins", "apps", "ms", "us/app", "KiB");
  std::vector<double> per_app;
  for (int plugins : {100, 500, 1000}) {
    per_app.push_back(bench_generation(home, plugins, runs));
  }
  std::printf("  linearity: us/app at 1000 plugins / us/app at 100 = %.2f (1.00 is linear)\n\n",
              per_app.back() / per_app.front());

  // 500 × 2: /__health answers 200 when its flag file exists. The configurations alternate
  // between a flag that exists and one that never does, so the answer flips only once a
  // worker of the new configuration serves it.
  const auto plugins = make_plugins(home.root, 500);
  runtime::FrontSettings settings;
  settings.port = free_port();
  settings.worker_processes = 2;
  settings.nginx_user = ::geteuid() == 0 ? "nobody" : "";
  const std::string conf = home.nginx_conf();
  const std::string error_log = home.log_dir() + "/nginx_error.log";
  const std::string flag_present = home.run_dir() + "/running";
  const std::string flag_absent = home.run_dir() + "/never-written";
  if (auto written = write_file_atomic(flag_present, "RUNNING\n"); !written) {
    fail(written.error().describe());
  }
  if (auto written = nginx::write_validated(
          *nginx_binary, conf, generate(home, settings, plugins, flag_absent), error_log);
      !written) {
    fail(written.error().describe());
  }
  Nginx running(*nginx_binary, conf, error_log);
  const double started = now_ms();
  while (health(settings.port) != 503) {
    if (running.exited() || now_ms() - started > 10000) {
      fail("nginx did not start: see " + error_log);
    }
    ::usleep(1000);
  }

  std::vector<double> generation;
  std::vector<double> validation;
  std::vector<double> reload;
  std::vector<double> total;
  for (int run = 0; run < runs; ++run) {
    const bool up = run % 2 == 0;  // 503 → 200, then 200 → 503
    const int wanted = up ? 200 : 503;
    const double t0 = now_ms();
    const std::string text = generate(home, settings, plugins, up ? flag_present : flag_absent);
    const double t1 = now_ms();
    if (auto written = nginx::write_validated(*nginx_binary, conf, text, error_log); !written) {
      fail(written.error().describe());
    }
    const double t2 = now_ms();
    ::kill(running.pid(), SIGHUP);
    while (health(settings.port) != wanted) {
      if (now_ms() - t2 > 10000) {
        fail("the reloaded nginx did not answer: see " + error_log);
      }
      ::usleep(500);
    }
    const double t3 = now_ms();
    generation.push_back(t1 - t0);
    validation.push_back(t2 - t1);
    reload.push_back(t3 - t2);
    total.push_back(t3 - t0);
  }
  const double total_ms = median(total);
  std::printf("change of 500 plugins x 2 apps (%zu KiB of nginx.conf), median of %d runs\n\n",
              generate(home, settings, plugins).size() / 1024, runs);
  std::printf("  %-54s %9s\n", "step", "ms");
  std::printf("  %-54s %9.1f\n", "generation", median(generation));
  std::printf("  %-54s %9.1f\n", "nginx -t on a temporary file + atomic rename",
              median(validation));
  std::printf("  %-54s %9.1f\n", "reload: SIGHUP until a new worker answers /__health",
              median(reload));
  std::printf("  %-54s %9.1f\n", "total", total_ms);
  std::printf("  %-54s %9.2f  (%s)\n", "total / 1 s target", total_ms / k_target_ms,
              total_ms < k_target_ms ? "within target" : "OVER TARGET");

  const std::string warnings = read_file(error_log).ok() ? *read_file(error_log) : "";
  if (warnings.find("[warn]") != std::string::npos ||
      warnings.find("[emerg]") != std::string::npos) {
    std::printf("\nnginx complained, see %s:\n%s", error_log.c_str(), warnings.c_str());
  }
  std::error_code ignored;
  std::filesystem::remove_all(home.root, ignored);
  return total_ms < k_target_ms ? 0 : 1;
}
