// The namespace sandbox every worker runs in (design.md §5): mount, PID, IPC and UTS
// namespaces (and an empty network namespace with `network = none`), the host filesystem
// read-only with a private /tmp, hidden folders (the mfserv home, other plugins), the plugin
// folder read-only and its writable paths read-write, an unprivileged user, no capability,
// no_new_privs and a seccomp deny-list.
//
// Everything is prepared in the supervisor (prepare_sandbox: user lookup, the seccomp BPF
// program, path strings); the child only makes system calls on that memory (enter_sandbox).
#pragma once

#include <linux/filter.h>
#include <sys/capability.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace mfserv::isolation {

struct SandboxSpec {
  std::string hostname;           // "APP.PLUGIN" (cut to 64 bytes)
  bool network_none = false;      // new, empty network namespace
  std::vector<std::string> hide;  // covered by an empty read-only tmpfs
  // Hidden the same way, one list shared by every sandbox of a supervisor (other plugins'
  // folders): it may name the sandbox's own plugin, which `readonly` shows again.
  std::shared_ptr<const std::vector<std::string>> hide_shared;
  std::vector<std::string> private_tmp;  // covered by a private writable tmpfs (/tmp, /dev/shm)
  std::vector<std::string> readonly;     // shown read-only even under a hidden folder
  std::vector<std::string> writable;     // shown read-write
  std::string user;                      // the user to run as ("root" only when asked)
  bool seccomp = true;
};

// The steps between clone and exec, named for error messages ("mounting /tmp: ...").
enum class SandboxStep : int {
  k_none = 0,
  k_private_mounts,
  k_keep_tree,
  k_read_only_root,
  k_hide,
  k_expose,
  k_proc,
  k_hostname,
  k_groups,
  k_gid,
  k_bounding_set,
  k_uid,
  k_capabilities,
  k_no_new_privs,
  k_seccomp,
};
const char* to_string(SandboxStep step);

struct MountOp {
  std::string path;
  int tree_fd = -1;  // filled in the child (open_tree clone)
};

struct PreparedSandbox {
  std::string hostname;
  bool network_none = false;
  std::vector<MountOp> hide;
  std::shared_ptr<const std::vector<std::string>> hide_shared;  // see SandboxSpec
  std::vector<MountOp> private_tmp;
  std::vector<MountOp> readonly;
  std::vector<MountOp> writable;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // Built once per process and shared by every sandbox; null: no filter.
  std::shared_ptr<const std::vector<sock_filter>> seccomp_program;
  // An empty capability set, allocated here so the child only calls cap_set_proc.
  std::unique_ptr<std::remove_pointer_t<cap_t>, int (*)(void*)> no_capabilities{nullptr, cap_free};
  std::string mkdir_scratch;  // a buffer long enough for any mount path
  // mfserv-init (O_PATH, opened once per process), exec'd as PID 1 once the program is forked;
  // -1 when it is not beside the running binary: the forked init then stays in place.
  int init_fd = -1;
};

// Where mfserv-init was found (beside the running executable), "" when it was not.
std::string sandbox_init_path();

// Resolves the user, builds the seccomp program and orders the mounts. An error names what
// is wrong (unknown user, a writable path that does not exist...).
Result<PreparedSandbox> prepare_sandbox(const SandboxSpec& spec);

// In the child, after clone(CLONE_NEWNS|CLONE_NEWPID|...), as root: mounts, hostname.
// Returns 0, or an errno with *STEP set.
int enter_sandbox_mounts(PreparedSandbox& sandbox, SandboxStep* step);
// Then, after rlimits and chdir: groups, gid, uid, capabilities, no_new_privs, seccomp.
int enter_sandbox_identity(const PreparedSandbox& sandbox, SandboxStep* step);

// The namespaces to clone for SANDBOX.
int sandbox_clone_flags(const PreparedSandbox& sandbox);

}  // namespace mfserv::isolation
