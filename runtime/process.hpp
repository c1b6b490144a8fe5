// The supervised units: a Group (an app, an extra daemon, or nginx) and its Processes (one
// per worker), with the state machine each process goes through:
//   starting -> running -> stopping -> stopped
//       \-> (exit) -> backoff -> starting ...
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/sandbox.hpp"
#include "runtime/event_source.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::runtime {

enum class ProcessState { Starting, Running, Stopping, Backoff, Stopped, Failed };
const char* to_string(ProcessState state);

struct Group;
struct Process;

// An earlier incarnation of a worker, replaced (restart, max_age, reload): it keeps serving on
// the shared socket until the new one is ready, then gets its stop signal and finishes its
// requests in a cgroup leaf of its own.
struct Draining {
  Process* process = nullptr;
  pid_t pid = -1;
  std::string cgroup;
  bool signaled = false;  // false: still serving, waiting for the new incarnation's readiness
  UniqueFd listen_fd;     // apps: the socket it serves, whose backlog it empties before its stop
  std::uint64_t backlog_deadline_us = 0;  // when to stop waiting for that backlog
  bool backlog_paused = false;            // without unix_diag: waited once instead
  EventSource child_watch;  // its userdata stays the Process: exits are told apart by pid
  EventSource kill_timer;   // before the stop signal: backlog polling; after: kill at grace
};

struct Process {
  void* supervisor = nullptr;  // the Supervisor::Impl that owns it (event callbacks)
  Group* group = nullptr;
  int wid = 1;              // 1-based worker id
  std::string cgroup;       // leaf, relative to the hierarchy root
  std::string socket_path;  // apps only
  UniqueFd listen_fd;       // apps only: owned by the supervisor, passed as fd 3
  ino_t socket_ino = 0;     // the path's inode once bound: only our own socket is unlinked
  // A replacement's own socket (listen_fd) until it is ready, then renamed over socket_path.
  std::string staging_path;
  ino_t staging_ino = 0;

  ProcessState state = ProcessState::Stopped;
  pid_t pid = -1;
  EventSource child_watch;
  EventSource timer;  // backoff, kill-after-grace, or readiness retry
  EventSource probe_watch;
  UniqueFd probe_fd;
  std::uint64_t probe_started_us = 0;

  std::uint64_t started_us = 0;  // CLOCK_MONOTONIC
  bool ready = false;
  int restarts = 0;
  int failures_in_a_row = 0;  // exits without a stable run; drives the backoff
  std::string last_exit;      // "exit 1", "signal 9", "oom", "" before the first exit
  std::string last_error;     // why the last start failed
  std::uint64_t oom_kills_at_start = 0;

  int generation = 0;  // picks the cgroup leaf: w<wid> or w<wid>b, alternately
  std::vector<std::unique_ptr<Draining>> draining;
  EventSource age_timer;  // max_age recycling
  UniqueFd oom_fd;        // readable when the kernel OOM-kills something in the leaf
  EventSource oom_watch;
  std::uint64_t oom_kills_seen = 0;  // OOM kills inside the worker while it kept running
  bool held = false;                 // stopped on request (`mfserv stop PLUGIN/APP`): no restart
  bool removed = false;           // a reload lowered numprocesses: erased once stopped and drained
  bool stop_after_nginx = false;  // not in nginx's new config: stops when its old workers are gone
  std::string pending_replace;    // a replacement waiting for the previous incarnation to finish
  bool restart_when_stopped = false;  // daemons: a restart stops first, then starts (no overlap)
};

struct Group {
  enum class Kind { App, Daemon, Nginx };
  Kind kind = Kind::App;
  const images::PluginConfig* plugin = nullptr;  // null for nginx
  const images::AppConfig* app = nullptr;        // null for nginx
  std::string label;                             // "plugin/app", "plugin/extra_daemon_x", "nginx"
  std::string cgroup;                            // relative to the hierarchy root
  std::string log_path;
  UniqueFd log_fd;
  isolation::CgroupLimits limits;
  std::string error;  // set when the group cannot run (cgroup limits, sockets, sandbox...)
  std::unique_ptr<isolation::PreparedSandbox> sandbox;        // apps and daemons; null for nginx
  std::shared_ptr<const images::PluginConfig> plugin_holder;  // keeps plugin/app alive
  isolation::CgroupLimits worker_limits;                      // each worker leaf
  std::string fingerprint;   // what its config was made of (reload)
  std::vector<int> rolling;  // workers still to replace in a rolling restart
  bool retired = false;      // removed by a reload; stops and stays stopped
  UniqueFd oom_fd;           // OOM events of the app's cgroup (its limit)
  EventSource oom_watch;
  std::vector<std::unique_ptr<Process>> processes;
};

}  // namespace mfserv::runtime
