// `mfserv check` against what this host really offers: the cgroup layout read from the mount
// table here (not through mfserv's backend), nginx's own `nginx -v`, the mfserv user, a free
// port; and C18: port 80 for a user without CAP_NET_BIND_SERVICE names what is missing and
// how to fix it.
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "harness.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;
using nlohmann::json;

namespace {

// "v2", "hybrid" or "v1", from /proc/self/mounts as the kernel lists them.
std::string layout_from_mounts() {
  bool v1_memory = false;
  bool v2_memory = false;
  bool cgroup2 = false;
  for (const auto& line : mfserv::split(read_text("/proc/self/mounts"), '\n')) {
    auto fields = mfserv::split(line, ' ');
    if (fields.size() < 4) {
      continue;
    }
    if (fields[2] == "cgroup2") {
      cgroup2 = true;
      v2_memory = v2_memory || mfserv::path_exists(fields[1] + "/memory.stat");
    } else if (fields[2] == "cgroup") {
      for (const auto& option : mfserv::split(fields[3], ',')) {
        v1_memory = v1_memory || option == "memory";
      }
    }
  }
  if (v1_memory) {
    return cgroup2 ? "hybrid" : "v1";
  }
  return v2_memory ? "v2" : "none";
}

json parse(const CommandResult& result) {
  INFO(result.out << result.err);
  json parsed;
  REQUIRE_NOTHROW(parsed = json::parse(result.out));
  return parsed;
}

bool contains(const json& list, const std::string& item) {
  for (const auto& entry : list) {
    if (entry == item) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("check reports this host's cgroups, namespaces, seccomp, nginx and port",
          "[integration][root][check]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  int port = free_port();
  std::string layout = layout_from_mounts();

  auto json_result =
      run_mfserv({home.home_arg(), "check", "--json", "--port", std::to_string(port)});
  json report = parse(json_result);
  INFO(report.dump(2));
  CHECK(json_result.exit_code == 0);
  CHECK(report["ok"] == true);
  CHECK(report["missing"].empty());

  CHECK(report["cgroups"]["layout"] == layout);
  CHECK(report["cgroups"]["backend"] == (layout == "v2" ? "v2" : "v1"));
  CHECK(contains(report["cgroups"]["controllers"], "memory"));
  CHECK_FALSE(contains(report["cgroups"]["missing"], "memory"));
  if (layout != "v2") {
    CHECK(report["cgroups"]["delegated"] == false);
    CHECK(report["cgroups"]["hierarchy_root"] == "/sys/fs/cgroup/memory");
  }
  // memsw files exist exactly when v1 swap accounting is on.
  if (layout != "v2") {
    CHECK(report["cgroups"]["swap_limit"] ==
          mfserv::path_exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"));
  }

  for (const char* ns : {"mount", "pid", "ipc", "uts"}) {
    INFO(ns);
    CHECK(report["namespaces"][ns]["available"] == true);
    CHECK(report["namespaces"][ns]["needed"] == true);
  }
  CHECK(report["seccomp"]["available"] == true);
  CHECK(mfserv::starts_with(report["seccomp"]["libseccomp"].get<std::string>(), "2."));

  auto nginx_version = run_command({"nginx", "-v"});
  std::string expected_version = mfserv::trim(nginx_version.err);
  CHECK(mfserv::starts_with(expected_version, "nginx version: "));
  CHECK(report["nginx"]["found"] == true);
  CHECK(report["nginx"]["version"] ==
        expected_version.substr(std::string("nginx version: ").size()));
  CHECK(report["nginx"]["worker_user"] == (::getpwnam("www-data") ? "www-data" : "nobody"));

  struct passwd* pw = ::getpwnam("mfserv");
  REQUIRE(pw != nullptr);  // scripts/install-deps creates it
  CHECK(report["worker_user"]["exists"] == true);
  CHECK(report["worker_user"]["uid"] == pw->pw_uid);

  CHECK(report["port"]["port"] == port);
  CHECK(report["port"]["source"] == "--port");
  CHECK(report["port"]["bindable"] == true);
  CHECK(report["privileges"]["root"] == true);

  auto text = run_mfserv({home.home_arg(), "check", "--port", std::to_string(port)});
  INFO(text.out << text.err);
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("layout") && Catch::Contains(layout + " (") &&
                           Catch::Contains("memory") &&
                           Catch::Contains(expected_version.substr(15)) &&
                           Catch::Contains("ok: this host has everything mfserv needs"));

  // The port of HOME/config/mfserv.ini, and a clear failure when another program holds it.
  write_text(home.path() + "/config/mfserv.ini", "[nginx]\nport = " + std::to_string(port) + "\n");
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  auto taken = run_mfserv({home.home_arg(), "check", "--json"});
  ::close(holder);
  json from_settings = parse(taken);
  CHECK(taken.exit_code == 1);
  CHECK(from_settings["port"]["port"] == port);
  CHECK(from_settings["port"]["source"] == home.path() + "/config/mfserv.ini");
  CHECK(from_settings["port"]["bindable"] == false);
  CHECK_THAT(from_settings["port"]["error"].get<std::string>(),
             Catch::Contains("already in use by another program"));
  CHECK(from_settings["missing"].size() == 1);
}

// Without --port, check used to probe mfserv.ini's port even when `run --port` had put the
// running instance elsewhere.
TEST_CASE("check without --port probes the port the running instance uses",
          "[integration][root][check]") {
  if (!require_root()) {
    return;
  }
  TempHome home;
  home.add_plugin("plain", testapp_plugin(1));
  int port = free_port();
  auto started = home.start(port);
  INFO(started.err);
  REQUIRE(started.exit_code == 0);
  auto result = run_mfserv({home.home_arg(), "check", "--json"});
  json report = parse(result);
  INFO(report.dump(2));
  CHECK(report["port"]["port"] == port);
  CHECK(report["port"]["source"] == "the running mfserv");
  CHECK(report["port"]["how"] == "in use by this home's running mfserv");
  // Another port held by another program is not this home's, running or not.
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  socklen_t length = sizeof addr;
  REQUIRE(::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  const int other = ntohs(addr.sin_port);
  auto taken = run_mfserv({home.home_arg(), "check", "--json", "--port", std::to_string(other)});
  ::close(holder);
  json other_report = parse(taken);
  CHECK(taken.exit_code == 1);
  CHECK(other_report["port"]["bindable"] == false);
  CHECK_THAT(other_report["port"]["error"].get<std::string>(),
             Catch::Contains("already in use by another program"));
  CHECK(home.stop().exit_code == 0);
}

TEST_CASE("C18: check names CAP_NET_BIND_SERVICE and the fix for port 80 as a non-root user",
          "[integration][root][check][c18]") {
  if (!require_root()) {
    return;
  }
  int unprivileged_start = static_cast<int>(
      mfserv::parse_int(mfserv::trim(read_text("/proc/sys/net/ipv4/ip_unprivileged_port_start")))
          .value_or(1024));
  if (unprivileged_start <= 80) {
    WARN("skipped: net.ipv4.ip_unprivileged_port_start=" << unprivileged_start
                                                         << " lets every user bind port 80");
    return;
  }
  // A home the unprivileged user can read and write.
  std::string home = fs::temp_directory_path() / ("mfserv-check-" + std::to_string(::getpid()));
  fs::create_directories(home);
  ::chmod(home.c_str(), 0777);
  auto as_nobody = [&home](const std::vector<std::string>& args) {
    std::vector<std::string> argv{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                  "--",      MFSERV_BINARY,    "--home=" + home};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };

  auto text = as_nobody({"check", "--port", "80"});
  INFO(text.out << text.err);
  CHECK(text.exit_code == 1);
  CHECK_THAT(text.out,
             Catch::Contains("port 80 is privileged") &&
                 Catch::Contains("lacks CAP_NET_BIND_SERVICE") &&
                 Catch::Contains("setcap cap_net_bind_service=+ep ") &&
                 Catch::Contains("run mfserv as root") &&
                 Catch::Contains("choose a port >= " + std::to_string(unprivileged_start)));
  CHECK_THAT(text.out, Catch::Contains("root: this runs as uid 65534"));

  auto result = as_nobody({"check", "--port", "80", "--json"});
  json report = parse(result);
  INFO(report.dump(2));
  CHECK(result.exit_code == 1);
  CHECK(report["ok"] == false);
  CHECK(report["privileges"]["root"] == false);
  CHECK(report["privileges"]["cap_net_bind_service"] == false);
  CHECK(report["port"]["port"] == 80);
  CHECK(report["port"]["privileged"] == true);
  CHECK(report["port"]["bindable"] == false);
  CHECK(report["port"]["missing_capability"] == "CAP_NET_BIND_SERVICE");
  std::string nginx = report["nginx"]["path"].get<std::string>();
  CHECK_THAT(report["port"]["error"].get<std::string>(),
             Catch::Contains("setcap cap_net_bind_service=+ep " + nginx));
  bool port_named = false;
  for (const auto& line : report["missing"]) {
    port_named = port_named || line == report["port"]["error"];
  }
  CHECK(port_named);
  // The facts that do not depend on privileges are still reported.
  CHECK(report["cgroups"]["layout"] == layout_from_mounts());
  CHECK(report["nginx"]["found"] == true);

  // A port above 1023 is fine for the same user: only the other missing things remain.
  auto high = parse(as_nobody({"check", "--port", std::to_string(free_port()), "--json"}));
  CHECK(high["port"]["bindable"] == true);
  fs::remove_all(home);
}
