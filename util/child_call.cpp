#include "util/child_call.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "util/fs.hpp"

namespace mfserv {

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
    auto written = write_all(fds[1], answer ? "+" + *answer : "!" + answer.error().describe(),
                             "a helper's answer");
    ::_exit(written ? 0 : 1);
  }
  ::close(fds[1]);
  auto text = read_all(fds[0], "a helper's answer");
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!text || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || text->empty()) {
    return Error("a helper process died before it answered");
  }
  if ((*text)[0] == '!') {
    return Error(text->substr(1));
  }
  return text->substr(1);
}

}  // namespace mfserv
