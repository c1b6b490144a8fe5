// cgroupfs helpers shared by both backends: walking a subtree, reading pids, removing it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace mfserv::isolation {

// Directories of the subtree at DIR, deepest first (DIR itself last).
std::vector<std::string> subtree_dirs_deepest_first(const std::string& dir);
// Pids listed in cgroup.procs of DIR and every cgroup below it.
std::vector<pid_t> subtree_pids(const std::string& dir);
// rmdir of every cgroup of the subtree, deepest first. Missing is fine.
Status remove_subtree(const std::string& dir);
// The value of KEY in a flat-keyed file such as memory.events ("oom_kill 3").
std::optional<std::uint64_t> read_keyed_value(const std::string& path, const std::string& key);
std::optional<std::uint64_t> read_number(const std::string& path);
// Writes VALUE into DIR/FILE with an error naming the cgroup, the file and the value.
Status write_control(const std::string& dir, const std::string& file, const std::string& value);

}  // namespace mfserv::isolation
