// The supervisor: owns nginx and every worker of every app, restarts what dies, serves the
// control socket, and on SIGTERM/SIGINT stops everything (apps first, nginx last) leaving no
// process, socket or cgroup behind.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "runtime/front.hpp"
#include "runtime/home.hpp"
#include "runtime/logger.hpp"
#include "util/result.hpp"

namespace mfserv::runtime {

struct RunOptions {
  Home home;
  FrontSettings front;
  // Called once: when every app is ready (FAILED empty) or when some could not start.
  std::function<void(const std::vector<std::string>& failed)> on_ready;
  Logger::Sink log_sink;  // extra destination of the supervisor's log lines
};

class Supervisor {
 public:
  Supervisor(RunOptions options, std::vector<images::PluginConfig> plugins);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Checks everything that can be checked before the first process starts (home lock, nginx
  // binary, port, cgroups, nginx.conf) and returns the first blocking problem.
  Status prepare();
  // Starts nginx and the apps, then serves until stopped. Returns once all is cleaned up.
  Status run();

 private:
  class Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace mfserv::runtime
