// The supervisor's event loop (sd-event: pidfd child watches, timers, signals, the control
// socket). `run` reads as its passes: lock the home -> check nginx and the port -> prepare
// cgroups -> open worker sockets -> write nginx.conf -> start nginx -> start apps -> loop.
#include "runtime/supervisor.hpp"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "isolation/spawn.hpp"
#include "nginx-gen/nginx_control.hpp"
#include "runtime/control.hpp"
#include "runtime/process.hpp"
#include "runtime/settings.hpp"
#include "runtime/worker_setup.hpp"
#include "util/fs.hpp"
#include "util/socket_diag.hpp"
#include "util/strings.hpp"

namespace mfserv::runtime {
namespace {

constexpr std::uint64_t k_usec_per_sec = 1000000;
constexpr std::uint64_t k_stable_after_us = 10 * k_usec_per_sec;  // resets the backoff
constexpr std::uint64_t k_backoff_first_us = 100000;
constexpr std::uint64_t k_backoff_cap_us = 30 * k_usec_per_sec;
constexpr std::uint64_t k_probe_interval_us = 100000;
constexpr std::uint64_t k_probe_attempt_us = 2 * k_usec_per_sec;
constexpr std::uint64_t k_startup_deadline_us = 90 * k_usec_per_sec;
constexpr int k_failures_before_failed_start = 3;
constexpr int k_nginx_grace_s = 10;
// How long a `reload` answer waits for nginx to serve the new configuration (it takes a few
// ms), and how often it looks meanwhile.
constexpr std::uint64_t k_nginx_apply_wait_us = 3 * 1000 * 1000;
constexpr std::uint64_t k_nginx_apply_tick_us = 5 * 1000;
constexpr std::size_t k_max_probe_drains = 64;
// How long a `reload` answer waits for the apps it started to be ready (the control client
// gives up after 15 s): slower ones are reported as still starting.
constexpr std::uint64_t k_reload_ready_wait_us = 10 * k_usec_per_sec;
// A replaced worker's backlog: checked this often until empty; without unix_diag, waited once.
constexpr std::uint64_t k_backlog_poll_us = 20 * 1000;
constexpr std::uint64_t k_backlog_fallback_us = 500 * 1000;

// Three exits in a row without a stable run: a failed start at `run` or `reload`, a crash
// loop in `ps`, and a closed listener until the next start answers.
bool failing_repeatedly(const Process& process) {
  return process.failures_in_a_row >= k_failures_before_failed_start;
}

// A control answer failed with TEXT, after any error it already had.
void add_error(nlohmann::json& answer, const std::string& text) {
  answer["ok"] = false;
  answer["error"] =
      answer.contains("error") ? answer["error"].get<std::string>() + "; " + text : text;
}

std::uint64_t now_us() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * k_usec_per_sec +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

// SANDBOXED: the process is the sandbox's init, which exits with 128+N when the program died
// of signal N (an init cannot die of a signal it sends itself).
std::string describe_exit(const siginfo_t* info, bool sandboxed) {
  if (info->si_code == CLD_EXITED) {
    if (sandboxed && info->si_status > 128 && info->si_status < 128 + 65) {
      return fmt::format("signal {}", info->si_status - 128);
    }
    return fmt::format("exit {}", info->si_status);
  }
  return fmt::format("signal {}", info->si_status);
}

}  // namespace

class Supervisor::Impl {
 public:
  Impl(RunOptions options, std::vector<images::PluginConfig> plugins)
      : m_options(std::move(options)),
        m_plugins(std::move(plugins)),
        m_hidden_plugins(hidden_plugin_dirs(m_options.home, m_plugins)) {}

  ~Impl() {
    m_groups.clear();
    m_signal_sources.clear();
    m_control_watch.reset();
    m_startup_timer.reset();
    m_reload_timer.reset();
    m_probe_drains.clear();
    if (m_event) {
      sd_event_unref(m_event);
    }
  }

  Status prepare();
  Status prepare_steps();
  void undo_prepare();
  Status run();

 private:
  // Preparation, before any process starts.
  Status check_port() const;
  void build_groups();
  Status prepare_group_cgroup(Group& group);
  Status open_worker_socket(Process& process);
  Result<UniqueFd> bind_staging_socket(Process& process);
  Status prepare_group_sandbox(Group& group);
  Status write_nginx_conf();
  Status setup_event_loop();

  std::unique_ptr<Group> make_group(const std::shared_ptr<const images::PluginConfig>& plugin,
                                    const images::AppConfig& app, std::string fingerprint);
  std::unique_ptr<Process> make_process(Group& group, int wid);
  Status prepare_group(Group& group);

  // Changes while running: replace (restart, max_age), stop/start on request, reload.
  void replace_process(Process& process, const std::string& reason);
  void signal_draining(Process& process);
  void retire_draining(Draining& old);
  void signal_old(Draining& old);
  void promote_staging(Process& process);
  Result<UniqueFd> bind_worker_socket(const std::string& path, ino_t& inode);
  std::vector<Process*> resize_group(Group& group, int numprocesses);
  void sweep();
  void restart_group(Group& group, const std::vector<Process*>& skip = {});
  void close_worker_socket(Process& process);
  void drop_staging(Process& process);
  void reload_nginx();
  void stop_out_of_nginx();
  void hold_group(Group& group);
  void release_group(Group& group);
  nlohmann::json reload();
  std::string reload_settings(nlohmann::json& diagnostics);
  std::vector<Group*> find_groups(const std::string& target, std::string& error);
  void on_draining_exit(Process& process, pid_t pid);
  std::string leaf_of(const Process& process) const;
  static Process* find_process(Group& group, int wid);

  // Process life cycle.
  void start_process(Process& process);
  Result<isolation::Spawned> launch(Process& process, isolation::SpawnSpec& spec);
  std::vector<std::string> process_env(const Process& process) const;
  void on_exit(Process& process, const siginfo_t* info);
  void schedule_restart(Process& process);
  void start_probe(Process& process);
  void probe_connect(Process& process);
  void probe_readable(Process& process);
  void mark_ready(Process& process);
  void check_startup(bool deadline_passed);

  // Shutdown.
  void begin_shutdown(const std::string& reason);
  void stop_process(Process& process, int signal, int grace_s);
  void continue_shutdown();
  void cleanup();

  // Control socket.
  void on_control_connection();
  void release_free_memory();
  nlohmann::json handle_request(const nlohmann::json& request);
  nlohmann::json ps_json();

  // sd-event trampolines.
  static int on_child(sd_event_source*, const siginfo_t* info, void* data);
  static int on_process_timer(sd_event_source*, uint64_t, void* data);
  static int on_probe_io(sd_event_source*, int, uint32_t, void* data);
  static int on_probe_drain_io(sd_event_source*, int fd, uint32_t, void* data);
  static int on_signal(sd_event_source*, const struct signalfd_siginfo* info, void* data);
  static int on_control_io(sd_event_source*, int, uint32_t, void* data);
  static int on_startup_deadline(sd_event_source*, uint64_t, void* data);
  static int on_drain_timer(sd_event_source*, uint64_t, void* data);
  static int on_backlog_timer(sd_event_source*, uint64_t, void* data);
  static int on_nginx_settle_timer(sd_event_source*, uint64_t, void* data);
  static int on_age_timer(sd_event_source*, uint64_t, void* data);
  static int on_oom_event(sd_event_source*, int, uint32_t, void* data);
  void watch_oom(Process& process);
  static int on_group_oom_event(sd_event_source*, int fd, uint32_t, void* data);
  void check_oom(Process& process);

  Impl* self(Process& process) { return static_cast<Impl*>(process.supervisor); }
  Status add_timer(EventSource& slot, std::uint64_t delay_us, Process& process);

  RunOptions m_options;
  std::vector<images::PluginConfig> m_plugins;
  // Plugin folders outside the home, hidden in every sandbox (one list shared by all).
  std::shared_ptr<const std::vector<std::string>> m_hidden_plugins;
  Logger m_log;
  UniqueFd m_lock;
  std::unique_ptr<isolation::CgroupBackend> m_cgroups;
  std::string m_nginx_binary;
  // The extra routes and vhosts the last nginx.conf left out (see front_routes).
  std::vector<DroppedClaim> m_dropped_claims;
  std::vector<std::unique_ptr<Group>> m_groups;  // apps and daemons, then nginx last
  Group* m_nginx = nullptr;
  gid_t m_nginx_gid = static_cast<gid_t>(-1);
  uid_t m_nginx_uid = static_cast<uid_t>(-1);

  sd_event* m_event = nullptr;
  std::vector<EventSource> m_signal_sources;
  UniqueFd m_control_fd;
  ControlAccess m_control_access;
  EventSource m_control_watch;
  EventSource m_startup_timer;
  // After a reload of nginx: the workers of its previous configuration, still finishing
  // requests, and when to stop waiting for them.
  std::vector<pid_t> m_old_nginx_workers;
  std::uint64_t m_nginx_settle_deadline_us = 0;
  EventSource m_nginx_settle_timer;
  // `reload` answers once nginx serves the new configuration (a script that reloads then
  // calls the new URL gets it) and the apps it started are ready or failed: its clients wait
  // here, bounded (on_reload_timer).
  struct ReloadWaiter {
    UniqueFd fd;
    nlohmann::json answer;
    std::uint64_t deadline_us = 0;
  };
  // Probe connections that got their answer's first bytes, read to the end (drain_probe).
  struct ProbeDrain {
    UniqueFd fd;
    EventSource watch;
  };
  std::deque<ProbeDrain> m_probe_drains;
  void drain_probe(UniqueFd fd);
  std::vector<pid_t> m_nginx_workers_before;
  std::uint64_t m_nginx_apply_deadline_us = 0;  // 0: nothing to wait for from nginx
  std::vector<ReloadWaiter> m_reload_waiters;
  EventSource m_reload_timer;
  bool nginx_applied();
  void wait_for_reload(UniqueFd fd, nlohmann::json answer);
  void arm_reload_timer();
  bool settle_reload_waiter(ReloadWaiter& waiter, std::uint64_t now);
  void answer_reload_waiters(const std::string& unfinished = "");
  std::string start_failure(const Group& group, bool& pending) const;
  static int on_reload_timer(sd_event_source*, uint64_t, void* data);
  std::uint64_t m_staging_counter = 0;  // names replacement sockets: run/sockets/.nN
  bool m_shutting_down = false;
  bool m_startup_reported = false;
  bool m_prepared = false;
};

// ---------------------------------------------------------------------------------------
// Preparation

// A start that fails after the cgroups and sockets were made removes them again: nothing of
// a failed `run` stays behind for the next one (or for nobody) to find.
Status Supervisor::Impl::prepare() {
  Status st = prepare_steps();
  if (!st) {
    undo_prepare();
  }
  return st;
}

void Supervisor::Impl::undo_prepare() {
  if (m_cgroups && !m_groups.empty()) {
    cleanup();
  }
}

Status Supervisor::Impl::prepare_steps() {
  const Home& home = m_options.home;
  if (auto st = prepare_home(home); !st) {
    return st;
  }
  m_log.open(home.supervisor_log());
  m_log.set_sink(m_options.log_sink);

  // One listening socket, log and pidfd per worker: take the whole fd allowance (the hard
  // limit) rather than the soft 1024, so many workers cannot starve the others of fds.
  struct rlimit files {};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }

  auto lock = lock_home(home);
  if (!lock) {
    return lock.error();
  }
  m_lock = std::move(*lock);
  // Operators in the mfserv group use the control socket and read the apps' logs (root
  // alone can hand files over to a group).
  if (::geteuid() == 0) {
    m_control_access = control_access();
  }

  std::string user = nginx_worker_user(m_options.front);
  if (!user.empty()) {
    struct passwd* pw = ::getpwnam(user.c_str());
    if (!pw) {
      return Error("nginx worker user '" + user + "' does not exist on this host");
    }
    m_nginx_uid = pw->pw_uid;
    m_nginx_gid = pw->pw_gid;
  }

  if (m_nginx_uid != static_cast<uid_t>(-1)) {
    // nginx's workers must reach the sockets (and plugins' statics): a 0700 folder on the way
    // would turn every request into a 502 while every worker looks healthy.
    const std::string path = untraversable_dir(home.sockets_dir(), m_nginx_uid, m_nginx_gid, false);
    struct stat st {};
    if (!path.empty() && ::stat(path.c_str(), &st) == 0) {
      return Error(
          fmt::format("nginx's workers (user {}) cannot reach {}: {} is mode {:04o}; "
                      "run `chmod o+x {}` or use a --home they can traverse",
                      user, home.sockets_dir(), path, st.st_mode & 07777, path));
    }
  }

  auto cgroups = isolation::detect_cgroups();
  if (!cgroups) {
    return cgroups.error();
  }
  m_cgroups = std::move(*cgroups);
  // Under a delegated cgroup (systemd Delegate=yes) the supervisor moves itself into a leaf
  // before enabling controllers: the "no internal processes" rule (C9).
  if (auto st = m_cgroups->enter_leaf(); !st) {
    return st.error().with_context("entering the supervisor's leaf cgroup");
  }
  m_log.info("cgroups: " + m_cgroups->describe() + ", subtree " +
             m_cgroups->display_path(home.cgroup_root()));
  if (isolation::sandbox_init_path().empty()) {
    m_log.warn(
        "mfserv-init is not beside this executable: each sandbox's PID 1 stays a copy of the "
        "supervisor instead of that small static helper (more memory per worker); install "
        "mfserv-init beside mfserv-supervisor (scripts/build puts them together)");
  }

  // A supervisor killed with -9 leaves its cgroups (and maybe processes): the home lock says
  // no supervisor owns them now, so they are stopped and removed before anything starts.
  auto leftovers = stop_leftovers(*m_cgroups, home);
  if (!leftovers) {
    return leftovers.error().with_context("cleaning up after an earlier run");
  }
  if (*leftovers > 0) {
    m_log.warn(fmt::format("killed {} processes left in {} by an earlier run", *leftovers,
                           m_cgroups->display_path(home.cgroup_root())));
  }

  auto nginx_binary = nginx::find_nginx();
  if (!nginx_binary) {
    return nginx_binary.error();
  }
  m_nginx_binary = *nginx_binary;

  if (auto st = check_port(); !st) {
    return st;
  }

  // nginx's temp paths must be writable by its workers; sockets reachable by them only.
  std::string nginx_tmp = home.tmp_dir() + "/nginx";
  if (auto st = make_dirs(nginx_tmp, 0700); !st) {
    return st;
  }
  if (m_nginx_uid != static_cast<uid_t>(-1)) {
    if (::chown(nginx_tmp.c_str(), m_nginx_uid, m_nginx_gid) != 0) {
      return Error::from_errno("giving " + nginx_tmp + " to the nginx user");
    }
    if (::chown(home.sockets_dir().c_str(), 0, m_nginx_gid) != 0 ||
        ::chmod(home.sockets_dir().c_str(), 02750) != 0) {
      return Error::from_errno("restricting " + home.sockets_dir() + " to nginx");
    }
  }

  build_groups();
  for (auto& group : m_groups) {
    if (group->kind != Group::Kind::Nginx) {
      (void)prepare_group(*group);
    }
  }
  if (auto st = prepare_group_cgroup(*m_nginx); !st) {
    return st.error().with_context("nginx");
  }
  if (auto st = write_nginx_conf(); !st) {
    return st;
  }
  m_prepared = true;
  return {};
}

Status Supervisor::Impl::check_port() const {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return Error::from_errno("creating a socket to check the port");
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(m_options.front.port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EADDRINUSE) {
      return Error(
          fmt::format("port {} is already in use by another program: stop it or "
                      "choose another port with --port",
                      m_options.front.port));
    }
    if (errno == EACCES) {
      return Error(
          fmt::format("binding port {} needs root or CAP_NET_BIND_SERVICE: run as "
                      "root or choose a port above 1023 with --port",
                      m_options.front.port));
    }
    return Error::from_errno(fmt::format("checking port {}", m_options.front.port));
  }
  return {};
}

std::unique_ptr<Group> Supervisor::Impl::make_group(
    const std::shared_ptr<const images::PluginConfig>& plugin, const images::AppConfig& app,
    std::string fingerprint) {
  const Home& home = m_options.home;
  bool is_app = app.kind == images::AppConfig::Kind::App;
  auto group = std::make_unique<Group>();
  group->kind = is_app ? Group::Kind::App : Group::Kind::Daemon;
  group->plugin_holder = plugin;
  group->plugin = plugin.get();
  group->app = &app;
  group->fingerprint = std::move(fingerprint);
  group->label = plugin->name + "/" + app.name;  // as `ps` names it (names are unique)
  group->cgroup = app_cgroup(home, *plugin, app);
  group->log_path = app_log_path(home, *plugin, app);
  group->limits.memory_max = app.memory_max;
  group->limits.memory_high = app.memory_high;
  group->limits.swap_max = app.swap_max;
  group->limits.pids_max = app.pids_max;
  group->limits.cpu_weight = app.cpu_weight;
  group->limits.cpu_max = app.cpu_max;
  if (app.worker_memory_max) {
    group->worker_limits.memory_max = app.worker_memory_max;
    group->worker_limits.swap_max = app.swap_max;
  }
  for (int wid = 1; wid <= app.numprocesses; ++wid) {
    group->processes.push_back(make_process(*group, wid));
  }
  return group;
}

std::unique_ptr<Process> Supervisor::Impl::make_process(Group& group, int wid) {
  auto process = std::make_unique<Process>();
  process->supervisor = this;
  process->group = &group;
  process->wid = wid;
  process->cgroup = leaf_of(*process);
  if (group.kind == Group::Kind::App) {
    process->socket_path =
        worker_socket_path(m_options.home, group.plugin->name, group.app->name, wid);
  }
  return process;
}

Process* Supervisor::Impl::find_process(Group& group, int wid) {
  for (auto& process : group.processes) {
    if (process->wid == wid) {
      return process.get();
    }
  }
  return nullptr;
}

std::string Supervisor::Impl::leaf_of(const Process& process) const {
  return process.group->cgroup + "/w" + std::to_string(process.wid) +
         (process.generation % 2 == 0 ? "" : "b");
}

void Supervisor::Impl::build_groups() {
  const Home& home = m_options.home;
  std::string root = home.cgroup_root();
  for (const auto& plugin : m_plugins) {
    auto holder = std::make_shared<const images::PluginConfig>(plugin);
    auto fingerprints = app_fingerprints(home, *holder);
    for (const auto& app : holder->apps) {
      if (app.numprocesses > 0) {
        m_groups.push_back(make_group(holder, app, fingerprints[app.section]));
      }
    }
  }
  auto nginx = std::make_unique<Group>();
  nginx->kind = Group::Kind::Nginx;
  nginx->label = "nginx";
  nginx->cgroup = root + "/__nginx";  // plugin names never start with "__"
  nginx->log_path = home.log_dir() + "/nginx_error.log";
  auto process = std::make_unique<Process>();
  process->supervisor = this;
  process->group = nginx.get();
  process->cgroup = nginx->cgroup + "/w1";
  nginx->processes.push_back(std::move(process));
  m_nginx = nginx.get();
  m_groups.push_back(std::move(nginx));
}

// Cgroup with limits, sandbox, sockets: everything a group needs before its first start.
// On failure the group keeps the error and does not start; the others are unaffected.
Status Supervisor::Impl::prepare_group(Group& group) {
  Status st = prepare_group_cgroup(group);
  if (st) {
    st = prepare_group_sandbox(group);
  }
  for (auto& process : group.processes) {
    if (st && group.kind == Group::Kind::App) {
      st = open_worker_socket(*process);
    }
  }
  if (!st) {
    group.error = st.error().describe();
    m_log.error(group.label + " will not start: " + group.error);
  }
  return st;
}

Status Supervisor::Impl::prepare_group_cgroup(Group& group) {
  if (auto st = m_cgroups->create(group.cgroup, group.limits); !st) {
    return st.error().with_context("applying the limits of " + group.label);
  }
  for (auto& process : group.processes) {
    if (auto st = m_cgroups->create(process->cgroup, group.worker_limits); !st) {
      return st.error().with_context("applying the limits of " + group.label + " worker " +
                                     std::to_string(process->wid));
    }
  }
  group.log_fd.reset(
      ::open(group.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (!group.log_fd) {
    return Error::from_errno("opening the log file " + group.log_path);
  }
  if (m_control_access.operators_gid != static_cast<gid_t>(-1) &&
      ::fchown(group.log_fd.get(), 0, m_control_access.operators_gid) != 0) {
    return Error::from_errno("handing the log file " + group.log_path + " to the mfserv group");
  }
  return {};
}

// Fails closed: a worker whose sandbox cannot be prepared does not start at all.
Status Supervisor::Impl::prepare_group_sandbox(Group& group) {
  const auto& plugin = *group.plugin;
  if (auto st = check_sandbox_policy(m_options.home, plugin, *group.app); !st) {
    return st;
  }
  auto spec = sandbox_spec(m_options.home, m_hidden_plugins, plugin, *group.app);
  std::string var_dir = plugin_var_dir(m_options.home, plugin);
  if (auto st = make_dirs(var_dir, 0750); !st) {
    return st;
  }
  auto sandbox = isolation::prepare_sandbox(spec);
  if (!sandbox) {
    return sandbox.error().with_context("preparing the sandbox of " + group.label);
  }
  // The plugin's own writable folder belongs to the user its workers run as.
  if (::chown(var_dir.c_str(), sandbox->uid, sandbox->gid) != 0) {
    return Error::from_errno("giving " + var_dir + " to the worker user");
  }
  group.sandbox = std::make_unique<isolation::PreparedSandbox>(std::move(*sandbox));
  return {};
}

Status Supervisor::Impl::open_worker_socket(Process& process) {
  const Group& group = *process.group;
  if (group.plugin && group.app) {
    if (auto st = check_worker_socket_path(m_options.home, group.plugin->name, group.app->name,
                                           process.wid);
        !st) {
      return st;
    }
  }
  auto fd = bind_worker_socket(process.socket_path, process.socket_ino);
  if (!fd) {
    return fd.error();
  }
  process.listen_fd = std::move(*fd);
  return {};
}

// A socket of PROCESS's own (run/sockets/.nN, its staging_path) for a start that must not
// take the worker's path before it answers; promote_staging() renames it over the path.
Result<UniqueFd> Supervisor::Impl::bind_staging_socket(Process& process) {
  const std::string staging =
      m_options.home.sockets_dir() + "/.n" + std::to_string(++m_staging_counter);
  auto fd = bind_worker_socket(staging, process.staging_ino);
  if (fd) {
    process.staging_path = staging;
  }
  return fd;
}

// A listening unix socket at PATH, replacing a stale socket (never another kind of file),
// connectable by nginx's workers only; INODE receives the path's inode.
Result<UniqueFd> Supervisor::Impl::bind_worker_socket(const std::string& path, ino_t& inode) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(
        fmt::format("socket path {} is longer than the {} bytes a unix socket allows: "
                    "use a shorter --home",
                    path, sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error("refusing to replace " + path + ": it exists and is not a socket");
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return Error::from_errno("creating socket " + path);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Error::from_errno("binding " + path);
  }
  // nginx's workers connect (group), nobody else may (C14).
  if (::chmod(path.c_str(), 0660) != 0) {
    return Error::from_errno("chmod " + path);
  }
  if (m_nginx_gid != static_cast<gid_t>(-1) && ::chown(path.c_str(), 0, m_nginx_gid) != 0) {
    return Error::from_errno("chown " + path);
  }
  if (::listen(fd.get(), 511) != 0) {
    return Error::from_errno("listening on " + path);
  }
  if (::lstat(path.c_str(), &st) != 0) {
    return Error::from_errno("stat " + path);
  }
  inode = st.st_ino;
  return fd;
}

Status Supervisor::Impl::write_nginx_conf() {
  const Home& home = m_options.home;
  // Apps that cannot start keep their routes (nginx answers 502, not 404), but never with a
  // socket path nginx would reject (too long for sun_path): one bad app must not make the
  // whole config invalid.
  auto routes = front_routes(home, m_plugins, &m_dropped_claims);
  for (const auto& drop : m_dropped_claims) {
    m_log.warn(drop.message);
  }
  for (auto& route : routes) {
    auto& sockets = route.sockets;
    sockets.erase(std::remove_if(sockets.begin(), sockets.end(),
                                 [](const std::string& path) {
                                   return path.size() >= sizeof(sockaddr_un{}.sun_path);
                                 }),
                  sockets.end());
  }
  // The fragments nginx.conf includes, as checked at load; those of earlier texts stay until
  // a configuration without them is in place (nginx may read them again on a restart).
  std::set<std::string> current;
  if (auto st = make_dirs(home.fragments_dir(), 0700); !st) {
    return st;
  }
  const auto fragments = front_fragments(home, m_plugins);
  for (const auto& fragment : fragments) {
    current.insert(fragment.path);
    if (auto st = write_file_atomic(fragment.path, fragment.content, 0600); !st) {
      return st;
    }
  }
  std::string text = nginx::render(front_config(home, m_options.front), routes);
  auto st = nginx::write_validated(m_nginx_binary, home.nginx_conf(), text,
                                   home.log_dir() + "/nginx_error.log");
  if (!st) {
    // nginx names the copy it read: the user edits the plugin's file.
    std::string message = st.error().message();
    for (const auto& fragment : fragments) {
      message = replace_all(message, fragment.path, fragment.source);
    }
    return Error(message, st.error().code());
  }
  for (const auto& name : list_dir(home.fragments_dir())) {
    std::string path = home.fragments_dir() + "/" + name;
    if (!current.count(path)) {
      ::unlink(path.c_str());
    }
  }
  return {};
}

Status Supervisor::Impl::setup_event_loop() {
  // sd-event's signal and child sources need the signals blocked in every thread.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
    sigaddset(&mask, sig);
  }
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return Error::from_errno("blocking signals");
  }
  ::signal(SIGPIPE, SIG_IGN);
  if (int rc = sd_event_new(&m_event); rc < 0) {
    return Error("creating the event loop", -rc);
  }
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    sd_event_source* source = nullptr;
    if (int rc = sd_event_add_signal(m_event, &source, sig, on_signal, this); rc < 0) {
      return Error("watching signal " + std::to_string(sig), -rc);
    }
    m_signal_sources.emplace_back(source);
  }
  auto control = control_listen(m_options.home, m_control_access.operators_gid);
  if (!control) {
    return control.error();
  }
  m_control_fd = std::move(*control);
  sd_event_source* source = nullptr;
  if (int rc = sd_event_add_io(m_event, &source, m_control_fd.get(), EPOLLIN, on_control_io, this);
      rc < 0) {
    return Error("watching the control socket", -rc);
  }
  m_control_watch = EventSource(source);
  source = nullptr;
  if (int rc = sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC, k_startup_deadline_us,
                                          0, on_startup_deadline, this);
      rc < 0) {
    return Error("arming the start-up deadline", -rc);
  }
  m_startup_timer = EventSource(source);
  return {};
}

Status Supervisor::Impl::run() {
  if (!m_prepared) {
    if (auto st = prepare(); !st) {
      return st;
    }
  }
  if (auto st = setup_event_loop(); !st) {
    undo_prepare();
    return st;
  }
  (void)write_file_atomic(m_options.home.running_flag(), "RUNNING\n");
  start_process(*m_nginx->processes.front());
  for (auto& group : m_groups) {
    if (group->kind == Group::Kind::Nginx) {
      continue;
    }
    // v1 signals an OOM on the cgroup whose limit was hit (the app's), not on the leaf of
    // the killed task: watch the app's cgroup too.
    if (auto fd = m_cgroups->watch_oom(group->cgroup); fd && fd->valid()) {
      sd_event_source* source = nullptr;
      if (sd_event_add_io(m_event, &source, fd->get(), EPOLLIN, on_group_oom_event, group.get()) >=
          0) {
        group->oom_fd = std::move(*fd);
        group->oom_watch = EventSource(source);
      }
    }
    if (!group->error.empty()) {
      for (auto& process : group->processes) {
        process->state = ProcessState::Failed;
        process->last_error = group->error;
      }
      continue;
    }
    for (auto& process : group->processes) {
      start_process(*process);
    }
  }
  m_log.info(fmt::format("mfserv started: {} plugins, nginx on port {}", m_plugins.size(),
                         m_options.front.port));
  check_startup(false);
  int rc = sd_event_loop(m_event);
  cleanup();
  if (rc < 0) {
    return Error("event loop failed", -rc);
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// Process life cycle

std::vector<std::string> Supervisor::Impl::process_env(const Process& process) const {
  const Group& group = *process.group;
  if (group.kind == Group::Kind::Nginx) {
    return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  }
  return worker_env(m_options.home, *group.plugin, *group.app, process.wid, process.socket_path,
                    m_options.front.port);
}

void Supervisor::Impl::start_process(Process& process) {
  Group& group = *process.group;
  // Fail closed: an app or daemon runs in its prepared sandbox or not at all, whatever asked
  // for the start (run, restart, start, a backoff timer, a reload).
  if (group.kind != Group::Kind::Nginx && (!group.error.empty() || !group.sandbox)) {
    process.last_error = group.error.empty() ? "its sandbox is not prepared" : group.error;
    process.state = ProcessState::Failed;
    process.pid = -1;
    return;
  }
  auto fail_start = [&](const Error& error) {
    process.last_error = error.describe();
    m_log.error(fmt::format("{} worker {}: {}", group.label, process.wid, process.last_error));
    process.pid = -1;
    process.started_us = now_us();
    ++process.failures_in_a_row;
    schedule_restart(process);
  };
  if (group.kind == Group::Kind::App && !process.listen_fd) {
    // Closed during a crash loop: this start listens on a socket of its own, renamed over the
    // path once it answers (mark_ready). Until then nginx is refused and tries another worker,
    // rather than waiting in a backlog for a start that may fail again.
    auto fd = bind_staging_socket(process);
    if (!fd) {
      fail_start(fd.error());
      return;
    }
    process.listen_fd = std::move(*fd);
  }
  isolation::SpawnSpec spec;
  if (group.kind == Group::Kind::Nginx) {
    spec.argv = {m_nginx_binary, "-c", m_options.home.nginx_conf(), "-e",
                 m_options.home.log_dir() + "/nginx_error.log"};
    spec.umask = 0022;
  } else {
    spec.argv = isolation::shell_argv(
        images::expand_command(*group.plugin, *group.app, process.socket_path));
    spec.workdir = group.plugin->app_workdir(*group.app);
    const auto& app = *group.app;
    for (auto [resource, value] : {std::pair<int, std::uint64_t>{RLIMIT_AS, app.rlimit_as},
                                   {RLIMIT_NOFILE, app.rlimit_nofile},
                                   {RLIMIT_STACK, app.rlimit_stack},
                                   {RLIMIT_FSIZE, app.rlimit_fsize}}) {
      if (value > 0) {
        spec.rlimits.emplace_back(resource, value);
      }
    }
  }
  spec.env = process_env(process);
  spec.output_fd = group.log_fd.get();
  spec.sandbox = group.sandbox.get();
  spec.listen_fd = process.listen_fd ? process.listen_fd.get() : -1;

  auto spawned = launch(process, spec);
  if (!spawned) {
    fail_start(spawned.error());
    return;
  }
  process.pid = spawned->pid;
  process.state = ProcessState::Starting;
  process.ready = false;
  process.started_us = now_us();
  process.last_error.clear();
  sd_event_source* source = nullptr;
  int pidfd = spawned->pidfd.release();
  int rc = pidfd >= 0
               ? sd_event_add_child_pidfd(m_event, &source, pidfd, WEXITED, on_child, &process)
               : sd_event_add_child(m_event, &source, process.pid, WEXITED, on_child, &process);
  if (rc < 0) {
    m_log.error(
        fmt::format("{}: cannot watch pid {}: {}", group.label, process.pid, std::strerror(-rc)));
  } else if (pidfd >= 0) {
    sd_event_source_set_child_pidfd_own(source, 1);
  }
  process.child_watch = EventSource(source);
  watch_oom(process);
  m_log.info(fmt::format("{} worker {} started, pid {}", group.label, process.wid, process.pid));
  if (group.kind == Group::Kind::Daemon) {
    mark_ready(process);
  } else {
    start_probe(process);
  }
}

Result<isolation::Spawned> Supervisor::Impl::launch(Process& process, isolation::SpawnSpec& spec) {
  auto procs = m_cgroups->open_procs(process.cgroup);
  if (!procs) {
    return procs.error();
  }
  for (const auto& fd : *procs) {
    spec.cgroup_procs_fds.push_back(fd.get());
  }
  auto dir = m_cgroups->open_dir(process.cgroup);  // v2: born there (clone3 CLONE_INTO_CGROUP)
  spec.cgroup_dir_fd = dir ? dir->get() : -1;
  process.oom_kills_at_start = m_cgroups->usage(process.cgroup).oom_kills;
  return isolation::spawn(spec);
}

// OOM kills of a worker's children (a gunicorn worker under its master, say) do not end the
// worker: they are counted and logged as they happen.
void Supervisor::Impl::watch_oom(Process& process) {
  process.oom_watch.reset();
  process.oom_fd.reset();
  if (process.group->kind == Group::Kind::Nginx) {
    return;
  }
  auto fd = m_cgroups->watch_oom(process.cgroup);
  if (!fd || !fd->valid()) {
    return;
  }
  sd_event_source* source = nullptr;
  if (sd_event_add_io(m_event, &source, fd->get(), EPOLLIN, on_oom_event, &process) >= 0) {
    process.oom_fd = std::move(*fd);
    process.oom_watch = EventSource(source);
  }
  check_oom(process);  // a kill between the start and the watch has no event of its own
}

int Supervisor::Impl::on_group_oom_event(sd_event_source*, int fd, uint32_t, void* data) {
  auto& group = *static_cast<Group*>(data);
  isolation::drain_oom_watch(fd);
  for (auto& process : group.processes) {
    static_cast<Impl*>(process->supervisor)->check_oom(*process);
  }
  return 0;
}

void Supervisor::Impl::check_oom(Process& process) {
  if (process.pid <= 0) {
    return;
  }
  std::uint64_t kills = m_cgroups->usage(process.cgroup).oom_kills;
  if (kills > process.oom_kills_at_start + process.oom_kills_seen) {
    process.oom_kills_seen = kills - process.oom_kills_at_start;
    m_log.warn(
        fmt::format("{} worker {}: the kernel killed a process of the worker for lack of "
                    "memory (oom, {} so far)",
                    process.group->label, process.wid, process.oom_kills_seen));
  }
}

void Supervisor::Impl::on_exit(Process& process, const siginfo_t* info) {
  Group& group = *process.group;
  if (info->si_pid != process.pid) {
    on_draining_exit(process, info->si_pid);
    return;
  }
  process.child_watch.reset();
  process.age_timer.reset();
  process.oom_watch.reset();
  process.oom_fd.reset();
  process.probe_watch.reset();
  process.probe_fd.reset();
  process.timer.reset();
  std::string reason = describe_exit(info, group.sandbox != nullptr);
  // The kernel counts the OOM kill before it sends SIGKILL, so the counter is already up.
  // The OOM event may come before or after the exit: a SIGKILL death with an OOM kill in
  // the leaf since the start is an OOM kill either way.
  std::uint64_t kills = m_cgroups->usage(process.cgroup).oom_kills;
  if (kills > process.oom_kills_at_start && reason == "signal 9") {
    reason = "oom";
  }
  process.oom_kills_seen = 0;
  process.last_exit = reason;
  process.pid = -1;
  // Whatever the process left behind in its cgroup goes with it.
  if (auto st = m_cgroups->kill_all(process.cgroup, 2000); !st) {
    m_log.error(group.label + ": " + st.error().describe());
  }
  // Every stop (shutdown, hold, retire, removal) sets one of these first.
  bool expected = m_shutting_down || process.held || process.removed || group.retired;
  if (std::exchange(process.restart_when_stopped, false) && !expected) {
    m_log.info(
        fmt::format("{} worker {} stopped ({}), restarting", group.label, process.wid, reason));
    process.ready = false;
    process.failures_in_a_row = 0;
    start_process(process);
    return;
  }
  m_log.info(fmt::format("{} worker {} exited ({}){}", group.label, process.wid, reason,
                         expected ? "" : ", restarting"));
  if (expected) {
    process.state = ProcessState::Stopped;
    continue_shutdown();
    sweep();  // may erase PROCESS: nothing below
    return;
  }
  std::uint64_t uptime = now_us() - process.started_us;
  if (process.ready && uptime >= k_stable_after_us) {
    process.failures_in_a_row = 0;
  }
  ++process.failures_in_a_row;
  process.ready = false;
  schedule_restart(process);
  check_startup(false);
}

void Supervisor::Impl::schedule_restart(Process& process) {
  if (m_shutting_down) {
    process.state = ProcessState::Stopped;
    continue_shutdown();
    return;
  }
  // The first exit after a stable run restarts at once; then 0.1 s, doubling, capped (C4).
  int exponent = std::min(process.failures_in_a_row - 2, 20);
  std::uint64_t delay =
      exponent < 0 ? 0 : std::min(k_backoff_first_us << exponent, k_backoff_cap_us);
  process.state = ProcessState::Backoff;
  ++process.restarts;
  // Crash-looping (C4): its listener closes until the next start is ready, so nginx is
  // refused at once and passes the request to another worker (or answers 502) rather than
  // leaving the client in a backlog nobody accepts from until the app's timeout.
  // start_process opens a staging socket. Not during a replacement: the previous incarnation
  // keeps serving the path meanwhile.
  if (process.group->kind == Group::Kind::App && failing_repeatedly(process) &&
      process.draining.empty()) {
    drop_staging(process);
    process.listen_fd.reset();
  }
  (void)add_timer(process.timer, delay, process);
}

Status Supervisor::Impl::add_timer(EventSource& slot, std::uint64_t delay_us, Process& process) {
  sd_event_source* source = nullptr;
  // 1 ms of slack lets sd-event coalesce wake-ups; an immediate restart gets none (0 would
  // mean sd-event's default, 250 ms).
  int rc = sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC, delay_us,
                                      delay_us == 0 ? 1 : 1000, on_process_timer, &process);
  if (rc < 0) {
    return Error("arming a timer", -rc);
  }
  slot = EventSource(source);
  return {};
}

// Readiness: a worker is ready once it answers an HTTP request on its socket (nginx: on its
// port). The listening socket exists before the worker starts, so the probe's connection
// simply waits in the backlog until the app accepts it.
void Supervisor::Impl::start_probe(Process& process) {
  process.probe_fd.reset();
  process.probe_watch.reset();
  (void)add_timer(process.timer, k_probe_interval_us, process);
}

void Supervisor::Impl::probe_connect(Process& process) {
  Group& group = *process.group;
  UniqueFd fd;
  int rc = -1;
  std::string path = "/";
  if (group.kind == Group::Kind::Nginx) {
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(m_options.front.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    path = "/__health";
  } else {
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    // A replacement is probed on its own socket: only it can answer there.
    const std::string& target =
        process.staging_path.empty() ? process.socket_path : process.staging_path;
    std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (!group.app->http_test_endpoint.empty()) {
      path = group.app->http_test_endpoint;
    }
  }
  if (rc != 0 && errno != EINPROGRESS) {
    (void)add_timer(process.timer, k_probe_interval_us, process);
    return;
  }
  std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: mfserv-probe\r\n\r\n";
  // A fresh unix or loopback connection takes this small write at once (or fails).
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
    (void)add_timer(process.timer, k_probe_interval_us, process);
    return;
  }
  sd_event_source* source = nullptr;
  if (sd_event_add_io(m_event, &source, fd.get(), EPOLLIN, on_probe_io, &process) < 0) {
    (void)add_timer(process.timer, k_probe_interval_us, process);
    return;
  }
  process.probe_fd = std::move(fd);
  process.probe_watch = EventSource(source);
  process.probe_started_us = now_us();
  // Retry with a new connection if this one gets no answer (an app that re-bound the path).
  (void)add_timer(process.timer, k_probe_attempt_us, process);
}

void Supervisor::Impl::probe_readable(Process& process) {
  char buffer[16] = {};
  ssize_t n = ::recv(process.probe_fd.get(), buffer, sizeof buffer - 1, MSG_DONTWAIT);
  process.probe_watch.reset();
  process.timer.reset();
  if (n > 0 && std::strncmp(buffer, "HTTP/", 5) == 0) {
    drain_probe(std::move(process.probe_fd));
    mark_ready(process);
    return;
  }
  process.probe_fd.reset();
  (void)add_timer(process.timer, k_probe_interval_us, process);
}

// The rest of a probe's answer is read until the app closes (HTTP/1.0), so that it never
// writes to a closed socket (a broken-pipe traceback in its log), whatever happens to the
// worker meanwhile. An app that keeps it open loses it once k_max_probe_drains are newer.
void Supervisor::Impl::drain_probe(UniqueFd fd) {
  sd_event_source* source = nullptr;
  if (sd_event_add_io(m_event, &source, fd.get(), EPOLLIN, on_probe_drain_io, this) < 0) {
    return;
  }
  m_probe_drains.push_back({std::move(fd), EventSource(source)});
  if (m_probe_drains.size() > k_max_probe_drains) {
    m_probe_drains.pop_front();
  }
}

int Supervisor::Impl::on_probe_drain_io(sd_event_source*, int fd, uint32_t, void* data) {
  auto* self = static_cast<Impl*>(data);
  char buffer[4096];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
    return 0;
  }
  std::erase_if(self->m_probe_drains,
                [fd](const ProbeDrain& drain) { return drain.fd.get() == fd; });
  return 0;
}

void Supervisor::Impl::mark_ready(Process& process) {
  check_oom(process);
  process.ready = true;
  process.state = ProcessState::Running;
  if (!process.staging_path.empty()) {
    promote_staging(process);  // nginx's next connections reach the new incarnation
  }
  for (auto& old : process.draining) {
    if (!old->signaled) {
      retire_draining(*old);  // once its backlog is served, the previous one may go
    }
  }
  Group& group = *process.group;
  if (group.app && group.app->max_age > 0) {
    // Jitter so that workers started together are not all recycled together.
    std::uint64_t age = static_cast<std::uint64_t>(group.app->max_age) * k_usec_per_sec;
    std::uint64_t jitter = (static_cast<std::uint64_t>(::random()) % 1000) * age / 5000;
    sd_event_source* source = nullptr;
    if (sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC, age + jitter, 1000000,
                                   on_age_timer, &process) >= 0) {
      process.age_timer = EventSource(source);
    }
  }
  if (!group.rolling.empty() && group.rolling.front() == process.wid) {
    group.rolling.erase(group.rolling.begin());
    if (!group.rolling.empty()) {
      if (Process* next = find_process(group, group.rolling.front())) {
        replace_process(*next, "restart");
      }
    }
  }
  m_log.info(fmt::format("{} worker {} ready ({} ms)", process.group->label, process.wid,
                         (now_us() - process.started_us) / 1000));
  check_startup(false);
}

void Supervisor::Impl::check_startup(bool deadline_passed) {
  if (m_startup_reported || m_shutting_down) {
    return;
  }
  std::vector<std::string> failed;
  for (const auto& group : m_groups) {
    bool group_failed = !group->error.empty();
    for (const auto& process : group->processes) {
      if (process->ready || group_failed) {
        continue;
      }
      if (failing_repeatedly(*process) || deadline_passed) {
        group_failed = true;
      } else {
        return;  // still starting
      }
    }
    if (group_failed) {
      failed.push_back(group->label + (group->error.empty() ? "" : " (" + group->error + ")"));
    }
  }
  m_startup_reported = true;
  m_startup_timer.reset();
  if (failed.empty()) {
    m_log.info("all apps are ready");
    sd_notify(0, "READY=1\nSTATUS=all apps ready");
  } else {
    m_log.warn("apps that failed to start: " + fmt::format("{}", fmt::join(failed, ", ")));
    sd_notify(0, "READY=1\nSTATUS=some apps failed to start");
  }
  if (m_options.on_ready) {
    m_options.on_ready(failed);
  }
  release_free_memory();
}

// ---------------------------------------------------------------------------------------
// Changes while running

// Starts a new incarnation of the worker on the same listening socket, in the other cgroup
// leaf. The old one keeps serving until the new one is ready (mark_ready), then gets its stop
// signal, stops accepting and finishes its requests: a new version that never becomes ready
// leaves the old one serving. A replacement asked for while the other leaf still holds an
// earlier incarnation waits until that one is gone.
void Supervisor::Impl::replace_process(Process& process, const std::string& reason) {
  Group& group = *process.group;
  if (m_shutting_down || process.held || process.removed || group.retired) {
    return;
  }
  // A daemon has no socket to hand over and may be a singleton (a queue consumer, a
  // scheduler): its new incarnation starts once the previous one is gone, never beside it.
  if (group.kind == Group::Kind::Daemon && process.pid > 0 &&
      (process.state == ProcessState::Running || process.state == ProcessState::Starting)) {
    if (!std::exchange(process.restart_when_stopped, true)) {
      m_log.info(fmt::format("{} worker {}: stopping pid {} to restart it ({})", group.label,
                             process.wid, process.pid, reason));
      stop_process(process, group.app->smart_stop_signal, group.app->graceful_timeout);
    }
    return;
  }
  if (process.state != ProcessState::Running && process.state != ProcessState::Starting) {
    if (process.state == ProcessState::Backoff || process.state == ProcessState::Stopped ||
        process.state == ProcessState::Failed) {
      process.timer.reset();
      process.failures_in_a_row = 0;
      start_process(process);
    }
    return;
  }
  int next_generation = process.generation + 1;
  std::string next_leaf =
      group.cgroup + "/w" + std::to_string(process.wid) + (next_generation % 2 == 0 ? "" : "b");
  for (const auto& old : process.draining) {
    if (old->cgroup == next_leaf) {
      m_log.info(fmt::format("{} worker {}: {} waits for its previous incarnation (pid {})",
                             group.label, process.wid, reason, old->pid));
      process.pending_replace = reason;
      return;
    }
  }
  if (!process.staging_path.empty()) {
    // The previous replacement is not ready yet: this one follows it.
    process.pending_replace = reason;
    return;
  }
  if (auto st = m_cgroups->create(next_leaf, group.worker_limits); !st) {
    m_log.error(group.label + ": " + st.error().describe());
    return;
  }
  auto old = std::make_unique<Draining>();
  if (process.listen_fd) {
    // The new incarnation listens on a socket of its own, probed there: the old one keeps
    // the path (and nginx's connections) until the new one answers.
    auto fd = bind_staging_socket(process);
    if (!fd) {
      m_log.error(group.label + ": " + fd.error().describe());
      return;
    }
    old->listen_fd = std::move(process.listen_fd);
    process.listen_fd = std::move(*fd);
  }
  old->process = &process;
  old->pid = process.pid;
  old->cgroup = process.cgroup;
  old->child_watch = std::move(process.child_watch);
  m_log.info(fmt::format("{} worker {}: replacing pid {} ({}) once the new one is ready",
                         group.label, process.wid, old->pid, reason));
  process.draining.push_back(std::move(old));
  process.timer.reset();
  process.probe_watch.reset();
  process.probe_fd.reset();
  process.age_timer.reset();
  process.generation = next_generation;
  process.cgroup = next_leaf;
  process.state = ProcessState::Stopped;
  start_process(process);
}

// Sends the earlier incarnations of PROCESS still serving their stop signal at once: the
// worker is being stopped.
void Supervisor::Impl::signal_draining(Process& process) {
  for (auto& old : process.draining) {
    if (!old->signaled) {
      signal_old(*old);
    }
  }
}

// The new incarnation is ready and holds the path: OLD gets no new connection, but those
// already queued in its socket's backlog are only served if it keeps accepting. It gets its
// stop signal once that backlog is empty (sock_diag), or after its grace period at the latest.
void Supervisor::Impl::retire_draining(Draining& old) {
  const Group& group = *old.process->group;
  if (!old.listen_fd) {
    signal_old(old);
    return;
  }
  if (old.backlog_deadline_us == 0) {
    int grace = group.app ? group.app->graceful_timeout : k_nginx_grace_s;
    old.backlog_deadline_us = now_us() + static_cast<std::uint64_t>(grace) * k_usec_per_sec;
  }
  auto backlog = unix_listen_backlog(old.listen_fd.get());
  std::uint64_t wait = k_backlog_poll_us;
  if (!backlog) {
    // No unix_diag in this kernel: one fixed pause instead, long enough for a worker that is
    // accepting to take what was queued.
    if (old.backlog_paused) {
      signal_old(old);
      return;
    }
    old.backlog_paused = true;
    wait = k_backlog_fallback_us;
  } else if (*backlog == 0) {
    signal_old(old);
    return;
  } else if (now_us() >= old.backlog_deadline_us) {
    m_log.warn(
        fmt::format("{} worker {}: previous pid {} still has {} queued connections "
                    "after its grace period",
                    group.label, old.process->wid, old.pid, *backlog));
    signal_old(old);
    return;
  }
  sd_event_source* source = nullptr;
  if (sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC, wait, 1000, on_backlog_timer,
                                 &old) < 0) {
    signal_old(old);
    return;
  }
  old.kill_timer = EventSource(source);
}

void Supervisor::Impl::signal_old(Draining& old) {
  const Group& group = *old.process->group;
  int grace = group.app ? group.app->graceful_timeout : k_nginx_grace_s;
  int signal = group.app ? group.app->smart_stop_signal : SIGTERM;
  old.signaled = true;
  old.kill_timer.reset();
  sd_event_source* source = nullptr;
  if (sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC,
                                 static_cast<std::uint64_t>(grace) * k_usec_per_sec, 1000,
                                 on_drain_timer, &old) >= 0) {
    old.kill_timer = EventSource(source);
  }
  ::kill(old.pid, signal);
}

// The replacement's socket takes the worker's path (rename(2) swaps it atomically): nginx's
// next connections reach the new incarnation.
void Supervisor::Impl::promote_staging(Process& process) {
  if (::rename(process.staging_path.c_str(), process.socket_path.c_str()) != 0) {
    m_log.error(fmt::format("{} worker {}: renaming {} to {}: {}", process.group->label,
                            process.wid, process.staging_path, process.socket_path,
                            std::strerror(errno)));
    ::unlink(process.staging_path.c_str());
  } else {
    process.socket_ino = process.staging_ino;
  }
  process.staging_path.clear();
}

void Supervisor::Impl::on_draining_exit(Process& process, pid_t pid) {
  auto& list = process.draining;
  for (auto it = list.begin(); it != list.end(); ++it) {
    if ((*it)->pid == pid) {
      (void)m_cgroups->kill_all((*it)->cgroup, 2000);
      m_log.info(
          fmt::format("{} worker {}: previous pid {} {}", process.group->label, process.wid, pid,
                      (*it)->signaled ? "finished" : "exited before its replacement was ready"));
      list.erase(it);
      break;
    }
  }
  bool serving =
      std::any_of(list.begin(), list.end(), [](const auto& old) { return !old->signaled; });
  if (!process.staging_path.empty() && !serving) {
    // The previous incarnation is gone before the new one was ready: the new one takes the
    // path now, connections wait in its backlog as after any restart.
    promote_staging(process);
  }
  if (!process.pending_replace.empty()) {
    std::string reason = std::exchange(process.pending_replace, "");
    replace_process(process, reason);
  }
  continue_shutdown();
  sweep();
}

// Rolling: one worker at a time, the next once the previous one's replacement is ready.
// SKIP: workers that are new (nothing to replace).
void Supervisor::Impl::restart_group(Group& group, const std::vector<Process*>& skip) {
  group.rolling.clear();
  for (auto& process : group.processes) {
    if (!process->removed && std::find(skip.begin(), skip.end(), process.get()) == skip.end()) {
      process->held = false;
      group.rolling.push_back(process->wid);
    }
  }
  if (!group.rolling.empty()) {
    if (Process* first = find_process(group, group.rolling.front())) {
      replace_process(*first, "restart");
    }
  }
}

void Supervisor::Impl::hold_group(Group& group) {
  group.rolling.clear();
  for (auto& process : group.processes) {
    if (process->removed) {
      continue;
    }
    process->held = true;
    // No listener left: nginx gets "connection refused" at once (502) instead of waiting in
    // a backlog nobody will accept from.
    drop_staging(*process);
    process->listen_fd.reset();
    process->age_timer.reset();
    stop_process(*process, group.app->smart_stop_signal, group.app->graceful_timeout);
  }
}

void Supervisor::Impl::release_group(Group& group) {
  for (auto& process : group.processes) {
    if (process->removed) {
      continue;
    }
    process->held = false;
    if (group.kind == Group::Kind::App && !process->listen_fd) {
      if (auto st = open_worker_socket(*process); !st) {
        process->last_error = st.error().describe();
        m_log.error(group.label + ": " + process->last_error);
        continue;
      }
    }
    if (process->state == ProcessState::Stopped || process->state == ProcessState::Failed) {
      process->failures_in_a_row = 0;
      start_process(*process);
    }
  }
}

// A reload changed numprocesses: new workers (returned, with their sockets, not started yet)
// or the last ones marked removed (the caller stops them; sweep() erases them once gone).
std::vector<Process*> Supervisor::Impl::resize_group(Group& group, int numprocesses) {
  std::vector<Process*> added;
  // A rolling restart goes on with the workers that stay; those added start with the new
  // configuration already and are not replaced again.
  if (!group.rolling.empty()) {
    const int front = group.rolling.front();
    std::erase_if(group.rolling, [&](int wid) { return wid > numprocesses; });
    if (front > numprocesses && !group.rolling.empty()) {
      if (Process* next = find_process(group, group.rolling.front())) {
        replace_process(*next, "restart");
      }
    }
  }
  for (auto& process : group.processes) {
    if (process->wid > numprocesses) {
      process->removed = true;
    } else if (process->removed) {
      process->removed = false;  // removed by an earlier reload, wanted again: restarts
    }
  }
  for (int wid = 1; wid <= numprocesses; ++wid) {
    if (find_process(group, wid)) {
      continue;
    }
    group.processes.push_back(make_process(group, wid));
    Process& process = *group.processes.back();
    Status st = m_cgroups->create(process.cgroup, group.worker_limits);
    if (st && group.kind == Group::Kind::App) {
      st = open_worker_socket(process);
    }
    if (!st) {
      process.last_error = st.error().describe();
      process.state = ProcessState::Failed;
      m_log.error(group.label + ": " + process.last_error);
      continue;
    }
    added.push_back(&process);
  }
  return added;
}

// A replacement's own socket, before it took the worker's path: never renamed now.
void Supervisor::Impl::drop_staging(Process& process) {
  if (!process.staging_path.empty()) {
    ::unlink(process.staging_path.c_str());
    process.staging_path.clear();
  }
}

void Supervisor::Impl::close_worker_socket(Process& process) {
  drop_staging(process);
  process.listen_fd.reset();
  // Whether or not the listener was still open (`stop PLUGIN` closes it and keeps the path,
  // so that nginx is refused at once). The path may be another group's socket by now (an app
  // removed, then added again): only ours goes.
  struct stat st {};
  if (!process.socket_path.empty() && ::lstat(process.socket_path.c_str(), &st) == 0 &&
      S_ISSOCK(st.st_mode) && st.st_ino == process.socket_ino) {
    ::unlink(process.socket_path.c_str());
  }
}

// SIGHUP to nginx's master. The workers of the previous configuration finish their requests
// and may still pass new ones to any worker that configuration named: workers a reload takes
// out of nginx stop only once those are gone (stop_out_of_nginx), so none of them meets a
// closed socket (a 502 when the same request already failed on a stale keep-alive connection).
void Supervisor::Impl::reload_nginx() {
  Process& nginx = *m_nginx->processes.front();
  if (nginx.pid <= 0) {
    return;
  }
  m_old_nginx_workers.clear();
  for (pid_t pid : m_cgroups->pids(nginx.cgroup)) {
    if (pid != nginx.pid) {
      m_old_nginx_workers.push_back(pid);
    }
  }
  m_nginx_workers_before = m_old_nginx_workers;
  m_nginx_apply_deadline_us = now_us() + k_nginx_apply_wait_us;
  ::kill(nginx.pid, SIGHUP);
  // nginx's old workers close idle connections at once and busy ones after their request:
  // beyond the longest app timeout, something is wrong with them and the stops go ahead.
  int longest = k_nginx_grace_s;
  for (const auto& group : m_groups) {
    if (group->app) {
      longest = std::max(longest, group->app->timeout);
    }
  }
  m_nginx_settle_deadline_us = now_us() + static_cast<std::uint64_t>(longest) * k_usec_per_sec;
  m_nginx_settle_timer.reset();
  sd_event_source* source = nullptr;
  if (sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC, 50 * 1000, 1000,
                                 on_nginx_settle_timer, this) >= 0) {
    m_nginx_settle_timer = EventSource(source);
  } else {
    stop_out_of_nginx();
  }
}

// nginx's master re-reads its configuration on SIGHUP, starts workers for it, then tells the
// previous ones to quit; each of those closes its listening sockets as it retitles itself
// "worker process is shutting down". Applied: a new worker runs and no previous worker
// still accepts.
bool Supervisor::Impl::nginx_applied() {
  const pid_t master = m_nginx->processes.front()->pid;
  bool started = false;
  for (pid_t pid : m_cgroups->pids(m_nginx->processes.front()->cgroup)) {
    if (pid != master && std::find(m_nginx_workers_before.begin(), m_nginx_workers_before.end(),
                                   pid) == m_nginx_workers_before.end()) {
      started = true;
    }
  }
  if (!started) {
    return false;
  }
  for (pid_t pid : m_nginx_workers_before) {
    auto cmdline = read_file(fmt::format("/proc/{}/cmdline", pid));
    if (cmdline && !cmdline->empty() && cmdline->find("shutting down") == std::string::npos) {
      return false;
    }
  }
  return true;
}

void Supervisor::Impl::wait_for_reload(UniqueFd fd, nlohmann::json answer) {
  m_reload_waiters.push_back({std::move(fd), std::move(answer), now_us() + k_reload_ready_wait_us});
  if (!m_reload_timer.active()) {
    arm_reload_timer();
  }
}

// The next look at the waiting reloads: often while nginx takes its configuration, less once
// only readiness is left. Without a timer they are answered at once, as they are.
void Supervisor::Impl::arm_reload_timer() {
  const std::uint64_t tick = m_nginx_apply_deadline_us != 0 ? k_nginx_apply_tick_us : 20 * 1000;
  sd_event_source* source = nullptr;
  if (sd_event_add_time_relative(m_event, &source, CLOCK_MONOTONIC, tick, 1000, on_reload_timer,
                                 this) < 0) {
    answer_reload_waiters();
    return;
  }
  m_reload_timer = EventSource(source);  // replaces (and frees) the previous one
}

// Why GROUP, started or restarted by a reload, did not start ("" if it did not fail);
// PENDING: some worker is still starting, or the rolling restart goes on.
std::string Supervisor::Impl::start_failure(const Group& group, bool& pending) const {
  if (!group.error.empty()) {
    return group.error;
  }
  pending = !group.rolling.empty();
  for (const auto& process : group.processes) {
    if (process->removed || process->held ||
        (process->ready && process->staging_path.empty() && process->pending_replace.empty())) {
      continue;
    }
    if (failing_repeatedly(*process) || process->state == ProcessState::Failed) {
      return fmt::format("worker {}: {}", process->wid,
                         !process->last_error.empty() ? process->last_error
                         : process->last_exit.empty() ? std::string("did not start")
                                                      : process->last_exit);
    }
    pending = true;
  }
  return "";
}

// True once WAITER is answered: nginx serves the new configuration, and every app the reload
// started or restarted is ready or has failed (else, at its deadline, reported as pending).
bool Supervisor::Impl::settle_reload_waiter(ReloadWaiter& waiter, std::uint64_t now) {
  if (m_nginx_apply_deadline_us != 0) {
    return false;
  }
  nlohmann::json& answer = waiter.answer;
  std::vector<std::string> failed;
  std::vector<std::string> slow;
  nlohmann::json not_started = nlohmann::json::array();
  for (const char* what : {"started", "restarted", "resized"}) {
    const bool restarted = std::string_view(what) == "restarted";
    for (const auto& label : answer.value(what, nlohmann::json::array())) {
      for (const auto& group : m_groups) {
        if (group->label != label.get<std::string>() || group->retired) {
          continue;
        }
        bool pending = false;
        const std::string why = start_failure(*group, pending);
        if (!why.empty()) {
          not_started.push_back(group->label);
          failed.push_back(fmt::format("{} did not {} ({}{}; see `mfserv logs {}`)", group->label,
                                       restarted ? "restart" : "start", why,
                                       restarted ? "; its previous version keeps serving" : "",
                                       group->label));
        } else if (pending) {
          slow.push_back(fmt::format(
              "{} is {} after {} s (see `mfserv ps`)", group->label,
              restarted ? "still restarting (its previous version serves)" : "not ready",
              k_reload_ready_wait_us / k_usec_per_sec));
        }
      }
    }
  }
  if (!slow.empty() && now < waiter.deadline_us) {
    return false;
  }
  for (const auto& text : slow) {
    answer["diagnostics"].push_back("warning: " + text);
  }
  if (!failed.empty()) {
    // Only apps failed to start (exit 4, as `run --detach`), or the reload failed as well.
    answer["start_failed_only"] = answer.value("ok", false);
    answer["not_started"] = not_started;
    add_error(answer, fmt::format("{}", fmt::join(failed, "; ")));
  }
  control_write_answer(waiter.fd.get(), answer);
  return true;
}

// At shutdown, or when no timer can be armed: every waiting client gets its answer now,
// failed with UNFINISHED when that is why.
void Supervisor::Impl::answer_reload_waiters(const std::string& unfinished) {
  for (auto& waiter : m_reload_waiters) {
    if (!unfinished.empty()) {
      add_error(waiter.answer, unfinished);
    }
    control_write_answer(waiter.fd.get(), waiter.answer);
  }
  m_reload_waiters.clear();
  m_reload_timer.reset();
}

int Supervisor::Impl::on_reload_timer(sd_event_source*, uint64_t, void* data) {
  auto* self = static_cast<Impl*>(data);
  const std::uint64_t now = now_us();
  if (self->m_nginx_apply_deadline_us != 0) {
    const bool applied = self->nginx_applied();
    if (!applied && now >= self->m_nginx_apply_deadline_us) {
      for (auto& waiter : self->m_reload_waiters) {
        waiter.answer["diagnostics"].push_back(
            fmt::format("warning: nginx had not taken its new configuration after {} s: it may "
                        "still serve the previous one for a moment (see log/nginx_error.log)",
                        k_nginx_apply_wait_us / k_usec_per_sec));
      }
    }
    if (applied || now >= self->m_nginx_apply_deadline_us) {
      self->m_nginx_apply_deadline_us = 0;
    }
  }
  std::erase_if(self->m_reload_waiters,
                [&](ReloadWaiter& waiter) { return self->settle_reload_waiter(waiter, now); });
  if (self->m_reload_waiters.empty()) {
    self->m_reload_timer.reset();
    return 0;
  }
  self->arm_reload_timer();
  return 0;
}

int Supervisor::Impl::on_nginx_settle_timer(sd_event_source*, uint64_t, void* data) {
  auto* self = static_cast<Impl*>(data);
  auto& old = self->m_old_nginx_workers;
  old.erase(std::remove_if(old.begin(), old.end(),
                           [](pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }),
            old.end());
  if (!old.empty() && now_us() < self->m_nginx_settle_deadline_us) {
    sd_event_source* source = nullptr;
    if (sd_event_add_time_relative(self->m_event, &source, CLOCK_MONOTONIC, 50 * 1000, 1000,
                                   on_nginx_settle_timer, self) >= 0) {
      self->m_nginx_settle_timer = EventSource(source);  // replaces (and frees) this one
      return 0;
    }
  }
  if (!old.empty()) {
    self->m_log.warn(
        fmt::format("nginx: {} workers of the previous configuration still run; "
                    "stopping the workers it no longer names anyway",
                    old.size()));
  }
  self->m_nginx_settle_timer.reset();
  self->stop_out_of_nginx();
  return 0;
}

// Workers that nginx's configuration no longer names (their app removed, or beyond a lower
// numprocesses): closing their listener makes any late connection fail at once rather than
// wait in a backlog nobody accepts from.
void Supervisor::Impl::stop_out_of_nginx() {
  for (auto& group : m_groups) {
    for (auto& process : group->processes) {
      if (!std::exchange(process->stop_after_nginx, false) || m_shutting_down ||
          !(process->removed || group->retired)) {
        continue;
      }
      process->age_timer.reset();
      close_worker_socket(*process);
      stop_process(*process, group->app->smart_stop_signal, group->app->graceful_timeout);
    }
  }
  sweep();
}

// Erases the workers a reload removed and the groups it retired once nothing of them runs
// (no process, no earlier incarnation draining), with their cgroups.
void Supervisor::Impl::sweep() {
  auto gone = [](const Process& process) {
    return process.pid <= 0 && process.draining.empty() &&
           (process.state == ProcessState::Stopped || process.state == ProcessState::Failed);
  };
  auto remove_leaves = [this](const Process& process) {
    const std::string base = process.group->cgroup + "/w" + std::to_string(process.wid);
    for (const std::string& leaf : {base, base + "b"}) {
      if (auto st = m_cgroups->remove(leaf); !st) {
        m_log.warn(st.error().describe());
      }
    }
  };
  for (auto it = m_groups.begin(); it != m_groups.end();) {
    Group& group = **it;
    if (group.retired) {
      if (!std::all_of(group.processes.begin(), group.processes.end(),
                       [&](const auto& process) { return gone(*process); })) {
        ++it;
        continue;
      }
      for (auto& process : group.processes) {
        close_worker_socket(*process);
      }
      bool shared = std::any_of(m_groups.begin(), m_groups.end(), [&](const auto& other) {
        return other.get() != &group && other->cgroup == group.cgroup;
      });
      if (!shared) {
        if (auto st = m_cgroups->remove(group.cgroup); !st) {
          m_log.warn(st.error().describe());
        }
        // The plugin's own level (HOME's root/PLUGIN) goes with its last app.
        if (auto st = m_cgroups->remove_if_empty(group.cgroup.substr(0, group.cgroup.rfind('/')));
            !st) {
          m_log.warn(st.error().describe());
        }
      }
      it = m_groups.erase(it);
      continue;
    }
    auto& processes = group.processes;
    for (auto p = processes.begin(); p != processes.end();) {
      if ((*p)->removed && gone(**p)) {
        close_worker_socket(**p);
        remove_leaves(**p);
        p = processes.erase(p);
      } else {
        ++p;
      }
    }
    ++it;
  }
}

std::vector<Group*> Supervisor::Impl::find_groups(const std::string& target, std::string& error) {
  auto slash = target.find('/');
  std::string plugin = target.substr(0, slash);
  std::string app = slash == std::string::npos ? "" : target.substr(slash + 1);
  std::vector<Group*> found;
  for (auto& group : m_groups) {
    if (group->kind == Group::Kind::Nginx || group->retired || group->plugin->name != plugin) {
      continue;
    }
    if (app.empty() || group->app->name == app || group->app->section == app) {
      found.push_back(group.get());
    }
  }
  if (found.empty()) {
    error = "no running plugin or app matches '" + target + "' (see `mfserv ps`)";
  }
  return found;
}

// mfserv.ini again: what nginx.conf renders from it applies now. The port and nginx's user stay
// as `mfserv run` set them (nginx's listening socket and the group of every worker socket
// follow them), with a warning when the file now says otherwise. A broken file keeps every
// running setting and is the error returned ("" otherwise).
std::string Supervisor::Impl::reload_settings(nlohmann::json& diagnostics) {
  auto warn = [&](const std::string& text) {
    diagnostics.push_back("warning: " + text);
    m_log.warn("reload: " + text);
  };
  auto settings = load_settings(m_options.home);
  if (!settings) {
    std::string error = settings.error().describe() +
                        " (the running settings stay until it is fixed; plugin changes apply)";
    m_log.error("reload: " + error);
    return error;
  }
  FrontSettings& running = m_options.front;
  const std::string file = settings_path(m_options.home);
  auto at = [&](const std::string& key) {
    auto line = settings->lines.find(key);
    return line == settings->lines.end() ? file : fmt::format("{}:{}", file, line->second);
  };
  if (!running.port_from_command_line && settings->port != running.port) {
    warn(
        fmt::format("{}: [nginx] port {}: takes effect at the next `mfserv run`; nginx keeps "
                    "listening on {}",
                    at("port"), settings->port, running.port));
  }
  if (running.port_from_command_line && settings->lines.count("port") != 0 &&
      settings->port != running.port) {
    warn(
        fmt::format("{}: [nginx] port {} is not used: this mfserv was started with `run --port "
                    "{}`",
                    at("port"), settings->port, running.port));
  }
  if (nginx_worker_user(*settings) != nginx_worker_user(running)) {
    warn(at("user") + ": [nginx] user: takes effect at the next `mfserv run`");
  }
  settings->port = running.port;
  settings->port_from_command_line = running.port_from_command_line;
  settings->nginx_user = running.nginx_user;
  running = *settings;
  return "";
}

// Re-reads every plugin; restarts (rolling) only the apps whose plugin config changed,
// starts new ones, stops removed ones, and reloads nginx only if its config changed.
nlohmann::json Supervisor::Impl::reload() {
  const Home& home = m_options.home;
  auto report = images::load_plugins(home.plugins_dir(), home.load_options());
  nlohmann::json diagnostics = nlohmann::json::array();
  const FrontSettings previous_front = m_options.front;
  const std::string settings_error = reload_settings(diagnostics);
  for (const auto& diagnostic : report.diagnostics) {
    diagnostics.push_back(diagnostic.describe());
    m_log.warn("reload: " + diagnostic.describe());
  }
  std::vector<std::unique_ptr<Group>> added;
  std::vector<Group*> to_restart;
  std::vector<Group*> resized;  // only numprocesses changed: workers added or removed
  std::vector<Group*> to_retire;
  std::vector<Process*> fresh;  // workers a higher numprocesses adds
  std::string failed;           // apps that cannot start, and why
  std::vector<std::shared_ptr<const images::PluginConfig>> holders;
  std::map<std::string, std::map<std::string, std::string>> fingerprints;  // plugin, section
  for (const auto& plugin : report.plugins) {
    holders.push_back(std::make_shared<const images::PluginConfig>(plugin));
    fingerprints[plugin.name] = app_fingerprints(home, plugin);
  }
  auto find_app = [&](const std::string& plugin, const std::string& section)
      -> std::pair<std::shared_ptr<const images::PluginConfig>, const images::AppConfig*> {
    for (const auto& holder : holders) {
      if (holder->name != plugin) {
        continue;
      }
      for (const auto& app : holder->apps) {
        if (app.section == section && app.numprocesses > 0) {
          return {holder, &app};
        }
      }
    }
    return {nullptr, nullptr};
  };
  // A plugin whose folder is still there but whose config no longer loads keeps running as
  // it was: a bad edit must not take down what serves (the error goes back to the caller).
  std::vector<images::PluginConfig> kept;
  std::string broken;
  for (const auto& plugin : m_plugins) {
    bool loaded = std::any_of(report.plugins.begin(), report.plugins.end(),
                              [&](const auto& p) { return p.name == plugin.name; });
    if (!loaded && path_exists(home.plugins_dir() + "/" + plugin.name)) {
      kept.push_back(plugin);
      broken += (broken.empty() ? "" : ", ") + plugin.name;
    }
  }
  {
    // Sandboxes prepared from here on, and the running ones below, hide every plugin loaded now.
    std::vector<images::PluginConfig> loaded = report.plugins;
    loaded.insert(loaded.end(), kept.begin(), kept.end());
    m_hidden_plugins = hidden_plugin_dirs(home, loaded);
  }
  // nginx checks the new configuration before anything changes: one it rejects leaves every
  // app as it was, since nginx keeps routing to them.
  const auto before = read_file(home.nginx_conf());
  std::vector<images::PluginConfig> previous_plugins = std::move(m_plugins);
  m_plugins = report.plugins;
  m_plugins.insert(m_plugins.end(), kept.begin(), kept.end());
  if (auto st = write_nginx_conf(); !st) {
    m_log.error("reload: " + st.error().describe() + "; nothing changed");
    m_plugins = std::move(previous_plugins);
    m_hidden_plugins = hidden_plugin_dirs(home, m_plugins);
    m_options.front = previous_front;
    return {{"ok", false},
            {"diagnostics", diagnostics},
            {"error", st.error().describe() +
                          " (nothing changed: nginx and every app keep their previous "
                          "configuration)"}};
  }
  for (const auto& drop : m_dropped_claims) {
    diagnostics.push_back("warning: " + drop.message);
  }
  auto is_kept = [&](const std::string& name) {
    return std::any_of(kept.begin(), kept.end(), [&](const auto& p) { return p.name == name; });
  };
  for (auto& group : m_groups) {
    if (group->kind == Group::Kind::Nginx || group->retired || is_kept(group->plugin->name)) {
      continue;
    }
    auto [holder, app] = find_app(group->plugin->name, group->app->section);
    if (!app || app->kind != group->app->kind) {
      to_retire.push_back(group.get());
      continue;
    }
    const std::string fingerprint = fingerprints[holder->name][app->section];
    const bool same_config = fingerprint == group->fingerprint;
    if (same_config && app->numprocesses == group->app->numprocesses) {
      continue;
    }
    // Same app, new config: the group keeps its sockets and takes the new settings; a new
    // numprocesses adds workers or removes the last ones, and alone restarts no other.
    auto replacement = make_group(holder, *app, fingerprint);
    group->plugin_holder = holder;
    group->plugin = holder.get();
    group->app = app;
    group->fingerprint = fingerprint;
    group->limits = replacement->limits;
    group->worker_limits = replacement->worker_limits;
    group->error.clear();
    Status st = m_cgroups->create(group->cgroup, group->limits);
    if (st) {
      st = prepare_group_sandbox(*group);
    }
    if (!st) {
      group->error = st.error().describe();
      m_log.error("reload: " + group->label + ": " + group->error);
      failed += (failed.empty() ? "" : "; ") + group->label + ": " + group->error;
      continue;
    }
    for (Process* process : resize_group(*group, app->numprocesses)) {
      fresh.push_back(process);
    }
    if (!same_config) {
      to_restart.push_back(group.get());
      continue;
    }
    resized.push_back(group.get());
    for (auto& process : group->processes) {  // removed earlier, wanted again, stopped since
      if (!process->removed && !process->held && process->state == ProcessState::Stopped &&
          std::find(fresh.begin(), fresh.end(), process.get()) == fresh.end()) {
        fresh.push_back(process.get());
      }
    }
  }
  for (const auto& holder : holders) {
    for (const auto& app : holder->apps) {
      if (app.numprocesses <= 0) {
        continue;
      }
      bool exists = false;
      for (auto& group : m_groups) {
        if (group->kind != Group::Kind::Nginx && !group->retired &&
            std::find(to_retire.begin(), to_retire.end(), group.get()) == to_retire.end() &&
            group->plugin->name == holder->name && group->app->section == app.section) {
          exists = true;
        }
      }
      if (!exists) {
        added.push_back(make_group(holder, app, fingerprints[holder->name][app.section]));
      }
    }
  }
  // Labels now: sweep() erases retired groups as soon as nothing of them runs.
  nlohmann::json stopped = nlohmann::json::array();
  for (Group* group : to_retire) {
    group->retired = true;
    stopped.push_back(group->label);
  }
  for (auto& group : added) {
    (void)prepare_group(*group);
  }
  for (auto& group : m_groups) {
    if (group->sandbox) {
      group->sandbox->hide_shared = m_hidden_plugins;  // their next start hides new plugins too
    }
  }
  auto after = read_file(home.nginx_conf());
  bool changed = !before || !after || *before != *after;
  // Out of nginx's configuration now: they stop once nginx no longer uses them.
  for (Group* group : to_retire) {
    m_log.info("reload: stopping " + group->label);
    for (auto& process : group->processes) {
      process->stop_after_nginx = true;
    }
  }
  for (const auto* groups : {&to_restart, &resized}) {
    for (Group* group : *groups) {
      for (auto& process : group->processes) {
        if (process->removed && !process->stop_after_nginx) {
          m_log.info(fmt::format("reload: {} worker {} removed", group->label, process->wid));
          process->stop_after_nginx = true;
        }
      }
    }
  }
  if (changed && m_nginx->processes.front()->pid > 0) {
    reload_nginx();  // only when its configuration changed
  } else if (!m_nginx_settle_timer.active()) {
    stop_out_of_nginx();
  }
  nlohmann::json started = nlohmann::json::array();
  for (auto& group : added) {
    Group* raw = group.get();
    m_groups.insert(m_groups.end() - 1, std::move(group));  // nginx stays last
    if (!raw->error.empty()) {
      failed += (failed.empty() ? "" : "; ") + raw->label + ": " + raw->error;
      continue;
    }
    started.push_back(raw->label);
    for (auto& process : raw->processes) {
      start_process(*process);
    }
  }
  nlohmann::json restarted = nlohmann::json::array();
  for (Group* group : to_restart) {
    restarted.push_back(group->label);
    m_log.info("reload: restarting " + group->label);
    restart_group(*group, fresh);
  }
  nlohmann::json resized_labels = nlohmann::json::array();
  for (Group* group : resized) {
    resized_labels.push_back(group->label);
    m_log.info(
        fmt::format("reload: {} now has {} workers", group->label, group->app->numprocesses));
  }
  for (Process* process : fresh) {
    start_process(*process);
  }
  sweep();  // TO_RETIRE may dangle from here on
  const auto front_text = [&](const FrontSettings& settings) {
    return nginx::render(front_config(home, settings), {});
  };
  nlohmann::json answer = {
      {"ok", true},
      {"settings",
       front_text(previous_front) != front_text(m_options.front) ? settings_path(home) : ""},
      {"started", started},
      {"restarted", restarted},
      {"resized", resized_labels},
      {"stopped", stopped},
      {"diagnostics", diagnostics}};
  if (!settings_error.empty()) {
    add_error(answer, settings_error);
  }
  if (!failed.empty()) {
    add_error(answer, "cannot start " + failed);
  }
  if (!broken.empty()) {
    add_error(answer, "plugins with errors keep running their previous configuration: " + broken);
  }
  return answer;
}

// ---------------------------------------------------------------------------------------
// Shutdown: apps and daemons first (they finish their requests through a live nginx), nginx
// last, then sockets and cgroups.

void Supervisor::Impl::begin_shutdown(const std::string& reason) {
  if (m_shutting_down) {
    return;
  }
  m_shutting_down = true;
  m_log.info("stopping (" + reason + ")");
  answer_reload_waiters("mfserv is stopping (" + reason +
                        "): what the reload started or restarted may not have become ready");
  sd_notify(0, "STOPPING=1");
  ::unlink(m_options.home.running_flag().c_str());
  for (auto& group : m_groups) {
    if (group->kind == Group::Kind::Nginx) {
      continue;
    }
    for (auto& process : group->processes) {
      stop_process(*process, group->app->smart_stop_signal, group->app->graceful_timeout);
    }
  }
  continue_shutdown();
}

void Supervisor::Impl::stop_process(Process& process, int signal, int grace_s) {
  process.pending_replace.clear();
  signal_draining(process);
  switch (process.state) {
    case ProcessState::Starting:
    case ProcessState::Running:
      process.state = ProcessState::Stopping;
      process.probe_watch.reset();
      process.probe_fd.reset();
      ::kill(process.pid, signal);
      (void)add_timer(process.timer, static_cast<std::uint64_t>(grace_s) * k_usec_per_sec, process);
      break;
    case ProcessState::Backoff:
      process.timer.reset();
      process.state = ProcessState::Stopped;
      break;
    default:
      break;
  }
}

void Supervisor::Impl::continue_shutdown() {
  if (!m_shutting_down) {
    return;
  }
  for (const auto& group : m_groups) {
    if (group->kind == Group::Kind::Nginx) {
      continue;
    }
    for (const auto& process : group->processes) {
      if (process->state == ProcessState::Stopping || process->state == ProcessState::Starting ||
          process->state == ProcessState::Running || !process->draining.empty()) {
        return;
      }
    }
  }
  Process& nginx = *m_nginx->processes.front();
  if (nginx.state == ProcessState::Starting || nginx.state == ProcessState::Running) {
    stop_process(nginx, SIGQUIT, k_nginx_grace_s);  // SIGQUIT: graceful nginx shutdown
    return;
  }
  if (nginx.state == ProcessState::Stopping) {
    return;
  }
  nginx.timer.reset();
  nginx.state = ProcessState::Stopped;
  sd_event_exit(m_event, 0);
}

void Supervisor::Impl::cleanup() {
  const Home& home = m_options.home;
  for (auto& group : m_groups) {
    group->oom_watch.reset();
    group->oom_fd.reset();
    for (auto& process : group->processes) {
      process->timer.reset();
      process->probe_watch.reset();
      process->child_watch.reset();
      process->oom_watch.reset();
      process->oom_fd.reset();
      for (auto& old : process->draining) {
        old->child_watch.reset();
        old->kill_timer.reset();
      }
      close_worker_socket(*process);
    }
  }
  std::string root = home.cgroup_root();
  if (auto st = m_cgroups->kill_all(root, 5000); !st) {
    m_log.error(st.error().describe());
  }
  if (auto st = m_cgroups->remove(root); !st) {
    m_log.error(st.error().describe());
  }
  (void)m_cgroups->remove_if_empty("mfserv");  // other homes may be using it
  ::unlink(home.control_socket().c_str());
  ::unlink(home.running_flag().c_str());
  m_log.info("stopped");
}

// ---------------------------------------------------------------------------------------
// Control socket

void Supervisor::Impl::on_control_connection() {
  UniqueFd fd(::accept4(m_control_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) {
    return;
  }
  auto request = control_read_request(fd.get());
  nlohmann::json answer;
  // The workers' user is in the mfserv group (its primary group), and a sandbox hides the
  // home, the socket with it; refused here as well, whatever path leads to the socket.
  const uid_t peer = control_peer_uid(fd.get());
  const bool refused = peer != 0 && peer == m_control_access.workers_uid;
  if (refused) {
    answer = {{"ok", false},
              {"refused", true},
              {"error", "the workers' user may not control mfserv (root or the mfserv group)"}};
  } else if (!request) {
    answer = {{"ok", false}, {"error", request.error().describe()}};
  } else {
    answer = handle_request(*request);
  }
  if (!refused && request && request->is_object() && request->value("cmd", "") == "reload" &&
      !m_shutting_down) {
    wait_for_reload(std::move(fd), std::move(answer));
    return;
  }
  control_write_answer(fd.get(), answer);
  if (!refused && request && request->is_object() && request->value("cmd", "") == "stop" &&
      request->value("target", "").empty()) {
    begin_shutdown("stop requested");
  }
  answer = nullptr;
  release_free_memory();
}

// A start-up, a `ps` answer or a reload leaves free chunks spread over the heap, which glibc
// gives back only when asked: malloc_trim releases every whole free page, not just the top.
void Supervisor::Impl::release_free_memory() {
  ::malloc_trim(0);
}

nlohmann::json Supervisor::Impl::handle_request(const nlohmann::json& request) {
  std::string cmd = request.is_object() ? request.value("cmd", "") : "";
  if (cmd == "ps") {
    auto answer = ps_json();
    answer["ok"] = true;
    return answer;
  }
  std::string target = request.is_object() ? request.value("target", "") : "";
  if (cmd == "stop" && target.empty()) {
    return {{"ok", true}, {"pid", ::getpid()}};
  }
  if (cmd == "reload") {
    return reload();
  }
  if (cmd == "stop" || cmd == "start" || cmd == "restart") {
    std::string error;
    auto groups = find_groups(target, error);
    if (groups.empty()) {
      return {{"ok", false}, {"error", error}};
    }
    if (cmd != "stop") {
      for (Group* group : groups) {
        if (!group->error.empty()) {
          return {{"ok", false},
                  {"error", group->label + " cannot start: " + group->error +
                                " (fix it, then `mfserv reload`)"}};
        }
      }
    }
    nlohmann::json labels = nlohmann::json::array();
    nlohmann::json unchanged = nlohmann::json::array();  // already stopped, or already running
    for (Group* group : groups) {
      labels.push_back(group->label);
      const bool all_held = std::all_of(group->processes.begin(), group->processes.end(),
                                        [](const auto& process) { return process->held; });
      const bool none_idle =
          std::none_of(group->processes.begin(), group->processes.end(), [](const auto& process) {
            return process->held || process->state == ProcessState::Stopped ||
                   process->state == ProcessState::Failed;
          });
      if (cmd == "stop") {
        if (all_held) {
          unchanged.push_back(group->label);
        }
        hold_group(*group);
      } else if (cmd == "start") {
        if (none_idle) {
          unchanged.push_back(group->label);
        }
        release_group(*group);
      } else {
        restart_group(*group);
      }
    }
    return {{"ok", true}, {"groups", labels}, {"unchanged", unchanged}};
  }
  return {{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

// Failing again and again, and not running stably since: a worker that recovered stops being
// reported at once (its count is reset only at its next exit, to pick that exit's backoff).
bool crash_looping(const Process& process, std::uint64_t now) {
  const bool stable =
      process.ready && process.pid > 0 && now - process.started_us >= k_stable_after_us;
  return failing_repeatedly(process) && !stable;
}

nlohmann::json Supervisor::Impl::ps_json() {
  auto optional_number = [](const std::optional<std::uint64_t>& value) -> nlohmann::json {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  };
  nlohmann::json processes = nlohmann::json::array();
  nlohmann::json nginx;
  std::uint64_t now = now_us();
  for (const auto& group : m_groups) {
    if (group->retired) {
      continue;
    }
    auto group_usage = m_cgroups->usage(group->cgroup);
    for (const auto& process : group->processes) {
      auto usage = m_cgroups->usage(process->cgroup);
      nlohmann::json row = {
          {"plugin", group->plugin ? group->plugin->name : ""},
          {"app", group->app ? group->app->name : "nginx"},
          {"kind", group->kind == Group::Kind::App      ? "app"
                   : group->kind == Group::Kind::Daemon ? "daemon"
                                                        : "nginx"},
          {"worker", process->wid},
          {"pid", process->pid},
          {"state", to_string(process->state)},
          {"uptime_s", process->pid > 0 ? (now - process->started_us) / k_usec_per_sec : 0},
          {"restarts", process->restarts},
          {"crash_loop", crash_looping(*process, now)},
          {"held", process->held},
          {"draining", process->draining.size()},
          {"last_exit", process->last_exit},
          {"error", process->last_error},
          {"memory_current", optional_number(usage.memory_current)},
          {"memory_limit", optional_number(group_usage.memory_limit)},
          {"worker_memory_limit", optional_number(usage.memory_limit)},
          {"oom_kills", usage.oom_kills},
          {"cgroup", m_cgroups->display_path(process->cgroup)},
          {"socket", process->socket_path},
      };
      if (group->kind == Group::Kind::Nginx) {
        nginx = row;
      } else {
        processes.push_back(row);
      }
    }
  }
  return {{"processes", processes},
          {"nginx", nginx},
          {"service",
           {{"pid", ::getpid()},
            {"state", m_shutting_down ? "stopping" : (m_startup_reported ? "running" : "starting")},
            {"port", m_options.front.port},
            {"nginx_user", m_options.front.nginx_user},  // as mfserv.ini said at `run`
            {"cgroup_mode", m_cgroups->mode()},
            {"home", m_options.home.root}}}};
}

// ---------------------------------------------------------------------------------------
// sd-event trampolines

int Supervisor::Impl::on_child(sd_event_source*, const siginfo_t* info, void* data) {
  auto& process = *static_cast<Process*>(data);
  static_cast<Impl*>(process.supervisor)->on_exit(process, info);
  return 0;
}

int Supervisor::Impl::on_process_timer(sd_event_source*, uint64_t, void* data) {
  auto& process = *static_cast<Process*>(data);
  Impl& impl = *static_cast<Impl*>(process.supervisor);
  process.timer.reset();
  switch (process.state) {
    case ProcessState::Backoff:
      impl.start_process(process);
      break;
    case ProcessState::Starting:
      // Probe tick: connect when no probe is in flight, else the attempt timed out.
      process.probe_watch.reset();
      process.probe_fd.reset();
      impl.probe_connect(process);
      break;
    case ProcessState::Stopping:
      impl.m_log.warn(fmt::format("{} worker {} still running after its grace period: killing it",
                                  process.group->label, process.wid));
      (void)impl.m_cgroups->kill_all(process.cgroup, 2000);
      break;
    default:
      break;
  }
  return 0;
}

int Supervisor::Impl::on_probe_io(sd_event_source*, int, uint32_t, void* data) {
  auto& process = *static_cast<Process*>(data);
  static_cast<Impl*>(process.supervisor)->probe_readable(process);
  return 0;
}

int Supervisor::Impl::on_signal(sd_event_source*, const struct signalfd_siginfo* info, void* data) {
  auto& impl = *static_cast<Impl*>(data);
  if (info->ssi_signo == SIGHUP) {
    if (!impl.m_shutting_down) {
      impl.m_log.info("SIGHUP: reloading");
      (void)impl.reload();
    }
    return 0;
  }
  if (impl.m_shutting_down) {
    // A second SIGINT or SIGTERM while stopping: no more grace.
    impl.m_log.warn("second stop signal: killing everything now");
    for (auto& group : impl.m_groups) {
      for (auto& process : group->processes) {
        if (process->state == ProcessState::Stopping) {
          (void)impl.m_cgroups->kill_all(process->cgroup, 2000);
        }
      }
    }
    return 0;
  }
  impl.begin_shutdown(info->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

int Supervisor::Impl::on_control_io(sd_event_source*, int, uint32_t, void* data) {
  static_cast<Impl*>(data)->on_control_connection();
  return 0;
}

int Supervisor::Impl::on_drain_timer(sd_event_source*, uint64_t, void* data) {
  auto& old = *static_cast<Draining*>(data);
  Impl& impl = *static_cast<Impl*>(old.process->supervisor);
  impl.m_log.warn(
      fmt::format("{} worker {}: previous pid {} still running after its grace "
                  "period: killing it",
                  old.process->group->label, old.process->wid, old.pid));
  old.kill_timer.reset();
  (void)impl.m_cgroups->kill_all(old.cgroup, 2000);
  return 0;
}

int Supervisor::Impl::on_backlog_timer(sd_event_source*, uint64_t, void* data) {
  auto& old = *static_cast<Draining*>(data);
  old.kill_timer.reset();
  static_cast<Impl*>(old.process->supervisor)->retire_draining(old);
  return 0;
}

int Supervisor::Impl::on_oom_event(sd_event_source*, int fd, uint32_t, void* data) {
  auto& process = *static_cast<Process*>(data);
  isolation::drain_oom_watch(fd);
  static_cast<Impl*>(process.supervisor)->check_oom(process);
  return 0;
}

int Supervisor::Impl::on_age_timer(sd_event_source*, uint64_t, void* data) {
  auto& process = *static_cast<Process*>(data);
  process.age_timer.reset();
  static_cast<Impl*>(process.supervisor)->replace_process(process, "max_age");
  return 0;
}

int Supervisor::Impl::on_startup_deadline(sd_event_source*, uint64_t, void* data) {
  auto& impl = *static_cast<Impl*>(data);
  impl.m_startup_timer.reset();
  impl.check_startup(true);
  return 0;
}

// ---------------------------------------------------------------------------------------

Supervisor::Supervisor(RunOptions options, std::vector<images::PluginConfig> plugins)
    : m_impl(std::make_unique<Impl>(std::move(options), std::move(plugins))) {}
Supervisor::~Supervisor() = default;
Status Supervisor::prepare() {
  return m_impl->prepare();
}
Status Supervisor::run() {
  return m_impl->run();
}

}  // namespace mfserv::runtime
