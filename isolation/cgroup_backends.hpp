// Constructors of the two cgroup backends; detect_cgroups() picks one.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "isolation/cgroup.hpp"

namespace mfserv::isolation {

// MOUNTS: controller name -> mount point of its v1 hierarchy (memory is required).
std::unique_ptr<CgroupBackend> make_v1_backend(std::map<std::string, std::string> mounts);
// ROOT: the cgroup2 mount point.
std::unique_ptr<CgroupBackend> make_v2_backend(std::string root);

}  // namespace mfserv::isolation
