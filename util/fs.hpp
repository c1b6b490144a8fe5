// Small file helpers over raw system calls, returning Result.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "util/result.hpp"

namespace mfserv {

// The content of the regular file PATH (symlinks followed), at most k_max_read_file bytes.
// Anything else is an error, never a wait: a FIFO or a device at a configuration path (a
// plugin's config.ini, mfserv.ini) would otherwise block or feed the reader forever.
constexpr size_t k_max_read_file = 16 * 1024 * 1024;
Result<std::string> read_file(const std::string& path);
// The first folder of PATH (its ancestors, then PATH itself when WITH_SELF) that UID with
// primary group GID may not traverse, by its mode bits (supplementary groups and ACLs not
// counted); "" when there is none.
std::string untraversable_dir(const std::string& path, uid_t uid, gid_t gid, bool with_self);
// Everything FD gives until end of file (EINTR retried), at most MAX_BYTES; WHAT names it in
// an error.
Result<std::string> read_all(int fd, const std::string& what,
                             size_t max_bytes = static_cast<size_t>(-1));
// All of DATA to FD (EINTR and short writes retried); WHAT names it in an error.
Status write_all(int fd, std::string_view data, const std::string& what);
// Writes to PATH.tmp then renames over PATH, so readers see the old or the new file whole.
Status write_file_atomic(const std::string& path, const std::string& content, mode_t mode = 0644);
// Writes without truncating or creating: for cgroup and proc control files.
Status write_existing(const std::string& path, const std::string& content);
// mkdir -p; existing directories are fine.
Status make_dirs(const std::string& path, mode_t mode = 0755);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
std::vector<std::string> list_dir(const std::string& path);
// NAME in the folder of the running executable (/proc/self/exe), where mfserv's executables
// sit side by side; "" when /proc/self/exe cannot be read.
std::string beside_self(const std::string& name);
// The subdirectories only (not links to one), sorted: from readdir's d_type, without a stat
// per entry (a cgroup directory holds dozens of control files).
std::vector<std::string> list_subdirs(const std::string& path);

}  // namespace mfserv
