// What render() produces, served by a real nginx on a free port: the C13 static matrix (app
// prefix "/", "/PLUGIN", "/PLUGIN/APP" x static prefix "/static", ""), with and without app
// workers, no escape from the static directory, and the built-in endpoints. Skipped with a
// warning without nginx, failing instead under MFSERV_TESTS_MUST_RUN=1.
#include <unistd.h>

#include <memory>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "golden_models.hpp"
#include "nginx-gen/nginx_conf.hpp"
#include "nginx_test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using mfserv::nginx::AppRoute;
using mfserv::nginx::FrontConfig;
using mfserv::nginx::render;
namespace testing = mfserv::nginx::testing;

namespace {

constexpr const char* k_secret = "secret-outside-static\n";
constexpr const char* k_mime_types = "/etc/nginx/mime.types";

// A front whose files all live below ROOT, on PORT. As root the workers run as root too, so
// the test needs no permission set-up; otherwise nginx runs as the current user.
FrontConfig test_front(const std::string& root, int port) {
  FrontConfig front = testing::golden_front(root);
  front.port = port;
  front.worker_processes = 1;
  front.user = ::geteuid() == 0 ? "root" : "";
  if (mfserv::path_exists(k_mime_types)) {
    front.mime_types = k_mime_types;
  }
  testing::prepare_front_dirs(front);
  return front;
}

void write_static_files(const AppRoute& app, const std::string& root) {
  testing::write_text(app.static_dir + "/x.css", "body-x\n");
  testing::write_text(app.static_dir + "/sub/index.html", "index-sub\n");
  testing::write_text(root + "/secret.txt", k_secret);
  testing::write_text(root + "/plugins/site/main/secret.txt", k_secret);
}

void write_conf(const std::string& conf_text, const std::string& root) {
  testing::write_text(root + "/nginx.conf", conf_text);
}

// The status code nginx gives a GET of TARGET from SOURCE (another loopback address than
// 127.0.0.1: a client that is not "local" for the loopback-only endpoints). 0: no answer.
int status_from(const char* source, int port, const std::string& target) {
  mfserv::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_in local{};
  local.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, source, &local.sin_addr) == 1);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  server.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    return 0;
  }
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (!testing::send_all(fd.get(), "GET " + target + " HTTP/1.0\r\nHost: localhost\r\n\r\n")) {
    return 0;
  }
  char head[32] = {};
  ssize_t n = ::recv(fd.get(), head, sizeof head - 1, MSG_WAITALL);
  return n >= 12 ? std::atoi(head + 9) : 0;
}

}  // namespace

TEST_CASE("C13: static files are served for every app prefix and static prefix",
          "[nginx-gen][nginx][C13]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  for (const char* app_prefix : {"/", "/site", "/site/main"}) {
    for (const char* static_prefix : {"/static", ""}) {
      for (int workers : {0, 1}) {
        INFO("app prefix '" << app_prefix << "', static prefix '" << static_prefix << "', "
                            << workers << " worker(s)");
        testing::TempDir tmp;
        const int port = testing::free_port();
        const FrontConfig front = test_front(tmp.path(), port);
        const AppRoute app = testing::c13_app(tmp.path(), app_prefix, static_prefix, workers);
        write_static_files(app, tmp.path());
        write_conf(render(front, {app}), tmp.path());
        std::vector<std::unique_ptr<testing::UnixHttpApp>> workers_up;
        for (const std::string& socket : app.sockets) {
          REQUIRE(mfserv::make_dirs(testing::parent_dir(socket)).ok());
          workers_up.push_back(std::make_unique<testing::UnixHttpApp>(socket));
        }
        testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);

        const std::string base = std::string(app_prefix) == "/" ? "" : app_prefix;
        const std::string statics = base + static_prefix;
        const bool static_falls_to_app = workers > 0 && std::string(static_prefix).empty();

        auto file = testing::http_get(port, statics + "/x.css");
        CHECK(file.status == 200);
        CHECK(file.body == "body-x\n");
        if (!front.mime_types.empty()) {
          CHECK(file.header("Content-Type") == "text/css");
        }
        CHECK(file.header("X-Request-Id").size() == 32);

        auto index = testing::http_get(port, statics + "/sub/");
        auto bare_dir = testing::http_get(port, statics + "/sub");
        auto missing = testing::http_get(port, statics + "/missing.css");
        if (static_falls_to_app) {
          // Only regular files are static; directories and missing files reach the app.
          CHECK(index.body == "app GET " + statics + "/sub/\nbody=\nx-request-id=" +
                                  index.header("X-Request-Id") + "\n");
          CHECK(bare_dir.body.find("app GET " + statics + "/sub\n") == 0);
          CHECK(missing.body.find("app GET " + statics + "/missing.css\n") == 0);
        } else {
          CHECK(index.status == 200);
          CHECK(index.body == "index-sub\n");
          // The redirect to the directory stays relative: no internal host or port leaks.
          CHECK(bare_dir.status == 301);
          CHECK(bare_dir.header("Location") == statics + "/sub/");
          CHECK(missing.status == 404);
        }

        // nginx resolves dot segments, encoded or not, before matching a location.
        for (const std::string& escape :
             {statics + "/../secret.txt", statics + "/%2e%2e/secret.txt",
              statics + "/..%2Fsecret.txt", statics + "/sub/../../secret.txt",
              statics + "/../../../secret.txt", statics + "/%2E%2E/%2E%2E/secret.txt"}) {
          INFO("escape attempt " << escape);
          auto attempt = testing::http_get(port, escape);
          CHECK(attempt.status != 0);
          CHECK(attempt.body.find(k_secret) == std::string::npos);
        }

        if (workers > 0) {
          // Dynamic requests reach the app with the path as the client sent it.
          auto dynamic = testing::http_get(port, base + "/dyn/a%20b?q=1&r=2");
          CHECK(dynamic.status == 200);
          CHECK(dynamic.body.find("app GET " + base + "/dyn/a%20b?q=1&r=2\n") == 0);
          auto post =
              testing::http_request(port, "POST", base + "/form", "localhost", "", "field=value");
          CHECK(post.body.find("app POST " + base + "/form\nbody=field=value\n") == 0);
          if (!base.empty()) {
            auto bare = testing::http_get(port, base);
            CHECK(bare.body.find("app GET " + base + "\n") == 0);
          }
        }
        running.stop();
        CHECK(running.error_log_text().find("[emerg]") == std::string::npos);
      }
    }
  }
}

// Regexes are nested by first path segment (write_locations): every URI must still reach
// what one flat list of MFSERV regexes would pick, the longest route that is the URI or one
// of its parents, else `location /`. Which app answered is read back from the access log.
TEST_CASE("routes nested by first segment pick the longest matching route", "[nginx-gen][nginx]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  testing::TempDir tmp;
  const int port = testing::free_port();
  FrontConfig front = test_front(tmp.path(), port);
  auto app_of = [&tmp](const char* plugin, const char* app) {
    AppRoute route = testing::golden_app(tmp.path(), plugin, app, 1);
    route.static_routing = false;
    return route;
  };
  AppRoute site = app_of("site", "main");
  site.prefix_routing = false;
  site.extra_routes = {"/"};
  // The root app's fragment applies to what falls through to "/" only, never to the routes
  // nested beside that fallback.
  site.extra_conf_path = tmp.path() + "/site-extra.conf";
  testing::write_text(site.extra_conf_path,
                      "add_header X-Root-Fragment yes always;\nclient_max_body_size 10;\n");
  AppRoute foo = app_of("foo", "main");
  foo.plugin_prefix = true;
  foo.extra_routes = {"/api/v1.0"};
  AppRoute foobar = app_of("foobar", "main");
  foobar.plugin_prefix = true;
  AppRoute api = app_of("foo", "api");
  api.extra_routes = {"/api/v1.0/admin", "/foo/api/v2"};
  // The routes above, as a flat list: literal path -> app.
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"/foo", "foo/main"},           {"/foo/main", "foo/main"},       {"/api/v1.0", "foo/main"},
      {"/foobar", "foobar/main"},     {"/foobar/main", "foobar/main"}, {"/foo/api", "foo/api"},
      {"/api/v1.0/admin", "foo/api"}, {"/foo/api/v2", "foo/api"}};
  auto expected = [&routes](const std::string& uri, const std::string& root) {
    std::string best;
    std::string owner = root;
    for (const auto& [route, app] : routes) {
      bool matches = uri == route || uri.rfind(route + "/", 0) == 0;
      if (matches && route.size() > best.size()) {
        best = route;
        owner = app;
      }
    }
    return owner;
  };
  REQUIRE(mfserv::make_dirs(tmp.path() + "/run/foo").ok());
  REQUIRE(mfserv::make_dirs(tmp.path() + "/run/foobar").ok());
  REQUIRE(mfserv::make_dirs(tmp.path() + "/run/site").ok());
  testing::UnixHttpApp site_worker(site.sockets.at(0));
  testing::UnixHttpApp foo_worker(foo.sockets.at(0));
  testing::UnixHttpApp foobar_worker(foobar.sockets.at(0));
  testing::UnixHttpApp api_worker(api.sockets.at(0));
  const std::vector<std::string> uris = {"/",
                                         "/x",
                                         "/foo",
                                         "/foo/",
                                         "/foo/x",
                                         "/foox",
                                         "/fo",
                                         "/foo/main",
                                         "/foo/mainx",
                                         "/foo/main/y",
                                         "/foobar",
                                         "/foobar/z",
                                         "/foobarz",
                                         "/foobar/main/q",
                                         "/foo/api",
                                         "/foo/api/v2",
                                         "/foo/api/v2x",
                                         "/foo/api/v2/k",
                                         "/foo/apix",
                                         "/api",
                                         "/api/v1.0",
                                         "/api/v1.0/",
                                         "/api/v1x0",
                                         "/api/v1.0x",
                                         "/api/v1.0/admin",
                                         "/api/v1.0/admin/q",
                                         "/api/v1.0/adminx",
                                         "/zzz/foo",
                                         "/foo//main/y"};

  for (bool with_root : {true, false}) {
    INFO("an app at /: " << with_root);
    std::vector<AppRoute> apps = {foo, foobar, api};
    if (with_root) {
      apps.push_back(site);
    }
    write_conf(render(front, apps), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    for (const std::string& uri : uris) {
      INFO(uri);
      auto response = testing::http_get(port, uri);
      auto log = mfserv::read_file(front.access_log);
      REQUIRE(log.ok());
      auto last = log->substr(log->rfind('\n', log->size() - 2) + 1);
      auto entry = nlohmann::json::parse(last);
      CHECK(entry["request_uri"] == uri);
      std::string owner =
          expected(mfserv::replace_all(uri, "//", "/"), with_root ? "site/main" : "");
      if (owner.empty()) {
        CHECK(response.status == 404);
        CHECK(entry["plugin"] == "");
      } else {
        CHECK(response.status == 200);
        CHECK(entry["plugin"].get<std::string>() + "/" + entry["app"].get<std::string>() == owner);
        CHECK((response.header("X-Root-Fragment") == "yes") == (owner == "site/main"));
      }
    }
  }

  // A static site at "/": a URI that only starts like a group ("/foox.css" under "/foo") is
  // its file, as `location /` (an alias there) would serve it.
  AppRoute files = testing::golden_app(tmp.path(), "site", "main", 0);
  files.prefix_routing = false;
  files.extra_routes = {"/"};
  files.static_url_prefix = "";
  testing::write_text(files.static_dir + "/foox.css", "foox\n");
  testing::write_text(files.static_dir + "/foo/inner.css", "inner\n");
  write_conf(render(front, {foo, files}), tmp.path());
  testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
  CHECK(testing::http_get(port, "/foox.css").body == "foox\n");
  CHECK(testing::http_get(port, "/foo/inner.css").body.find("app GET /foo/inner.css") == 0);
}

TEST_CASE("the built-in endpoints, virtual domains and request ids", "[nginx-gen][nginx]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  testing::TempDir tmp;
  const int port = testing::free_port();
  FrontConfig front = test_front(tmp.path(), port);
  front.hostname = "example.org";
  AppRoute app = testing::golden_app(tmp.path(), "foo", "main", 2);
  app.virtualdomain_routing = true;
  app.extra_vhosts = {"www.example.com"};
  write_static_files(app, tmp.path());
  REQUIRE(mfserv::make_dirs(tmp.path() + "/run/foo").ok());
  testing::UnixHttpApp worker1(app.sockets.at(0));
  testing::UnixHttpApp worker2(app.sockets.at(1));

  SECTION("health follows the running flag; status is served to loopback") {
    write_conf(render(front, {app}), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    auto stopping = testing::http_get(port, "/__health");
    CHECK(stopping.status == 503);
    CHECK(stopping.body == "STOPPING\n");
    CHECK(stopping.header("Content-Type") == "text/plain");
    testing::write_text(front.running_flag, "");
    auto running_health = testing::http_get(port, "/__health");
    CHECK(running_health.status == 200);
    CHECK(running_health.body == "OK\n");
    ::unlink(front.running_flag.c_str());
    CHECK(testing::http_get(port, "/__health").status == 503);

    auto status = testing::http_get(port, "/status");
    CHECK(status.status == 200);
    CHECK(status.body.find("Active connections:") == 0);

    // Nothing claims "/": a 404 from us, not nginx's own html directory.
    CHECK(testing::http_get(port, "/index.html").status == 404);
    CHECK(testing::http_get(port, "/").status == 404);
  }

  SECTION("/__upstream_status and /status answer loopback clients only") {
    write_conf(render(front, {app}), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    auto upstreams = testing::http_get(port, "/__upstream_status");
    CHECK(upstreams.status == 200);
    CHECK(upstreams.header("Content-Type") == "application/json");
    CHECK(upstreams.body == mfserv::nginx::upstream_status_json({app}) + "\n");
    const auto parsed = nlohmann::json::parse(upstreams.body);
    CHECK(parsed["upstreams"][0]["servers"].size() == 2);
    for (const char* endpoint : {"/__upstream_status", "/status"}) {
      INFO(endpoint);
      CHECK(status_from("127.0.0.1", port, endpoint) == 200);
      CHECK(status_from("127.0.0.2", port, endpoint) == 403);
    }
  }

  SECTION("virtual domains route the whole URL space to the app") {
    write_conf(render(front, {app}), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    for (const char* host : {"main.foo.example.org", "www.example.com:8080"}) {
      INFO(host);
      auto dynamic = testing::http_get(port, "/some/path", host);
      CHECK(dynamic.body.find("app GET /some/path\n") == 0);
      auto file = testing::http_get(port, "/static/x.css", host);
      CHECK(file.body == "body-x\n");
    }
    // The default server does not answer at the root.
    CHECK(testing::http_get(port, "/some/path", "other.example.org").status == 404);
  }

  SECTION("a request id is generated, passed to the app, echoed and logged") {
    write_conf(render(front, {app}), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    auto response = testing::http_request(port, "GET", "/foo/main/x", "localhost",
                                          "X-Request-Id: client-chosen\r\n");
    const std::string id = response.header("X-Request-Id");
    CHECK(id.size() == 32);
    CHECK(id != "client-chosen");
    CHECK(response.body.find("x-request-id=" + id + "\n") != std::string::npos);
    running.stop();
    auto log = mfserv::read_file(front.access_log);
    REQUIRE(log.ok());
    CHECK(log->find("\"request_uri\":\"/foo/main/x\",\"status\":\"200\"") != std::string::npos);
    CHECK(log->find("\"request_id\":\"" + id + "\",\"plugin\":\"foo\",\"app\":\"main\"}") !=
          std::string::npos);
  }

  SECTION("with add_request_id_header off no id reaches the app or the client but the log") {
    front.add_request_id_header = false;
    write_conf(render(front, {app}), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    auto response = testing::http_get(port, "/foo/main/x");
    CHECK(response.status == 200);
    CHECK(response.header("X-Request-Id").empty());
    CHECK(response.body.find("x-request-id=\n") != std::string::npos);
    running.stop();
    auto log = mfserv::read_file(front.access_log);
    REQUIRE(log.ok());
    const size_t at = log->find("\"request_id\":\"");
    REQUIRE(at != std::string::npos);
    CHECK(log->find('"', at + 14) == at + 14 + 32);  // a generated 32-digit id
  }

  SECTION("with accept_incoming_request_id the client's id is kept") {
    front.accept_incoming_request_id = true;
    write_conf(render(front, {app}), tmp.path());
    testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
    auto kept = testing::http_request(port, "GET", "/foo/main/x", "localhost",
                                      "X-Request-Id: client-chosen\r\n");
    CHECK(kept.header("X-Request-Id") == "client-chosen");
    CHECK(kept.body.find("x-request-id=client-chosen\n") != std::string::npos);
    auto fresh = testing::http_get(port, "/foo/main/x");
    CHECK(fresh.header("X-Request-Id").size() == 32);
    // Anything but a plain token of at most 128 characters is replaced.
    for (const std::string& odd : {std::string("two words"), std::string("a\"quote"),
                                   std::string("semi;colon"), std::string(129, 'x')}) {
      INFO(odd);
      auto replaced = testing::http_request(port, "GET", "/foo/main/x", "localhost",
                                            "X-Request-Id: " + odd + "\r\n");
      CHECK(replaced.header("X-Request-Id").size() == 32);
      CHECK(replaced.body.find("x-request-id=" + replaced.header("X-Request-Id") + "\n") !=
            std::string::npos);
    }
    auto longest = testing::http_request(port, "GET", "/foo/main/x", "localhost",
                                         "X-Request-Id: " + std::string(128, 'y') + "\r\n");
    CHECK(longest.header("X-Request-Id") == std::string(128, 'y'));
  }
}

TEST_CASE("a /__upstream_status of 1000 upstreams passes nginx -t and is served whole",
          "[nginx-gen][nginx]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  testing::TempDir tmp;
  const int port = testing::free_port();
  const FrontConfig front = test_front(tmp.path(), port);
  std::vector<AppRoute> apps;
  for (int i = 0; i < 1000; ++i) {
    apps.push_back(testing::golden_app(tmp.path(), "plugin" + std::to_string(i), "main", 2));
  }
  apps.push_back(testing::golden_app(tmp.path(), "crowded", "main", 100));
  write_conf(render(front, apps), tmp.path());
  auto valid = mfserv::nginx::validate(nginx, tmp.path() + "/nginx.conf", front.error_log);
  INFO((valid.ok() ? std::string("valid") : valid.error().describe()));
  REQUIRE(valid.ok());
  testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
  auto upstreams = testing::http_get(port, "/__upstream_status");
  CHECK(upstreams.status == 200);
  CHECK(upstreams.body == mfserv::nginx::upstream_status_json(apps) + "\n");
  CHECK(nlohmann::json::parse(upstreams.body)["upstreams"].size() == 1001);
  running.stop();
  // No "could not build optimal variables_hash" or any other complaint.
  CHECK(running.error_log_text().find("[warn]") == std::string::npos);
}

TEST_CASE("nginx_single_quoted gives nginx back the text byte for byte", "[nginx-gen][nginx]") {
  const std::string nginx = testing::nginx_or_skip();
  if (nginx.empty()) {
    return;
  }
  testing::TempDir tmp;
  const int port = testing::free_port();
  FrontConfig front = test_front(tmp.path(), port);
  const std::string nasty = "{\"a\":\"it's \\\"quoted\\\" \\u0024host\"};\n\tnext line\r\n";
  // A valid front, with one more location returning the quoted text.
  std::string text = render(front, {});
  const std::string anchor = "        location = /status {";
  text.replace(text.find(anchor), 0,
               "        location = /nasty {\n            return 200 " +
                   mfserv::nginx::nginx_single_quoted(nasty) + ";\n        }\n\n");
  write_conf(text, tmp.path());
  testing::RunningNginx running(nginx, tmp.path() + "/nginx.conf", front.error_log, port);
  auto answer = testing::http_get(port, "/nasty");
  CHECK(answer.status == 200);
  CHECK(answer.body == nasty);
}
