// `plugin develop` links and the list of installed plugins (images/store.cpp).
#include "images/store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <climits>

#include "temp_dir.hpp"

using mfserv::images::develop;
using mfserv::images::InstalledPlugin;
using mfserv::images::list_installed;
using mfserv::images::LoadOptions;
using mfserv::images::test::TempDir;

namespace {

const std::string k_config = "[general]\n_version = 1.0.0\n_release = 2\n";

std::string link_target(const std::string& path) {
  char buffer[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
  return n < 0 ? std::string() : std::string(buffer, static_cast<size_t>(n));
}

bool is_link(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

}  // namespace

TEST_CASE("store: develop links a working copy under its name", "[images][store]") {
  TempDir tmp;
  tmp.write("src/demo/config.ini", k_config);
  std::string plugins = tmp / "home/var/plugins";  // created by develop

  auto installed = develop(plugins, tmp / "src/demo/", {});
  REQUIRE(installed.ok());
  CHECK(installed->name == "demo");
  CHECK(installed->version == "1.0.0");
  CHECK(installed->release == "2");
  CHECK(installed->home == tmp / "src/demo");
  CHECK(installed->dev_link);
  CHECK(is_link(plugins + "/demo"));
  CHECK(link_target(plugins + "/demo") == tmp / "src/demo");
  struct stat st {};
  REQUIRE(::stat(plugins.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == (0755 & ~[] {
          mode_t mask = ::umask(0);
          ::umask(mask);
          return mask;
        }()));

  auto listed = list_installed(plugins, {});
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].name == "demo");
  CHECK(listed[0].version == "1.0.0");
  CHECK(listed[0].release == "2");
  CHECK(listed[0].home == tmp / "src/demo");
  CHECK(listed[0].dev_link);
}

TEST_CASE("store: develop names the link after .layerapi2_label", "[images][store]") {
  TempDir tmp;
  tmp.write("src/checkout/config.ini", k_config);
  tmp.write("src/checkout/.layerapi2_label", "plugin_shop@mfserv\n");
  auto installed = develop(tmp / "plugins", tmp / "src/checkout", {});
  REQUIRE(installed.ok());
  CHECK(installed->name == "shop");
  CHECK(link_target(tmp / "plugins/shop") == tmp / "src/checkout");
}

TEST_CASE("store: develop replaces an existing dev link", "[images][store]") {
  TempDir tmp;
  tmp.write("one/demo/config.ini", k_config);
  tmp.write("two/demo/config.ini", "[general]\n_version = 2.0.0\n");
  std::string plugins = tmp.mkdir("plugins");
  auto first = develop(plugins, tmp / "one/demo", {});
  REQUIRE(first.ok());
  CHECK(first->replaced_link.empty());
  auto same = develop(plugins, tmp / "one/demo", {});
  REQUIRE(same.ok());
  CHECK(same->replaced_link.empty());  // linking the same folder again replaces nothing
  auto again = develop(plugins, tmp / "two/demo", {});
  REQUIRE(again.ok());
  CHECK(again->version == "2.0.0");
  CHECK(again->replaced_link == tmp / "one/demo");  // said, not silent
  CHECK(link_target(plugins + "/demo") == tmp / "two/demo");
  // No temporary link is left behind.
  auto listed = list_installed(plugins, {});
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].version == "2.0.0");
  CHECK(::access((plugins + "/.demo.link").c_str(), F_OK) != 0);
}

TEST_CASE("store: develop refuses an installed folder of the same name", "[images][store]") {
  TempDir tmp;
  tmp.write("src/demo/config.ini", k_config);
  tmp.write("plugins/demo/config.ini", k_config);
  auto result = develop(tmp / "plugins", tmp / "src/demo", {});
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message() ==
        "plugin demo is already installed (not a dev link): uninstall it first");
  CHECK_FALSE(is_link(tmp / "plugins/demo"));
}

TEST_CASE("store: develop refuses a plugin with errors and lists them all", "[images][store]") {
  TempDir tmp;
  tmp.write("src/demo/config.ini",
            "[general]\n"
            "_release = 1\n"
            "[app_main]\n"
            "workers = 4\n"
            "timeout = soon\n");
  auto result = develop(tmp / "plugins", tmp / "src/demo", {});
  REQUIRE_FALSE(result.ok());
  const std::string& message = result.error().message();
  CHECK_THAT(message, Catch::Contains("config.ini:1: [general] _version: missing"));
  CHECK_THAT(message, Catch::Contains("config.ini:4: [app_main] workers: unknown key"));
  CHECK_THAT(message, Catch::Contains("config.ini:5: [app_main] timeout: invalid value 'soon'"));
  CHECK(std::count(message.begin(), message.end(), '\n') == 3);
  CHECK(::access((tmp / "plugins").c_str(), F_OK) != 0);  // nothing was created
}

TEST_CASE("store: develop checks override files too", "[images][store]") {
  TempDir tmp;
  tmp.write("src/demo/config.ini", k_config + "[app_main]\n");
  std::string overrides = tmp.mkdir("etc");
  tmp.write("etc/demo.ini", "[app_main]\nnumprocesses = -4\n");
  auto result = develop(tmp / "plugins", tmp / "src/demo", LoadOptions{{overrides}});
  REQUIRE_FALSE(result.ok());
  CHECK_THAT(result.error().message(), Catch::Contains(overrides + "/demo.ini:2:"));
}

TEST_CASE("store: list_installed shows folders, links and broken plugins", "[images][store]") {
  TempDir tmp;
  std::string plugins = tmp.mkdir("plugins");
  tmp.write("plugins/installed/config.ini", k_config);
  tmp.write("plugins/broken/config.ini", "[general]\n_version = 3.1\n[app_x]\nbad = 1\n");
  tmp.write("plugins/.hidden/config.ini", k_config);
  tmp.write("plugins/file.txt", "x");
  tmp.write("work/dev/config.ini", k_config);
  REQUIRE(::symlink((tmp / "work/dev").c_str(), (plugins + "/dev").c_str()) == 0);
  REQUIRE(::symlink((tmp / "work/gone").c_str(), (plugins + "/gone").c_str()) == 0);

  std::vector<InstalledPlugin> listed = list_installed(plugins, {});
  REQUIRE(listed.size() == 4);
  CHECK(listed[0].name == "broken");
  CHECK(listed[0].version == "3.1");
  CHECK(listed[0].release == "1");
  CHECK(listed[0].home == plugins + "/broken");
  CHECK_FALSE(listed[0].dev_link);
  CHECK(listed[1].name == "dev");
  CHECK(listed[1].dev_link);
  CHECK(listed[1].home == tmp / "work/dev");
  CHECK(listed[2].name == "gone");
  CHECK(listed[2].dev_link);
  CHECK(listed[2].home == tmp / "work/gone");
  CHECK(listed[2].version.empty());
  CHECK(listed[3].name == "installed");
  CHECK(listed[3].version == "1.0.0");
  CHECK_FALSE(listed[3].dev_link);

  CHECK(list_installed(tmp / "missing", {}).empty());
}
