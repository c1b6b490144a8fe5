#include "runtime/control.hpp"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "util/child_call.hpp"
#include "util/strings.hpp"

namespace mfserv::runtime {
namespace {

constexpr size_t k_max_message = 1 << 20;

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error("socket path " + path + " is longer than the " +
                 std::to_string(sizeof addr.sun_path - 1) +
                 " bytes a unix socket allows: use a shorter --home");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Reads until a newline or EOF, waiting at most TIMEOUT_MS in total.
Result<std::string> read_line(int fd, int timeout_ms) {
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[4096];
  while (data.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      return Error("timed out waiting on the control socket");
    }
    pollfd pfd{fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    if (rc <= 0) {
      continue;
    }
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return Error::from_errno("reading the control socket");
    }
    if (n == 0) {
      break;
    }
    data.append(buffer, static_cast<size_t>(n));
    if (data.size() > k_max_message) {
      return Error("control message too large");
    }
  }
  return data.substr(0, data.find('\n'));
}

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace

Result<nlohmann::json> control_call(const Home& home, const nlohmann::json& request,
                                    int timeout_ms) {
  auto addr = socket_address(home.control_socket());
  if (!addr) {
    return addr.error();
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return Error::from_errno("creating a unix socket");
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED) {
      return Error("no mfserv is running for home " + home.root +
                   " (start it with `mfserv --home " + home.root + " run`)");
    }
    if (errno == EACCES || errno == EPERM) {
      return Error("connecting to " + home.control_socket() +
                   ": permission denied (root and members of the mfserv group may use it)");
    }
    return Error::from_errno("connecting to " + home.control_socket());
  }
  write_all(fd.get(), request.dump() + "\n");
  auto line = read_line(fd.get(), timeout_ms);
  if (!line) {
    return line.error();
  }
  if (line->empty()) {
    return Error("the supervisor of " + home.root +
                 " closed the connection without answering: it has probably exited (see `mfserv "
                 "--home " +
                 home.root + " status`)");
  }
  nlohmann::json answer;
  try {
    answer = nlohmann::json::parse(*line);
  } catch (const nlohmann::json::exception& e) {
    return Error(std::string("the supervisor sent an unreadable answer: ") + e.what());
  }
  if (answer.is_object() && answer.value("refused", false)) {
    return Error(answer.value("error", std::string("refused by the supervisor")));
  }
  return answer;
}

ControlAccess control_access() {
  auto answer = call_in_child([]() -> Result<std::string> {
    const struct group* gr = ::getgrnam("mfserv");
    const struct passwd* pw = ::getpwnam("mfserv");
    return std::to_string(gr ? static_cast<long long>(gr->gr_gid) : -1LL) + " " +
           std::to_string(pw ? static_cast<long long>(pw->pw_uid) : -1LL);
  });
  ControlAccess access;
  const auto fields = answer ? split(*answer, ' ') : std::vector<std::string>{};
  if (fields.size() == 2 && fields[0] != "-1") {
    access.operators_gid = static_cast<gid_t>(std::stoll(fields[0]));
  }
  if (fields.size() == 2 && fields[1] != "-1") {
    access.workers_uid = static_cast<uid_t>(std::stoll(fields[1]));
  }
  return access;
}

uid_t control_peer_uid(int fd) {
  struct ucred cred {};
  socklen_t size = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) {
    return static_cast<uid_t>(-1);
  }
  return cred.uid;
}

Result<UniqueFd> control_listen(const Home& home, gid_t operators_gid) {
  auto addr = socket_address(home.control_socket());
  if (!addr) {
    return addr.error();
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    return Error::from_errno("creating the control socket");
  }
  // The home lock is held: whatever is at that path is a leftover of an earlier run.
  struct stat st {};
  if (::lstat(home.control_socket().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(home.control_socket().c_str());
  }
  mode_t old_mask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr);
  ::umask(old_mask);
  if (rc != 0) {
    return Error::from_errno("binding the control socket " + home.control_socket());
  }
  if (operators_gid != static_cast<gid_t>(-1) &&
      (::chown(home.control_socket().c_str(), 0, operators_gid) != 0 ||
       ::chmod(home.control_socket().c_str(), 0660) != 0)) {
    return Error::from_errno("opening the control socket to the mfserv group");
  }
  if (::listen(fd.get(), 16) != 0) {
    return Error::from_errno("listening on the control socket");
  }
  return fd;
}

Result<nlohmann::json> control_read_request(int fd) {
  auto line = read_line(fd, 2000);
  if (!line) {
    return line.error();
  }
  try {
    return nlohmann::json::parse(*line);
  } catch (const nlohmann::json::exception& e) {
    return Error(std::string("unreadable request: ") + e.what());
  }
}

void control_write_answer(int fd, const nlohmann::json& answer) {
  write_all(fd, answer.dump() + "\n");
}

}  // namespace mfserv::runtime
