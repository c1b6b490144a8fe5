#include "util/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "util/unique_fd.hpp"

namespace mfserv {

Result<std::string> read_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO without a writer returns at once (then refused below).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    return Error::from_errno("opening " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Error::from_errno("reading " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(path + " is not a regular file");
  }
  return read_all(fd.get(), path, k_max_read_file);
}

std::string untraversable_dir(const std::string& path, uid_t uid, gid_t gid, bool with_self) {
  std::string dir;
  size_t from = 1;
  while (from <= path.size()) {
    size_t end = path.find('/', from);
    if (end == std::string::npos) {
      end = path.size();
    }
    dir = path.substr(0, end);
    from = end + 1;
    if (dir.size() <= 1 || (!with_self && end == path.size())) {
      continue;
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      continue;
    }
    const bool traversable = uid == 0 || (st.st_mode & S_IXOTH) ||
                             (st.st_gid == gid && (st.st_mode & S_IXGRP)) ||
                             (st.st_uid == uid && (st.st_mode & S_IXUSR));
    if (!traversable) {
      return dir;
    }
  }
  return "";
}

Result<std::string> read_all(int fd, const std::string& what, size_t max_bytes) {
  std::string content;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Error::from_errno("reading " + what);
    }
    if (n == 0) {
      break;
    }
    if (content.size() + static_cast<size_t>(n) > max_bytes) {
      return Error(fmt::format("{} is larger than {} bytes: not read", what, max_bytes));
    }
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

Status write_all(int fd, std::string_view data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Error::from_errno("writing " + what);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status write_file_atomic(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) {
    return Error::from_errno("creating " + tmp);
  }
  if (auto st = write_all(fd.get(), content, tmp); !st) {
    ::unlink(tmp.c_str());
    return st;
  }
  ::fchmod(fd.get(), mode);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = Error::from_errno("renaming " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return err;
  }
  return {};
}

Status write_existing(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    return Error::from_errno("opening " + path);
  }
  // Control files take one write; a short write is an error the kernel reports as such.
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n < 0) {
    return Error::from_errno("writing '" + content + "' to " + path);
  }
  return {};
}

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) {
    return {};
  }
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string part = path.substr(0, pos);
    if (part.empty()) {
      continue;
    }
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) {
      return Error::from_errno("creating directory " + part);
    }
  }
  if (!is_directory(path)) {
    return Error("creating directory " + path + ": a file of that name is in the way");
  }
  return {};
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

namespace {

// The entries of PATH but "." and "..", sorted; with DIRS_ONLY, only subdirectories (not
// links to one), told by readdir's d_type without a stat each where the file system gives it.
std::vector<std::string> read_names(const std::string& path, bool dirs_only) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) {
    return names;
  }
  while (auto* entry = ::readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (dirs_only) {
      bool is_dir = entry->d_type == DT_DIR;
      if (entry->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir = ::lstat((path + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      }
      if (!is_dir) {
        continue;
      }
    }
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::vector<std::string> list_dir(const std::string& path) {
  return read_names(path, false);
}

std::vector<std::string> list_subdirs(const std::string& path) {
  return read_names(path, true);
}

std::string beside_self(const std::string& name) {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    return "";
  }
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + name;
}

}  // namespace mfserv
