#include "isolation/sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

#include "util/child_call.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::isolation {
namespace {

struct SeccompDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using SeccompPtr = std::unique_ptr<void, SeccompDeleter>;

// The deny-list: what container engines refuse by default (see moby's default seccomp
// profile), answered with EPERM so that programs see an ordinary permission error.
constexpr const char* k_denied_syscalls[] = {
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "reboot",
    "swapon",
    "swapoff",
    "clock_settime",
    "clock_adjtime",
    "settimeofday",
    "adjtimex",
    "stime",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "syslog",
    "vhangup",
    "nfsservctl",
    "sethostname",
    "setdomainname",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "fanotify_init",
    "pidfd_getfd",
};

constexpr int k_namespace_flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                     CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};

Result<std::vector<sock_filter>> build_seccomp_program() {
  SeccompPtr ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    return Error("seccomp: libseccomp could not create a filter");
  }
  for (const char* name : k_denied_syscalls) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) {
      continue;  // not a syscall on this architecture
    }
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0) {
      return Error(std::string("seccomp: denying ") + name, -rc);
    }
  }
  // clone may not create namespaces; clone3 hides its flags in memory, so it answers ENOSYS
  // and libc falls back to clone.
  for (int flag : k_namespace_flags) {
    auto flag_bits = static_cast<scmp_datum_t>(flag);
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, flag_bits, flag_bits));
        rc < 0) {
      return Error("seccomp: restricting clone", -rc);
    }
  }
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc < 0) {
    return Error("seccomp: restricting clone3", -rc);
  }
  // Export the BPF now: loading it in the child must not allocate.
  UniqueFd memfd(::memfd_create("mfserv-seccomp", MFD_CLOEXEC));
  if (!memfd) {
    return Error::from_errno("seccomp: memfd_create");
  }
  if (int rc = seccomp_export_bpf(ctx.get(), memfd.get()); rc < 0) {
    return Error("seccomp: exporting the filter", -rc);
  }
  off_t size = ::lseek(memfd.get(), 0, SEEK_END);
  std::vector<sock_filter> program(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(memfd.get(), program.data(), static_cast<size_t>(size), 0) != size) {
    return Error::from_errno("seccomp: reading the exported filter");
  }
  return program;
}

std::vector<MountOp> to_ops(std::vector<std::string> paths) {
  // Shorter paths first: an outer mount must exist before an inner one is placed on it.
  std::sort(paths.begin(), paths.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  std::vector<MountOp> ops;
  for (auto& path : paths) {
    ops.push_back(MountOp{std::move(path), -1});
  }
  return ops;
}

// mkdir -p in the child: copies PATH into SCRATCH (sized in the parent) piece by piece.
int make_path(const std::string& path, char* scratch) {
  size_t length = path.size();
  for (size_t i = 1; i <= length; ++i) {
    if (i == length || path[i] == '/') {
      std::memcpy(scratch, path.data(), i);
      scratch[i] = '\0';
      if (::mkdir(scratch, 0755) != 0 && errno != EEXIST) {
        return errno;
      }
    }
  }
  return 0;
}

int set_read_only(const char* path, bool read_only, bool recursive) {
  struct mount_attr attr {};
  if (read_only) {
    attr.attr_set = MOUNT_ATTR_RDONLY;
  } else {
    attr.attr_clr = MOUNT_ATTR_RDONLY;
  }
  if (::mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof attr) != 0) {
    return errno;
  }
  return 0;
}

// mfserv-init beside the running executable, opened once (O_PATH: exec'd through the fd, so
// that it need not be visible inside the sandbox); -1 when it is not there.
int init_program_fd() {
  static const int fd = [] {
    const std::string path = sandbox_init_path();
    return path.empty() ? -1 : ::open(path.c_str(), O_PATH | O_CLOEXEC);
  }();
  return fd;
}

// Calls VISIT on every folder to hide (the sandbox's own, then the shared ones) without
// allocating, until it returns an errno.
template <typename Visit>
int for_each_hidden(const PreparedSandbox& sandbox, Visit visit) {
  for (const auto& op : sandbox.hide) {
    if (int err = visit(op.path.c_str()); err != 0) {
      return err;
    }
  }
  if (sandbox.hide_shared) {
    for (const auto& path : *sandbox.hide_shared) {
      if (int err = visit(path.c_str()); err != 0) {
        return err;
      }
    }
  }
  return 0;
}

}  // namespace

const char* to_string(SandboxStep step) {
  switch (step) {
    case SandboxStep::k_none:
      return "sandbox";
    case SandboxStep::k_private_mounts:
      return "making mounts private";
    case SandboxStep::k_keep_tree:
      return "cloning a plugin or writable path";
    case SandboxStep::k_read_only_root:
      return "making the host filesystem read-only";
    case SandboxStep::k_hide:
      return "hiding a folder / mounting a private /tmp";
    case SandboxStep::k_expose:
      return "mounting the plugin folder or a writable path";
    case SandboxStep::k_proc:
      return "mounting /proc";
    case SandboxStep::k_hostname:
      return "setting the hostname";
    case SandboxStep::k_groups:
      return "setting supplementary groups";
    case SandboxStep::k_gid:
      return "setting the group id";
    case SandboxStep::k_bounding_set:
      return "dropping the capability bounding set";
    case SandboxStep::k_uid:
      return "setting the user id";
    case SandboxStep::k_capabilities:
      return "dropping capabilities";
    case SandboxStep::k_no_new_privs:
      return "setting no_new_privs";
    case SandboxStep::k_seccomp:
      return "loading the seccomp filter";
  }
  return "sandbox";
}

namespace {

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// USER's ids and groups, looked up in a child (util/child_call.hpp): getgrouplist() asks every
// NSS source, and a module it loads (nss_systemd, ldap...) would stay in the supervisor for good.
Result<Account> resolve_account(const std::string& user) {
  auto answer = call_in_child([&user]() -> Result<std::string> {
    // A name, or a uid (the config accepts both); either must be in the user database.
    struct passwd* pw = ::getpwnam(user.c_str());
    auto uid = parse_int(user);
    if (!pw && uid && *uid >= 0 && *uid <= static_cast<long long>(UINT32_MAX - 1)) {
      pw = ::getpwuid(static_cast<uid_t>(*uid));
    }
    if (!pw) {
      return Error("user '" + user +
                   "' does not exist on this host: create it (scripts/install-deps creates "
                   "'mfserv'), or set another `user` in the app's override file "
                   "(HOME/config/plugins/PLUGIN.ini or /etc/mfserv/plugins/PLUGIN.ini)");
    }
    const std::string name = pw->pw_name;
    int count = 64;
    std::vector<gid_t> groups(static_cast<size_t>(count));
    const gid_t primary = pw->pw_gid;
    const uid_t found_uid = pw->pw_uid;
    if (::getgrouplist(name.c_str(), primary, groups.data(), &count) < 0) {
      groups.resize(static_cast<size_t>(count));
      ::getgrouplist(name.c_str(), primary, groups.data(), &count);
    }
    groups.resize(static_cast<size_t>(count));
    std::string text = std::to_string(found_uid) + " " + std::to_string(primary);
    for (gid_t gid : groups) {
      text += " " + std::to_string(gid);
    }
    return text;
  });
  if (!answer) {
    return answer.error();
  }
  Account account;
  std::vector<unsigned long> ids;
  for (const auto& word : split(*answer, ' ')) {
    ids.push_back(std::stoul(word));
  }
  account.uid = static_cast<uid_t>(ids.at(0));
  account.gid = static_cast<gid_t>(ids.at(1));
  for (size_t i = 2; i < ids.size(); ++i) {
    account.groups.push_back(static_cast<gid_t>(ids[i]));
  }
  return account;
}

}  // namespace

Result<PreparedSandbox> prepare_sandbox(const SandboxSpec& spec) {
  PreparedSandbox sandbox;
  sandbox.hostname = spec.hostname.substr(0, 64);
  sandbox.network_none = spec.network_none;

  auto account = resolve_account(spec.user);
  if (!account) {
    return account.error();
  }
  sandbox.uid = account->uid;
  sandbox.gid = account->gid;
  sandbox.groups = std::move(account->groups);

  for (const auto& path : spec.writable) {
    if (!is_directory(path) && !path_exists(path)) {
      return Error("writable path " + path +
                   " does not exist: create it or remove it from writable_paths");
    }
  }
  for (const auto& path : spec.readonly) {
    if (!path_exists(path)) {
      return Error("read-only path " + path + " does not exist");
    }
  }
  sandbox.hide = to_ops(spec.hide);
  sandbox.hide_shared = spec.hide_shared;
  sandbox.private_tmp = to_ops(spec.private_tmp);
  sandbox.readonly = to_ops(spec.readonly);
  sandbox.writable = to_ops(spec.writable);
  size_t longest = 0;
  for (const auto* ops : {&sandbox.readonly, &sandbox.writable}) {
    for (const auto& op : *ops) {
      longest = std::max(longest, op.path.size());
    }
  }
  sandbox.mkdir_scratch.assign(longest + 1, '\0');

  if (spec.seccomp) {
    // The same deny-list for every sandbox: built on first use, then shared.
    static std::shared_ptr<const std::vector<sock_filter>> shared_program;
    if (!shared_program) {
      auto program = build_seccomp_program();
      if (!program) {
        return program.error();
      }
      shared_program = std::make_shared<const std::vector<sock_filter>>(std::move(*program));
    }
    sandbox.seccomp_program = shared_program;
  }
  sandbox.init_fd = init_program_fd();
  sandbox.no_capabilities.reset(cap_init());
  if (!sandbox.no_capabilities) {
    return Error::from_errno("libcap: cap_init");
  }
  return sandbox;
}

std::string sandbox_init_path() {
  std::string path = beside_self("mfserv-init");
  return !path.empty() && ::access(path.c_str(), X_OK) == 0 ? path : "";
}

int sandbox_clone_flags(const PreparedSandbox& sandbox) {
  return CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
         (sandbox.network_none ? CLONE_NEWNET : 0);
}

int enter_sandbox_mounts(PreparedSandbox& sandbox, SandboxStep* step) {
  auto failed = [step](SandboxStep at) {
    *step = at;
    return errno;
  };
  // Nothing done here may propagate back to the host's mount namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return failed(SandboxStep::k_private_mounts);
  }
  // Detached copies of what must stay visible, taken before anything hides it.
  for (auto* ops : {&sandbox.readonly, &sandbox.writable}) {
    for (auto& op : *ops) {
      op.tree_fd = ::open_tree(AT_FDCWD, op.path.c_str(),
                               OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
      if (op.tree_fd < 0) {
        return failed(SandboxStep::k_keep_tree);
      }
    }
  }
  {
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
    if (::mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) != 0) {
      return failed(SandboxStep::k_read_only_root);
    }
  }
  for (auto& op : sandbox.private_tmp) {
    if (::mount("tmpfs", op.path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0 &&
        errno != ENOENT) {
      return failed(SandboxStep::k_hide);
    }
  }
  const int hidden = for_each_hidden(sandbox, [](const char* path) {
    // A folder already covered by an earlier tmpfs is gone: ENOENT is fine.
    if (::mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0 &&
        errno != ENOENT) {
      return errno;
    }
    return 0;
  });
  if (hidden != 0) {
    errno = hidden;
    return failed(SandboxStep::k_hide);
  }
  for (auto* ops : {&sandbox.readonly, &sandbox.writable}) {
    bool read_only = ops == &sandbox.readonly;
    for (auto& op : *ops) {
      if (int err = make_path(op.path, sandbox.mkdir_scratch.data()); err != 0 && err != EROFS) {
        errno = err;
        return failed(SandboxStep::k_expose);
      }
      if (::move_mount(op.tree_fd, "", AT_FDCWD, op.path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        return failed(SandboxStep::k_expose);
      }
      ::close(op.tree_fd);
      op.tree_fd = -1;
      if (int err = set_read_only(op.path.c_str(), read_only, true); err != 0) {
        errno = err;
        return failed(SandboxStep::k_expose);
      }
    }
  }
  (void)for_each_hidden(sandbox, [](const char* path) {
    (void)set_read_only(path, true, false);
    return 0;
  });
  // A /proc of the new PID namespace: the worker sees its own processes only.
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return failed(SandboxStep::k_proc);
  }
  if (::sethostname(sandbox.hostname.data(), sandbox.hostname.size()) != 0) {
    return failed(SandboxStep::k_hostname);
  }
  return 0;
}

int enter_sandbox_identity(const PreparedSandbox& sandbox, SandboxStep* step) {
  auto failed = [step](SandboxStep at) {
    *step = at;
    return errno;
  };
  // Order matters (see bubblewrap's drop_privs): groups and gid while still root, then the
  // bounding set (needs CAP_SETPCAP), then the uid, then whatever capability is left.
  if (::setgroups(sandbox.groups.size(), sandbox.groups.data()) != 0) {
    return failed(SandboxStep::k_groups);
  }
  if (::setresgid(sandbox.gid, sandbox.gid, sandbox.gid) != 0) {
    return failed(SandboxStep::k_gid);
  }
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return failed(SandboxStep::k_bounding_set);
    }
  }
  if (::setresuid(sandbox.uid, sandbox.uid, sandbox.uid) != 0) {
    return failed(SandboxStep::k_uid);
  }
  // Effective, permitted and inheritable all empty; ambient cleared (also for user = root).
  if (cap_set_proc(sandbox.no_capabilities.get()) != 0 ||
      ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return failed(SandboxStep::k_capabilities);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return failed(SandboxStep::k_no_new_privs);
  }
  if (sandbox.seccomp_program && !sandbox.seccomp_program->empty()) {
    struct sock_fprog program {};
    program.len = static_cast<unsigned short>(sandbox.seccomp_program->size());
    program.filter = const_cast<sock_filter*>(sandbox.seccomp_program->data());
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) {
      return failed(SandboxStep::k_seccomp);
    }
  }
  return 0;
}

}  // namespace mfserv::isolation
