// Routing decisions (see front.hpp): plugins and settings in, nginx-gen's model out.
#include "runtime/front.hpp"

#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "images/values.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::runtime {

std::string nginx_worker_user(const FrontSettings& settings) {
  if (!settings.nginx_user.empty()) {
    return settings.nginx_user;
  }
  if (::geteuid() != 0) {
    return "";
  }
  return ::getpwnam("www-data") ? "www-data" : "nobody";
}

std::string worker_socket_path(const Home& home, const std::string& plugin, const std::string& app,
                               int wid) {
  return home.sockets_dir() + "/app_" + plugin + "_" + app + "_" + std::to_string(wid) + ".socket";
}

std::string nginx_worker_group(const std::string& user) {
  if (user.empty()) {
    return "";
  }
  const struct passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) {
    return "";
  }
  const struct group* gr = ::getgrgid(pw->pw_gid);
  return gr == nullptr ? "" : std::string(gr->gr_name);
}

int default_worker_processes() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}

std::string default_hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) == 0 && images::is_dns_name(name)) {
    return name;
  }
  return "localhost";
}

Status check_worker_socket_path(const Home& home, const std::string& plugin, const std::string& app,
                                int wid) {
  const std::string path = worker_socket_path(home, plugin, app, wid);
  constexpr size_t k_max = sizeof(sockaddr_un{}.sun_path) - 1;
  if (path.size() <= k_max) {
    return {};
  }
  return Error(fmt::format(
      "{}/{}: its worker socket {} is {} bytes, over the {} a unix socket allows: shorten the "
      "plugin or app name by {} characters, or use a shorter home ({} takes {})",
      plugin, app, path, path.size(), k_max, path.size() - k_max, home.root, home.root.size()));
}

nginx::FrontConfig front_config(const Home& home, const FrontSettings& settings) {
  nginx::FrontConfig front;
  front.port = settings.port;
  front.user = nginx_worker_user(settings);
  front.group = nginx_worker_group(front.user);
  front.worker_processes = settings.worker_processes.value_or(default_worker_processes());
  front.hostname = settings.hostname.empty() ? default_hostname() : settings.hostname;
  front.client_max_body_size = settings.client_max_body_size;
  front.client_timeout = settings.timeout;
  front.accept_incoming_request_id = settings.accept_incoming_request_id;
  front.add_x_forwarded_headers = settings.add_x_forwarded_headers;
  front.add_request_id_header = settings.add_request_id_header;
  front.log_format = settings.log_format;
  front.pid_file = home.run_dir() + "/nginx.pid";
  front.error_log = home.log_dir() + "/nginx_error.log";
  front.access_log = home.log_dir() + "/nginx_access.log";
  front.temp_dir = home.tmp_dir() + "/nginx";
  front.mime_types = path_exists("/etc/nginx/mime.types") ? "/etc/nginx/mime.types" : "";
  front.running_flag = home.running_flag();
  return front;
}

namespace {

std::string fragment_path(const Home& home, const images::PluginConfig& plugin,
                          const images::AppConfig& app) {
  // Named after the content: a new text, a new file.
  return fmt::format("{}/{}.{}.{:08x}.conf", home.fragments_dir(), plugin.name, app.section,
                     fnv1a(app.extra_nginx_conf));
}

}  // namespace

std::vector<Fragment> front_fragments(const Home& home,
                                      const std::vector<images::PluginConfig>& plugins) {
  std::vector<Fragment> fragments;
  for (const auto& plugin : plugins) {
    for (const auto& app : plugin.apps) {
      if (!app.extra_nginx_conf_filename.empty()) {
        fragments.push_back({fragment_path(home, plugin, app), app.extra_nginx_conf,
                             plugin.dir + "/" + app.extra_nginx_conf_filename});
      }
    }
  }
  return fragments;
}

namespace {

// "b" for "/b/c", "" for "/".
std::string first_segment(const std::string& route) {
  const size_t end = route.find('/', 1);
  return route.substr(1, end == std::string::npos ? std::string::npos : end - 1);
}

std::string label_of(const nginx::AppRoute& route) {
  return route.plugin + "/" + route.app;
}

// Where ROUTE's app serves its static files when ROUTE is EXTRA: "/a" + "/static" (the root
// adds nothing), "" when that is ROUTE itself or there are none.
std::string statics_under(const nginx::AppRoute& route, const std::string& extra) {
  std::string prefix = route.static_url_prefix;
  while (!prefix.empty() && prefix.back() == '/') {
    prefix.pop_back();
  }
  if (!route.static_routing || route.static_dir.empty() || prefix.empty()) {
    return "";
  }
  return (extra == "/" ? "" : extra) + (prefix.front() == '/' ? "" : "/") + prefix;
}

// See front_routes(): drops the extra routes and vhosts that belong to another plugin or that
// an earlier app claims.
void settle_claims(std::vector<nginx::AppRoute>& routes, std::vector<DroppedClaim>& dropped) {
  std::map<std::string, std::string> segment_owner;  // a plugin's name -> that plugin
  std::map<std::string, std::string> vhost_prefix;   // "APP.PLUGIN." -> PLUGIN
  for (const auto& route : routes) {
    // /PLUGIN/ is the plugin's even when it does not route there (_prefix_based_routing = 0):
    // it may turn routing on at its next release, and its URLs stay its own meanwhile.
    segment_owner[route.plugin] = route.plugin;
    if (route.virtualdomain_routing) {  // nginx compares server names in lower case
      vhost_prefix[to_lower(route.app + "." + route.plugin + ".")] = route.plugin;
    }
  }
  std::map<std::string, const nginx::AppRoute*> route_claims;
  std::map<std::string, const nginx::AppRoute*> vhost_claims;
  for (auto& route : routes) {
    // Records a drop in favour of OWNER; false, for erase_if's sake.
    auto drop = [&](const std::string& owner, const std::string& what) {
      dropped.push_back(
          {route.plugin, owner, "plugin " + route.plugin + ", app " + route.app + ": " + what});
      return false;
    };
    auto keep_route = [&](const std::string& extra) {
      const std::string key = "(prefix_based_routing_extra_routes)";
      auto owner = segment_owner.find(first_segment(extra));
      if (owner != segment_owner.end() && owner->second != route.plugin) {
        return drop(owner->second, fmt::format("extra route {} is under plugin {}'s URLs (/{}/): "
                                               "ignored {}",
                                               extra, owner->second, owner->second, key));
      }
      const std::string statics = statics_under(route, extra);
      owner = statics.empty() ? segment_owner.end() : segment_owner.find(first_segment(statics));
      if (owner != segment_owner.end() && owner->second != route.plugin) {
        return drop(owner->second,
                    fmt::format("extra route {} would serve its static files at {} "
                                "(_static_url_prefix), under plugin {}'s URLs (/{}/): ignored {}",
                                extra, statics, owner->second, owner->second, key));
      }
      auto [claim, fresh] = route_claims.emplace(extra, &route);
      if (!fresh && claim->second->plugin != route.plugin) {
        return drop(claim->second->plugin,
                    fmt::format("extra route {} is already routed to {}: ignored {}", extra,
                                label_of(*claim->second), key));
      }
      return true;
    };
    auto keep_vhost = [&](const std::string& vhost) {
      const std::string key = "(virtualdomain_based_routing_extra_vhosts)";
      const std::string name = to_lower(vhost);
      for (const auto& [prefix, plugin] : vhost_prefix) {
        if (plugin != route.plugin && name.compare(0, prefix.size(), prefix) == 0) {
          return drop(plugin, fmt::format("extra vhost {} is one of plugin {}'s virtual domains: "
                                          "ignored {}",
                                          vhost, plugin, key));
        }
      }
      auto [claim, fresh] = vhost_claims.emplace(name, &route);
      if (!fresh && claim->second != &route) {
        return drop(claim->second->plugin,
                    fmt::format("extra vhost {} is already served by {}: ignored {}", vhost,
                                label_of(*claim->second), key));
      }
      return true;
    };
    std::erase_if(route.extra_routes, [&](const std::string& extra) { return !keep_route(extra); });
    if (route.virtualdomain_routing) {
      std::erase_if(route.extra_vhosts,
                    [&](const std::string& vhost) { return !keep_vhost(vhost); });
    }
  }
}

}  // namespace

std::vector<nginx::AppRoute> front_routes(const Home& home,
                                          const std::vector<images::PluginConfig>& plugins,
                                          std::vector<DroppedClaim>* dropped) {
  std::vector<nginx::AppRoute> routes;
  for (const auto& plugin : plugins) {
    int app_count = 0;
    for (const auto& app : plugin.apps) {
      app_count += app.kind == images::AppConfig::Kind::App ? 1 : 0;
    }
    for (const auto& app : plugin.apps) {
      if (app.kind != images::AppConfig::Kind::App) {
        continue;
      }
      nginx::AppRoute route;
      route.plugin = plugin.name;
      route.app = app.name;
      for (int wid = 1; wid <= app.numprocesses; ++wid) {
        route.sockets.push_back(worker_socket_path(home, plugin.name, app.name, wid));
      }
      route.timeout = app.timeout;
      route.prefix_routing = app.prefix_based_routing;
      route.plugin_prefix = app.prefix_based_routing && (app.name == "main" || app_count == 1);
      route.extra_routes = app.extra_routes;
      route.static_routing = app.static_routing;
      route.static_url_prefix = app.static_url_prefix;
      std::string static_dir = app.static_directory;
      if (!static_dir.empty() && static_dir.front() != '/') {
        static_dir = "/" + static_dir;
      }
      route.static_dir = plugin.app_workdir(app) + static_dir;
      while (route.static_dir.size() > 1 && route.static_dir.back() == '/') {
        route.static_dir.pop_back();
      }
      route.virtualdomain_routing = app.virtualdomain_based_routing;
      route.extra_vhosts = app.virtualdomain_extra_vhosts;
      if (!app.extra_nginx_conf_filename.empty()) {
        route.extra_conf_path = fragment_path(home, plugin, app);
      }
      // An app without workers and without static routing has nothing to serve.
      if (route.sockets.empty() && !route.static_routing) {
        continue;
      }
      routes.push_back(std::move(route));
    }
  }
  std::vector<DroppedClaim> drops;
  settle_claims(routes, drops);
  if (dropped) {
    *dropped = std::move(drops);
  }
  return routes;
}

}  // namespace mfserv::runtime
