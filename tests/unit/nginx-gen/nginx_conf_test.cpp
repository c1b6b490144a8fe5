// render() against the golden files in tests/golden/, and the routing rules it must keep
// (C12, C13 shape, ordering, upstream names). MFSERV_UPDATE_GOLDEN=1 rewrites the golden files
// instead of comparing: regenerate on purpose, then review the diff.
#include "nginx-gen/nginx_conf.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "golden_models.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using mfserv::nginx::AppRoute;
using mfserv::nginx::FrontConfig;
using mfserv::nginx::is_safe_for_config;
using mfserv::nginx::model_problems;
using mfserv::nginx::render;
using mfserv::nginx::upstream_name;
namespace testing = mfserv::nginx::testing;

namespace {

bool update_golden() {
  const char* value = std::getenv("MFSERV_UPDATE_GOLDEN");
  return value != nullptr && std::string(value) == "1";
}

// "line N: expected '...', got '...'" for the first line that differs.
std::string first_difference(const std::string& expected, const std::string& actual) {
  auto expected_lines = mfserv::split(expected, '\n');
  auto actual_lines = mfserv::split(actual, '\n');
  for (size_t i = 0; i < std::max(expected_lines.size(), actual_lines.size()); ++i) {
    std::string want = i < expected_lines.size() ? expected_lines[i] : "<end of file>";
    std::string got = i < actual_lines.size() ? actual_lines[i] : "<end of file>";
    if (want != got) {
      return "line " + std::to_string(i + 1) + ": expected '" + want + "', got '" + got + "'";
    }
  }
  return "identical";
}

FrontConfig simple_front() {
  return testing::golden_front(testing::k_golden_root);
}

AppRoute simple_app(const std::string& plugin, const std::string& app, int workers = 1) {
  return testing::golden_app(testing::k_golden_root, plugin, app, workers);
}

size_t position_of(const std::string& text, const std::string& needle) {
  size_t pos = text.find(needle);
  INFO("looking for: " << needle);
  REQUIRE(pos != std::string::npos);
  return pos;
}

}  // namespace

TEST_CASE("render matches the golden files", "[nginx-gen][golden]") {
  for (const auto& golden : testing::golden_cases(testing::k_golden_root)) {
    const std::string actual = render(golden.front, golden.apps);
    const std::string path = testing::golden_path(golden.name);
    INFO(path << " (MFSERV_UPDATE_GOLDEN=1 regenerates it)");
    if (update_golden()) {
      CHECK(mfserv::write_file_atomic(path, actual).ok());
      WARN("rewrote " << path);
      continue;
    }
    auto expected = mfserv::read_file(path);
    CHECK(expected.ok());
    if (expected.ok()) {
      INFO(first_difference(*expected, actual));
      CHECK(*expected == actual);
    }
  }
}

TEST_CASE("every golden file has a model", "[nginx-gen][golden]") {
  std::vector<std::string> known;
  for (const auto& golden : testing::golden_cases(testing::k_golden_root)) {
    known.push_back(golden.name + ".conf");
  }
  for (const std::string& file :
       mfserv::list_dir(std::string(MFSERV_SOURCE_DIR) + "/tests/golden")) {
    if (file.size() < 5 || file.substr(file.size() - 5) != ".conf") {
      continue;
    }
    INFO("stale golden file: " << file);
    CHECK(std::find(known.begin(), known.end(), file) != known.end());
  }
}

TEST_CASE("render is deterministic and uses only the model", "[nginx-gen]") {
  auto cases = testing::golden_cases(testing::k_golden_root);
  for (const auto& golden : cases) {
    CHECK(render(golden.front, golden.apps) == render(golden.front, golden.apps));
  }
}

TEST_CASE("C12: an extra route of / never produces a double slash", "[nginx-gen][C12]") {
  AppRoute app = simple_app("foo", "main", 2);
  app.plugin_prefix = true;
  app.extra_routes = {"/"};
  for (const char* static_prefix : {"/static", "", "/static/", "/"}) {
    app.static_url_prefix = static_prefix;
    const std::string text = render(simple_front(), {app});
    INFO("static_url_prefix '" << static_prefix << "'");
    CHECK(mfserv::replace_all(text, "http://", "").find("//") == std::string::npos);
    CHECK(text.find("location / {") != std::string::npos);
  }
  app.static_url_prefix = "/static";
  const std::string text = render(simple_front(), {app});
  CHECK(text.find("location ~ ^/static(?:/(?<locrq>.*))?$ {") != std::string::npos);
}

TEST_CASE("routes are normalised and escaped", "[nginx-gen]") {
  AppRoute app = simple_app("foo", "main");
  app.prefix_routing = false;
  app.static_routing = false;
  app.extra_routes = {"/api/", "/v1.0//x", "rel"};
  const std::string text = render(simple_front(), {app});
  CHECK(text.find("location ~ ^/api(?:/(?<locrq>.*))?$ {") != std::string::npos);
  CHECK(text.find("location ~ ^/v1\\.0/x(?:/(?<locrq>.*))?$ {") != std::string::npos);
  CHECK(text.find("location ~ ^/rel(?:/(?<locrq>.*))?$ {") != std::string::npos);
  CHECK(text.find("/api/(") == std::string::npos);
}

TEST_CASE("locations go from the most specific to the least", "[nginx-gen]") {
  AppRoute other = simple_app("p", "other");
  AppRoute main_app = simple_app("p", "main");
  main_app.plugin_prefix = true;
  main_app.extra_routes = {"/", "/x"};
  // The least specific app comes first in the model; the file order must not follow it.
  const std::string text = render(simple_front(), {main_app, other});
  const size_t app_static = position_of(text, "location ~ ^/p/main/static(");
  const size_t app = position_of(text, "location ~ ^/p/main(");
  const size_t other_app = position_of(text, "location ~ ^/p/other(");
  const size_t plugin = position_of(text, "location ~ ^/p(");
  const size_t extra = position_of(text, "location ~ ^/x(");
  const size_t root_static = position_of(text, "location ~ ^/static(");
  const size_t root = position_of(text, "location / {");
  CHECK(app_static < app);
  CHECK(app < plugin);
  CHECK(other_app < plugin);
  CHECK(plugin < extra);
  CHECK(extra < root);
  CHECK(root_static < root);
  CHECK(position_of(text, "location = /__health") < app_static);
}

TEST_CASE("a route claimed twice is rendered once", "[nginx-gen]") {
  AppRoute first = simple_app("foo", "main");
  first.extra_routes = {"/"};
  AppRoute second = simple_app("bar", "main");
  second.extra_routes = {"/"};
  const std::string text = render(simple_front(), {first, second});
  const size_t root = position_of(text, "location / {");
  CHECK(text.find("location / {", root + 1) == std::string::npos);
  CHECK(text.find("# location / of bar/main: already routed to foo/main") != std::string::npos);
}

TEST_CASE("unclaimed URLs get a 404, not nginx's own html root", "[nginx-gen]") {
  AppRoute app = simple_app("foo", "main");
  std::string text = render(simple_front(), {app});
  CHECK(text.find("location / {\n            return 404;") != std::string::npos);
  app.extra_routes = {"/"};
  text = render(simple_front(), {app});
  CHECK(text.find("return 404;") == std::string::npos);
}

TEST_CASE("the app sees the original path: proxy_pass has no URI part", "[nginx-gen]") {
  const std::string text = render(simple_front(), {simple_app("foo", "main", 2)});
  const std::string upstream = upstream_name("foo", "main");
  CHECK(text.find("proxy_pass http://" + upstream + ";") != std::string::npos);
  CHECK(text.find("proxy_pass http://" + upstream + "/") == std::string::npos);
}

TEST_CASE("an app without sockets has no upstream and no proxy", "[nginx-gen][C13]") {
  AppRoute site = simple_app("site", "main", 0);
  site.static_url_prefix = "";
  const std::string text = render(simple_front(), {site});
  CHECK(text.find("upstream mfserv_") == std::string::npos);
  CHECK(text.find("proxy_pass") == std::string::npos);
  CHECK(text.find("alias /srv/mfserv/plugins/site/main/static/$locrq;") != std::string::npos);
}

TEST_CASE("an empty static prefix on an app with workers falls back to the app",
          "[nginx-gen][C13]") {
  AppRoute app = simple_app("foo", "main", 2);
  app.static_url_prefix = "";
  const std::string text = render(simple_front(), {app});
  const std::string upstream = upstream_name("foo", "main");
  CHECK(text.find("try_files /$locrq @" + upstream + ";") != std::string::npos);
  CHECK(text.find("location @" + upstream + " {") != std::string::npos);
}

TEST_CASE("headers survive an extra_conf fragment", "[nginx-gen]") {
  AppRoute app = simple_app("foo", "main");
  app.extra_conf_path = "/srv/mfserv/plugins/foo/extra.conf";
  const std::string text = render(simple_front(), {app});
  const size_t include = position_of(text, "include /srv/mfserv/plugins/foo/extra.conf;");
  const size_t location = text.rfind("location ", include);
  const std::string block = text.substr(location, include - location);
  CHECK(block.find("proxy_set_header X-Request-Id $request_id;") != std::string::npos);
  CHECK(block.find("add_header X-Request-Id $request_id always;") != std::string::npos);
}

TEST_CASE("the front settings", "[nginx-gen]") {
  FrontConfig front = simple_front();
  std::string text = render(front, {});
  CHECK(text.find("user ") == std::string::npos);
  CHECK(text.find("include ") == std::string::npos);
  CHECK(text.find("if (-f /srv/mfserv/var/running) {") != std::string::npos);
  CHECK(text.find("listen 0.0.0.0:18868 default_server;") != std::string::npos);
  CHECK(text.find("absolute_redirect off;") != std::string::npos);
  CHECK(text.find("proxy_next_upstream error;") != std::string::npos);
  front.user = "www-data";
  front.mime_types = "/etc/nginx/mime.types";
  front.port = 8080;
  front.running_flag = "";
  text = render(front, {});
  CHECK(text.find("user www-data;") != std::string::npos);
  CHECK(text.find("include /etc/nginx/mime.types;") != std::string::npos);
  CHECK(text.find("listen 0.0.0.0:8080 default_server;") != std::string::npos);
  CHECK(text.find("if (-f") == std::string::npos);
}

TEST_CASE("upstream names are valid, stable and never collide", "[nginx-gen]") {
  const std::string name = upstream_name("foo", "main");
  CHECK(mfserv::starts_with(name, "mfserv_foo__main_"));
  CHECK(name == upstream_name("foo", "main"));
  const std::vector<std::pair<std::string, std::string>> models = {
      {"a-b", "main"}, {"a_b", "main"}, {"a__b", "c"}, {"a", "b__c"},
      {"a", "b-c"},    {"a", "b_c"},    {"a-", "b"},   {"a_", "b"}};
  std::vector<std::string> names;
  for (const auto& [plugin, app] : models) {
    std::string upstream = upstream_name(plugin, app);
    for (char c : upstream) {
      INFO(upstream);
      CHECK((std::isalnum(static_cast<unsigned char>(c)) || c == '_'));
    }
    CHECK(std::find(names.begin(), names.end(), upstream) == names.end());
    names.push_back(upstream);
  }
}

TEST_CASE("is_safe_for_config", "[nginx-gen]") {
  for (const char* good : {"", "/srv/mfserv/plugins/foo-bar/main_1.sock", "www.example.com", "100m",
                           "www-data", "/a+b/c~d,e:f@g"}) {
    INFO(good);
    CHECK(is_safe_for_config(good));
  }
  for (const char* bad :
       {"a b", "a;b", "a{", "}", "$host", "a\"b", "a'b", "#x", "a\\b", "a\nb", "a\tb"}) {
    INFO(bad);
    CHECK_FALSE(is_safe_for_config(bad));
  }
}

TEST_CASE("model_problems reports every bad field at once", "[nginx-gen]") {
  CHECK(model_problems(simple_front(), {simple_app("foo", "main", 2)}).empty());
  for (const auto& golden : testing::golden_cases(testing::k_golden_root)) {
    INFO(golden.name);
    CHECK(model_problems(golden.front, golden.apps).empty());
  }
  FrontConfig front = simple_front();
  front.port = 0;
  front.temp_dir = "relative/tmp";
  AppRoute app = simple_app("foo", "ma in");
  app.extra_routes = {"api"};
  app.static_dir = "/srv/my static";
  app.extra_conf_path = "/x;include /etc/shadow";
  const auto problems = model_problems(front, {app});
  CHECK(problems.size() == 7);
  const std::string all = [&] {
    std::string joined;
    for (const auto& problem : problems) {
      joined += problem + "\n";
    }
    return joined;
  }();
  INFO(all);
  CHECK(all.find("port 0") != std::string::npos);
  CHECK(all.find("temp_dir 'relative/tmp' is not an absolute path") != std::string::npos);
  CHECK(all.find("foo/ma in: plugin and app names") != std::string::npos);
  CHECK(all.find("socket '/srv/mfserv/run/foo/ma in_1.sock'") != std::string::npos);
  CHECK(all.find("extra route 'api' does not start with '/'") != std::string::npos);
  CHECK(all.find("static_dir '/srv/my static'") != std::string::npos);
  CHECK(all.find("extra_conf_path") != std::string::npos);
}

TEST_CASE("upstream_status_json lists each upstream and its servers", "[nginx-gen]") {
  AppRoute api = simple_app("api", "main", 2);
  api.timeout = 300;
  AppRoute site = simple_app("site", "main", 0);
  const auto status = nlohmann::json::parse(mfserv::nginx::upstream_status_json({api, site}));
  CHECK(status["source"] == "configuration");
  REQUIRE(status["upstreams"].size() == 1);
  const auto& upstream = status["upstreams"][0];
  CHECK(upstream["name"] == upstream_name("api", "main"));
  CHECK(upstream["plugin"] == "api");
  CHECK(upstream["app"] == "main");
  CHECK(upstream["balancing"] == "least_conn");
  CHECK(upstream["timeout_s"] == 300);
  REQUIRE(upstream["servers"].size() == 2);
  CHECK(upstream["servers"][1]["worker"] == 2);
  CHECK(upstream["servers"][1]["address"] == "unix:" + api.sockets[1]);
  CHECK(nlohmann::json::parse(mfserv::nginx::upstream_status_json({}))["upstreams"].empty());
}

TEST_CASE("upstream_status_json escapes what JSON and nginx would misread", "[nginx-gen]") {
  // Not a model images/ would let through: the escaping must hold anyway.
  AppRoute app = simple_app("foo", "main", 1);
  app.sockets = {"/run/a\"b\\c$host\n\t{;}'x"};
  const std::string json = mfserv::nginx::upstream_status_json({app});
  CHECK(json.find('$') == std::string::npos);
  CHECK(json.find('\n') == std::string::npos);
  const auto status = nlohmann::json::parse(json);
  CHECK(status["upstreams"][0]["servers"][0]["address"] == "unix:" + app.sockets[0]);
}

TEST_CASE("nginx_single_quoted escapes what nginx's parser undoes", "[nginx-gen]") {
  using mfserv::nginx::nginx_single_quoted;
  CHECK(nginx_single_quoted("") == "''");
  CHECK(nginx_single_quoted("a b;{}\"") == "'a b;{}\"'");
  CHECK(nginx_single_quoted("it's") == "'it\\'s'");
  CHECK(nginx_single_quoted("a\\b") == "'a\\\\b'");
  CHECK(nginx_single_quoted("\\u0024") == "'\\\\u0024'");
  CHECK(nginx_single_quoted("l1\nl2\r\t") == "'l1\\nl2\\r\\t'");
}

TEST_CASE("/__upstream_status stays within nginx's token limit for any model size", "[nginx-gen]") {
  std::vector<AppRoute> apps;
  for (int i = 0; i < 1000; ++i) {
    apps.push_back(simple_app("plugin" + std::to_string(i), "main", 2));
  }
  AppRoute crowded = simple_app("crowded", "main", 100);  // one upstream longer than a piece
  apps.push_back(crowded);
  const std::string text = render(simple_front(), apps);
  size_t longest = 0;
  for (const std::string& line : mfserv::split(text, '\n')) {
    longest = std::max(longest, line.size());
  }
  CHECK(longest < 4000);
  // 1003 parts in 126 pieces of 8, the one with the crowded upstream cut in three, joined
  // in two levels.
  CHECK(text.find("set $mfserv_us_128 '") != std::string::npos);
  CHECK(text.find("set $mfserv_us_129 '") == std::string::npos);
  CHECK(text.find("set $mfserv_us_j2_1 \"$mfserv_us_1$mfserv_us_2$") != std::string::npos);
  CHECK(text.find("set $mfserv_upstream_status \"$mfserv_us_j2_1$mfserv_us_j2_2\";") !=
        std::string::npos);
  CHECK(text.find("return 200 $mfserv_upstream_status;") != std::string::npos);
  CHECK(text.find("variables_hash_max_size ") != std::string::npos);
  // A small model needs neither pieces nor a bigger variables hash.
  const std::string small = render(simple_front(), {simple_app("foo", "main", 2)});
  CHECK(small.find("set $mfserv_us_") == std::string::npos);
  CHECK(small.find("variables_hash_max_size") == std::string::npos);
}

TEST_CASE("the access log format and client timeouts", "[nginx-gen]") {
  FrontConfig front = simple_front();
  std::string text = render(front, {});
  CHECK(text.find("access_log /srv/mfserv/log/nginx_access.log mfserv_json;") != std::string::npos);
  CHECK(text.find("client_body_timeout 60s;") != std::string::npos);
  front.log_format = mfserv::nginx::LogFormat::combined;
  front.client_timeout = 15;
  text = render(front, {});
  CHECK(text.find("access_log /srv/mfserv/log/nginx_access.log combined;") != std::string::npos);
  CHECK(text.find("log_format") == std::string::npos);
  for (const char* directive : {"client_header_timeout", "client_body_timeout", "send_timeout"}) {
    CHECK(text.find(std::string(directive) + " 15s;") != std::string::npos);
  }
  front.client_timeout = 0;
  CHECK(model_problems(front, {}).size() == 1);
}
