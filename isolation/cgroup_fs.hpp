// cgroupfs helpers shared by both backends: walking a subtree, reading pids and counters,
// writing control files, removing cgroups, finding this process's own cgroup.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace mfserv::isolation {

// Directories of the subtree at DIR, deepest first (DIR itself last).
std::vector<std::string> subtree_dirs_deepest_first(const std::string& dir);
// Pids listed in cgroup.procs of DIR alone, and of DIR and every cgroup below it.
std::vector<pid_t> cgroup_pids(const std::string& dir);
std::vector<pid_t> subtree_pids(const std::string& dir);
// rmdir of every cgroup of the subtree, deepest first. Missing is fine; see remove_cgroup.
Status remove_subtree(const std::string& dir);
// rmdir of DIR, retrying EBUSY for a moment while DIR lists no process and no child cgroup:
// a task that has just left or died can keep it populated briefly (cgroup-v2.rst,
// "populated"; css offlining is asynchronous). Missing is fine.
Status remove_cgroup(const std::string& dir);
// The value of KEY in a flat-keyed file such as memory.events ("oom_kill 3").
std::optional<std::uint64_t> read_keyed_value(const std::string& path, const std::string& key);
std::optional<std::uint64_t> read_number(const std::string& path);
// Writes VALUE into DIR/FILE with an error naming the cgroup, the file and the value.
Status write_control(const std::string& dir, const std::string& file, const std::string& value);
// Same, retrying EBUSY for up to TIMEOUT_MS: cgroup.subtree_control refuses a change while
// the kernel still accounts a process that has just moved out (cgroup-v2.rst, "no internal
// process constraint").
Status write_control_retrying(const std::string& dir, const std::string& file,
                              const std::string& value, int timeout_ms);
// This process's cgroup: in the v1 hierarchy holding CONTROLLER, or with CONTROLLER empty
// in the v2 hierarchy ("0::/path" line of /proc/self/cgroup). "" when not found.
std::string own_cgroup(const std::string& controller);
// "/a/b" + "c/d" -> "/a/b/c/d", without doubled or trailing slashes ("/" stays "/").
std::string join_cgroup_path(const std::string& base, const std::string& rel);

}  // namespace mfserv::isolation
