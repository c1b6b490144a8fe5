// Constructors of the two cgroup backends; detect_cgroups() picks one.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "isolation/cgroup.hpp"

namespace mfserv::isolation {

// The leaf a delegated supervisor moves itself into (CgroupBackend::enter_leaf).
inline constexpr const char* k_supervisor_leaf = "supervisor";

// Where a v2 backend puts its cgroups.
struct V2Base {
  std::string rel;  // "" (the hierarchy root) or the delegated cgroup, "mfserv.slice/x.service"
  bool delegated = false;
  std::string source;  // how the delegation was recognised, for `mfserv check`
};

// MOUNTS: controller name -> mount point of its v1 hierarchy (memory is required).
std::unique_ptr<CgroupBackend> make_v1_backend(std::map<std::string, std::string> mounts);
// ROOT: the cgroup2 mount point; BASE: the cgroup below it that mfserv's paths start from.
std::unique_ptr<CgroupBackend> make_v2_backend(std::string root);
std::unique_ptr<CgroupBackend> make_v2_backend(std::string root, V2Base base);

}  // namespace mfserv::isolation
