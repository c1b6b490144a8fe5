// Loading plugins: names, layering, keys, values, defaults, env and every error path
// (images/config_loader.cpp, schema.cpp, layers.cpp, values.cpp).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <iterator>
#include <limits>

#include "images/plugin.hpp"
#include "temp_dir.hpp"

using mfserv::images::AppConfig;
using mfserv::images::Diagnostic;
using mfserv::images::expand_command;
using mfserv::images::load_plugin;
using mfserv::images::load_plugins;
using mfserv::images::LoadOptions;
using mfserv::images::LoadReport;
using mfserv::images::PluginConfig;
using mfserv::images::PluginLoad;
using mfserv::images::test::TempDir;

namespace {

// Lines 1-4; the body given to with_app starts at line 5.
const std::string k_general = "[general]\n_version = 1.2.3\n";

std::string with_app(const std::string& body) {
  return k_general + "[app_main]\n_cmd_and_args = run {unix_socket_path}\n" + body;
}

std::vector<Diagnostic> errors_of(const std::vector<Diagnostic>& diagnostics) {
  std::vector<Diagnostic> out;
  std::copy_if(diagnostics.begin(), diagnostics.end(), std::back_inserter(out),
               [](const Diagnostic& d) { return d.severity == Diagnostic::Severity::Error; });
  return out;
}

std::vector<Diagnostic> warnings_of(const std::vector<Diagnostic>& diagnostics) {
  std::vector<Diagnostic> out;
  std::copy_if(diagnostics.begin(), diagnostics.end(), std::back_inserter(out),
               [](const Diagnostic& d) { return d.severity == Diagnostic::Severity::Warning; });
  return out;
}

std::string all_of(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    out += d.describe() + "\n";
  }
  return out;
}

// A plugin folder NAME holding CONFIG as config.ini, in its own temporary directory.
struct PluginFixture {
  TempDir tmp;
  std::string dir;

  explicit PluginFixture(const std::string& config, const std::string& name = "demo") {
    dir = tmp.mkdir(name);
    tmp.write(name + "/config.ini", config);
  }
  std::string config_ini() const { return dir + "/config.ini"; }
  PluginLoad load(const LoadOptions& options = {}) const { return load_plugin(dir, options); }
};

// Loads CONFIG, expecting success, and returns the plugin.
PluginConfig load_ok(const std::string& config) {
  PluginFixture fixture(config);
  PluginLoad load = fixture.load();
  INFO(all_of(load.diagnostics));
  REQUIRE(load.plugin);
  return *load.plugin;
}

const AppConfig& main_app(const PluginConfig& plugin) {
  const AppConfig* app = plugin.find_app("main");
  REQUIRE(app);
  return *app;
}

}  // namespace

TEST_CASE("config_loader: a minimal plugin and MFSERV's defaults", "[images][config]") {
  PluginFixture fixture(with_app("numprocesses = 2\n"));
  PluginLoad load = fixture.load();
  INFO(all_of(load.diagnostics));
  CHECK(load.diagnostics.empty());
  REQUIRE(load.plugin);
  const PluginConfig& plugin = *load.plugin;
  CHECK(plugin.name == "demo");
  CHECK(plugin.dir == fixture.dir);
  CHECK_FALSE(plugin.dev_link);
  CHECK(plugin.version == "1.2.3");
  CHECK(plugin.release == "1");
  CHECK(plugin.add_plugin_dir_to_python_path);
  REQUIRE(plugin.apps.size() == 1);
  const AppConfig& app = plugin.apps[0];
  CHECK(app.kind == AppConfig::Kind::App);
  CHECK(app.name == "main");
  CHECK(app.section == "app_main");
  CHECK(app.cmd_and_args == "run {unix_socket_path}");
  CHECK(app.numprocesses == 2);
  CHECK(app.timeout == 60);
  CHECK(app.graceful_timeout == 60 + 3 + 10);
  CHECK(app.smart_stop_signal == 15);
  CHECK(app.smart_stop_delay == 3);
  CHECK(app.smart_start_delay == 3);
  CHECK_FALSE(app.debug);
  CHECK(app.max_age == 0);
  CHECK(app.rlimit_as == 0);
  CHECK_FALSE(app.memory_max);
  CHECK(app.swap_max == 0);
  CHECK(app.network == "host");
  CHECK(app.seccomp == "default");
  CHECK(app.prefix_based_routing);
  CHECK_FALSE(app.virtualdomain_based_routing);
  CHECK(app.static_routing);
  CHECK(app.static_url_prefix == "/static");
  CHECK(app.static_directory == "/static");
  CHECK(app.extra_routes.empty());
  CHECK(app.http_test_endpoint.empty());
  CHECK(app.http_test_expected_status_code == 200);
  CHECK(app.http_test_expected_body == "OK");
  CHECK(app.http_test_timeout == 10);
}

TEST_CASE("config_loader: [general] keys", "[images][config]") {
  PluginConfig plugin = load_ok(
      "[general]\n"
      "_version = 2.0.0-beta_1\n"
      "_release = 3\n"
      "_summary = a demo\n"
      "_license = BSD\n"
      "_url = https://example.org\n"
      "_maintainer = me\n"
      "_vendor = us\n"
      "_add_plugin_dir_to_python_path = false\n");
  CHECK(plugin.version == "2.0.0-beta_1");
  CHECK(plugin.release == "3");
  CHECK(plugin.summary == "a demo");
  CHECK(plugin.license == "BSD");
  CHECK(plugin.url == "https://example.org");
  CHECK(plugin.maintainer == "me");
  CHECK(plugin.vendor == "us");
  CHECK_FALSE(plugin.add_plugin_dir_to_python_path);
  CHECK(plugin.apps.empty());
}

TEST_CASE("config_loader: _version is required and checked", "[images][config]") {
  SECTION("missing _version") {
    PluginFixture fixture("[general]\n_summary = x\n");
    PluginLoad load = fixture.load();
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].key == "general._version");
    CHECK(errors[0].file == fixture.config_ini());
    CHECK(errors[0].line == 1);
    CHECK_THAT(errors[0].message, Catch::Contains("missing"));
  }
  SECTION("missing [general]") {
    PluginFixture fixture("[custom]\na = 1\n");
    PluginLoad load = fixture.load();
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].key == "general._version");
  }
  SECTION("bad _version and _release") {
    PluginFixture fixture("[general]\n_version = 1.0 beta\n_release = A\n");
    PluginLoad load = fixture.load();
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].line == 2);
    CHECK_THAT(errors[0].message, Catch::Contains("'1.0 beta'"));
    CHECK(errors[1].line == 3);
  }
  SECTION("missing config.ini") {
    TempDir tmp;
    std::string dir = tmp.mkdir("demo");
    PluginLoad load = load_plugin(dir, {});
    CHECK_FALSE(load.plugin);
    REQUIRE(load.diagnostics.size() == 1);
    CHECK(load.diagnostics[0].file == dir + "/config.ini");
    CHECK_THAT(load.diagnostics[0].message, Catch::Contains("missing"));
  }
  SECTION("not a folder") {
    TempDir tmp;
    PluginLoad load = load_plugin(tmp / "nothing", {});
    CHECK_FALSE(load.plugin);
    REQUIRE(load.diagnostics.size() == 1);
    CHECK_THAT(load.diagnostics[0].message, Catch::Contains("not a plugin folder"));
  }
}

TEST_CASE("config_loader: the plugin name", "[images][config]") {
  SECTION("from .layerapi2_label") {
    PluginFixture fixture(k_general, "working-copy");
    fixture.tmp.write("working-copy/.layerapi2_label", "plugin_real_name@mfserv\n");
    PluginLoad load = fixture.load();
    REQUIRE(load.plugin);
    CHECK(load.plugin->name == "real_name");
  }
  SECTION("refused folder names") {
    for (std::string bad : {"plugin_foo", "__foo", "base", "config", "a b", "a;b", "a.b"}) {
      CAPTURE(bad);
      PluginFixture fixture(k_general, bad);
      PluginLoad load = fixture.load();
      CHECK_FALSE(load.plugin);
      auto errors = errors_of(load.diagnostics);
      REQUIRE(errors.size() == 1);
      CHECK(errors[0].file == fixture.dir);
      CHECK_THAT(errors[0].message, Catch::Contains("invalid plugin name"));
    }
  }
  SECTION("refused names in .layerapi2_label") {
    for (std::string bad : {"plugin_../x@mfserv", "plugin_a;b@mfserv", "plugin_a b@mfserv",
                            "plugin_plugin_x@mfserv", "plugin_base@mfserv", "plugin_a\nb@mfserv"}) {
      CAPTURE(bad);
      PluginFixture fixture(k_general);
      std::string label = fixture.tmp.write("demo/.layerapi2_label", bad);
      PluginLoad load = fixture.load();
      CHECK_FALSE(load.plugin);
      auto errors = errors_of(load.diagnostics);
      REQUIRE(errors.size() == 1);
      CHECK(errors[0].file == label);
      CHECK_THAT(errors[0].message, Catch::Contains("invalid plugin name"));
    }
  }
  SECTION("a label in another format") {
    for (std::string bad : {"foo", "plugin_foo@mfdata", "plugin_@mfserv", ""}) {
      CAPTURE(bad);
      PluginFixture fixture(k_general);
      fixture.tmp.write("demo/.layerapi2_label", bad);
      PluginLoad load = fixture.load();
      CHECK_FALSE(load.plugin);
      auto errors = errors_of(load.diagnostics);
      REQUIRE(errors.size() == 1);
      CHECK_THAT(errors[0].message, Catch::Contains("plugin_NAME@mfserv"));
    }
  }
  SECTION("a bad name does not hide config.ini errors") {
    PluginFixture fixture(with_app("workers = 2\n"), "plugin_x");
    PluginLoad load = fixture.load();
    CHECK(errors_of(load.diagnostics).size() == 2);
  }
}

TEST_CASE("config_loader: unknown keys name their line and the closest key", "[images][config]") {
  struct Case {
    std::string key;
    std::string hint;
  };
  for (const Case& c : std::vector<Case>{
           {"numprocess", "did you mean 'numprocesses'?"},
           {"timout", "did you mean 'timeout'?"},
           {"cmd_and_args", "did you mean '_cmd_and_args'?"},
           {"workers", "'numprocesses'"},
           {"max_memory_size", "'memory_max'"},
           {"autorestart", "always restarts"},
           {"completely_unrelated", ""},
       }) {
    CAPTURE(c.key);
    PluginFixture fixture(with_app("numprocesses = 1\n" + c.key + " = 3\n"));
    PluginLoad load = fixture.load();
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].file == fixture.config_ini());
    CHECK(errors[0].line == 6);
    CHECK(errors[0].key == "app_main." + c.key);
    CHECK_THAT(errors[0].message, Catch::StartsWith("unknown key"));
    if (c.hint.empty()) {
      CHECK(errors[0].message == "unknown key");
    } else {
      CHECK_THAT(errors[0].message, Catch::Contains(c.hint));
    }
  }
  SECTION("in [general] too") {
    PluginFixture fixture(k_general + "_versoin = 1\n");
    auto errors = errors_of(fixture.load().diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 3);
    CHECK_THAT(errors[0].message, Catch::Contains("'_version'"));
  }
}

TEST_CASE("config_loader: bad values name file, line, key, value and what is accepted",
          "[images][config]") {
  struct Case {
    std::string key;
    std::string value;
    std::string accepted;
  };
  const std::vector<Case> cases = {
      {"numprocesses", "-1", "integer from 0"},
      {"numprocesses", "two", "integer"},
      {"timeout", "soon", "seconds"},
      {"graceful_timeout", "-1", "integer from 0 to 86400"},
      {"smart_stop_signal", "65", "from 1 to 64"},
      {"smart_stop_signal", "0", "from 1 to 64"},
      {"smart_stop_signal", "TERM", "from 1 to 64"},
      {"smart_stop_delay", "x", "integer"},
      {"smart_start_delay", "-2", "integer"},
      {"debug", "maybe", "boolean"},
      {"max_age", "-3", "integer from 0 to 31536000"},
      {"rlimit_as", "lots", "size in bytes"},
      {"rlimit_nofile", "1k", "integer"},
      {"rlimit_stack", "-1", "size in bytes"},
      {"rlimit_fsize", "1x", "size in bytes"},
      {"memory_max", "64Q", "size in bytes"},
      {"worker_memory_max", "-1", "size in bytes"},
      {"memory_high", "1.5G", "size in bytes"},
      {"swap_max", "x", "size in bytes"},
      {"pids_max", "0", ">= 1"},
      {"cpu_weight", "0", "from 1 to 10000"},
      {"cpu_weight", "10001", "from 1 to 10000"},
      {"cpu_max", "50", "QUOTA"},
      {"cpu_max", "50000 10", "PERIOD"},
      {"cpu_max", "1 2 3", "QUOTA"},
      {"user", "Root!", "user name"},
      {"network", "bridge", "host or none"},
      {"seccomp", "strict", "default or off"},
      {"readonly_paths", "/usr,../etc", "without '..'"},
      {"writable_paths", "/var/x/../../etc", "without '..'"},
      {"_prefix_based_routing", "2", "boolean"},
      {"_virtualdomain_based_routing", "yes please", "boolean"},
      {"_static_routing", "", "boolean"},
      {"_static_url_prefix", "/static/", "URL path"},
      {"_static_url_prefix", "static", "URL path"},
      {"_static_url_prefix", "/a//b", "URL path"},
      {"_static_url_prefix", "/a;b", "URL path"},
      {"_static_url_prefix", "/..", "URL path"},
      {"_static_url_prefix", "/a{b}", "URL path"},
      {"prefix_based_routing_extra_routes", "/foo/", "no trailing '/'"},
      {"prefix_based_routing_extra_routes", "/ok;//", "'//'"},
      {"prefix_based_routing_extra_routes", "foo", "each \"/\""},
      {"prefix_based_routing_extra_routes", "/a b", "each \"/\""},
      {"prefix_based_routing_extra_routes", "/x{y}", "each \"/\""},
      {"prefix_based_routing_extra_routes", "/x$y", "each \"/\""},
      {"_static_directory", "../secret", "'..'"},
      {"_static_directory", "a b", "blanks"},
      {"_static_directory", "a;b", "';'"},
      {"_static_directory", "${x}", "'$'"},
      {"_static_directory", "a\"b", "quotes"},
      {"_static_directory", "x#y", "'#'"},
      {"_static_directory", "x}y{", "'{'"},
      {"_virtualdomain_based_routing_extra_vhosts", "a b.example.com", "DNS names"},
      {"virtualdomain_based_routing_extra_vhosts", "x.com;bad_host", "DNS names"},
      {"_virtualdomain_based_routing_extra_vhosts", "-x.com", "DNS names"},
      {"_extra_nginx_conf_filename", "../x.conf", "'..'"},
      {"_extra_nginx_conf_filename", "/etc/passwd", "relative to the plugin folder"},
      {"_extra_nginx_conf_filename", "missing.conf", "is not a file"},
      {"_extra_nginx_conf_filename", "a;b.conf", "';'"},
      {"_http_test_endpoint", "no-slash", "starting with '/'"},
      {"_http_test_endpoint", "/a b", "without blanks"},
      {"_http_test_expected_status_code", "700", "from 100 to 599"},
      {"_http_test_timeout", "0", "from 1 to 3600"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key, c.value);
    PluginFixture fixture(with_app("# line 5\n" + c.key + " = " + c.value + "\n"));
    PluginLoad load = fixture.load();
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].file == fixture.config_ini());
    CHECK(errors[0].line == 6);
    CHECK(errors[0].key == "app_main." + c.key);
    CHECK_THAT(errors[0].message, Catch::Contains("invalid value '" + c.value + "'"));
    CHECK_THAT(errors[0].message, Catch::Contains(c.accepted));
  }
}

TEST_CASE("config_loader: every error of a plugin is reported at once", "[images][config]") {
  PluginFixture fixture(
      "[general]\n"                  // 1
      "_version = 1.0\n"             // 2
      "[app_main]\n"                 // 3
      "numprocesses = lots\n"        // 4
      "workers = 4\n"                // 5
      "timeout = 10\n"               // 6
      "timeout = 20\n"               // 7 duplicate
      "[app_bad;name]\n"             // 8
      "[something]\n"                // 9
      "[extra_daemon_d]\n"           // 10
      "_cmd_and_args = sleep 100\n"  // 11
      "_static_routing = 1\n");      // 12
  PluginLoad load = fixture.load();
  CHECK_FALSE(load.plugin);
  auto errors = errors_of(load.diagnostics);
  INFO(all_of(errors));
  std::vector<int> lines;
  for (const Diagnostic& error : errors) {
    lines.push_back(error.line);
  }
  std::sort(lines.begin(), lines.end());
  CHECK(lines == std::vector<int>{4, 5, 7, 8, 9, 12});
}

TEST_CASE("config_loader: sections", "[images][config]") {
  SECTION("unknown section") {
    PluginFixture fixture(k_general + "[nginx]\nport = 80\n");
    auto errors = errors_of(fixture.load().diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 3);
    CHECK_THAT(errors[0].message, Catch::Contains("unknown section [nginx]"));
  }
  SECTION("hostile app and daemon names") {
    for (std::string section : {"app_a;b", "app_../x", "app_a b", "app_", "extra_daemon_",
                                "extra_daemon_x{y}", "app_a.b"}) {
      CAPTURE(section);
      PluginFixture fixture(k_general + "[" + section + "]\nnumprocesses = 0\n");
      PluginLoad load = fixture.load();
      CHECK_FALSE(load.plugin);
      auto errors = errors_of(load.diagnostics);
      REQUIRE(errors.size() == 1);
      CHECK(errors[0].line == 3);
      CHECK_THAT(errors[0].message, Catch::Contains("invalid section name"));
    }
  }
  SECTION("[internal] and [custom*] are accepted") {
    PluginConfig plugin = load_ok(k_general +
                                  "[internal]\ndisable_nginx_conf = 0\n"
                                  "[custom]\nanything = goes\n_private = yes\n"
                                  "[custom_db]\nHost = db.local\n");
    CHECK(plugin.custom["custom"]["anything"] == "goes");
    CHECK(plugin.custom["custom"]["_private"] == "yes");
    CHECK(plugin.custom["custom_db"]["host"] == "db.local");
  }
  SECTION("an app and a daemon with the same name") {
    PluginFixture fixture(with_app("") + "[extra_daemon_main]\n_cmd_and_args = x\n");
    auto errors = errors_of(fixture.load().diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 5);
    CHECK_THAT(errors[0].message, Catch::Contains("same name"));
  }
}

TEST_CASE("config_loader: time settings stay within a day so a stop always ends",
          "[images][config]") {
  // timeout = INT_MAX once made graceful_timeout (timeout + smart_stop_delay + 10) overflow:
  // a worker ignoring SIGTERM was never killed and `mfserv stop` never returned.
  for (const char* key : {"timeout", "graceful_timeout", "smart_stop_delay", "smart_start_delay"}) {
    PluginFixture fixture(with_app(std::string(key) + " = 2147483647\n"));
    PluginLoad load = fixture.load();
    INFO(key << ": " << all_of(load.diagnostics));
    CHECK_FALSE(load.plugin);
    CHECK(all_of(load.diagnostics).find(key) != std::string::npos);
  }
  AppConfig app = main_app(load_ok(with_app("timeout = 86400\nsmart_stop_delay = 86400\n")));
  CHECK(app.graceful_timeout == 2 * 86400 + 10);
  CHECK(main_app(load_ok(with_app("max_age = 604800\n"))).max_age == 604800);
}

TEST_CASE("config_loader: defaults and derived values", "[images][config]") {
  SECTION("timeout <= 0 falls back to 60") {
    CHECK(main_app(load_ok(with_app("timeout = 0\n"))).timeout == 60);
    CHECK(main_app(load_ok(with_app("timeout = -5\n"))).timeout == 60);
    CHECK(main_app(load_ok(with_app("timeout = 15\n"))).timeout == 15);
  }
  SECTION("graceful_timeout is timeout + smart_stop_delay + 10 unless set") {
    AppConfig app = main_app(load_ok(with_app("timeout = 30\nsmart_stop_delay = 5\n")));
    CHECK(app.graceful_timeout == 45);
    app = main_app(load_ok(with_app("timeout = 30\ngraceful_timeout = 7\n")));
    CHECK(app.graceful_timeout == 7);
  }
  SECTION("debug forces one worker and no recycling") {
    AppConfig app = main_app(load_ok(
        with_app("numprocesses = 4\nmax_age = 100\ndebug = 1\n_debug_extra_options = -v\n")));
    CHECK(app.debug);
    CHECK(app.numprocesses == 1);
    CHECK(app.max_age == 0);
    CHECK(app.debug_extra_options == "-v");
    app = main_app(load_ok(with_app("numprocesses = 0\ndebug = true\n")));
    CHECK(app.numprocesses == 0);
  }
  SECTION("numprocesses defaults to 0 for apps, 1 for daemons") {
    PluginConfig plugin = load_ok(k_general +
                                  "[app_web]\n"
                                  "[extra_daemon_worker]\n_cmd_and_args = sleep 1000\n");
    REQUIRE(plugin.apps.size() == 2);
    CHECK(plugin.apps[0].kind == AppConfig::Kind::App);
    CHECK(plugin.apps[0].numprocesses == 0);
    CHECK(plugin.apps[1].kind == AppConfig::Kind::ExtraDaemon);
    CHECK(plugin.apps[1].name == "worker");
    CHECK(plugin.apps[1].section == "extra_daemon_worker");
    CHECK(plugin.apps[1].numprocesses == 1);
    CHECK(plugin.apps[1].graceful_timeout == 10);
  }
  SECTION("apps first, then daemons, each in file order") {
    PluginConfig plugin = load_ok(k_general +
                                  "[extra_daemon_d1]\n_cmd_and_args = a\n"
                                  "[app_b]\n[app_a]\n"
                                  "[extra_daemon_d0]\n_cmd_and_args = b\n");
    std::vector<std::string> names;
    for (const AppConfig& app : plugin.apps) {
      names.push_back(app.name);
    }
    CHECK(names == std::vector<std::string>{"b", "a", "d1", "d0"});
  }
  SECTION("workers need a command") {
    PluginFixture fixture(k_general + "[app_main]\nnumprocesses = 2\n");
    PluginLoad load = fixture.load();
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 4);
    CHECK(errors[0].key == "app_main._cmd_and_args");
    PluginFixture daemon(k_general + "[extra_daemon_d]\n");
    errors = errors_of(daemon.load().diagnostics);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 3);
    CHECK(load_ok(k_general + "[app_static]\nnumprocesses = 0\n").apps.size() == 1);
  }
}

TEST_CASE("config_loader: values are parsed into the model", "[images][config]") {
  PluginFixture fixture(
      with_app("numprocesses = 3\n"
               "rlimit_as = 1000000000\n"
               "rlimit_nofile = 1000\n"
               "rlimit_stack = 8M\n"
               "memory_max = 64M\n"
               "worker_memory_max = 1G\n"
               "memory_high = max\n"
               "swap_max = 16M\n"
               "pids_max = 100\n"
               "cpu_weight = 200\n"
               "cpu_max = 50000\n"
               "user = www-data\n"
               "network = none\n"
               "seccomp = off\n"
               "readonly_paths = /usr/share, data\n"
               "writable_paths = /var/tmp/x\n"
               "_prefix_based_routing = false\n"
               "_virtualdomain_based_routing = 1\n"
               "_virtualdomain_based_routing_extra_vhosts = a.example.com, b.example.com;c.org\n"
               "_static_routing = off\n"
               "_static_url_prefix =\n"
               "_static_directory = public/assets\n"
               "prefix_based_routing_extra_routes = /;/api/v1 ; /x.y\n"
               "_extra_nginx_conf_filename = nginx/extra.conf\n"
               "_extra_nginx_conf_static_filename = null\n"
               "_http_test_endpoint = /demo/main/health\n"
               "_http_test_expected_status_code = 204\n"
               "_http_test_expected_body = pong\n"
               "_http_test_timeout = 3\n"
               "log_split_stdout_stderr = AUTO\n"));
  fixture.tmp.write("demo/nginx/extra.conf", "add_header X-Demo 1;\n");
  PluginLoad load = fixture.load();
  INFO(all_of(load.diagnostics));
  CHECK(load.diagnostics.empty());
  REQUIRE(load.plugin);
  const AppConfig& app = main_app(*load.plugin);
  CHECK(app.numprocesses == 3);
  CHECK(app.rlimit_as == 1000000000);
  CHECK(app.rlimit_nofile == 1000);
  CHECK(app.rlimit_stack == 8ULL << 20);
  CHECK(app.memory_max == 64ULL << 20);
  CHECK(app.worker_memory_max == 1ULL << 30);
  CHECK_FALSE(app.memory_high);
  CHECK(app.swap_max == 16ULL << 20);
  CHECK(app.pids_max == 100);
  CHECK(app.cpu_weight == 200);
  CHECK(app.cpu_max == "50000 100000");
  CHECK(app.user == "www-data");
  CHECK(app.network == "none");
  CHECK(app.seccomp == "off");
  CHECK(app.readonly_paths == std::vector<std::string>{"/usr/share", fixture.dir + "/data"});
  CHECK(app.writable_paths == std::vector<std::string>{"/var/tmp/x"});
  CHECK_FALSE(app.prefix_based_routing);
  CHECK(app.virtualdomain_based_routing);
  CHECK(app.virtualdomain_extra_vhosts ==
        std::vector<std::string>{"a.example.com", "b.example.com", "c.org"});
  CHECK_FALSE(app.static_routing);
  CHECK(app.static_url_prefix.empty());
  CHECK(app.static_directory == "public/assets");
  CHECK(app.extra_routes == std::vector<std::string>{"/", "/api/v1", "/x.y"});
  CHECK(app.extra_nginx_conf_filename == "nginx/extra.conf");
  CHECK(app.http_test_endpoint == "/demo/main/health");
  CHECK(app.http_test_expected_status_code == 204);
  CHECK(app.http_test_expected_body == "pong");
  CHECK(app.http_test_timeout == 3);
}

TEST_CASE("config_loader: more accepted spellings", "[images][config]") {
  AppConfig app =
      main_app(load_ok(with_app("memory_max = 1048576\n"
                                "swap_max = max\n"
                                "pids_max = max\n"
                                "cpu_max = max 50000\n"
                                "virtualdomain_based_routing_extra_vhosts = null\n"
                                "prefix_based_routing_extra_routes = null\n"
                                "_extra_nginx_conf_filename = null\n"
                                "user = 1000\n")));
  CHECK(app.memory_max == 1048576);
  CHECK(app.swap_max == std::numeric_limits<std::uint64_t>::max());
  CHECK_FALSE(app.pids_max);
  CHECK(app.cpu_max == "max 50000");
  CHECK(app.virtualdomain_extra_vhosts.empty());
  CHECK(app.extra_routes.empty());
  CHECK(app.extra_nginx_conf_filename.empty());
  CHECK(app.user == "1000");
}

TEST_CASE("config_loader: keys MFSERV has and mfserv does not implement warn", "[images][config]") {
  PluginFixture fixture(
      with_app("log_split_stdout_stderr = 1\n"        // 5
               "log_split_multiple_workers = AUTO\n"  // 6: MFSERV's default, no warning
               "_gateway_interface_mode = fastcgi\n"  // 7
               "_extra_nginx_conf_static_filename = static.conf\n"  // 8
               "max_age_variance = 10\n"));                         // 9
  PluginLoad load = fixture.load();
  REQUIRE(load.plugin);
  auto warnings = warnings_of(load.diagnostics);
  REQUIRE(warnings.size() == 4);
  CHECK(warnings[0].line == 5);
  CHECK(warnings[0].message == "not implemented by mfserv, ignored");
  CHECK(warnings[1].line == 7);
  CHECK(warnings[2].line == 8);
  CHECK(warnings[3].line == 9);
  CHECK(load.plugin->env.at("MFSERV_CURRENT_PLUGIN_APP_MAIN_LOG_SPLIT_STDOUT_STDERR") == "1");
}

TEST_CASE("config_loader: routing keys are for apps only", "[images][config]") {
  PluginFixture fixture(k_general +
                        "[extra_daemon_d]\n"
                        "_cmd_and_args = sleep 100\n"
                        "timeout = 5\n"
                        "_static_url_prefix = /s\n"
                        "_http_test_endpoint = /x\n"
                        "prefix_based_routing_extra_routes = /\n");
  auto errors = errors_of(fixture.load().diagnostics);
  REQUIRE(errors.size() == 3);
  for (const Diagnostic& error : errors) {
    CHECK_THAT(error.message, Catch::Contains("only for [app_*] sections"));
  }
  CHECK(errors[0].line == 6);
}

TEST_CASE("config_loader: every non-'_' key reaches the environment", "[images][config]") {
  PluginConfig plugin = load_ok(k_general +
                                "_summary = not exported\n"
                                "[app_main-x]\n"
                                "_cmd_and_args = run\n"
                                "numprocesses = 2\n"
                                "timeout = -1\n"
                                "[custom_db]\n"
                                "Host = db.local\n"
                                "_secret = no\n"
                                "odd.key = 1\n");
  const auto& env = plugin.env;
  CHECK(env.at("MFSERV_CURRENT_PLUGIN_APP_MAIN_X_NUMPROCESSES") == "2");
  // The raw value, as MFSERV exports it.
  CHECK(env.at("MFSERV_CURRENT_PLUGIN_APP_MAIN_X_TIMEOUT") == "-1");
  CHECK(env.at("MFSERV_CURRENT_PLUGIN_CUSTOM_DB_HOST") == "db.local");
  CHECK(env.at("MFSERV_CURRENT_PLUGIN_CUSTOM_DB_ODD_KEY") == "1");
  CHECK(env.size() == 4);
  for (const auto& [name, value] : env) {
    CHECK_THAT(name, !Catch::Contains("_CMD_AND_ARGS") && !Catch::Contains("SECRET") &&
                         !Catch::Contains("SUMMARY"));
  }
}

TEST_CASE("config_loader: long and continued commands", "[images][config]") {
  std::string long_command = "python3 -m server " + std::string(480, 'a') + " {unix_socket_path}";
  REQUIRE(long_command.size() > 500);
  AppConfig app = main_app(
      load_ok(k_general + "[app_main]\n_cmd_and_args = " + long_command + "\nnumprocesses = 1\n"));
  CHECK(app.cmd_and_args == long_command);
  app = main_app(load_ok(k_general + "[app_main]\n"
                                     "_cmd_and_args = node server.js\n"
                                     "    --socket={unix_socket_path}\n"
                                     "    --timeout={timeout}\n"
                                     "numprocesses = 1\n"));
  CHECK(app.cmd_and_args == "node server.js\n--socket={unix_socket_path}\n--timeout={timeout}");
  CHECK(app.numprocesses == 1);
}

TEST_CASE("config_loader: override layering", "[images][config]") {
  PluginFixture fixture(
      with_app("numprocesses = 2\n"  // 5
               "timeout = 30\n"      // 6
               "[custom]\n"
               "color = red\n"));
  std::string home_dir = fixture.tmp.mkdir("home/config/plugins");
  std::string etc_dir = fixture.tmp.mkdir("etc/mfserv/plugins");
  LoadOptions options{{home_dir, etc_dir}};

  SECTION("no override file: config.ini alone") {
    PluginLoad load = fixture.load(options);
    REQUIRE(load.plugin);
    CHECK(main_app(*load.plugin).numprocesses == 2);
  }
  SECTION("HOME then /etc, the last one wins") {
    fixture.tmp.write("home/config/plugins/demo.ini",
                      "[app_main]\nnumprocesses = 3\nmemory_max = 128M\n[custom]\ncolor = blue\n");
    fixture.tmp.write("etc/mfserv/plugins/demo.ini", "[app_main]\nnumprocesses = 5\n");
    PluginLoad load = fixture.load(options);
    INFO(all_of(load.diagnostics));
    REQUIRE(load.plugin);
    const AppConfig& app = main_app(*load.plugin);
    CHECK(app.numprocesses == 5);
    CHECK(app.timeout == 30);
    CHECK(app.memory_max == 128ULL << 20);
    CHECK(load.plugin->custom["custom"]["color"] == "blue");
    CHECK(load.plugin->env.at("MFSERV_CURRENT_PLUGIN_APP_MAIN_NUMPROCESSES") == "5");
    CHECK(load.plugin->env.at("MFSERV_CURRENT_PLUGIN_APP_MAIN_MEMORY_MAX") == "128M");
    CHECK(load.plugin->env.at("MFSERV_CURRENT_PLUGIN_CUSTOM_COLOR") == "blue");
    // graceful_timeout is derived from the final values.
    CHECK(app.graceful_timeout == 30 + 3 + 10);
  }
  SECTION("HOME alone") {
    fixture.tmp.write("home/config/plugins/demo.ini", "[app_main]\nnumprocesses = 3\n");
    PluginLoad load = fixture.load(options);
    REQUIRE(load.plugin);
    CHECK(main_app(*load.plugin).numprocesses == 3);
  }
  SECTION("overrides are looked up by the plugin's name") {
    fixture.tmp.write("demo/.layerapi2_label", "plugin_other@mfserv");
    fixture.tmp.write("home/config/plugins/demo.ini", "[app_main]\nnumprocesses = 3\n");
    fixture.tmp.write("home/config/plugins/other.ini", "[app_main]\nnumprocesses = 4\n");
    PluginLoad load = fixture.load(options);
    REQUIRE(load.plugin);
    CHECK(main_app(*load.plugin).numprocesses == 4);
  }
  SECTION("errors in override files name that file and line") {
    std::string home_file = fixture.tmp.write("home/config/plugins/demo.ini",
                                              "# site settings\n"
                                              "[app_main]\n"
                                              "numprocesses = many\n"   // 3
                                              "_cmd_and_args = evil\n"  // 4
                                              "workers = 2\n"           // 5
                                              "[app_other]\n"           // 6
                                              "numprocesses = 1\n"
                                              "[general]\n"
                                              "_version = 9.9.9\n");  // 9
    std::string etc_file = fixture.tmp.write("etc/mfserv/plugins/demo.ini",
                                             "[app_main]\n"
                                             "timeout = 10\n"
                                             "timeout = 20\n"  // 3: duplicate
                                             "oops\n");        // 4
    PluginLoad load = fixture.load(options);
    CHECK_FALSE(load.plugin);
    auto errors = errors_of(load.diagnostics);
    INFO(all_of(errors));
    REQUIRE(errors.size() == 7);
    std::vector<std::pair<std::string, int>> where;
    for (const Diagnostic& error : errors) {
      where.emplace_back(error.file, error.line);
    }
    std::sort(where.begin(), where.end());
    std::vector<std::pair<std::string, int>> expected = {
        {etc_file, 3},  {etc_file, 4},  {home_file, 3}, {home_file, 4},
        {home_file, 5}, {home_file, 6}, {home_file, 9}};
    std::sort(expected.begin(), expected.end());
    CHECK(where == expected);
    auto private_key = std::find_if(errors.begin(), errors.end(), [](const Diagnostic& d) {
      return d.line == 4 && d.key == "app_main._cmd_and_args";
    });
    REQUIRE(private_key != errors.end());
    CHECK(private_key->message ==
          "cannot be overridden: keys starting with '_' are private to the plugin's config.ini");
    auto missing_section =
        std::find_if(errors.begin(), errors.end(), [](const Diagnostic& d) { return d.line == 6; });
    REQUIRE(missing_section != errors.end());
    CHECK_THAT(missing_section->message, Catch::Contains("[app_other] is not in the plugin's"));
  }
}

TEST_CASE("config_loader: expand_command", "[images][config]") {
  PluginConfig plugin;
  plugin.name = "demo";
  plugin.dir = "/plugins/{timeout}/demo";
  AppConfig app;
  app.name = "main";
  app.timeout = 42;
  app.debug_extra_options = "--debug";
  app.cmd_and_args =
      "run {plugin_dir}/{app_name}/x.py \"{unix_socket_path}\" {timeout} {plugin_name} "
      "{debug_extra_options} {unknown} {timeout";
  CHECK(expand_command(plugin, app, "/run/s.sock") ==
        "run /plugins/{timeout}/demo/main/x.py \"/run/s.sock\" 42 demo  {unknown} {timeout");
  app.debug = true;
  CHECK(expand_command(plugin, app, "/run/s.sock") ==
        "run /plugins/{timeout}/demo/main/x.py \"/run/s.sock\" 42 demo --debug {unknown} "
        "{timeout");
  app.cmd_and_args = "";
  CHECK(expand_command(plugin, app, "/s").empty());
}

TEST_CASE("config_loader: app_workdir and find_app", "[images][config]") {
  PluginFixture fixture(k_general + "[app_main]\n[app_api]\n");
  fixture.tmp.mkdir("demo/main");
  PluginConfig plugin = *fixture.load().plugin;
  REQUIRE(plugin.find_app("main"));
  REQUIRE(plugin.find_app("api"));
  CHECK_FALSE(plugin.find_app("nope"));
  CHECK(plugin.app_workdir(*plugin.find_app("main")) == fixture.dir + "/main");
  CHECK(plugin.app_workdir(*plugin.find_app("api")) == fixture.dir);
}

TEST_CASE("config_loader: find_app by name or by section", "[images][config]") {
  PluginFixture fixture(k_general + "[app_main]\n[extra_daemon_bg]\n_cmd_and_args = sleep 1\n");
  auto load = fixture.load();
  REQUIRE(load.plugin);
  const PluginConfig& plugin = *load.plugin;
  REQUIRE(plugin.find_app("main"));
  CHECK(plugin.find_app("app_main") == plugin.find_app("main"));
  REQUIRE(plugin.find_app("bg"));
  CHECK(plugin.find_app("bg")->kind == AppConfig::Kind::ExtraDaemon);
  CHECK(plugin.find_app("bg") == plugin.find_app("extra_daemon_bg"));
  CHECK_FALSE(plugin.find_app("extra_daemon_nope"));
}

TEST_CASE("config_loader: Diagnostic::describe", "[images][config]") {
  Diagnostic d;
  d.file = "/p/config.ini";
  d.line = 7;
  d.key = "app_main.workers";
  d.message = "unknown key";
  CHECK(d.describe() == "/p/config.ini:7: [app_main] workers: unknown key");
  d.severity = Diagnostic::Severity::Warning;
  CHECK(d.describe() == "/p/config.ini:7: warning: [app_main] workers: unknown key");
  Diagnostic bare;
  bare.message = "something";
  CHECK(bare.describe() == "something");
  bare.file = "/p";
  CHECK(bare.describe() == "/p: something");
}

TEST_CASE("config_loader: load_plugins", "[images][config]") {
  TempDir tmp;
  std::string plugins = tmp.mkdir("plugins");
  tmp.write("plugins/zeta/config.ini", with_app("numprocesses = 1\n"));
  tmp.write("plugins/alpha/config.ini", k_general);
  tmp.write("plugins/broken/config.ini", with_app("workers = 2\n"));
  tmp.write("plugins/.hidden/config.ini", k_general);
  tmp.write("plugins/README", "not a plugin");
  tmp.write("work/linked/config.ini", k_general);
  REQUIRE(::symlink((tmp / "work/linked").c_str(), (plugins + "/linked").c_str()) == 0);
  REQUIRE(::symlink((tmp / "work/gone").c_str(), (plugins + "/dangling").c_str()) == 0);

  LoadReport report = load_plugins(plugins, {});
  std::vector<std::string> names;
  for (const PluginConfig& plugin : report.plugins) {
    names.push_back(plugin.name);
  }
  CHECK(names == std::vector<std::string>{"alpha", "linked", "zeta"});
  CHECK(report.has_errors());
  auto errors = errors_of(report.diagnostics);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == plugins + "/broken/config.ini");
  CHECK(errors[0].line == 5);
  auto warnings = warnings_of(report.diagnostics);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].file == plugins + "/dangling");
  CHECK(report.plugins[1].dev_link);
  CHECK(report.plugins[1].dir == tmp / "work/linked");
  CHECK_FALSE(report.plugins[0].dev_link);
}

TEST_CASE("config_loader: load_plugins refuses a name given twice", "[images][config]") {
  TempDir tmp;
  std::string plugins = tmp.mkdir("plugins");
  tmp.write("plugins/a/config.ini", k_general);
  tmp.write("plugins/a/.layerapi2_label", "plugin_same@mfserv");
  tmp.write("plugins/b/config.ini", k_general);
  tmp.write("plugins/b/.layerapi2_label", "plugin_same@mfserv");
  LoadReport report = load_plugins(plugins, {});
  REQUIRE(report.plugins.size() == 1);
  CHECK(report.plugins[0].dir == plugins + "/a");
  auto errors = errors_of(report.diagnostics);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == plugins + "/b");
  CHECK_THAT(errors[0].message, Catch::Contains("plugin same is also installed"));
}

TEST_CASE("config_loader: load_plugins without a plugins folder", "[images][config]") {
  TempDir tmp;
  LoadReport report = load_plugins(tmp / "none", {});
  CHECK(report.plugins.empty());
  CHECK(report.diagnostics.empty());
  CHECK_FALSE(report.has_errors());
}

TEST_CASE("config_loader: a plugin's nginx fragment may only shape responses", "[images][config]") {
  PluginFixture fixture(with_app("_extra_nginx_conf_filename = extra.conf\n"));
  fixture.tmp.write("demo/extra.conf",
                    "# comment; with a semicolon\nadd_header X 1;\nproxy_read_timeout 5s;\n"
                    "access_log /etc/pwn combined;\n");
  PluginLoad load = fixture.load();
  CHECK_FALSE(load.plugin);
  CHECK(all_of(load.diagnostics).find("extra.conf:4: directive 'access_log' is not allowed") !=
        std::string::npos);

  fixture.tmp.write("demo/extra.conf", "location /x { return 200; }\n");
  CHECK(all_of(fixture.load().diagnostics).find("blocks are not allowed") != std::string::npos);
}

TEST_CASE("config_loader: a fragment is read with nginx's own tokenizer rules",
          "[images][config]") {
  PluginFixture fixture(with_app("_extra_nginx_conf_filename = extra.conf\n"));
  struct Case {
    const char* text;
    const char* error;  // "" when accepted
  };
  for (const Case& c : std::vector<Case>{
           // A '#' inside quotes is no comment: what follows is a directive of its own.
           {"add_header X-A \"#\"; access_log /tmp/pwn.log;\n", "directive 'access_log'"},
           {"add_header X-A '#'; error_log /tmp/pwn.log;\n", "directive 'error_log'"},
           {"add_header X-A a\\;b; root /;\n", "directive 'root'"},
           // proxy_ directives that write files as nginx's root master.
           {"proxy_temp_path /tmp/victim;\n", "directive 'proxy_temp_path'"},
           {"proxy_store on;\n", "directive 'proxy_store'"},
           {"proxy_pass http://127.0.0.1:1;\n", "directive 'proxy_pass'"},
           {"add_header X-A \"open;\n", "a quoted string is not closed"},
           {"add_header X-A 1\n", "has no ';'"},
           {";\n", "an empty directive"},
           {"add_header X-A \"a;b{c}#d\" always; # comment; access_log x;\n", ""},
           {"gzip on;\nproxy_set_header X-B $host;\nadd_header X#C 1;\n", ""},
       }) {
    INFO(c.text);
    fixture.tmp.write("demo/extra.conf", c.text);
    PluginLoad load = fixture.load();
    if (*c.error == '\0') {
      REQUIRE(load.plugin);
      CHECK(main_app(*load.plugin).extra_nginx_conf == c.text);
    } else {
      CHECK_FALSE(load.plugin);
      CHECK(all_of(load.diagnostics).find(c.error) != std::string::npos);
    }
  }
}

TEST_CASE("config_loader: sandbox-widening keys set by the plugin itself are marked",
          "[images][config]") {
  AppConfig app = main_app(load_ok(with_app("user = root\nseccomp = off\nnetwork = none\n")));
  CHECK(app.sandbox_keys_from_plugin == std::vector<std::string>{"user", "seccomp"});
}
