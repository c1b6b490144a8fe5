// `plugin new --template T` (images/template.cpp): every template gives a plugin that loads
// with no diagnostic, builds and installs; bad names and existing folders are refused.
#include "images/template.hpp"

#include <catch2/catch.hpp>
#include <filesystem>

#include "images/archive.hpp"
#include "images/plugin.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"

namespace fs = std::filesystem;
using mfserv::images::create_plugin_from_template;
using mfserv::images::list_templates;
using mfserv::images::load_plugin;
using mfserv::images::test::TempDir;

namespace {

std::string all_diagnostics(const mfserv::images::PluginLoad& load) {
  std::string out;
  for (const auto& diagnostic : load.diagnostics) {
    out += diagnostic.describe() + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("templates: the five templates are shipped", "[images][templates]") {
  CHECK(list_templates() ==
        std::vector<std::string>{"daemon", "node", "python-aiohttp", "python-wsgi", "static"});
}

TEST_CASE("templates: each generates a plugin that loads cleanly", "[images][templates]") {
  const std::string template_name =
      GENERATE(as<std::string>{}, "python-wsgi", "python-aiohttp", "node", "static", "daemon");
  TempDir tmp;
  auto created = create_plugin_from_template(template_name, "my_plugin-1", tmp.path());
  INFO(template_name << ": " << (created ? std::string() : created.error().describe()));
  REQUIRE(created.ok());
  CHECK(created->dir == tmp / "my_plugin-1");
  CHECK(std::find(created->files.begin(), created->files.end(), "config.ini") !=
        created->files.end());

  auto load = load_plugin(created->dir, {});
  INFO(all_diagnostics(load));
  REQUIRE(load.plugin);
  CHECK(load.diagnostics.empty());
  CHECK(load.plugin->name == "my_plugin-1");
  CHECK(load.plugin->version == "1.0.0");
  REQUIRE(load.plugin->apps.size() == 1);
  const auto& app = load.plugin->apps.front();
  CHECK(app.name == "main");
  if (template_name == "daemon") {
    CHECK(app.kind == mfserv::images::AppConfig::Kind::ExtraDaemon);
  } else {
    CHECK(app.kind == mfserv::images::AppConfig::Kind::App);
  }
  if (template_name == "static") {
    CHECK(app.numprocesses == 0);
  } else {
    CHECK(app.numprocesses > 0);
    CHECK(app.cmd_and_args.find("{{") == std::string::npos);
  }
  if (template_name == "python-wsgi") {
    CHECK(app.cmd_and_args.find("/usr/bin/python3 -m gunicorn") == 0);
    CHECK(app.cmd_and_args.find("--bind unix:{unix_socket_path}") != std::string::npos);
  }

  // Every placeholder was substituted.
  for (const std::string& file : created->files) {
    auto content = mfserv::read_file(created->dir + "/" + file);
    REQUIRE(content.ok());
    INFO(file);
    CHECK(content->find("{{") == std::string::npos);
  }
  CHECK(*mfserv::read_file(created->dir + "/.layerapi2_label") == "plugin_my_plugin-1@mfserv\n");

  // It packs, and what it packs installs.
  auto built = mfserv::images::build_plugin_archive(created->dir, tmp / "out");
  INFO((built ? std::string() : built.error().describe()));
  REQUIRE(built.ok());
  CHECK(fs::path(built->path).filename() == "my_plugin-1-1.0.0-1.metwork.mfserv.plugin");
  mfserv::images::InstallOptions options;
  options.plugins_dir = tmp / "plugins";
  options.lock_path = tmp / "plugins.lock";
  auto installed = mfserv::images::install_plugin_archive(built->path, options);
  INFO((installed ? std::string() : installed.error().describe()));
  REQUIRE(installed.ok());
  CHECK(installed->warnings.empty());
}

TEST_CASE("templates: refusals", "[images][templates]") {
  TempDir tmp;
  SECTION("unknown template") {
    auto created = create_plugin_from_template("cobol", "demo", tmp.path());
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().message().find("unknown template 'cobol': choose one of daemon, node,") ==
          0);
  }
  SECTION("invalid name") {
    for (const char* name : {"../evil", "plugin_x", "base", "a b", ""}) {
      auto created = create_plugin_from_template("static", name, tmp.path());
      INFO(name);
      REQUIRE_FALSE(created.ok());
      CHECK(created.error().message().find("invalid plugin name") == 0);
    }
  }
  SECTION("existing folder") {
    tmp.write("demo/keep.txt", "mine");
    auto created = create_plugin_from_template("static", "demo", tmp.path());
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().message().find("already exists") != std::string::npos);
    CHECK(*mfserv::read_file(tmp / "demo/keep.txt") == "mine");
  }
  // Nothing half-made is left behind.
  for (const auto& entry : fs::directory_iterator(tmp.path())) {
    CHECK(entry.path().filename().string().rfind(".", 0) != 0);
  }
}

TEST_CASE("templates: MFSERV_TEMPLATES_DIR overrides where templates are", "[images][templates]") {
  TempDir tmp;
  tmp.write("templates/mine/config.ini", "[general]\n_version = 0.0.1\n_summary = {{name}}\n");
  ::setenv("MFSERV_TEMPLATES_DIR", (tmp / "templates").c_str(), 1);
  auto templates = list_templates();
  auto created = create_plugin_from_template("mine", "demo", tmp / "out");
  ::unsetenv("MFSERV_TEMPLATES_DIR");
  CHECK(templates == std::vector<std::string>{"mine"});
  REQUIRE(created.ok());
  CHECK(*mfserv::read_file(tmp / "out/demo/config.ini") ==
        "[general]\n_version = 0.0.1\n_summary = demo\n");
}
