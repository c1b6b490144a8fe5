// The models behind tests/golden/*.conf, shared by the golden comparison (nginx_conf_test) and
// the check that every golden file passes the real `nginx -t` (nginx_control_test). Every path
// hangs below ROOT, so a golden file rendered at k_golden_root can be moved into a temporary
// directory by plain text substitution.
#pragma once

#include <string>
#include <vector>

#include "nginx-gen/nginx_conf.hpp"

namespace mfserv::nginx::testing {

inline constexpr const char* k_golden_root = "/srv/mfserv";

struct GoldenCase {
  std::string name;  // tests/golden/NAME.conf
  FrontConfig front;
  std::vector<AppRoute> apps;
};

inline std::string golden_path(const std::string& name) {
  return std::string(MFSERV_SOURCE_DIR) + "/tests/golden/" + name + ".conf";
}

inline FrontConfig golden_front(const std::string& root) {
  FrontConfig front;
  front.port = 18868;
  front.worker_processes = 2;
  front.pid_file = root + "/var/nginx.pid";
  front.error_log = root + "/log/nginx_error.log";
  front.access_log = root + "/log/nginx_access.log";
  front.temp_dir = root + "/tmp/nginx";
  front.running_flag = root + "/var/running";
  return front;
}

inline AppRoute golden_app(const std::string& root, const std::string& plugin,
                           const std::string& app, int workers) {
  AppRoute route;
  route.plugin = plugin;
  route.app = app;
  for (int i = 1; i <= workers; ++i) {
    route.sockets.push_back(root + "/run/" + plugin + "/" + app + "_" + std::to_string(i) +
                            ".sock");
  }
  route.static_dir = root + "/plugins/" + plugin + "/" + app + "/static";
  return route;
}

// C13: the static files of an app routed at "/", "/PLUGIN" or "/PLUGIN/APP", under "/static"
// or at the route itself. WORKERS 0 is a static site (MFSERV's static template).
inline AppRoute c13_app(const std::string& root, const std::string& app_prefix,
                        const std::string& static_prefix, int workers) {
  AppRoute app = golden_app(root, "site", "main", workers);
  app.prefix_routing = app_prefix == "/site/main";
  app.plugin_prefix = app_prefix == "/site";
  if (app_prefix == "/") {
    app.extra_routes = {"/"};
  }
  app.static_url_prefix = static_prefix;
  return app;
}

inline std::vector<GoldenCase> golden_cases(const std::string& root) {
  std::vector<GoldenCase> cases;

  {
    GoldenCase c{"single_app_two_sockets", golden_front(root), {}};
    c.front.user = "www-data";
    c.front.mime_types = "/etc/nginx/mime.types";
    AppRoute app = golden_app(root, "foo", "main", 2);
    app.plugin_prefix = true;
    c.apps.push_back(app);
    cases.push_back(c);
  }
  {
    GoldenCase c{"two_apps", golden_front(root), {}};
    AppRoute main_app = golden_app(root, "foo", "main", 2);
    main_app.plugin_prefix = true;
    AppRoute other = golden_app(root, "foo", "other", 1);
    other.timeout = 300;
    c.apps = {main_app, other};
    cases.push_back(c);
  }
  {
    GoldenCase c{"static_only", golden_front(root), {}};
    AppRoute app = golden_app(root, "site", "main", 0);
    app.plugin_prefix = true;
    app.static_url_prefix = "";
    c.apps.push_back(app);
    cases.push_back(c);
  }
  {
    GoldenCase c{"c12_extra_route_root", golden_front(root), {}};
    AppRoute app = golden_app(root, "foo", "main", 2);
    app.plugin_prefix = true;
    app.extra_routes = {"/", "/api/v1.0"};
    c.apps.push_back(app);
    cases.push_back(c);
  }
  const std::vector<std::pair<std::string, std::string>> app_prefixes = {
      {"root", "/"}, {"plugin", "/site"}, {"app", "/site/main"}};
  const std::vector<std::pair<std::string, std::string>> static_prefixes = {{"static", "/static"},
                                                                            {"empty", ""}};
  for (const auto& [app_label, app_prefix] : app_prefixes) {
    for (const auto& [static_label, static_prefix] : static_prefixes) {
      GoldenCase site{"c13_" + app_label + "_" + static_label, golden_front(root), {}};
      site.apps.push_back(c13_app(root, app_prefix, static_prefix, 0));
      cases.push_back(site);
      GoldenCase served{
          "c13_" + app_label + "_" + static_label + "_with_app", golden_front(root), {}};
      served.apps.push_back(c13_app(root, app_prefix, static_prefix, 2));
      cases.push_back(served);
    }
  }
  {
    GoldenCase c{"virtualdomain", golden_front(root), {}};
    c.front.hostname = "example.org";
    AppRoute app = golden_app(root, "foo", "main", 2);
    app.virtualdomain_routing = true;
    app.extra_vhosts = {"www.example.com", "example.com"};
    AppRoute site = golden_app(root, "site", "main", 0);
    site.prefix_routing = false;
    site.virtualdomain_routing = true;
    site.static_url_prefix = "";
    c.apps = {app, site};
    cases.push_back(c);
  }
  {
    GoldenCase c{"extra_conf", golden_front(root), {}};
    AppRoute app = golden_app(root, "foo", "main", 2);
    app.plugin_prefix = true;
    app.extra_conf_path = root + "/plugins/foo/nginx_extra.conf";
    app.extra_conf_static_path = root + "/plugins/foo/nginx_extra_static.conf";
    c.apps.push_back(app);
    cases.push_back(c);
  }
  {
    GoldenCase c{"incoming_request_id", golden_front(root), {}};
    c.front.accept_incoming_request_id = true;
    c.front.worker_processes = 0;
    c.apps.push_back(golden_app(root, "foo", "main", 1));
    cases.push_back(c);
  }
  {
    // Two apps claiming the same routes: the first keeps them, the second gets a comment.
    GoldenCase c{"duplicate_routes", golden_front(root), {}};
    AppRoute first = golden_app(root, "foo", "main", 1);
    first.extra_routes = {"/api"};
    AppRoute second = golden_app(root, "bar", "main", 1);
    second.extra_routes = {"/api/", "/bar"};
    c.apps = {first, second};
    cases.push_back(c);
  }
  {
    // The global settings of HOME/config/mfserv.ini that reach the text.
    GoldenCase c{"front_settings", golden_front(root), {}};
    c.front.port = 8080;
    c.front.user = "www-data";
    c.front.group = "www-data";
    c.front.worker_processes = 4;
    c.front.client_max_body_size = "1g";
    c.front.client_timeout = 30;
    c.front.log_format = LogFormat::combined;
    c.apps.push_back(golden_app(root, "foo", "main", 1));
    cases.push_back(c);
  }
  {
    // /__upstream_status lists the upstreams, not the static sites; past 8 parts (its head,
    // then one per upstream) the JSON is set in pieces, then joined.
    GoldenCase c{"upstream_status", golden_front(root), {}};
    AppRoute api = golden_app(root, "api", "main", 3);
    api.timeout = 300;
    AppRoute admin = golden_app(root, "api", "admin", 1);
    AppRoute site = golden_app(root, "site", "main", 0);
    site.static_url_prefix = "";
    c.apps = {api, admin, site};
    for (int i = 1; i <= 7; ++i) {
      AppRoute service = golden_app(root, "service" + std::to_string(i), "main", 1);
      service.static_routing = false;
      c.apps.push_back(service);
    }
    cases.push_back(c);
  }
  return cases;
}

}  // namespace mfserv::nginx::testing
