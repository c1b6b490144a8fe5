// front_config: the instance's settings as they reach nginx-gen's model.
#include "runtime/front.hpp"

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
