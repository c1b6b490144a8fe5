// Turns the loaded plugins into the nginx front's model: which sockets, which prefixes, which
// static folders. The decisions about routing live here; nginx-gen only renders them.
#pragma once

#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "runtime/home.hpp"

namespace mfserv::runtime {

struct FrontSettings {
  int port = 18868;
  std::string nginx_user;  // "" : decided by nginx_worker_user()
};

// The user nginx's workers run as: www-data when it exists, else nobody; "" when not root.
std::string nginx_worker_user(const FrontSettings& settings);

// The unix socket of worker WID (1-based) of an app, MFSERV's naming.
std::string worker_socket_path(const Home& home, const std::string& plugin,
                               const std::string& app, int wid);

nginx::FrontConfig front_config(const Home& home, const FrontSettings& settings);
std::vector<nginx::AppRoute> front_routes(const Home& home,
                                          const std::vector<images::PluginConfig>& plugins);

}  // namespace mfserv::runtime
