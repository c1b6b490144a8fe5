// Helpers for the nginx-gen tests that run the real nginx binary: the skip-or-fail rule when
// nginx is missing, temporary directories, a running nginx that is always reaped, a tiny
// HTTP/1.0 client over TCP and a tiny HTTP app on a unix socket standing in for a worker.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "nginx-gen/nginx_conf.hpp"
#include "nginx-gen/nginx_control.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::nginx::testing {

inline bool tests_must_run() {
  const char* value = std::getenv("MFSERV_TESTS_MUST_RUN");
  return value != nullptr && std::string(value) == "1";
}

// The nginx binary, or "" when the test is to be skipped (reported with WARN); under
// MFSERV_TESTS_MUST_RUN=1 a missing nginx fails the test instead.
inline std::string nginx_or_skip() {
  auto found = find_nginx();
  if (found) {
    return *found;
  }
  if (tests_must_run()) {
    FAIL("nginx is required (MFSERV_TESTS_MUST_RUN=1): " << found.error().describe());
  }
  WARN("SKIPPED: " << found.error().describe());
  return "";
}

// Sets an environment variable for one scope, then puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : m_name(name) {
    if (const char* old = std::getenv(name); old != nullptr) {
      m_old = old;
      m_had_old = true;
    }
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (m_had_old) {
      ::setenv(m_name.c_str(), m_old.c_str(), 1);
    } else {
      ::unsetenv(m_name.c_str());
    }
  }

 private:
  std::string m_name;
  std::string m_old;
  bool m_had_old = false;
};

// A fresh directory under /tmp (a path nginx.conf can carry as is), removed with its content.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/mfserv-nginx-test-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    REQUIRE(made != nullptr);
    m_path = made;
    // Readable by nginx workers even when they run as another user.
    ::chmod(m_path.c_str(), 0755);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(m_path, ignored);
  }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

inline std::string parent_dir(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}

// What `nginx -t` and nginx need before they start: the directories of the pid file, the logs
// and the temp paths (nginx creates the temp paths themselves, not their parent).
inline void prepare_front_dirs(const FrontConfig& front) {
  for (const std::string& dir : {parent_dir(front.pid_file), parent_dir(front.error_log),
                                 parent_dir(front.access_log), front.temp_dir}) {
    REQUIRE(make_dirs(dir).ok());
  }
}

inline void write_text(const std::string& path, const std::string& text) {
  REQUIRE(make_dirs(parent_dir(path)).ok());
  REQUIRE(write_file_atomic(path, text).ok());
}

// A TCP port nobody listens on right now (the kernel's pick for port 0).
inline int free_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return ntohs(address.sin_port);
}

inline UniqueFd connect_local(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return UniqueFd();
  }
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

inline bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

struct HttpResponse {
  int status = 0;  // 0: no answer
  std::string head;
  std::string body;

  // The value of header NAME (case-insensitive), "" when absent.
  std::string header(const std::string& name) const {
    for (const std::string& line : split(head, '\n')) {
      size_t colon = line.find(':');
      if (colon != std::string::npos && to_lower(trim(line.substr(0, colon))) == to_lower(name)) {
        return trim(line.substr(colon + 1));
      }
    }
    return "";
  }
};

// One HTTP/1.0 exchange with 127.0.0.1:PORT; TARGET is sent as is, unnormalised.
inline HttpResponse http_request(int port, const std::string& method, const std::string& target,
                                 const std::string& host = "localhost",
                                 const std::string& extra_headers = "",
                                 const std::string& body = "") {
  HttpResponse response;
  UniqueFd fd = connect_local(port);
  if (!fd) {
    return response;
  }
  std::string request =
      method + " " + target + " HTTP/1.0\r\nHost: " + host + "\r\n" + extra_headers;
  if (!body.empty()) {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  if (!send_all(fd.get(), request)) {
    return response;
  }
  std::string raw;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    raw.append(buffer, static_cast<size_t>(n));
  }
  size_t end_of_head = raw.find("\r\n\r\n");
  if (end_of_head == std::string::npos || raw.size() < 12) {
    return response;
  }
  response.head = replace_all(raw.substr(0, end_of_head), "\r\n", "\n");
  response.body = raw.substr(end_of_head + 4);
  response.status = std::atoi(raw.substr(9, 3).c_str());
  return response;
}

inline HttpResponse http_get(int port, const std::string& target,
                             const std::string& host = "localhost") {
  return http_request(port, "GET", target, host);
}

// nginx in the foreground (the rendered config says `daemon off`), stopped and reaped when
// the object goes, whatever the test's outcome.
class RunningNginx {
 public:
  RunningNginx(const std::string& binary, const std::string& conf, const std::string& error_log,
               int port)
      : m_error_log(error_log) {
    std::vector<std::string> args = {binary, "-c", conf, "-e", error_log};
    std::vector<char*> argv;
    for (std::string& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    UniqueFd dev_null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    REQUIRE(dev_null.valid());
    m_pid = ::fork();
    REQUIRE(m_pid >= 0);
    if (m_pid == 0) {
      ::dup2(dev_null.get(), STDIN_FILENO);
      ::dup2(dev_null.get(), STDOUT_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready once the port accepts connections; nginx exiting first is a failure.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        FAIL("nginx exited at start: " << error_log_text());
      }
      if (connect_local(port)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    FAIL("nginx did not listen on port " << port << ": " << error_log_text());
  }
  RunningNginx(const RunningNginx&) = delete;
  RunningNginx& operator=(const RunningNginx&) = delete;
  ~RunningNginx() { stop(); }

  // Graceful stop (SIGQUIT), SIGKILL after 5 s.
  void stop() {
    if (m_pid <= 0) {
      return;
    }
    ::kill(m_pid, SIGQUIT);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(m_pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(m_pid, SIGKILL);
        ::waitpid(m_pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    m_pid = -1;
  }

  std::string error_log_text() const {
    auto text = read_file(m_error_log);
    return text ? *text : "(no error log)";
  }

 private:
  std::string m_error_log;
  pid_t m_pid = -1;
};

// An app worker on a unix socket: answers every request with "app METHOD TARGET", then the
// body it received and the X-Request-Id it was given, one per line.
class UnixHttpApp {
 public:
  explicit UnixHttpApp(std::string path) : m_path(std::move(path)) {
    m_listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(m_listener.valid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(m_path.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, m_path.c_str(), m_path.size() + 1);
    ::unlink(m_path.c_str());
    REQUIRE(::bind(m_listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(m_listener.get(), 64) == 0);
    ::chmod(m_path.c_str(), 0666);
    m_thread = std::thread([this] { serve(); });
  }
  UnixHttpApp(const UnixHttpApp&) = delete;
  UnixHttpApp& operator=(const UnixHttpApp&) = delete;
  ~UnixHttpApp() {
    m_stop = true;
    m_thread.join();
    ::unlink(m_path.c_str());
  }

 private:
  void serve() {
    while (!m_stop) {
      pollfd ready{m_listener.get(), POLLIN, 0};
      if (::poll(&ready, 1, 20) <= 0) {
        continue;
      }
      UniqueFd connection(::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (connection) {
        answer(connection.get());
      }
    }
  }

  static void answer(int fd) {
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string raw;
    char buffer[4096];
    size_t end_of_head = std::string::npos;
    size_t wanted = 0;
    for (;;) {
      if (end_of_head == std::string::npos) {
        end_of_head = raw.find("\r\n\r\n");
        if (end_of_head != std::string::npos) {
          HttpResponse parsed;  // reuse the header lookup
          parsed.head = replace_all(raw.substr(0, end_of_head), "\r\n", "\n");
          wanted =
              end_of_head + 4 + std::strtoul(parsed.header("Content-Length").c_str(), nullptr, 10);
        }
      }
      if (end_of_head != std::string::npos && raw.size() >= wanted) {
        break;
      }
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) {
        return;
      }
      raw.append(buffer, static_cast<size_t>(n));
    }
    HttpResponse request;
    request.head = replace_all(raw.substr(0, end_of_head), "\r\n", "\n");
    std::vector<std::string> request_line =
        split(request.head.substr(0, request.head.find('\n')), ' ');
    std::string text = "app " + request_line.at(0) + " " + request_line.at(1) +
                       "\nbody=" + raw.substr(end_of_head + 4) +
                       "\nx-request-id=" + request.header("X-Request-Id") + "\n";
    std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                        std::to_string(text.size()) + "\r\nConnection: close\r\n\r\n" + text;
    send_all(fd, reply);
  }

  std::string m_path;
  UniqueFd m_listener;
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

}  // namespace mfserv::nginx::testing
