// Picks the cgroup backend from libcgroup's view of the mount table, finds a delegated v2
// base (systemd's Delegate=yes), and holds the helpers a child uses to join its cgroup
// between fork and exec and the runtime uses to drain an OOM watch fd.
#include <libcgroup.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <optional>

#include "isolation/cgroup.hpp"
#include "isolation/cgroup_backends.hpp"
#include "isolation/cgroup_fs.hpp"
#include "util/child_call.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace mfserv::isolation {

int join_cgroup_fds(const int* fds, int count) {
  char digits[24];
  char text[24];
  long pid = static_cast<long>(::getpid());
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + pid % 10);
    pid /= 10;
  } while (pid > 0);
  for (int i = 0; i < n; ++i) {
    text[i] = digits[n - 1 - i];
  }
  for (int i = 0; i < count; ++i) {
    if (::write(fds[i], text, static_cast<size_t>(n)) < 0) {
      return errno;
    }
  }
  return 0;
}

void drain_oom_watch(int fd) {
  // Big enough for one inotify event with its name, and for the 8 bytes of an eventfd.
  alignas(8) char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0 || (n < 0 && errno == EINTR)) {
      continue;
    }
    return;
  }
}

static bool is_cgroup2(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

static std::string parent_of(const std::string& cgroup) {
  auto slash = cgroup.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : cgroup.substr(0, slash);
}

// Whether the v2 cgroup CGROUP ("/a/b") was delegated to this process: writable, and marked
// by the manager (systemd sets the "trusted.delegate" and, since v254, "user.delegate" xattr
// for Delegate=yes: https://systemd.io/CGROUP_DELEGATION/) or by MFSERV_CGROUP_DELEGATED=1.
static std::optional<std::string> delegation_source(const std::string& mount,
                                                    const std::string& cgroup) {
  if (cgroup.empty() || cgroup == "/") {
    return std::nullopt;
  }
  std::string dir = mount + cgroup;
  for (const char* file : {"", "/cgroup.procs", "/cgroup.subtree_control"}) {
    if (::access((dir + file).c_str(), W_OK) != 0) {
      return std::nullopt;
    }
  }
  const char* env = std::getenv("MFSERV_CGROUP_DELEGATED");
  if (env != nullptr && std::string(env) == "1") {
    return std::string("MFSERV_CGROUP_DELEGATED=1");
  }
  for (const char* name : {"user.delegate", "trusted.delegate"}) {
    char value[8] = {};
    if (::getxattr(dir.c_str(), name, value, sizeof value - 1) > 0 && value[0] == '1') {
      return std::string(name) + " xattr";
    }
  }
  return std::nullopt;
}

static V2Base find_v2_base(const std::string& mount) {
  const char* env = std::getenv("MFSERV_CGROUP_DELEGATED");
  if (env != nullptr && std::string(env) == "0") {
    return {};
  }
  std::string own = own_cgroup("");
  // After enter_leaf() the supervisor sits in "<base>/supervisor": its base is the parent.
  std::string leaf_suffix = std::string("/") + k_supervisor_leaf;
  if (own.size() > leaf_suffix.size() &&
      own.compare(own.size() - leaf_suffix.size(), leaf_suffix.size(), leaf_suffix) == 0) {
    std::string parent = parent_of(own);
    if (auto source = delegation_source(mount, parent)) {
      return V2Base{parent.substr(1), true, *source};
    }
  }
  if (auto source = delegation_source(mount, own)) {
    return V2Base{own.substr(1), true, *source};
  }
  return {};
}

// libcgroup's cgroup_init() fills static mount tables: ~800 KiB of pages that would stay
// resident for the supervisor's whole life to answer one question asked at start. So the
// table is read in a short-lived child (util/child_call.hpp): one line "CONTROLLER<TAB>MOUNT"
// per mounted controller.
static Result<std::map<std::string, std::string>> controller_mounts() {
  auto answer = call_in_child([]() -> Result<std::string> {
    if (int rc = cgroup_init(); rc != 0) {
      return Error(std::string("reading the cgroup mount table (libcgroup): ") +
                   cgroup_strerror(rc) + "; is /sys/fs/cgroup mounted?");
    }
    std::string lines;
    for (const char* controller : {"memory", "pids", "cpu", "freezer"}) {
      char* mount = nullptr;
      if (cgroup_get_subsys_mount_point(controller, &mount) == 0 && mount != nullptr) {
        lines += std::string(controller) + "\t" + mount + "\n";
        std::free(mount);
      }
    }
    return lines;
  });
  if (!answer) {
    return answer.error();
  }
  std::map<std::string, std::string> mounts;
  for (const auto& line : split(*answer, '\n')) {
    auto tab = line.find('\t');
    if (tab != std::string::npos) {
      mounts[line.substr(0, tab)] = line.substr(tab + 1);
    }
  }
  return mounts;
}

Result<std::unique_ptr<CgroupBackend>> detect_cgroups() {
  auto found = controller_mounts();
  if (!found) {
    return found.error();
  }
  auto memory = found->find("memory");
  if (memory == found->end()) {
    return Error(
        "no cgroup memory controller is mounted on this host; mfserv needs it to "
        "enforce memory_max (see `mfserv check`)");
  }
  if (is_cgroup2(memory->second)) {
    return make_v2_backend(memory->second, find_v2_base(memory->second));
  }
  std::map<std::string, std::string> mounts;
  for (const auto& [controller, mount] : *found) {
    if (!is_cgroup2(mount)) {
      mounts[controller] = mount;
    }
  }
  return make_v1_backend(std::move(mounts));
}

}  // namespace mfserv::isolation
