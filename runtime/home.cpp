#include "runtime/home.hpp"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::runtime {

std::string Home::instance() const {
  return fmt::format("h{:08x}", fnv1a(root));
}

images::LoadOptions Home::load_options() const {
  images::LoadOptions options;
  options.override_dirs.push_back(config_dir() + "/plugins");
  const char* etc = std::getenv("MFSERV_ETC_DIR");
  options.override_dirs.push_back(std::string(etc && *etc ? etc : "/etc/mfserv") + "/plugins");
  return options;
}

Result<Home> resolve_home(const std::string& option) {
  std::string path = option;
  if (path.empty()) {
    const char* env = std::getenv("MFSERV_HOME");
    if (env && *env) {
      path = env;
    } else if (::geteuid() == 0) {
      path = "/var/lib/mfserv";
    } else {
      const char* user_home = std::getenv("HOME");
      path = std::string(user_home ? user_home : "/tmp") + "/.local/share/mfserv";
    }
  }
  // Nothing is created here: commands that only read (ps, status, stop...) must not leave a
  // folder behind for a mistyped --home; those that write call prepare_home(). The existing
  // part of the path is resolved (links, ".."), so the home has one name before and after
  // it is created (its cgroups are named after it).
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec).lexically_normal();
  if (ec) {
    return Error("resolving the mfserv home " + path, ec.value());
  }
  fs::path existing = absolute;
  fs::path rest;
  while (!fs::exists(existing, ec) && existing.has_relative_path()) {
    rest = existing.filename() / rest;
    existing = existing.parent_path();
  }
  char resolved[PATH_MAX];
  if (!::realpath(existing.c_str(), resolved)) {
    return Error::from_errno("resolving the mfserv home " + path);
  }
  fs::path home = fs::path(resolved) / rest;
  std::string text = home.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') {
    text.pop_back();
  }
  return Home{text};
}

Status prepare_home(const Home& home) {
  for (const auto& dir : {home.plugins_dir(), home.config_dir() + "/plugins", home.log_dir(),
                          home.run_dir(), home.sockets_dir(), home.tmp_dir()}) {
    if (auto st = make_dirs(dir, 0755); !st) {
      return st;
    }
  }
  return {};
}

Result<UniqueFd> lock_home(const Home& home) {
  UniqueFd fd(::open(home.lock_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) {
    return Error::from_errno("opening " + home.lock_path());
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    // The holder writes its pid just after taking the lock: give it a moment (at most
    // 100 ms) rather than print an empty pid.
    std::string pid;
    for (int attempt = 0; attempt < 20 && pid.empty(); ++attempt) {
      auto holder = read_file(home.lock_path());
      pid = holder ? trim(*holder) : "";
      if (pid.empty()) {
        ::usleep(5000);
      }
    }
    return Error(
        fmt::format("home {} is already used by a running mfserv{}: stop it "
                    "with `mfserv --home {} stop` or use another --home",
                    home.root, pid.empty() ? "" : " (pid " + pid + ")", home.root));
  }
  if (::ftruncate(fd.get(), 0) == 0) {
    std::string pid = std::to_string(::getpid()) + "\n";
    (void)!::pwrite(fd.get(), pid.data(), pid.size(), 0);
  }
  return fd;
}

bool home_is_locked(const Home& home) {
  UniqueFd fd(::open(home.lock_path().c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return false;
  }
  return ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0;
}

Result<std::size_t> stop_leftovers(isolation::CgroupBackend& cgroups, const Home& home) {
  const std::string root = home.cgroup_root();
  const std::size_t left = cgroups.pids(root).size();
  if (auto st = cgroups.kill_all(root, 5000); !st) {
    return st.error();
  }
  if (auto st = cgroups.remove(root); !st) {
    return st.error();
  }
  // Its sockets, the replacements' staging ones (.nN) included: nothing listens on them any
  // more. Only sockets: never another kind of file someone put there.
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(home.sockets_dir(), error)) {
    if (entry.symlink_status(error).type() == std::filesystem::file_type::socket) {
      std::filesystem::remove(entry.path(), error);
    }
  }
  return left;
}

}  // namespace mfserv::runtime
