// front_config: the instance's settings as they reach nginx-gen's model.
#include "runtime/front.hpp"

#include <algorithm>
#include <thread>

#include <catch2/catch.hpp>

using mfserv::runtime::front_config;
using mfserv::runtime::FrontSettings;

TEST_CASE("front_config applies the settings", "[runtime][front]") {
  const mfserv::runtime::Home home{"/srv/h"};
  FrontSettings settings;
  auto front = front_config(home, settings);
  CHECK(front.port == 18868);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  CHECK(front.worker_processes == std::clamp(cores, 1, 4));
  CHECK(front.worker_processes == mfserv::runtime::default_worker_processes());
  CHECK(front.hostname == mfserv::runtime::default_hostname());
  CHECK_FALSE(front.hostname.empty());
  CHECK(front.client_max_body_size == "100m");
  CHECK(front.client_timeout == 60);
  CHECK_FALSE(front.accept_incoming_request_id);
  CHECK(front.log_format == mfserv::nginx::LogFormat::json);
  CHECK(front.access_log == "/srv/h/log/nginx_access.log");
  CHECK(front.running_flag == "/srv/h/run/running");

  settings.port = 8081;
  settings.worker_processes = 0;
  settings.hostname = "example.org";
  settings.client_max_body_size = "2g";
  settings.timeout = 30;
  settings.accept_incoming_request_id = true;
  settings.log_format = mfserv::nginx::LogFormat::combined;
  settings.nginx_user = "nobody";
  front = front_config(home, settings);
  CHECK(front.port == 8081);
  CHECK(front.worker_processes == 0);
  CHECK(front.hostname == "example.org");
  CHECK(front.client_max_body_size == "2g");
  CHECK(front.client_timeout == 30);
  CHECK(front.accept_incoming_request_id);
  CHECK(front.log_format == mfserv::nginx::LogFormat::combined);
  CHECK(front.user == "nobody");
  CHECK(front.group == mfserv::runtime::nginx_worker_group("nobody"));
  CHECK_FALSE(front.group.empty());
  CHECK(mfserv::nginx::model_problems(front, {}).empty());
}

TEST_CASE("nginx_worker_group is the user's primary group", "[runtime][front]") {
  CHECK(mfserv::runtime::nginx_worker_group("root") == "root");
  CHECK(mfserv::runtime::nginx_worker_group("").empty());
  CHECK(mfserv::runtime::nginx_worker_group("no-such-user-mfserv").empty());
}

namespace {

mfserv::images::PluginConfig routed_plugin(const std::string& name,
                                           std::vector<std::string> extra_routes,
                                           std::vector<std::string> extra_vhosts = {}) {
  mfserv::images::PluginConfig plugin;
  plugin.name = name;
  plugin.dir = "/srv/plugins/" + name;
  mfserv::images::AppConfig app;
  app.name = "main";
  app.numprocesses = 1;
  app.extra_routes = std::move(extra_routes);
  app.virtualdomain_based_routing = !extra_vhosts.empty();
  app.virtualdomain_extra_vhosts = std::move(extra_vhosts);
  plugin.apps.push_back(app);
  return plugin;
}

const mfserv::nginx::AppRoute& route_of(const std::vector<mfserv::nginx::AppRoute>& routes,
                                        const std::string& plugin) {
  auto found = std::find_if(routes.begin(), routes.end(),
                            [&](const auto& route) { return route.plugin == plugin; });
  REQUIRE(found != routes.end());
  return *found;
}

}  // namespace

TEST_CASE("a plugin never routes another plugin's URLs or virtual domains", "[runtime][front]") {
  const mfserv::runtime::Home home{"/srv/h"};
  // Plugins come in name order, as the loader gives them.
  const std::vector<mfserv::images::PluginConfig> plugins = {
      routed_plugin("alpha", {"/", "/beta", "/beta/login", "/shared", "/alpha/more"},
                    {"main.beta.example.org", "www.example.org"}),
      routed_plugin("beta", {"/shared", "/", "/betamax"}, {"www.example.org", "beta.example.org"}),
  };
  std::vector<mfserv::runtime::DroppedClaim> dropped;
  auto routes = mfserv::runtime::front_routes(home, plugins, &dropped);

  // alpha keeps what is nobody else's; beta keeps its own URLs and what was free.
  CHECK(route_of(routes, "alpha").extra_routes ==
        std::vector<std::string>{"/", "/shared", "/alpha/more"});
  CHECK(route_of(routes, "beta").extra_routes == std::vector<std::string>{"/betamax"});
  CHECK(route_of(routes, "alpha").extra_vhosts == std::vector<std::string>{"www.example.org"});
  CHECK(route_of(routes, "beta").extra_vhosts == std::vector<std::string>{"beta.example.org"});

  std::vector<std::string> messages;
  for (const auto& drop : dropped) {
    messages.push_back(drop.plugin + " -> " + drop.owner + ": " + drop.message);
  }
  CHECK(messages ==
        std::vector<std::string>{
            "alpha -> beta: plugin alpha, app main: extra route /beta is under plugin beta's "
            "URLs (/beta/): ignored (prefix_based_routing_extra_routes)",
            "alpha -> beta: plugin alpha, app main: extra route /beta/login is under plugin "
            "beta's URLs (/beta/): ignored (prefix_based_routing_extra_routes)",
            "alpha -> beta: plugin alpha, app main: extra vhost main.beta.example.org is one of "
            "plugin beta's virtual domains: ignored (virtualdomain_based_routing_extra_vhosts)",
            "beta -> alpha: plugin beta, app main: extra route /shared is already routed to "
            "alpha/main: ignored (prefix_based_routing_extra_routes)",
            "beta -> alpha: plugin beta, app main: extra route / is already routed to alpha/main: "
            "ignored (prefix_based_routing_extra_routes)",
            "beta -> alpha: plugin beta, app main: extra vhost www.example.org is already served "
            "by alpha/main: ignored (virtualdomain_based_routing_extra_vhosts)",
        });

  // Without the other plugin, every claim stands.
  auto alone = mfserv::runtime::front_routes(home, {plugins[0]}, &dropped);
  CHECK(dropped.empty());
  CHECK(alone[0].extra_routes.size() == 5);
  CHECK(alone[0].extra_vhosts.size() == 2);
}

TEST_CASE("static prefixes and letter case do not get around route ownership", "[runtime][front]") {
  const mfserv::runtime::Home home{"/srv/h"};
  auto alpha = routed_plugin("alpha", {"/", "/docs"}, {"Main.Beta.Example.org", "WWW.example.org"});
  alpha.apps[0].static_url_prefix = "/beta";  // "/" would serve statics at /beta
  const std::vector<mfserv::images::PluginConfig> plugins = {
      alpha, routed_plugin("beta", {}, {"www.example.org"})};
  std::vector<mfserv::runtime::DroppedClaim> dropped;
  auto routes = mfserv::runtime::front_routes(home, plugins, &dropped);
  CHECK(route_of(routes, "alpha").extra_routes == std::vector<std::string>{"/docs"});
  CHECK(route_of(routes, "alpha").extra_vhosts == std::vector<std::string>{"WWW.example.org"});
  CHECK(route_of(routes, "beta").extra_vhosts.empty());
  REQUIRE(dropped.size() == 3);
  CHECK(dropped[0].message ==
        "plugin alpha, app main: extra route / would serve its static files at /beta "
        "(_static_url_prefix), under plugin beta's URLs (/beta/): ignored "
        "(prefix_based_routing_extra_routes)");
  CHECK(dropped[1].message ==
        "plugin alpha, app main: extra vhost Main.Beta.Example.org is one of plugin beta's "
        "virtual domains: ignored (virtualdomain_based_routing_extra_vhosts)");
  CHECK(dropped[2].message ==
        "plugin beta, app main: extra vhost www.example.org is already served by alpha/main: "
        "ignored (virtualdomain_based_routing_extra_vhosts)");
}

TEST_CASE("a plugin without prefix routing still owns its URLs", "[runtime][front]") {
  const mfserv::runtime::Home home{"/srv/h"};
  auto alpha = routed_plugin("alpha", {"/beta/x"});
  auto beta = routed_plugin("beta", {"/only-beta"});
  beta.apps[0].prefix_based_routing = false;  // served at /only-beta alone, not at /beta/
  std::vector<mfserv::runtime::DroppedClaim> dropped;
  auto routes = mfserv::runtime::front_routes(home, {alpha, beta}, &dropped);
  CHECK(route_of(routes, "alpha").extra_routes.empty());
  REQUIRE(dropped.size() == 1);
  CHECK(dropped[0].message ==
        "plugin alpha, app main: extra route /beta/x is under plugin beta's URLs (/beta/): "
        "ignored (prefix_based_routing_extra_routes)");
}
