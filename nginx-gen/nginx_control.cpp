// Finds the nginx binary, checks a configuration with `nginx -t` and installs a configuration
// only once nginx accepted it, so a bad plugin configuration never replaces the last good one
// (C15). Running nginx itself belongs to the runtime.
#include "nginx-gen/nginx_control.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::nginx {
namespace {

constexpr std::string_view k_default_nginx = "/usr/sbin/nginx";
constexpr size_t k_max_output = 64 * 1024;  // nginx -t prints a few lines; keep no more

bool is_executable_file(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0 && !is_directory(path);
}

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Error::from_errno("creating a pipe");
  }
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Everything FD yields until end of file, the first k_max_output bytes kept.
std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    if (text.size() < k_max_output) {
      text.append(buffer, std::min(static_cast<size_t>(n), k_max_output - text.size()));
    }
  }
  return text;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) {
    return fmt::format("exit status {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return fmt::format("killed by signal {}", WTERMSIG(status));
  }
  return fmt::format("wait status {}", status);
}

}  // namespace

Result<std::string> find_nginx() {
  if (const char* configured = std::getenv("MFSERV_NGINX"); configured && *configured) {
    if (!is_executable_file(configured)) {
      return Error(fmt::format("MFSERV_NGINX={} is not an executable file", configured));
    }
    return std::string(configured);
  }
  if (const char* path = std::getenv("PATH"); path) {
    for (const std::string& dir : split(path, ':')) {
      // An empty PATH entry means the current directory: never pick nginx from there.
      if (dir.empty() || dir.front() != '/') {
        continue;
      }
      std::string candidate = dir + "/nginx";
      if (is_executable_file(candidate)) {
        return candidate;
      }
    }
  }
  if (is_executable_file(std::string(k_default_nginx))) {
    return std::string(k_default_nginx);
  }
  return Error(
      "nginx not found on PATH nor at /usr/sbin/nginx: install nginx or set "
      "MFSERV_NGINX to its path");
}

Status validate(const std::string& nginx_binary, const std::string& conf_path,
                const std::string& error_log) {
  // Everything the child needs is built before fork: between fork and exec it only calls
  // async-signal-safe functions (fork(2), signal-safety(7)).
  std::vector<std::string> args = {
      nginx_binary, "-t", "-q", "-c", conf_path, "-e", error_log.empty() ? "stderr" : error_log};
  std::vector<char*> argv;
  for (std::string& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  sigset_t no_signals;
  sigemptyset(&no_signals);

  auto output = make_pipe();
  if (!output) {
    return output.error().with_context("running nginx -t");
  }
  // Carries errno from a failed exec; closed by a successful one.
  auto exec_report = make_pipe();
  if (!exec_report) {
    return exec_report.error().with_context("running nginx -t");
  }
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) {
    return Error::from_errno("running nginx -t: opening /dev/null");
  }

  pid_t pid = ::fork();
  if (pid < 0) {
    return Error::from_errno("running nginx -t: fork");
  }
  if (pid == 0) {
    // The caller may block signals it reads through signalfd; nginx must not inherit that.
    ::sigprocmask(SIG_SETMASK, &no_signals, nullptr);
    if (::dup2(dev_null.get(), STDIN_FILENO) < 0 ||
        ::dup2(output->write_end.get(), STDOUT_FILENO) < 0 ||
        ::dup2(output->write_end.get(), STDERR_FILENO) < 0) {
      int error = errno;
      (void)!::write(exec_report->write_end.get(), &error, sizeof error);
      ::_exit(127);
    }
    ::execv(argv[0], argv.data());
    int error = errno;
    (void)!::write(exec_report->write_end.get(), &error, sizeof error);
    ::_exit(127);
  }

  output->write_end.reset();
  exec_report->write_end.reset();
  std::string printed = read_all(output->read_end.get());
  int exec_errno = 0;
  ssize_t reported = 0;
  do {
    reported = ::read(exec_report->read_end.get(), &exec_errno, sizeof exec_errno);
  } while (reported < 0 && errno == EINTR);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return Error::from_errno(fmt::format("running nginx -t: waiting for pid {}", pid));
    }
  }
  if (reported == static_cast<ssize_t>(sizeof exec_errno)) {
    return Error("running " + nginx_binary + " -t", exec_errno);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    return {};
  }
  std::string quoted = trim(printed);
  if (quoted.empty()) {
    quoted = "no output, " + describe_exit(status);
  }
  return Error("nginx -t rejected " + conf_path + ": " + quoted);
}

Status write_validated(const std::string& nginx_binary, const std::string& conf_path,
                       const std::string& text, const std::string& error_log) {
  const std::string candidate = conf_path + ".new";
  if (auto written = write_file_atomic(candidate, text, 0644); !written) {
    return written.error().with_context("writing nginx configuration");
  }
  if (auto valid = validate(nginx_binary, candidate, error_log); !valid) {
    ::unlink(candidate.c_str());
    return valid;
  }
  if (::rename(candidate.c_str(), conf_path.c_str()) != 0) {
    Error error = Error::from_errno("installing nginx configuration: renaming " + candidate +
                                    " to " + conf_path);
    ::unlink(candidate.c_str());
    return error;
  }
  return {};
}

}  // namespace mfserv::nginx
