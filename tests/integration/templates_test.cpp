// A new plugin runs as generated, through an archive: `plugin new` → `plugin build` →
// `plugin install` → `run --detach` → it answers through nginx → `stop`, for each web
// template, with the built mfserv, real nginx, Python and Node (`npm install` at build).
#include <catch2/catch.hpp>
#include <filesystem>

#include "harness.hpp"

namespace fs = std::filesystem;
using namespace mfserv::test;

namespace {

std::string describe(const CommandResult& result) {
  return "exit " + std::to_string(result.exit_code) + "\nstdout: " + result.out +
         "\nstderr: " + result.err;
}

}  // namespace

TEST_CASE("each web template answers through nginx after build and install",
          "[integration][root][templates]") {
  if (!require_root()) {
    return;
  }
  const std::string template_name =
      GENERATE(as<std::string>{}, "python-wsgi", "python-aiohttp", "node", "static");
  const std::string name = "t_" + template_name.substr(template_name.find('-') + 1);
  INFO(template_name);
  TempHome home;
  const std::string work = fs::path(home.path()).parent_path() / "src";
  const std::string out = fs::path(home.path()).parent_path() / "out";

  auto created = run_mfserv({"plugin", "new", "--template", template_name, name, "--dir", work});
  INFO(describe(created));
  REQUIRE(created.exit_code == 0);
  // Only the node template has dependencies to install first.
  CHECK((created.out.find("first: `npm install` in " + work + "/" + name) != std::string::npos) ==
        (template_name == "node"));
  auto built = run_mfserv({"plugin", "build", work + "/" + name, "--output", out});
  INFO(describe(built));
  REQUIRE(built.exit_code == 0);
  const std::string file = out + "/" + name + "-1.0.0-1.metwork.mfserv.plugin";
  REQUIRE(fs::exists(file));
  CHECK(built.out.find("plugin file is ready at " + file) != std::string::npos);
  if (template_name == "node") {
    CHECK(fs::exists(work + "/" + name + "/node_modules/express"));  // npm install ran
  }
  auto installed = run_mfserv({home.home_arg(), "plugin", "install", file});
  INFO(describe(installed));
  REQUIRE(installed.exit_code == 0);
  CHECK(installed.out.find("plugin " + name + " 1.0.0-1 installed") != std::string::npos);

  int port = free_port();
  auto started = home.start(port);
  INFO(describe(started) << read_text(home.path() + "/log/mfserv.log"));
  REQUIRE(started.exit_code == 0);
  auto response = http_get(port, "/" + name + "/");
  INFO(response.status << " " << response.body);
  CHECK(response.status == 200);
  CHECK(response.body.find("Hello from " + name) != std::string::npos);
  if (template_name == "static") {
    CHECK(http_get(port, "/" + name + "/main/static/site.css").status == 200);
  } else {
    CHECK(http_get(port, "/" + name + "/main/some/path")
              .body.find("path /" + name + "/main/some/path") != std::string::npos);
  }

  // While it runs, an install applies at once; the same archive again changes nothing.
  auto again = run_mfserv({home.home_arg(), "plugin", "install", "--force", file});
  INFO(describe(again));
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("running mfserv: restarted") == std::string::npos);
  CHECK(http_get(port, "/" + name + "/").status == 200);

  auto stopped = home.stop();
  INFO(describe(stopped));
  CHECK(stopped.exit_code == 0);
  auto removed = run_mfserv({home.home_arg(), "plugin", "uninstall", name});
  INFO(describe(removed));
  CHECK(removed.exit_code == 0);
  CHECK_FALSE(fs::exists(home.path() + "/plugins/" + name));
}

TEST_CASE("plugin install refuses a hostile archive with one clear sentence and exit 1",
          "[integration][templates][c16]") {
  TempHome home;
  const std::string dir = fs::path(home.path()).parent_path() / "junk.metwork.mfserv.plugin";
  write_text(dir, "not a tar.gz");
  auto installed = run_mfserv({home.home_arg(), "plugin", "install", dir});
  CHECK(installed.exit_code == 1);
  CHECK(installed.err.find("mfserv: " + dir + " is not a readable .plugin archive") == 0);
  CHECK(installed.err.find('\n') == installed.err.size() - 1);
  auto missing = run_mfserv({home.home_arg(), "plugin", "uninstall", "nothing_here"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err == "mfserv: plugin nothing_here is not installed (see `mfserv plugin list`)\n");
}
