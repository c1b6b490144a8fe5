// hidden_plugin_dirs: what a sandbox must cover with a tmpfs of its own, one mount each.
#include "runtime/worker_setup.hpp"

#include <catch2/catch.hpp>

TEST_CASE("hidden_plugin_dirs leaves out what the home or a private tmpfs covers",
          "[runtime][worker_setup]") {
  const mfserv::runtime::Home home{"/srv/h"};
  std::vector<mfserv::images::PluginConfig> plugins(7);
  plugins[0].dir = "/srv/h/plugins/installed";
  plugins[1].dir = "/tmp/dev/linked";
  plugins[2].dir = "/var/tmp/other";
  plugins[3].dir = "/dev/shm/odd";
  plugins[4].dir = "/opt/work/zeta";
  plugins[5].dir = "/tmpfoo/alpha";  // not under /tmp
  plugins[6].dir = "/opt/work/zeta";
  auto hidden = mfserv::runtime::hidden_plugin_dirs(home, plugins);
  REQUIRE(hidden);
  CHECK(*hidden == std::vector<std::string>{"/opt/work/zeta", "/tmpfoo/alpha"});
}
