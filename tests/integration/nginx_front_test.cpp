// The nginx front end to end: the built mfserv, the real nginx and real testapp workers
// (tests/fixtures/testapp.py). Every routing mode answered through both, request ids, the
// JSON access log, the built-in endpoints, HOME/config/mfserv.ini, hostile names and values
// refused at load time, and a fragment nginx rejects stopping `run` with nginx's words (C15).
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "harness.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;
using namespace std::chrono_literals;

namespace {

// One [app_NAME] section running the testapp; EXTRA lines follow numprocesses.
std::string testapp_section(const std::string& app, int numprocesses,
                            const std::string& extra = "") {
  return "[app_" + app + "]\n_cmd_and_args = " + testapp_command() +
         "\nnumprocesses = " + std::to_string(numprocesses) + "\n" + extra +
         "graceful_timeout = 5\n\n";
}

// One HTTP exchange with 127.0.0.1:PORT: REQUEST is sent as is, from the local address
// SOURCE (another loopback address than 127.0.0.1 stands for a client that is not local).
HttpResponse http_exchange(int port, const std::string& request, const char* source = "127.0.0.1",
                           int timeout_ms = 10000) {
  HttpResponse response;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(port));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    ::close(fd);
    return response;
  }
  (void)!::write(fd, request.data(), request.size());
  std::string data;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[8192];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd pfd{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
      break;
    }
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) {
      break;
    }
    data.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t header_end = data.find("\r\n\r\n");
  if (data.compare(0, 5, "HTTP/") != 0 || header_end == std::string::npos) {
    return response;
  }
  std::istringstream head(data.substr(0, header_end));
  std::string line;
  std::getline(head, line);
  response.status = std::atoi(line.substr(9, 3).c_str());
  while (std::getline(head, line)) {
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      response.headers[mfserv::to_lower(mfserv::trim(line.substr(0, colon)))] =
          mfserv::trim(line.substr(colon + 1));
    }
  }
  response.body = data.substr(header_end + 4);
  return response;
}

HttpResponse get(int port, const std::string& path, const std::string& headers = "",
                 const std::string& host = "localhost") {
  return http_exchange(port,
                       "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n" + headers + "\r\n");
}

// What the testapp answered (its JSON), or null when the answer was not the testapp's.
nlohmann::json app_answer(const HttpResponse& response) {
  return nlohmann::json::parse(response.body, nullptr, false);
}

// "plugin/app" of the testapp worker that answered, "" when no worker did.
std::string answered_by(const HttpResponse& response) {
  auto json = app_answer(response);
  if (response.status != 200 || json.is_discarded() || !json.contains("env")) {
    return "";
  }
  return json["env"].value("MFSERV_CURRENT_PLUGIN_NAME", std::string()) + "/" +
         json["env"].value("MFSERV_CURRENT_APP_NAME", std::string());
}

// The access log's JSON lines.
std::vector<nlohmann::json> access_log(const TempHome& home) {
  std::vector<nlohmann::json> lines;
  for (const std::string& line :
       mfserv::split(read_text(home.path() + "/log/nginx_access.log"), '\n')) {
    if (!line.empty()) {
      lines.push_back(nlohmann::json::parse(line));
    }
  }
  return lines;
}

bool is_hex_id(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void write_settings(const TempHome& home, const std::string& text) {
  write_text(home.path() + "/config/mfserv.ini", text);
}

// Starts HOME on PORT; the test stops here, with the logs, when that fails.
void start_or_fail(TempHome& home, int port) {
  auto started = home.start(port);
  INFO(started.out << started.err << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);
}

}  // namespace

TEST_CASE("every routing mode answers through nginx and a real worker",
          "[integration][root][nginx]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // main: /routes/main and /routes; api: /routes/api, the extra routes "/" (C12) and
  // "/v1.0", its own static files and a 1 s timeout.
  home.add_plugin("routes",
                  test_general() + testapp_section("main", 1) +
                      testapp_section("api", 1,
                                      "timeout = 1\n"
                                      "prefix_based_routing_extra_routes = /;/v1.0\n"),
                  {{"api/static/x.css", "api-css\n"}});
  home.add_plugin("vd", testapp_plugin(1,
                                       "_virtualdomain_based_routing = 1\n"
                                       "_virtualdomain_based_routing_extra_vhosts = "
                                       "www.example.com\n"
                                       "_prefix_based_routing = 0\n"));
  write_settings(home, "[nginx]\nhostname = example.org\n");
  const int port = free_port();
  start_or_fail(home, port);

  SECTION("prefix, plugin prefix and extra routes, C12 included") {
    const std::vector<std::pair<std::string, std::string>> routes = {
        {"/routes/main/x?q=1", "routes/main"},
        {"/routes/main", "routes/main"},
        {"/routes/x", "routes/main"},
        {"/routes/api/x", "routes/api"},
        {"/v1.0/x", "routes/api"},
        {"/anything/else", "routes/api"},
        {"/", "routes/api"}};
    for (const auto& [path, app] : routes) {
      INFO(path);
      auto response = get(port, path);
      CHECK(answered_by(response) == app);
      // The worker sees the path as the client sent it.
      CHECK(app_answer(response).value("path", std::string()) == path);
    }
    // C12: the app's static files at "/static", never "//static".
    for (const char* path : {"/static/x.css", "/routes/api/static/x.css"}) {
      INFO(path);
      auto css = get(port, path);
      CHECK(css.status == 200);
      CHECK(css.body == "api-css\n");
    }
    const std::string conf = read_text(home.path() + "/run/nginx.conf");
    CHECK(mfserv::replace_all(conf, "http://", "").find("//") == std::string::npos);
  }

  SECTION("virtual domains: APP.PLUGIN.HOST and the extra vhosts, HOST from mfserv.ini") {
    for (const char* host : {"main.vd.example.org", "www.example.com", "www.example.com:80"}) {
      INFO(host);
      CHECK(answered_by(get(port, "/some/path", "", host)) == "vd/main");
    }
    // Other names reach the default server, where "/" belongs to routes/api.
    CHECK(answered_by(get(port, "/some/path", "", "main.vd.localhost")) == "routes/api");
    CHECK(answered_by(get(port, "/vd/main/x")) == "routes/api");
  }

  SECTION("each app's timeout: a slower answer gets 504") {
    const auto before = std::chrono::steady_clock::now();
    auto slow = get(port, "/routes/api/sleep?s=3");
    const auto waited = std::chrono::steady_clock::now() - before;
    CHECK(slow.status == 504);
    CHECK(waited >= 900ms);
    CHECK(waited < 2900ms);
    // main keeps the default of 60 s.
    CHECK(answered_by(get(port, "/routes/main/sleep?s=1.5")) == "routes/main");
  }
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("a plugin never answers for another plugin's URLs: its extra routes there are dropped",
          "[integration][root][nginx]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1,
                                          "prefix_based_routing_extra_routes = "
                                          "/beta/login;/betamax;/\n"));
  home.add_plugin("beta", testapp_plugin(1));
  const int port = free_port();
  auto started = home.start(port);
  INFO(started.out << started.err);
  REQUIRE(started.exit_code == 0);
  CHECK(started.err.find("warning: plugin alpha, app main: extra route /beta/login is under "
                         "plugin beta's URLs (/beta/): ignored") != std::string::npos);
  CHECK(answered_by(get(port, "/beta/login")) == "beta/main");
  CHECK(answered_by(get(port, "/beta/login/x")) == "beta/main");
  CHECK(answered_by(get(port, "/betamax/x")) == "alpha/main");
  CHECK(answered_by(get(port, "/")) == "alpha/main");

  // Added later, a plugin's claims on alpha's URLs and on "/" are dropped too: said at once by
  // `plugin develop`, again by the reload that applies it.
  const std::string gamma = home.add_plugin(
      "gamma", testapp_plugin(1, "prefix_based_routing_extra_routes = /alpha/admin;/\n"));
  CHECK(run_mfserv({home.home_arg(), "plugin", "uninstall", "gamma"}).exit_code == 0);
  auto developed = run_mfserv({home.home_arg(), "plugin", "develop", gamma});
  INFO(developed.err);
  CHECK(developed.exit_code == 0);
  CHECK(developed.err.find("plugin gamma, app main: extra route /alpha/admin is under plugin "
                           "alpha's URLs (/alpha/): ignored") != std::string::npos);
  CHECK(developed.err.find("plugin gamma, app main: extra route / is already routed to "
                           "alpha/main: ignored") != std::string::npos);
  const auto old_workers = home.nginx_workers();
  auto reloaded = run_mfserv({home.home_arg(), "reload"});
  INFO(reloaded.out << reloaded.err);
  CHECK(reloaded.exit_code == 0);
  CHECK(reloaded.err.find("extra route /alpha/admin is under plugin alpha's URLs") !=
        std::string::npos);
  CHECK(wait_until(
      [&] {
        return std::none_of(old_workers.begin(), old_workers.end(),
                            [](pid_t pid) { return ::kill(pid, 0) == 0; });
      },
      10s));
  CHECK(answered_by(get(port, "/gamma/main/")) == "gamma/main");
  CHECK(answered_by(get(port, "/alpha/admin")) == "alpha/main");
  CHECK(answered_by(get(port, "/")) == "alpha/main");
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C13 end to end: static files for every app prefix and static prefix",
          "[integration][root][nginx][C13]") {
  if (!require_root()) {
    return;
  }
  for (const char* static_prefix : {"/static", ""}) {
    INFO("static prefix '" << static_prefix << "'");
    TempHome home;
    const std::string statics = std::string("_static_url_prefix = ") + static_prefix + "\n";
    // site has a worker and every app prefix: /site/main, /site and "/".
    home.add_plugin("site", testapp_plugin(1, statics + "prefix_based_routing_extra_routes = /\n"),
                    {{"main/static/x.css", "site-css\n"}});
    // pages is a static site (no worker): /pages/main and /pages.
    home.add_plugin("pages", test_general() + "[app_main]\nnumprocesses = 0\n" + statics,
                    {{"main/static/x.css", "pages-css\n"}});
    const int port = free_port();
    start_or_fail(home, port);
    for (const char* base : {"", "/site", "/site/main"}) {
      INFO("app prefix '" << base << "'");
      auto css = get(port, std::string(base) + static_prefix + "/x.css");
      CHECK(css.status == 200);
      CHECK(css.body == "site-css\n");
      CHECK(css.headers["content-type"] == "text/css");
      CHECK(answered_by(get(port, std::string(base) + "/dynamic")) == "site/main");
      // A missing file: 404 under "/static", the app when the static prefix is empty.
      auto missing = get(port, std::string(base) + static_prefix + "/missing.css");
      if (std::string(static_prefix).empty()) {
        CHECK(answered_by(missing) == "site/main");
      } else {
        CHECK(missing.status == 404);
      }
    }
    for (const char* base : {"/pages", "/pages/main"}) {
      INFO("app prefix '" << base << "'");
      auto css = get(port, std::string(base) + static_prefix + "/x.css");
      CHECK(css.status == 200);
      CHECK(css.body == "pages-css\n");
      // The plugin's config.ini, beside the static folder, never leaks.
      for (const char* escape :
           {"/..%2F..%2Fconfig.ini", "/%2e%2e/%2e%2e/config.ini", "/../../config.ini"}) {
        INFO(escape);
        CHECK(get(port, std::string(base) + static_prefix + escape).body.find("[general]") ==
              std::string::npos);
      }
    }
    CHECK(home.stop().exit_code == 0);
  }
}

TEST_CASE("request ids go to the worker, back to the client and into the JSON access log",
          "[integration][root][nginx]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  const int port = free_port();

  SECTION("generated by default, even when the client sends one") {
    start_or_fail(home, port);
    auto response = get(port, "/alpha/main/x", "X-Request-Id: client-chosen\r\n");
    const std::string id = response.headers["x-request-id"];
    CHECK(is_hex_id(id));
    CHECK(app_answer(response)["request_id"] == id);
    auto other = get(port, "/alpha/main/x");
    CHECK(is_hex_id(other.headers["x-request-id"]));
    CHECK(other.headers["x-request-id"] != id);
    CHECK(get(port, "/nothing/here").headers["x-request-id"].size() == 32);  // a 404 too
    CHECK(home.stop().exit_code == 0);

    bool found = false;
    for (const auto& line : access_log(home)) {
      if (line["request_id"] == id) {
        found = true;
        CHECK(line["plugin"] == "alpha");
        CHECK(line["app"] == "main");
        CHECK(line["status"] == "200");
        CHECK(line["request_uri"] == "/alpha/main/x");
        CHECK_FALSE(line["request_time"].get<std::string>().empty());
        CHECK_FALSE(line["upstream_response_time"].get<std::string>().empty());
      }
    }
    CHECK(found);
  }

  SECTION("kept from the client with accept_incoming_request_id = 1") {
    write_settings(home, "[nginx]\naccept_incoming_request_id = 1\n");
    start_or_fail(home, port);
    auto kept = get(port, "/alpha/main/x", "X-Request-Id: client-chosen-42\r\n");
    CHECK(kept.headers["x-request-id"] == "client-chosen-42");
    CHECK(app_answer(kept)["request_id"] == "client-chosen-42");
    auto fresh = get(port, "/alpha/main/x");
    CHECK(is_hex_id(fresh.headers["x-request-id"]));
    CHECK(app_answer(fresh)["request_id"] == fresh.headers["x-request-id"]);
    CHECK(home.stop().exit_code == 0);
    bool found = false;
    for (const auto& line : access_log(home)) {
      found = found || (line["request_id"] == "client-chosen-42" && line["plugin"] == "alpha");
    }
    CHECK(found);
  }
}

// The request header NAME as the testapp saw it: its value, "-" when it had none, "" when the
// answer was not the testapp's.
std::string forwarded(const HttpResponse& response, const std::string& name) {
  auto json = app_answer(response);
  if (json.is_discarded() || !json.contains("forwarded")) {
    return "";
  }
  const auto& value = json["forwarded"][name];
  return value.is_string() ? value.get<std::string>() : "-";
}

// The pids of alpha's workers, as `mfserv ps` lists them.
std::set<int> worker_pids(TempHome& home) {
  std::set<int> pids;
  const nlohmann::json ps = home.ps();
  for (const auto& row : ps["processes"]) {
    if (row["plugin"] == "alpha") {
      pids.insert(row["pid"].get<int>());
    }
  }
  return pids;
}

TEST_CASE("mfserv.ini's header switches and a broken mfserv.ini at reload: same workers",
          "[integration][root][nginx]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(2));
  const int port = free_port();
  start_or_fail(home, port);
  const std::set<int> workers = worker_pids(home);
  REQUIRE(workers.size() == 2);

  // MFSERV's defaults: X-Real-IP, X-Forwarded-* and X-Request-Id.
  auto answer = get(port, "/alpha/main/");
  CHECK(forwarded(answer, "X-Real-IP") == "127.0.0.1");
  CHECK(forwarded(answer, "X-Forwarded-For") == "127.0.0.1");
  CHECK(forwarded(answer, "X-Forwarded-Proto") == "http");
  CHECK(forwarded(answer, "X-Forwarded-Host") == "localhost");

  // nginx reloads asynchronously: its old workers keep accepting for a moment after the new
  // ones start. A reload that changes nginx.conf returns here once they are all gone.
  auto reload = [&](const std::string& settings, bool changes_nginx) {
    write_settings(home, settings);
    const auto old_workers = home.nginx_workers();
    auto reloaded = run_mfserv({home.home_arg(), "reload"});
    INFO(reloaded.out << reloaded.err);
    CHECK(wait_until(
        [&] {
          return !changes_nginx || std::none_of(old_workers.begin(), old_workers.end(),
                                                [](pid_t pid) { return ::kill(pid, 0) == 0; });
        },
        10s));
    return reloaded;
  };

  auto no_forwarded = reload("[nginx]\nadd_x_forwarded_headers = 0\n", true);
  CHECK(no_forwarded.exit_code == 0);
  // The client's own are not passed either: the app sees none.
  auto plain = get(port, "/alpha/main/", "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n");
  CHECK(forwarded(plain, "X-Real-IP") == "-");
  CHECK(forwarded(plain, "X-Forwarded-For") == "-");
  CHECK(forwarded(plain, "X-Forwarded-Proto") == "-");
  CHECK(forwarded(plain, "X-Forwarded-Host") == "-");
  CHECK(is_hex_id(plain.headers["x-request-id"]));
  CHECK(app_answer(plain)["request_id"] == plain.headers["x-request-id"]);

  auto no_ids = reload("[nginx]\nadd_x_forwarded_headers = 0\nadd_request_id_header = 0\n", true);
  CHECK(no_ids.exit_code == 0);
  CHECK(no_ids.out == "applied " + home.path() + "/config/mfserv.ini\nreloaded\n");
  auto bare = get(port, "/alpha/main/", "X-Request-Id: client-chosen\r\n");
  CHECK(bare.status == 200);
  CHECK(bare.headers.count("x-request-id") == 0);
  CHECK(app_answer(bare)["request_id"].is_null());

  // A broken file: the reload fails naming file and line, and the running settings stay;
  // a plugin added meanwhile still starts, and the output says so.
  home.add_plugin("beta", testapp_plugin(1));
  auto broken = reload("[nginx]\nadd_request_id_header = maybe\n", false);
  CHECK(broken.exit_code == 1);
  CHECK(broken.out.find("started beta/main") != std::string::npos);
  CHECK(broken.err.find(home.path() + "/config/mfserv.ini:2") != std::string::npos);
  CHECK(broken.err.find("add_request_id_header") != std::string::npos);
  CHECK(broken.err.find("the running settings stay") != std::string::npos);
  CHECK(get(port, "/beta/main/").status == 200);
  auto still = get(port, "/alpha/main/");
  CHECK(still.status == 200);
  CHECK(still.headers.count("x-request-id") == 0);
  // A FIFO there used to block the supervisor for good (no writer ever comes).
  const std::string ini = home.path() + "/config/mfserv.ini";
  fs::remove(ini);
  REQUIRE(::mkfifo(ini.c_str(), 0600) == 0);
  auto fifo = run_mfserv({home.home_arg(), "reload"});
  CHECK(fifo.exit_code == 1);
  CHECK(fifo.err.find(ini + " is not a regular file") != std::string::npos);
  CHECK(home.ps()["service"]["state"] == "running");
  CHECK(get(port, "/alpha/main/").status == 200);
  fs::remove(ini);

  // nginx's user only changes at the next run (the worker sockets' group follows it).
  auto user = reload("[nginx]\nport = 1\nuser = nobody\n", true);
  CHECK(user.exit_code == 0);
  CHECK(user.err.find(ini +
                      ":2: [nginx] port 1 is not used: this mfserv was started with `run "
                      "--port " +
                      std::to_string(port) + "`") != std::string::npos);
  CHECK(user.err.find(ini + ":3: [nginx] user: takes effect at the next `mfserv run`") !=
        std::string::npos);
  // nginx-conf shows the running instance's user, as nginx has it.
  auto user_line = [](const std::string& conf) {
    const size_t at = conf.find("\nuser ");
    return at == std::string::npos ? std::string() : conf.substr(at, conf.find(';', at) - at);
  };
  auto shown = run_mfserv({home.home_arg(), "nginx-conf"});
  CHECK_FALSE(user_line(shown.out).empty());
  CHECK(user_line(shown.out) == user_line(read_text(home.path() + "/run/nginx.conf")));
  auto full = get(port, "/alpha/main/");
  CHECK(forwarded(full, "X-Forwarded-For") == "127.0.0.1");
  CHECK(is_hex_id(full.headers["x-request-id"]));

  CHECK(worker_pids(home) == workers);  // no reload restarted a worker
  CHECK(home.stop().exit_code == 0);
  // The access log keeps the request id even when no header carries it.
  for (const auto& line : access_log(home)) {
    if (line["plugin"] == "alpha") {
      CHECK(is_hex_id(line["request_id"].get<std::string>()));
    }
  }
}

TEST_CASE("/__health, /status and /__upstream_status, and /__health is 503 while stopping",
          "[integration][root][nginx]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  // SIGWINCH is ignored by the testapp: each worker holds the stop for its graceful_timeout.
  home.add_plugin("alpha", testapp_plugin(2, "smart_stop_signal = 28\n"));
  const int port = free_port();
  start_or_fail(home, port);

  auto health = get(port, "/__health");
  CHECK(health.status == 200);
  CHECK(health.body == "OK\n");

  auto status = get(port, "/status");
  CHECK(status.status == 200);
  CHECK(status.body.find("Active connections:") == 0);

  auto upstreams = get(port, "/__upstream_status");
  CHECK(upstreams.status == 200);
  CHECK(upstreams.headers["content-type"] == "application/json");
  auto json = nlohmann::json::parse(upstreams.body);
  REQUIRE(json["upstreams"].size() == 1);
  CHECK(json["upstreams"][0]["plugin"] == "alpha");
  CHECK(json["upstreams"][0]["app"] == "main");
  REQUIRE(json["upstreams"][0]["servers"].size() == 2);
  for (int wid = 1; wid <= 2; ++wid) {
    const std::string socket = json["upstreams"][0]["servers"][wid - 1]["address"];
    CHECK(socket ==
          "unix:" + home.path() + "/run/sockets/app_alpha_main_" + std::to_string(wid) + ".socket");
    CHECK(fs::is_socket(socket.substr(5)));
  }

  // Loopback only: 127.0.0.2 is local to the host but not 127.0.0.1.
  for (const char* endpoint : {"/status", "/__upstream_status"}) {
    INFO(endpoint);
    CHECK(http_exchange(port, std::string("GET ") + endpoint + " HTTP/1.0\r\n\r\n", "127.0.0.2")
              .status == 403);
  }
  CHECK(http_exchange(port, "GET /__health HTTP/1.0\r\n\r\n", "127.0.0.2").status == 200);

  auto stopping = std::async(std::launch::async, [&home] { return home.stop(); });
  std::string seen;
  CHECK(wait_until(
      [&] {
        auto answer = get(port, "/__health");
        seen = std::to_string(answer.status) + " " + answer.body;
        return answer.status == 503;
      },
      10s));
  INFO(seen);
  CHECK(seen == "503 STOPPING\n");
  CHECK(stopping.get().exit_code == 0);
}

TEST_CASE("mfserv.ini reaches nginx, --port overrides its port, a bad file stops run",
          "[integration][root][nginx][settings]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("alpha", testapp_plugin(1));
  const int file_port = free_port();
  const int port = free_port();

  SECTION("the settings reach nginx") {
    write_settings(home, "# instance settings\n[nginx]\nport = " + std::to_string(file_port) +
                             "\nworker_processes = 1\nclient_max_body_size = 1k\ntimeout = 7\n"
                             "log_format = combined\nuser = nobody\n");
    start_or_fail(home, port);
    CHECK(answered_by(get(port, "/alpha/main/")) == "alpha/main");
    CHECK(get(file_port, "/alpha/main/").status == 0);
    const std::string conf = read_text(home.path() + "/run/nginx.conf");
    CHECK(conf.find("worker_processes 1;") != std::string::npos);
    // With nobody's own group (nogroup on Debian, where no group is named nobody).
    const group* nobody_group = ::getgrgid(::getpwnam("nobody")->pw_gid);
    REQUIRE(nobody_group != nullptr);
    CHECK(conf.find("user nobody " + std::string(nobody_group->gr_name) + ";") !=
          std::string::npos);
    CHECK(conf.find("client_body_timeout 7s;") != std::string::npos);
    // client_max_body_size: nginx refuses a larger body itself.
    auto too_big =
        http_exchange(port, "POST /alpha/main/ HTTP/1.0\r\nContent-Length: 2048\r\n\r\n" +
                                std::string(2048, 'x'));
    CHECK(too_big.status == 413);
    CHECK(home.stop().exit_code == 0);
    // log_format = combined: Apache-style lines, not JSON.
    const std::string log = read_text(home.path() + "/log/nginx_access.log");
    CHECK(log.find("\"GET /alpha/main/ HTTP/1.0\" 200") != std::string::npos);
    CHECK(log.find("{\"time\"") == std::string::npos);
  }

  SECTION("a bad mfserv.ini stops run and nginx-conf with file, line and key") {
    write_settings(home,
                   "[nginx]\nport = 8080\nclient_max_body_size = 1m; include /etc/shadow\n"
                   "colour = blue\n");
    auto started = home.start(port);
    CHECK(started.exit_code == 1);
    const std::string file = home.path() + "/config/mfserv.ini";
    INFO(started.err);
    CHECK(started.err.find(file + ":3: [nginx] client_max_body_size: invalid value") !=
          std::string::npos);
    CHECK(started.err.find(file + ":4: [nginx] colour: unknown key") != std::string::npos);
    CHECK(processes_mentioning(home.path()).empty());
    CHECK(get(port, "/__health").status == 0);
    auto conf = run_mfserv({home.home_arg(), "nginx-conf"});
    CHECK(conf.exit_code == 1);
    CHECK(conf.out.empty());
    CHECK(conf.err.find(file + ":4: [nginx] colour") != std::string::npos);
  }

  SECTION("nginx-conf prints what run writes") {
    write_settings(home, "[nginx]\nclient_max_body_size = 5m\n");
    start_or_fail(home, port);
    auto conf = run_mfserv({home.home_arg(), "nginx-conf", "--port", std::to_string(port)});
    CHECK(conf.exit_code == 0);
    CHECK(conf.out == read_text(home.path() + "/run/nginx.conf"));
    CHECK(conf.out.find("client_max_body_size 5m;") != std::string::npos);
    // Without --port, the port of the running instance (its `run --port`), not mfserv.ini's.
    auto running = run_mfserv({home.home_arg(), "nginx-conf"});
    CHECK(running.exit_code == 0);
    CHECK(running.out == read_text(home.path() + "/run/nginx.conf"));
    CHECK(home.stop().exit_code == 0);
  }
}

TEST_CASE("hostile plugin names and config values are refused at load time while the others serve",
          "[integration][root][nginx][safety]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("good", testapp_plugin(1));
  const std::string plugins = home.path() + "/plugins/";

  // Folder names (no .layerapi2_label: the folder names the plugin). Written straight into the
  // home: `plugin develop` would refuse them.
  const std::vector<std::string> bad_names = {"bad;name", "bad{x}", "bad name", "bad\nname",
                                              "bad\"q",   "bad'q",  "bad$x"};
  for (const std::string& name : bad_names) {
    write_text(plugins + name + "/config.ini", testapp_plugin(1));
  }
  // A label naming a plugin outside the plugins folder.
  write_text(plugins + "dotdot/config.ini", testapp_plugin(1));
  write_text(plugins + "dotdot/.layerapi2_label", "plugin_../../etc@mfserv\n");

  // Values on line 13 of config.ini (after [general], [app_main] and three keys).
  const std::vector<std::pair<std::string, std::string>> bad_values = {
      {"prefix_based_routing_extra_routes", "/x;include /etc/passwd"},
      {"prefix_based_routing_extra_routes", "/a{b}"},
      {"prefix_based_routing_extra_routes", "/a\"b"},
      {"prefix_based_routing_extra_routes", "/a\n    /b"},
      {"_virtualdomain_based_routing_extra_vhosts", "evil.com;}server{listen 80"},
      {"_virtualdomain_based_routing_extra_vhosts", "evil .com"},
      {"_static_directory", "../../../../etc"},
      {"_static_directory", "static;deny all"},
      {"_static_url_prefix", "/s\"x"},
      {"_static_url_prefix", "/s x"},
      {"_extra_nginx_conf_filename", "../outside.conf"},
      {"_extra_nginx_conf_filename", "extra.conf;"},
  };
  for (size_t i = 0; i < bad_values.size(); ++i) {
    const auto& [key, value] = bad_values[i];
    const std::string dir = plugins + "evil" + std::to_string(i);
    write_text(dir + "/config.ini",
               test_general() + "[app_main]\n_cmd_and_args = " + testapp_command() +
                   "\nnumprocesses = 1\ngraceful_timeout = 5\n" + key + " = " + value + "\n");
    write_text(dir + "/outside.conf", "return 200 evil;\n");
  }

  const int port = free_port();
  auto started = home.start(port);
  INFO(started.err);
  CHECK(started.exit_code == 0);
  for (const std::string& name : bad_names) {
    INFO("folder " << name);
    std::string shown = mfserv::replace_all(name, "\n", "\\n");
    CHECK(started.err.find("invalid plugin name '" + shown +
                           "': names may only contain letters, digits, '_' and '-'") !=
          std::string::npos);
  }
  CHECK(started.err.find(plugins + "dotdot/.layerapi2_label:1: invalid plugin name "
                                   "'../../etc'") != std::string::npos);
  for (size_t i = 0; i < bad_values.size(); ++i) {
    INFO(bad_values[i].first << " = " << bad_values[i].second);
    CHECK(started.err.find(plugins + "evil" + std::to_string(i) + "/config.ini:13: [app_main] " +
                           bad_values[i].first + ": invalid value") != std::string::npos);
  }

  CHECK(answered_by(get(port, "/good/main/")) == "good/main");
  const std::string conf = read_text(home.path() + "/run/nginx.conf");
  for (const char* leaked : {"bad", "evil", "/etc/passwd", "outside", "dotdot", "../"}) {
    INFO(leaked);
    CHECK(conf.find(leaked) == std::string::npos);
  }
  CHECK(get(port, "/x").status == 404);
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C15: a fragment nginx rejects is refused with nginx's error quoted",
          "[integration][root][nginx][C15]") {
  if (!require_root()) {
    return;
  }
  // The fragment is a valid path to a file, so images/ accepts it; only `nginx -t` can judge
  // its content, and it judges the whole configuration: mfserv cannot drop just that plugin
  // without the supervisor's help, so the change is refused as a whole.
  TempHome home;
  home.add_plugin("good", testapp_plugin(1));
  const int port = free_port();
  const std::string conf_path = home.path() + "/run/nginx.conf";
  // A directive mfserv allows, with arguments only nginx checks.
  const std::string fragment = "# a plugin fragment\nadd_header X-Foo;\n";

  SECTION("at start: run fails and starts nothing") {
    start_or_fail(home, port);
    CHECK(home.stop().exit_code == 0);
    const std::string last_good = read_text(conf_path);
    REQUIRE_FALSE(last_good.empty());

    const std::string dir =
        home.add_plugin("broken", testapp_plugin(1, "_extra_nginx_conf_filename = extra.conf\n"),
                        {{"extra.conf", fragment}});
    auto started = home.start(port);
    INFO(started.err);
    CHECK(started.exit_code == 1);
    CHECK(started.err.find("nginx -t rejected") != std::string::npos);
    CHECK(started.err.find("invalid number of arguments in \"add_header\" directive in " + dir +
                           "/extra.conf:2") != std::string::npos);
    // Nothing was started and the last configuration nginx accepted is still in place.
    CHECK(processes_mentioning(home.path()).empty());
    CHECK(get(port, "/__health").status == 0);
    CHECK(read_text(conf_path) == last_good);
    CHECK_FALSE(fs::exists(conf_path + ".new"));
    // What the failed start had made is gone: its cgroups and sockets.
    CHECK_FALSE(fs::exists(home.instance_cgroup_v1_memory()));
    CHECK(fs::is_empty(home.path() + "/run/sockets"));
  }

  SECTION("at reload: nothing changes, the running nginx and apps serve as before") {
    home.add_plugin("leaving", testapp_plugin(1));
    start_or_fail(home, port);
    const std::string last_good = read_text(conf_path);
    const std::string dir =
        home.add_plugin("broken", testapp_plugin(1, "_extra_nginx_conf_filename = extra.conf\n"),
                        {{"extra.conf", fragment}});
    // Removed in the same reload: nginx keeps routing to it, so it must keep running (it used
    // to be stopped, and answered 502).
    fs::remove(home.path() + "/plugins/leaving");
    auto reloaded = run_mfserv({home.home_arg(), "reload"});
    INFO(reloaded.out << reloaded.err);
    CHECK(reloaded.exit_code == 1);
    CHECK(reloaded.err.find("invalid number of arguments in \"add_header\" directive in " + dir +
                            "/extra.conf:2") != std::string::npos);
    CHECK(reloaded.err.find("nothing changed: nginx and every app keep their previous "
                            "configuration") != std::string::npos);
    CHECK(reloaded.out.empty());  // neither started nor stopped anything
    CHECK(read_text(conf_path) == last_good);
    CHECK(answered_by(get(port, "/good/main/")) == "good/main");
    std::this_thread::sleep_for(500ms);  // a stop would have begun by now
    CHECK(answered_by(get(port, "/leaving/main/")) == "leaving/main");
    CHECK(processes_mentioning(home.path() + "/run/sockets/app_broken_main").empty());
    // Uninstalling meanwhile stops the plugin, but the reload it needs is refused: not a
    // success (it used to exit 0).
    auto uninstalled = run_mfserv({home.home_arg(), "plugin", "uninstall", "good"});
    CHECK(uninstalled.exit_code == 1);
    CHECK(uninstalled.err.find("the plugin is uninstalled and its workers are stopped, but the "
                               "running mfserv reports: ") != std::string::npos);
    home.add_plugin("good", testapp_plugin(1));  // back, and started again
    CHECK(run_mfserv({home.home_arg(), "start", "good"}).exit_code == 0);
    CHECK(get(port, "/__health").status == 200);
    CHECK(get(port, "/broken/main/").status == 404);

    // Once the fragment is fixed, the next reload routes the plugin.
    write_text(dir + "/extra.conf", "# a plugin fragment\nadd_header X-Fragment yes always;\n");
    const auto old_workers = home.nginx_workers();
    REQUIRE_FALSE(old_workers.empty());
    auto fixed = run_mfserv({home.home_arg(), "reload"});
    INFO(fixed.out << fixed.err);
    CHECK(fixed.exit_code == 0);
    // nginx's reload is asynchronous: its old workers keep accepting for a moment after the
    // new ones start, so wait until every worker of the previous configuration is gone.
    CHECK(wait_until(
        [&] {
          for (pid_t pid : old_workers) {
            if (::kill(pid, 0) == 0) {
              return false;
            }
          }
          return true;
        },
        10s));
    CHECK(
        wait_until([&] { return answered_by(get(port, "/broken/main/")) == "broken/main"; }, 10s));
    auto with_fragment = get(port, "/broken/main/");
    CHECK(with_fragment.headers["x-fragment"] == "yes");
    CHECK(is_hex_id(with_fragment.headers["x-request-id"]));  // our headers survive it
    CHECK(answered_by(get(port, "/good/main/")) == "good/main");
    CHECK(home.stop().exit_code == 0);
  }
}

TEST_CASE("nginx only ever reads a fragment as it was checked: later edits need a reload",
          "[integration][root][nginx]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  const std::string dir =
      home.add_plugin("frag", testapp_plugin(1, "_extra_nginx_conf_filename = extra.conf\n"),
                      {{"extra.conf", "add_header X-Fragment checked always;\n"}});
  const int port = free_port();
  start_or_fail(home, port);
  CHECK(get(port, "/frag/main/").headers["x-fragment"] == "checked");
  CHECK(read_text(home.path() + "/run/nginx.conf").find(dir + "/extra.conf") == std::string::npos);

  // The plugin's file now asks nginx's root master to write where it likes.
  const std::string victim = home.path() + "/../victim.log";
  write_text(dir + "/extra.conf", "error_log " + victim + ";\n");
  // nginx restarted by the supervisor (kill -9 of its master) reads the checked copy.
  int master = home.ps()["nginx"]["pid"].get<int>();
  REQUIRE(master > 0);
  ::kill(master, SIGKILL);
  CHECK(wait_until(
      [&] {
        auto pid = home.ps()["nginx"]["pid"].get<int>();
        return pid > 0 && pid != master && get(port, "/__health").status == 200;
      },
      20s));
  CHECK(get(port, "/frag/main/").headers["x-fragment"] == "checked");
  // A reload refuses the new text and keeps the plugin as it was.
  auto reloaded = run_mfserv({home.home_arg(), "reload"});
  INFO(reloaded.out << reloaded.err);
  CHECK(reloaded.exit_code == 1);
  CHECK(reloaded.err.find("directive 'error_log' is not allowed") != std::string::npos);
  CHECK(get(port, "/frag/main/").headers["x-fragment"] == "checked");
  CHECK_FALSE(fs::exists(victim));
  CHECK(home.stop().exit_code == 0);
  CHECK_FALSE(fs::exists(victim));
}
