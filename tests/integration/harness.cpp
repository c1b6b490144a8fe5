#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;

namespace mfserv::test {

static std::string slurp_fd(int fd) {
  std::string data;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) {
      data.append(buffer, static_cast<size_t>(n));
    }
  }
  return data;
}

static CommandResult run_with_env(const std::vector<std::string>& argv,
                                  const std::map<std::string, std::string>& extra_env) {
  // Output goes to temporary files: a detached supervisor keeps no pipe of ours open.
  char out_path[] = "/tmp/mfserv-test-out-XXXXXX";
  char err_path[] = "/tmp/mfserv-test-err-XXXXXX";
  int out_fd = ::mkstemp(out_path);
  int err_fd = ::mkstemp(err_path);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    for (const auto& [key, value] : extra_env) {
      ::setenv(key.c_str(), value.c_str(), 1);
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  ::lseek(out_fd, 0, SEEK_SET);
  ::lseek(err_fd, 0, SEEK_SET);
  result.out = slurp_fd(out_fd);
  result.err = slurp_fd(err_fd);
  ::close(out_fd);
  ::close(err_fd);
  ::unlink(out_path);
  ::unlink(err_path);
  return result;
}

CommandResult run_mfserv(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& extra_env) {
  std::vector<std::string> argv{MFSERV_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_with_env(argv, extra_env);
}

CommandResult run_command(const std::vector<std::string>& argv) {
  return run_with_env(argv, {});
}

HttpResponse http_get(int port, const std::string& path, const std::string& host, int timeout_ms) {
  HttpResponse response;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return response;
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[8192];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      break;
    }
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
      continue;
    }
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) {
      break;
    }
    data.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t header_end = data.find("\r\n\r\n");
  if (data.compare(0, 5, "HTTP/") != 0 || header_end == std::string::npos) {
    return response;
  }
  std::istringstream head(data.substr(0, header_end));
  std::string line;
  std::getline(head, line);
  response.status = std::atoi(line.substr(9, 3).c_str());
  while (std::getline(head, line)) {
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      response.headers[to_lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    }
  }
  response.body = data.substr(header_end + 4);
  return response;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

std::string source_path(const std::string& relative) {
  return std::string(MFSERV_SOURCE_DIR) + "/" + relative;
}

std::string read_text(const std::string& path) {
  auto content = read_file(path);
  return content ? *content : std::string();
}

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

TempHome::TempHome() {
  char templ[] = "/tmp/mfserv-it-XXXXXX";
  m_path = ::mkdtemp(templ);
  // nginx's workers (another user) must reach the sockets and static files below it.
  ::chmod(m_path.c_str(), 0755);
  m_sources = m_path + "/src";
  fs::create_directories(m_sources);
  ::chmod(m_sources.c_str(), 0755);
  m_path += "/home";
}

TempHome::~TempHome() {
  auto result = run_mfserv({home_arg(), "stop"});
  (void)result;
  std::error_code ec;
  fs::remove_all(fs::path(m_path).parent_path(), ec);
}

std::string TempHome::add_plugin(const std::string& name, const std::string& config,
                                 const std::map<std::string, std::string>& files) {
  std::string dir = m_sources + "/" + name;
  write_text(dir + "/config.ini", config);
  for (const auto& [file, text] : files) {
    write_text(dir + "/" + file, text);
  }
  copy_fixtures(dir);
  for (auto& entry : fs::recursive_directory_iterator(dir)) {
    fs::permissions(entry.path(), fs::perms::others_read | fs::perms::group_read,
                    fs::perm_options::add);
    if (entry.is_directory()) {
      fs::permissions(entry.path(), fs::perms::others_exec | fs::perms::group_exec,
                      fs::perm_options::add);
    }
  }
  auto result = run_mfserv({home_arg(), "plugin", "develop", dir});
  INFO(result.err);
  return dir;
}

void TempHome::add_example(const std::string& name) {
  // A copy in the test's own folder: nginx's workers and the sandbox reach it wherever the
  // repository is (a 0700 or /tmp checkout included).
  std::string dir = m_sources + "/" + name;
  fs::copy(source_path("examples/" + name), dir,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  run_command({"chmod", "-R", "go+rX", dir});
  auto result = run_mfserv({home_arg(), "plugin", "develop", dir});
  INFO(result.out << result.err);
  REQUIRE(result.exit_code == 0);
}

CommandResult TempHome::start(int port) {
  return run_mfserv({home_arg(), "run", "--detach", "--port", std::to_string(port)});
}

CommandResult TempHome::stop() {
  return run_mfserv({home_arg(), "stop"});
}

nlohmann::json TempHome::ps() {
  auto result = run_mfserv({home_arg(), "ps", "--json"});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  return nlohmann::json::parse(result.out);
}

std::string TempHome::instance_cgroup_v1_memory() const {
  std::uint32_t hash = 2166136261u;
  for (unsigned char c : m_path) {
    hash = (hash ^ c) * 16777619u;
  }
  char name[16];
  std::snprintf(name, sizeof name, "h%08x", hash);
  return std::string("/sys/fs/cgroup/memory/mfserv/") + name;
}

std::vector<pid_t> TempHome::nginx_workers() const {
  std::vector<pid_t> pids;
  auto master = parse_int(mfserv::trim(read_text(m_path + "/run/nginx.pid")));
  if (!master) {
    return pids;
  }
  const std::string id = std::to_string(*master);
  std::istringstream children(read_text("/proc/" + id + "/task/" + id + "/children"));
  for (long pid = 0; children >> pid;) {
    pids.push_back(static_cast<pid_t>(pid));
  }
  return pids;
}

bool require_root() {
  if (::geteuid() == 0) {
    return true;
  }
  const char* must = std::getenv("MFSERV_TESTS_MUST_RUN");
  if (must && std::string(must) == "1") {
    FAIL("this test needs root (cgroups, nginx user switch) and MFSERV_TESTS_MUST_RUN=1");
  }
  WARN("skipped: this test needs root");
  return false;
}

std::vector<pid_t> processes_mentioning(const std::string& text) {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    auto pid = parse_int(name);
    if (!pid) {
      continue;
    }
    std::string cmdline = read_text(entry.path().string() + "/cmdline");
    for (auto& c : cmdline) {
      if (c == '\0') {
        c = ' ';
      }
    }
    if (cmdline.find(text) != std::string::npos) {
      pids.push_back(static_cast<pid_t>(*pid));
    }
  }
  return pids;
}

std::string test_general() {
  return "[general]\n_version = 1.0.0\n_summary = test plugin\n_license = MIT\n"
         "_url = https://example.invalid\n_maintainer = tests\n_vendor = tests\n\n";
}

int crash_looping_workers(TempHome& home, const std::string& plugin, int worker) {
  int looping = 0;
  const nlohmann::json ps = home.ps();  // held: a range-for over home.ps()[...] would dangle
  for (const auto& row : ps["processes"]) {
    looping += row["plugin"] == plugin && (worker == 0 || row["worker"] == worker) &&
                       row["crash_loop"] == true
                   ? 1
                   : 0;
  }
  return looping;
}

std::string testapp_plugin(int numprocesses, const std::string& extra) {
  return test_general() + "[app_main]\n_cmd_and_args = " + testapp_command() +
         "\nnumprocesses = " + std::to_string(numprocesses) + "\ngraceful_timeout = 5\n" + extra;
}

void copy_fixtures(const std::string& dir) {
  // The test workers' programs travel with the plugin: the sandbox shows a worker its own
  // plugin folder, not the repository (which may sit under a /tmp the sandbox replaces).
  fs::create_directories(dir);
  for (const char* fixture : {"testapp.py", "sandbox_probe.py"}) {
    fs::copy_file(source_path(std::string("tests/fixtures/") + fixture), dir + "/" + fixture,
                  fs::copy_options::overwrite_existing);
    fs::permissions(dir + "/" + fixture,
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  }
}

std::string testapp_command() {
  return "/usr/bin/python3 {plugin_dir}/testapp.py {unix_socket_path}";
}

}  // namespace mfserv::test
