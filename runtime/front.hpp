// Turns the loaded plugins and the instance's settings into the nginx front's model: which
// sockets, which prefixes, which static folders, which port and limits. The decisions about
// routing live here; nginx-gen only renders them.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "runtime/home.hpp"
#include "util/result.hpp"

namespace mfserv::runtime {

// The instance-wide settings of the front: the [nginx] section of HOME/config/mfserv.ini
// (runtime/settings.hpp reads it; `--port` overrides the port).
struct FrontSettings {
  int port = 18868;
  bool port_from_command_line = false;  // `mfserv run --port`: mfserv.ini's port is not used
  // nullopt: default_worker_processes(); 0: nginx's "auto" (one per core).
  std::optional<int> worker_processes;
  std::string client_max_body_size = "100m";
  // nginx's timeouts towards clients (header, body, sending), seconds. Each app's proxy
  // timeouts are its own `timeout` (config.ini, default 60 as in MFSERV).
  int timeout = 60;
  bool accept_incoming_request_id = false;  // keep a client's X-Request-Id
  bool add_x_forwarded_headers = true;      // X-Real-IP, X-Forwarded-* to the apps
  bool add_request_id_header = true;        // X-Request-Id to the apps and the client
  std::string hostname;                     // HOST of APP.PLUGIN.HOST; "": default_hostname()
  nginx::LogFormat log_format = nginx::LogFormat::json;
  std::string nginx_user;            // "" : decided by nginx_worker_user()
  std::map<std::string, int> lines;  // key -> its line in mfserv.ini, for messages
};

// The user nginx's workers run as: www-data when it exists, else nobody; "" when not root.
std::string nginx_worker_user(const FrontSettings& settings);

// The primary group of USER ("" when USER is "" or unknown). nginx's `user` directive
// otherwise takes the group named like the user, which does not exist for nobody on Debian
// (nogroup).
std::string nginx_worker_group(const std::string& user);

// One nginx worker per core, at most 4: the workers only relay to unix sockets and serve
// static files, so more rarely helps, and each one holds its own connections and buffers.
int default_worker_processes();

// The host's name (gethostname) when it is a DNS name, else "localhost".
std::string default_hostname();

// The unix socket of worker WID (1-based) of an app, MFSERV's naming.
std::string worker_socket_path(const Home& home, const std::string& plugin, const std::string& app,
                               int wid);

// An error when the socket of worker WID of PLUGIN/APP would not fit in a unix socket
// address (107 bytes): how many characters to take off the names, or off the home.
Status check_worker_socket_path(const Home& home, const std::string& plugin, const std::string& app,
                                int wid);

nginx::FrontConfig front_config(const Home& home, const FrontSettings& settings);

// An extra route or extra vhost front_routes() left out: it lies in another plugin's URLs, or
// an earlier app (plugins in load order) claims it already.
struct DroppedClaim {
  std::string plugin;  // whose claim was dropped
  std::string owner;   // the plugin that keeps it
  std::string message;
};

// Who routes what across plugins: the URLs under /PLUGIN and the virtual domains
// APP.PLUGIN.* belong to PLUGIN, so an extra route or extra vhost another plugin declares
// there is dropped (installing a plugin never lets another one answer for it); a route or
// vhost two apps declare goes to the first. DROPPED, when given, receives one entry a drop.
std::vector<nginx::AppRoute> front_routes(const Home& home,
                                          const std::vector<images::PluginConfig>& plugins,
                                          std::vector<DroppedClaim>* dropped = nullptr);

// The apps' nginx fragments as checked at load, each with the file nginx.conf includes it
// from (HOME/run/fragments, named after its content): writing these copies, never including
// the plugin's own file, means nginx only ever reads what was checked.
struct Fragment {
  std::string path;
  std::string content;
  std::string source;  // the plugin's file it was read from (what errors name)
};
std::vector<Fragment> front_fragments(const Home& home,
                                      const std::vector<images::PluginConfig>& plugins);

}  // namespace mfserv::runtime
