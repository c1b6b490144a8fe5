// `mfserv check` (check_command.hpp). Each probe asks the kernel what `mfserv run` will ask of
// it, rather than guessing from versions: the namespaces and a seccomp filter are tried in a
// forked child (unshare(2), seccomp(2)), the port is bound as nginx will bind it, nginx
// answers `nginx -v`. The cgroup facts come from the backend `run` would use
// (isolation::detect_cgroups()->check()).
#include "cli/check_command.hpp"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/common.hpp"
#include "isolation/cgroup.hpp"
#include "nginx-gen/nginx_control.hpp"
#include "runtime/front.hpp"
#include "runtime/home.hpp"
#include "runtime/settings.hpp"
#include "runtime/worker_setup.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::cli {
namespace {

using nlohmann::json;

constexpr int k_default_unprivileged_port_start = 1024;

// What the probes found: facts for --json, and the things `mfserv run` needs and this host
// lacks (each one sentence: what is missing and how to fix it).
struct Findings {
  json facts = json::object();
  std::vector<std::string> missing;
  std::vector<std::string> notes;
};

std::string errno_text(int error) {
  const char* name = ::strerrorname_np(error);
  return fmt::format("{} ({})", name != nullptr ? name : std::to_string(error),
                     std::strerror(error));
}

// Runs PROBE in a forked child and returns what it returns: 0, or an errno. The child makes
// only system calls (it may be a process whose namespaces or filters just changed).
template <typename Probe>
int in_child(Probe probe) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    return errno;
  }
  if (pid == 0) {
    ::_exit(probe());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return errno;
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

bool has_capability(cap_value_t capability, cap_flag_t set) {
  std::unique_ptr<std::remove_pointer_t<cap_t>, int (*)(void*)> caps(cap_get_proc(), cap_free);
  cap_flag_value_t value = CAP_CLEAR;
  return caps && cap_get_flag(caps.get(), capability, set, &value) == 0 && value == CAP_SET;
}

// --- privileges --------------------------------------------------------------------------

void probe_privileges(Findings& findings) {
  uid_t euid = ::geteuid();
  bool sys_admin = has_capability(CAP_SYS_ADMIN, CAP_EFFECTIVE);
  findings.facts["privileges"] = {
      {"uid", ::getuid()},
      {"euid", euid},
      {"root", euid == 0},
      {"cap_sys_admin", sys_admin},
      {"cap_net_bind_service", has_capability(CAP_NET_BIND_SERVICE, CAP_EFFECTIVE)},
  };
  if (euid != 0) {
    findings.missing.push_back(fmt::format(
        "root: this runs as uid {}, and `mfserv run` must run as root (it creates cgroups and "
        "namespaces, switches workers to their user and starts nginx): run it with sudo or "
        "as a systemd service",
        euid));
  }
}

// --- cgroups -----------------------------------------------------------------------------

void probe_cgroups(Findings& findings) {
  auto backend = isolation::detect_cgroups();
  if (!backend) {
    findings.facts["cgroups"] = {{"error", backend.error().describe()}};
    findings.missing.push_back("cgroups: " + backend.error().describe());
    return;
  }
  isolation::CgroupCheck check = (*backend)->check();
  findings.facts["cgroups"] = {
      {"layout", check.layout},
      {"backend", check.backend},
      {"hierarchy_root", check.hierarchy_root},
      {"own_cgroup", check.own_cgroup},
      {"base", check.base},
      {"delegated", check.delegated},
      {"delegation_source", check.delegation_source},
      {"controllers", check.controllers},
      {"missing", check.missing},
      {"swap_limit", check.swap_limit},
      {"kill_file", check.kill_file},
      {"notes", check.notes},
  };
  for (const auto& controller : check.missing) {
    if (controller == "memory") {
      findings.missing.push_back(
          "the cgroup memory controller is not usable in " + check.base +
          ": mfserv needs it to enforce memory_max (on v2 enable it in the parent's "
          "cgroup.subtree_control, under systemd with Delegate=yes)");
    }
  }
  for (const auto& note : check.notes) {
    findings.notes.push_back("cgroups: " + note);
  }
}

// --- namespaces --------------------------------------------------------------------------

struct NamespaceProbe {
  const char* name;
  int flag;
  bool needed;
  const char* use;
};

constexpr NamespaceProbe k_namespaces[] = {
    {"mount", CLONE_NEWNS, true, "read-only host and private /tmp of every worker"},
    {"pid", CLONE_NEWPID, true, "each worker sees its own processes only"},
    {"ipc", CLONE_NEWIPC, true, "no shared System V IPC with the host"},
    {"uts", CLONE_NEWUTS, true, "the hostname APP.PLUGIN"},
    {"network", CLONE_NEWNET, false, "apps with network = none"},
    {"user", CLONE_NEWUSER, false, "not used: the supervisor runs as root"},
};

std::string namespace_fix(const NamespaceProbe& probe, int error) {
  if (error == EPERM && ::geteuid() != 0) {
    return "needs root (CAP_SYS_ADMIN): run mfserv as root";
  }
  if (error == EPERM) {
    return "denied to root: a container runtime or seccomp profile forbids unshare(2); run "
           "mfserv on the host or in a privileged container";
  }
  if (error == ENOSPC) {
    return fmt::format("the limit is 0: sysctl user.max_{}_namespaces",
                       probe.flag == CLONE_NEWNS ? std::string("mnt") : probe.name);
  }
  if (error == EINVAL) {
    return "the kernel was built without this namespace";
  }
  return "";
}

void probe_namespaces(Findings& findings) {
  json facts = json::object();
  for (const auto& probe : k_namespaces) {
    int flag = probe.flag;
    int error = in_child([flag] { return ::unshare(flag) == 0 ? 0 : errno; });
    json entry = {{"available", error == 0}, {"needed", probe.needed}, {"use", probe.use}};
    if (error != 0) {
      std::string fix = namespace_fix(probe, error);
      entry["error"] = errno_text(error);
      entry["fix"] = fix;
      std::string line =
          fmt::format("{} namespace: unshare failed with {}{}{} (used for: {})", probe.name,
                      errno_text(error), fix.empty() ? "" : ": ", fix, probe.use);
      (probe.needed ? findings.missing : findings.notes).push_back(line);
    }
    facts[probe.name] = entry;
  }
  findings.facts["namespaces"] = facts;
}

// --- seccomp -----------------------------------------------------------------------------

void probe_seccomp(Findings& findings) {
  const scmp_version* version = seccomp_version();
  std::string libseccomp =
      version ? fmt::format("{}.{}.{}", version->major, version->minor, version->micro) : "?";
  int mode = ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  int mode_error = mode < 0 ? errno : 0;
  // What every worker does last (isolation/sandbox.cpp): no_new_privs, then a filter.
  int error = in_child([] {
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog program {};
    program.len = 1;
    program.filter = &allow;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) {
      return errno;
    }
    return 0;
  });
  std::string self = mode_error != 0 ? "no seccomp in this kernel"
                     : mode == 0     ? "not filtered"
                                     : "already under a seccomp filter (a container?)";
  json facts = {{"available", error == 0}, {"this_process", self}, {"libseccomp", libseccomp}};
  if (error != 0) {
    facts["error"] = errno_text(error);
    findings.missing.push_back(
        "seccomp: loading a filter failed with " + errno_text(error) +
        ": workers with seccomp = default cannot start (a kernel with CONFIG_SECCOMP_FILTER, "
        "or seccomp = off in each app's config.ini)");
  }
  findings.facts["seccomp"] = facts;
}

// --- nginx -------------------------------------------------------------------------------

// The output and exit status of ARGV (stdout and stderr together).
std::pair<int, std::string> run_capture(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return {-1, "pipe: " + errno_text(errno)};
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    return {-1, "fork: " + errno_text(errno)};
  }
  if (pid == 0) {
    ::dup2(write_end.get(), 1);
    ::dup2(write_end.get(), 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  write_end.reset();
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(read_end.get(), buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) {
      output.append(buffer, static_cast<size_t>(n));
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), trim(output)};
}

struct NginxFacts {
  std::string path;              // "" when not found
  bool bind_capability = false;  // file capability cap_net_bind_service (permitted, effective)
};

NginxFacts probe_nginx(const runtime::FrontSettings& settings, Findings& findings) {
  NginxFacts nginx;
  auto binary = nginx::find_nginx();
  if (!binary) {
    findings.facts["nginx"] = {{"found", false}, {"error", binary.error().describe()}};
    findings.missing.push_back(binary.error().describe());
    return nginx;
  }
  nginx.path = *binary;
  json facts = {{"found", true}, {"path", nginx.path}};
  auto [status, output] = run_capture({nginx.path, "-v"});
  constexpr std::string_view k_prefix = "nginx version: ";
  if (status == 0 && starts_with(output, k_prefix)) {
    facts["version"] = trim(output.substr(k_prefix.size()));
  } else {
    facts["error"] = output;
    findings.missing.push_back(fmt::format("nginx at {} does not run (`nginx -v` exit {}): {}",
                                           nginx.path, status, output));
  }
  // setcap(8) on the binary: what lets a non-root nginx bind a port below 1024.
  std::unique_ptr<std::remove_pointer_t<cap_t>, int (*)(void*)> caps(
      cap_get_file(nginx.path.c_str()), cap_free);
  if (caps) {
    char* text = cap_to_text(caps.get(), nullptr);
    facts["file_capabilities"] = text != nullptr ? std::string(text) : "";
    cap_free(text);
    cap_flag_value_t permitted = CAP_CLEAR;
    cap_flag_value_t effective = CAP_CLEAR;
    cap_get_flag(caps.get(), CAP_NET_BIND_SERVICE, CAP_PERMITTED, &permitted);
    cap_get_flag(caps.get(), CAP_NET_BIND_SERVICE, CAP_EFFECTIVE, &effective);
    nginx.bind_capability = permitted == CAP_SET && effective == CAP_SET;
  } else {
    facts["file_capabilities"] = "";
  }
  std::string user = runtime::nginx_worker_user(settings);
  facts["worker_user"] = user.empty() ? "(the calling user: not root)" : user;
  findings.facts["nginx"] = facts;
  return nginx;
}

// --- the workers' user -------------------------------------------------------------------

void probe_worker_user(Findings& findings) {
  const std::string name = runtime::k_default_worker_user;
  struct passwd* pw = ::getpwnam(name.c_str());
  if (pw == nullptr) {
    findings.facts["worker_user"] = {{"name", name}, {"exists", false}};
    findings.missing.push_back(
        "user '" + name +
        "' (workers run as it by default) does not exist: create it with `useradd --system "
        "--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " +
        name + "` (scripts/install-deps does), or set `user` in each app's config.ini");
    return;
  }
  findings.facts["worker_user"] = {
      {"name", name}, {"exists", true}, {"uid", pw->pw_uid}, {"gid", pw->pw_gid}};
}

// --- the port ----------------------------------------------------------------------------

// 0 or the errno of binding 0.0.0.0:PORT as nginx's `listen` does.
int try_bind(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return errno;
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
}

void probe_port(int port, const std::string& source, const std::string& settings_file, int running,
                const NginxFacts& nginx, Findings& findings) {
  int start = k_default_unprivileged_port_start;
  if (auto text = read_file("/proc/sys/net/ipv4/ip_unprivileged_port_start")) {
    start = static_cast<int>(parse_int(trim(*text)).value_or(start));
  }
  bool privileged = port < start;
  bool root = ::geteuid() == 0;
  bool ambient = ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1;
  std::string nginx_path = nginx.path.empty() ? "/usr/sbin/nginx" : nginx.path;
  std::string other_port =
      fmt::format("choose a port >= {} (`--port N`, or `port = N` in the [nginx] section of {})",
                  start, settings_file);
  json facts = {{"port", port},
                {"source", source},
                {"privileged", privileged},
                {"unprivileged_port_start", start}};
  std::string problem;
  std::string how;
  int error = try_bind(port);
  if (error == 0) {
    if (!privileged) {
      how =
          fmt::format("any user may bind it (>= net.ipv4.ip_unprivileged_port_start = {})", start);
    } else if (root) {
      how = "root";
    } else if (ambient) {
      how = "CAP_NET_BIND_SERVICE, ambient: nginx inherits it";
    } else if (nginx.bind_capability) {
      how = "nginx's file capability cap_net_bind_service";
    } else {
      problem = fmt::format(
          "port {}: this process has CAP_NET_BIND_SERVICE but not as an ambient capability, so "
          "nginx, which mfserv starts to bind it, will not have it. Fix, one of: "
          "AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit; "
          "setcap cap_net_bind_service=+ep {}; run mfserv as root; or {}",
          port, nginx_path, other_port);
    }
  } else if (error == EADDRINUSE) {
    if (port == running) {
      how = "in use by this home's running mfserv";
    } else {
      problem = fmt::format("port {} is already in use by another program: stop it or {}", port,
                            other_port);
    }
  } else if (error == EACCES && privileged) {
    if (nginx.bind_capability) {
      how =
          "this process may not bind it, but nginx has the file capability "
          "cap_net_bind_service";
    } else {
      problem = fmt::format(
          "port {} is privileged (below net.ipv4.ip_unprivileged_port_start = {}) and uid {} "
          "lacks CAP_NET_BIND_SERVICE, so nginx cannot bind it. Fix, one of: run mfserv as "
          "root; give nginx the capability: setcap cap_net_bind_service=+ep {}; under "
          "systemd, AmbientCapabilities=CAP_NET_BIND_SERVICE; let every user bind it: sysctl "
          "net.ipv4.ip_unprivileged_port_start={}; or {}",
          port, start, ::geteuid(), nginx_path, port, other_port);
      facts["missing_capability"] = "CAP_NET_BIND_SERVICE";
    }
  } else {
    problem = fmt::format("port {} cannot be bound: {}", port, errno_text(error));
  }
  facts["bindable"] = problem.empty();
  if (!problem.empty()) {
    facts["error"] = problem;
    findings.missing.push_back(problem);
  } else {
    facts["how"] = how;
  }
  findings.facts["port"] = facts;
}

// --- output ------------------------------------------------------------------------------

std::string words(const json& list) {
  std::string text;
  for (const auto& item : list) {
    text += (text.empty() ? "" : " ") + item.get<std::string>();
  }
  return text.empty() ? "none" : text;
}

void print_text(const Findings& findings) {
  const json& f = findings.facts;
  auto row = [](const std::string& key, const std::string& value) {
    fmt::print("  {:<14} {}\n", key, value);
  };
  const json& privileges = f["privileges"];
  fmt::print("privileges\n");
  row("user", fmt::format("uid {}{}", privileges["euid"].get<unsigned>(),
                          privileges["root"].get<bool>() ? " (root)" : ""));
  row("capabilities", fmt::format("CAP_SYS_ADMIN {}, CAP_NET_BIND_SERVICE {}",
                                  privileges["cap_sys_admin"].get<bool>() ? "yes" : "no",
                                  privileges["cap_net_bind_service"].get<bool>() ? "yes" : "no"));

  const json& cgroups = f["cgroups"];
  fmt::print("cgroups\n");
  if (cgroups.contains("error")) {
    row("error", cgroups["error"].get<std::string>());
  } else {
    std::string layout = cgroups["layout"].get<std::string>();
    std::string meaning = layout == "v2"       ? "unified cgroup v2"
                          : layout == "hybrid" ? "v1 controllers plus a cgroup2 mount"
                                               : "cgroup v1";
    row("layout", fmt::format("{} ({}); mfserv uses the {} backend", layout, meaning,
                              cgroups["backend"].get<std::string>()));
    row("hierarchy", cgroups["hierarchy_root"].get<std::string>());
    row("own cgroup", cgroups["own_cgroup"].get<std::string>());
    row("base", cgroups["base"].get<std::string>());
    row("controllers", words(cgroups["controllers"]));
    row("missing", words(cgroups["missing"]));
    std::string delegation = cgroups["delegated"].get<bool>()
                                 ? "yes (" + cgroups["delegation_source"].get<std::string>() + ")"
                             : cgroups["backend"] == "v2"
                                 ? "no: mfserv's cgroups go below the hierarchy root"
                                 : "not applicable (v1)";
    row("delegation", delegation);
    row("swap limit", cgroups["swap_limit"].get<bool>() ? "yes: swap_max is enforced"
                                                        : "no: swap_max cannot be enforced");
    row("cgroup.kill",
        cgroups["kill_file"].get<bool>() ? "yes" : "no: stop freezes and kills each pid");
  }

  fmt::print("namespaces\n");
  for (const auto& probe : k_namespaces) {
    const json& entry = f["namespaces"][probe.name];
    const std::string name = probe.name;
    std::string value = entry["available"].get<bool>() ? std::string("yes")
                                                       : "no: " + entry["error"].get<std::string>();
    row(name, value + (entry["needed"].get<bool>() ? "" : " (optional)"));
  }

  const json& seccomp = f["seccomp"];
  fmt::print("seccomp\n");
  row("filters", seccomp["available"].get<bool>() ? std::string("yes")
                                                  : "no: " + seccomp["error"].get<std::string>());
  row("this process", seccomp["this_process"].get<std::string>());
  row("libseccomp", seccomp["libseccomp"].get<std::string>());

  const json& nginx = f["nginx"];
  fmt::print("nginx\n");
  if (!nginx["found"].get<bool>()) {
    row("binary", "not found");
  } else {
    row("binary", nginx["path"].get<std::string>());
    row("version", nginx.value("version", std::string("? (does not run)")));
    std::string caps = nginx["file_capabilities"].get<std::string>();
    row("capabilities", caps.empty() ? "none (file)" : caps);
    row("worker user", nginx["worker_user"].get<std::string>());
  }

  const json& user = f["worker_user"];
  fmt::print("workers\n");
  row("user", user["exists"].get<bool>()
                  ? fmt::format("{} (uid {}, gid {})", user["name"].get<std::string>(),
                                user["uid"].get<unsigned>(), user["gid"].get<unsigned>())
                  : user["name"].get<std::string>() + ": does not exist");

  const json& port = f["port"];
  fmt::print("port\n");
  row("port", fmt::format("{} ({})", port["port"].get<int>(), port["source"].get<std::string>()));
  row("bind", port["bindable"].get<bool>()
                  ? "yes: " + port["how"].get<std::string>()
                  : "no: " + port.value("missing_capability", std::string("it")) +
                        " is missing (see below)");

  if (!findings.notes.empty()) {
    fmt::print("\nnotes\n");
    for (const auto& note : findings.notes) {
      fmt::print("  - {}\n", note);
    }
  }
  if (findings.missing.empty()) {
    fmt::print("\nok: this host has everything mfserv needs\n");
  } else {
    fmt::print("\nmissing ({}):\n", findings.missing.size());
    for (const auto& line : findings.missing) {
      fmt::print("  - {}\n", line);
    }
  }
}

}  // namespace

int cmd_check(const Globals& globals, int port) {
  Findings findings;
  runtime::FrontSettings settings;
  std::string settings_file = "HOME/config/mfserv.ini";
  std::optional<runtime::Home> home;
  if (auto resolved = runtime::resolve_home(globals.home); !resolved) {
    findings.missing.push_back("home: " + resolved.error().describe());
  } else {
    home = *resolved;
    settings_file = runtime::settings_path(*home);
    if (auto loaded = runtime::load_settings(*home); !loaded) {
      findings.missing.push_back(loaded.error().describe());
    } else {
      settings = *loaded;
    }
  }
  // The running instance's own port, not another program's.
  const int running = home ? running_port(*home) : 0;
  std::string port_source = "default";
  if (port > 0) {
    settings.port = port;
    port_source = "--port";
  } else if (running > 0) {
    // `run --port` may have put the running instance elsewhere than mfserv.ini says.
    settings.port = running;
    port_source = "the running mfserv";
  } else if (home && path_exists(settings_file)) {
    port_source = settings_file;
  }
  findings.facts["home"] = home ? home->root : "";

  probe_privileges(findings);
  probe_cgroups(findings);
  probe_namespaces(findings);
  probe_seccomp(findings);
  NginxFacts nginx = probe_nginx(settings, findings);
  probe_worker_user(findings);
  probe_port(settings.port, port_source, settings_file, running, nginx, findings);

  if (globals.json) {
    json out = findings.facts;
    out["ok"] = findings.missing.empty();
    out["missing"] = findings.missing;
    out["notes"] = findings.notes;
    fmt::print("{}\n", out.dump(2));
  } else {
    print_text(findings);
  }
  return findings.missing.empty() ? k_exit_ok : k_exit_error;
}

}  // namespace mfserv::cli
