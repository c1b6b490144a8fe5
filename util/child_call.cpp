#include "util/child_call.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace mfserv {
namespace {

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
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

}  // namespace

// The child writes '+' and the answer, or '!' and the error message.
Result<std::string> call_in_child(const std::function<Result<std::string>()>& fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Error::from_errno("creating a pipe to a helper process");
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    Error error = Error::from_errno("starting a helper process");
    ::close(fds[0]);
    ::close(fds[1]);
    return error;
  }
  if (pid == 0) {
    ::close(fds[0]);
    auto answer = fn();
    bool written = write_all(fds[1], answer ? "+" + *answer : "!" + answer.error().describe());
    ::_exit(written ? 0 : 1);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text.empty()) {
    return Error("a helper process died before it answered");
  }
  if (text[0] == '!') {
    return Error(text.substr(1));
  }
  return text.substr(1);
}

}  // namespace mfserv
