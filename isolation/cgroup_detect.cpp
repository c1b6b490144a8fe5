// Picks the cgroup backend from libcgroup's view of the mount table, and the helper a child
// uses to join its cgroup between fork and exec.
#include <libcgroup.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>

#include "isolation/cgroup.hpp"
#include "isolation/cgroup_backends.hpp"
#include "util/fs.hpp"

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

static bool is_cgroup2(const std::string& path) {
  struct statfs fs{};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

Result<std::unique_ptr<CgroupBackend>> detect_cgroups() {
  if (int rc = cgroup_init(); rc != 0) {
    return Error(std::string("reading the cgroup mount table (libcgroup): ") + cgroup_strerror(rc) +
                 "; is /sys/fs/cgroup mounted?");
  }
  char* memory_mount = nullptr;
  if (cgroup_get_subsys_mount_point("memory", &memory_mount) != 0 || memory_mount == nullptr) {
    return Error("no cgroup memory controller is mounted on this host; mfserv needs it to "
                 "enforce memory_max (see `mfserv check`)");
  }
  std::string memory_path = memory_mount;
  std::free(memory_mount);
  if (is_cgroup2(memory_path)) {
    return make_v2_backend(memory_path);
  }
  std::map<std::string, std::string> mounts;
  for (const char* controller : {"memory", "pids", "cpu", "freezer"}) {
    char* mount = nullptr;
    if (cgroup_get_subsys_mount_point(controller, &mount) == 0 && mount != nullptr) {
      if (!is_cgroup2(mount)) {
        mounts[controller] = mount;
      }
      std::free(mount);
    }
  }
  return make_v1_backend(std::move(mounts));
}

}  // namespace mfserv::isolation
