// HOME/config/mfserv.ini: defaults, every key, and every mistake reported at once with its
// file, line and key.
#include "runtime/settings.hpp"

#include <string>

#include <catch2/catch.hpp>

#include "../images/temp_dir.hpp"

using mfserv::runtime::FrontSettings;
using mfserv::runtime::parse_settings;
using LogFormat = mfserv::nginx::LogFormat;

namespace {

constexpr const char* k_file = "/etc/x/mfserv.ini";

std::string error_of(const std::string& text) {
  auto settings = parse_settings(text, k_file);
  REQUIRE_FALSE(settings.ok());
  return settings.error().message();
}

}  // namespace

TEST_CASE("no settings means the defaults", "[runtime][settings]") {
  for (const char* text : {"", "# nothing\n", "[nginx]\n"}) {
    auto settings = parse_settings(text, k_file);
    REQUIRE(settings.ok());
    CHECK(settings->port == 18868);
    CHECK_FALSE(settings->worker_processes.has_value());
    CHECK(settings->client_max_body_size == "100m");
    CHECK(settings->timeout == 60);
    CHECK_FALSE(settings->accept_incoming_request_id);
    CHECK(settings->add_x_forwarded_headers);
    CHECK(settings->add_request_id_header);
    CHECK(settings->hostname.empty());
    CHECK(settings->log_format == LogFormat::json);
    CHECK(settings->nginx_user.empty());
  }
}

TEST_CASE("every [nginx] key", "[runtime][settings]") {
  auto settings = parse_settings(
      "[nginx]\n"
      "port = 8080\n"
      "worker_processes = 3\n"
      "client_max_body_size = 1G\n"
      "timeout = 120\n"
      "accept_incoming_request_id = yes\n"
      "add_x_forwarded_headers = 0\n"
      "add_request_id_header = off\n"
      "hostname = Web.Example.org\n"
      "log_format = combined\n"
      "user = root\n",
      k_file);
  INFO((settings.ok() ? std::string() : settings.error().message()));
  REQUIRE(settings.ok());
  CHECK(settings->port == 8080);
  CHECK(settings->worker_processes == 3);
  CHECK(settings->client_max_body_size == "1G");
  CHECK(settings->timeout == 120);
  CHECK(settings->accept_incoming_request_id);
  CHECK_FALSE(settings->add_x_forwarded_headers);
  CHECK_FALSE(settings->add_request_id_header);
  CHECK(settings->hostname == "web.example.org");
  CHECK(settings->log_format == LogFormat::combined);
  CHECK(settings->nginx_user == "root");

  auto automatic =
      parse_settings("[nginx]\nworker_processes = auto\nclient_max_body_size = 0\n", k_file);
  REQUIRE(automatic.ok());
  CHECK(automatic->worker_processes == 0);
  CHECK(automatic->client_max_body_size == "0");
}

TEST_CASE("a bad value names the file, line and key", "[runtime][settings]") {
  struct Case {
    std::string line;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"port = 0", "port: invalid value '0': expected an integer from 1 to 65535"},
      {"port = 80a", "port: invalid value '80a'"},
      {"worker_processes = many",
       "worker_processes: invalid value 'many': expected an integer "
       "from 1 to 1024 or auto"},
      {"client_max_body_size = 100 m", "client_max_body_size: invalid value '100 m'"},
      {"client_max_body_size = 100m; include /etc/shadow", "client_max_body_size: invalid value"},
      {"client_max_body_size = 1t", "client_max_body_size: invalid value '1t'"},
      {"timeout = -1", "timeout: invalid value '-1'"},
      {"accept_incoming_request_id = maybe", "accept_incoming_request_id: invalid value 'maybe'"},
      {"add_x_forwarded_headers = 2", "add_x_forwarded_headers: invalid value '2'"},
      {"hostname = a;b", "hostname: invalid value 'a;b': expected a DNS name"},
      {"hostname = a b", "hostname: invalid value 'a b'"},
      {"hostname = ${host}", "hostname: invalid value '${host}'"},
      {"log_format = xml", "log_format: invalid value 'xml': expected json or combined"},
      {"user = 0", "user: invalid value '0': expected a user name"},
      {"user = www-data;", "user: invalid value 'www-data;'"},
      {"user = no-such-user-mfserv", "no user 'no-such-user-mfserv' on this host"},
  };
  for (const Case& c : cases) {
    INFO(c.line);
    const std::string message = error_of("# settings\n[nginx]\n" + c.line + "\n");
    INFO(message);
    CHECK(message.find(std::string(k_file) + ":3: [nginx] ") == 0);
    CHECK(message.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("unknown keys and sections, and every problem at once", "[runtime][settings]") {
  const std::string message = error_of(
      "[nginx]\n"
      "prt = 80\n"
      "workers = 4\n"
      "port = 99999\n"
      "[log]\n"
      "level = debug\n"
      "[nginx]\n");
  INFO(message);
  CHECK(message.find(std::string(k_file) + ":2: [nginx] prt: unknown key; did you mean 'port'?") !=
        std::string::npos);
  CHECK(message.find(":3: [nginx] workers: unknown key; did you mean 'worker_processes'?") !=
        std::string::npos);
  CHECK(message.find(":4: [nginx] port: invalid value '99999'") != std::string::npos);
  CHECK(message.find(":5: unknown section [log]: mfserv.ini has only [nginx]") !=
        std::string::npos);
  CHECK(message.find(":7: duplicate section [nginx]") != std::string::npos);
  CHECK(message.find(":2:") < message.find(":3:"));
  CHECK(message.find(":5:") < message.find(":7:"));
  // The keys of an unknown section are not reported one by one.
  CHECK(message.find("level") == std::string::npos);
}

TEST_CASE("load_settings reads HOME/config/mfserv.ini", "[runtime][settings]") {
  mfserv::images::test::TempDir tmp;
  mfserv::runtime::Home home{tmp.path()};
  CHECK(mfserv::runtime::settings_path(home) == tmp.path() + "/config/mfserv.ini");
  auto missing = mfserv::runtime::load_settings(home);
  REQUIRE(missing.ok());
  CHECK(missing->port == 18868);

  tmp.write("config/mfserv.ini", "[nginx]\nport = 9090\n");
  auto present = mfserv::runtime::load_settings(home);
  REQUIRE(present.ok());
  CHECK(present->port == 9090);

  tmp.write("config/mfserv.ini", "[nginx]\nport = nine\n");
  auto bad = mfserv::runtime::load_settings(home);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message() == tmp.path() +
                                     "/config/mfserv.ini:2: [nginx] port: invalid value 'nine': "
                                     "expected an integer from 1 to 65535");
}
