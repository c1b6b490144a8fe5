// The home folder of one mfserv instance and everything that lives in it:
//   plugins/   installed plugins (folders) and dev links
//   config/    mfserv.ini and config/plugins/NAME.ini overrides
//   log/       mfserv.log, app_PLUGIN_APP.log, nginx_access.log, nginx_error.log
//   run/       lock, control.sock, nginx.conf, nginx.pid, running flag, sockets/
//   tmp/       nginx temp paths
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "isolation/cgroup.hpp"
#include "util/result.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::runtime {

struct Home {
  std::string root;  // absolute

  std::string plugins_dir() const { return root + "/plugins"; }
  std::string config_dir() const { return root + "/config"; }
  std::string log_dir() const { return root + "/log"; }
  std::string run_dir() const { return root + "/run"; }
  std::string sockets_dir() const { return root + "/run/sockets"; }
  std::string fragments_dir() const { return root + "/run/fragments"; }
  std::string tmp_dir() const { return root + "/tmp"; }
  std::string lock_path() const { return root + "/run/mfserv.lock"; }
  std::string control_socket() const { return root + "/run/control.sock"; }
  std::string nginx_conf() const { return root + "/run/nginx.conf"; }
  std::string running_flag() const { return root + "/run/running"; }
  std::string supervisor_log() const { return root + "/log/mfserv.log"; }

  // Short and stable per home: names this instance's cgroup subtree (mfserv/<instance>).
  std::string instance() const;
  std::string cgroup_root() const { return "mfserv/" + instance(); }

  // Overrides: HOME/config/plugins, then $MFSERV_ETC_DIR/plugins (default /etc/mfserv).
  images::LoadOptions load_options() const;
};

// --home, else $MFSERV_HOME, else /var/lib/mfserv (root) or ~/.local/share/mfserv.
Result<Home> resolve_home(const std::string& option);

// Creates the folders of the home (traversable by nginx's workers).
Status prepare_home(const Home& home);

// Holds the home for one supervisor. Fails with the holder's pid when another one runs.
Result<UniqueFd> lock_home(const Home& home);
// True when a supervisor holds the home.
bool home_is_locked(const Home& home);

// A supervisor killed with -9 leaves nginx and the workers in the home's cgroups: kills them
// and removes those cgroups and the sockets it left. For whoever holds the home's lock (a starting
// supervisor, `mfserv stop` with none running). Returns how many processes there were.
Result<std::size_t> stop_leftovers(isolation::CgroupBackend& cgroups, const Home& home);

}  // namespace mfserv::runtime
