// `.plugin` archives (images/archive_*.cpp): build → install → load round trips, reproducible
// builds, .releaseignore, hostile archives made by hand with libarchive (C16: refused, the
// plugins folder byte-for-byte unchanged), replacing and keeping versions, uninstall, lock.
#include "images/archive.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <climits>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "images/archive_entries.hpp"
#include "images/archive_ignore.hpp"
#include "images/plugin.hpp"
#include "images/store.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"

namespace fs = std::filesystem;
namespace af = mfserv::images::archive_format;
using mfserv::images::build_plugin_archive;
using mfserv::images::BuildOptions;
using mfserv::images::install_plugin_archive;
using mfserv::images::InstallOptions;
using mfserv::images::load_plugin;
using mfserv::images::ReleaseIgnore;
using mfserv::images::uninstall_plugin;
using mfserv::images::test::TempDir;

namespace {

std::string config(const std::string& version, const std::string& extra = "") {
  return "[general]\n_version = " + version +
         "\n_release = 1\n_summary = demo plugin\n_license = MIT\n_url = https://example.invalid\n"
         "_maintainer = tests\n_vendor = tests\n\n[app_main]\n"
         "_cmd_and_args = /usr/bin/python3 app.py {unix_socket_path}\nnumprocesses = 1\n" +
         extra;
}

std::string slurp(const std::string& path) {
  auto content = mfserv::read_file(path);
  return content ? *content : std::string("<missing>");
}

// Every entry under DIR (hidden ones included) with its type, mode, size and content hash:
// equal snapshots mean nothing was added, removed or changed.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(fs::symlink_status(dir))) {
    return out;
  }
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string path = it->path().string();
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    std::string description = af::format_mode(st.st_mode & 07777);
    if (S_ISLNK(st.st_mode)) {
      description += " link " + fs::read_symlink(it->path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      description += " dir";
    } else {
      description += " file " + std::to_string(st.st_size) + " " + af::sha256_hex(slurp(path));
    }
    out[path.substr(dir.size())] = description;
  }
  return out;
}

bool is_link(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// A .plugin archive made entry by entry, hostile ones included. `.files.json` is computed
// from the regular files and links under metwork_plugin/ (unless left out) and written last.
class HandArchive {
 public:
  HandArchive& dir(const std::string& name, unsigned mode = 0755) {
    m_entries.push_back({name, AE_IFDIR, mode, "", "", ""});
    return *this;
  }
  HandArchive& file(const std::string& name, const std::string& content, unsigned mode = 0644) {
    m_entries.push_back({name, AE_IFREG, mode, content, "", ""});
    return *this;
  }
  HandArchive& symlink(const std::string& name, const std::string& target) {
    m_entries.push_back({name, AE_IFLNK, 0777, "", target, ""});
    return *this;
  }
  HandArchive& hardlink(const std::string& name, const std::string& target) {
    m_entries.push_back({name, AE_IFREG, 0644, "", "", target});
    return *this;
  }
  HandArchive& special(const std::string& name, unsigned type) {
    m_entries.push_back({name, type, 0644, "", "", ""});
    return *this;
  }
  // Not in .files.json.
  HandArchive& unlisted(const std::string& name) {
    m_unlisted.push_back(name);
    return *this;
  }
  // Listed with another sha256.
  HandArchive& wrong_checksum(const std::string& name) {
    m_wrong_checksum.push_back(name);
    return *this;
  }
  HandArchive& without_files_json() {
    m_with_files_json = false;
    return *this;
  }
  // A plugin that loads: metwork_plugin/, config.ini, main/app.py, .metadata.json.
  HandArchive& plugin(const std::string& name, const std::string& version) {
    dir("metwork_plugin");
    file("metwork_plugin/config.ini", config(version));
    dir("metwork_plugin/main");
    file("metwork_plugin/main/app.py", "print('hello " + version + "')\n");
    file("metwork_plugin/.metadata.json",
         nlohmann::json{{"name", name}, {"version", version}, {"release", "1"}}.dump());
    return *this;
  }

  std::string write(const std::string& path) const {
    std::vector<af::ManifestEntry> manifest;
    for (const Entry& entry : m_entries) {
      const std::string prefix = "metwork_plugin/";
      if (entry.name.rfind(prefix, 0) != 0 || entry.type == AE_IFDIR || !entry.hardlink.empty() ||
          (entry.type != AE_IFREG && entry.type != AE_IFLNK) ||
          std::find(m_unlisted.begin(), m_unlisted.end(), entry.name) != m_unlisted.end()) {
        continue;
      }
      af::ManifestEntry item;
      item.path = entry.name.substr(prefix.size());
      if (item.path.find("..") != std::string::npos) {
        continue;
      }
      if (entry.type == AE_IFLNK) {
        item.type = af::ManifestEntry::Type::Symlink;
        item.target = entry.target;
        item.size = entry.target.size();
        item.mode = 0777;
        item.sha256 = af::sha256_hex(entry.target);
      } else {
        item.size = entry.content.size();
        item.mode = entry.mode;
        item.sha256 = af::sha256_hex(entry.content);
      }
      if (std::find(m_wrong_checksum.begin(), m_wrong_checksum.end(), entry.name) !=
          m_wrong_checksum.end()) {
        item.sha256 = af::sha256_hex("something else");
      }
      manifest.push_back(item);
    }
    std::vector<Entry> entries = m_entries;
    if (m_with_files_json) {
      entries.push_back(
          {"metwork_plugin/.files.json", AE_IFREG, 0644, af::render_files_json(manifest), "", ""});
    }
    af::ArchiveWriter writer(archive_write_new());
    REQUIRE(archive_write_add_filter_gzip(writer.get()) == ARCHIVE_OK);
    REQUIRE(archive_write_set_format_pax_restricted(writer.get()) == ARCHIVE_OK);
    REQUIRE(archive_write_open_filename(writer.get(), path.c_str()) == ARCHIVE_OK);
    for (const Entry& entry : entries) {
      af::ArchiveEntry header(archive_entry_new());
      archive_entry_set_pathname(header.get(), entry.name.c_str());
      archive_entry_set_filetype(header.get(), entry.type);
      archive_entry_set_perm(header.get(), entry.mode);
      archive_entry_set_size(header.get(), static_cast<la_int64_t>(entry.content.size()));
      if (entry.type == AE_IFLNK) {
        archive_entry_set_symlink(header.get(), entry.target.c_str());
      }
      if (!entry.hardlink.empty()) {
        archive_entry_set_hardlink(header.get(), entry.hardlink.c_str());
      }
      if (entry.type == AE_IFCHR || entry.type == AE_IFBLK) {
        archive_entry_set_rdevmajor(header.get(), 1);
        archive_entry_set_rdevminor(header.get(), 3);
      }
      INFO(entry.name << ": " << archive_error_string(writer.get()));
      REQUIRE(archive_write_header(writer.get(), header.get()) == ARCHIVE_OK);
      if (!entry.content.empty()) {
        REQUIRE(archive_write_data(writer.get(), entry.content.data(), entry.content.size()) ==
                static_cast<la_ssize_t>(entry.content.size()));
      }
    }
    REQUIRE(archive_write_close(writer.get()) == ARCHIVE_OK);
    return path;
  }

 private:
  struct Entry {
    std::string name;
    unsigned type;
    unsigned mode;
    std::string content;
    std::string target;
    std::string hardlink;
  };
  std::vector<Entry> m_entries;
  std::vector<std::string> m_unlisted;
  std::vector<std::string> m_wrong_checksum;
  bool m_with_files_json = true;
};

// A home-like layout in a temporary directory.
struct Home {
  TempDir tmp;
  std::string plugins = tmp / "home/plugins";
  std::string lock = tmp / "home/plugins.lock";

  InstallOptions options(bool force = false) const {
    InstallOptions result;
    result.plugins_dir = plugins;
    result.lock_path = lock;
    result.force = force;
    return result;
  }
};

// A source plugin folder with a bit of everything.
std::string write_source(const TempDir& tmp, const std::string& name, const std::string& version) {
  const std::string dir = tmp / ("src/" + name);
  tmp.write("src/" + name + "/config.ini", config(version));
  tmp.write("src/" + name + "/main/app.py", "print('hello')\n");
  tmp.write("src/" + name + "/main/static/site.css", "body {}\n");
  tmp.write("src/" + name + "/bin/run.sh", "#!/bin/sh\necho run\n");
  ::chmod((dir + "/bin/run.sh").c_str(), 0755);
  tmp.mkdir("src/" + name + "/empty");
  REQUIRE(::symlink("main/static/site.css", (dir + "/site.css").c_str()) == 0);
  REQUIRE(::symlink("../app.py", (dir + "/main/static/app.py").c_str()) == 0);
  return dir;
}

std::string build_into(const std::string& dir, const std::string& output,
                       const BuildOptions& options = {}) {
  auto built = build_plugin_archive(dir, output, options);
  INFO((built ? std::string() : built.error().describe()));
  REQUIRE(built.ok());
  return built->path;
}

// Entry names of an archive, in order.
std::vector<std::string> entry_names(const std::string& path) {
  af::ArchiveReader reader(archive_read_new());
  archive_read_support_filter_gzip(reader.get());
  archive_read_support_format_tar(reader.get());
  REQUIRE(archive_read_open_filename(reader.get(), path.c_str(), 10240) == ARCHIVE_OK);
  std::vector<std::string> names;
  archive_entry* entry = nullptr;
  while (archive_read_next_header(reader.get(), &entry) == ARCHIVE_OK) {
    names.push_back(archive_entry_pathname(entry));
    REQUIRE(archive_entry_uid(entry) == 0);
    REQUIRE(std::string(archive_entry_uname(entry)) == "root");
  }
  return names;
}

}  // namespace

TEST_CASE("archive: build, install and load round trip", "[images][archive]") {
  Home home;
  const std::string dir = write_source(home.tmp, "demo", "1.2.3");
  const std::string file = build_into(dir, home.tmp / "out", BuildOptions{1700000000, "builder"});
  CHECK(file == home.tmp / "out/demo-1.2.3-1.metwork.mfserv.plugin");

  auto names = entry_names(file);
  CHECK(names.front() == "metwork_plugin/");
  CHECK(names[names.size() - 2] == "metwork_plugin/.metadata.json");
  CHECK(names.back() == "metwork_plugin/.files.json");
  CHECK(std::find(names.begin(), names.end(), "metwork_plugin/empty/") != names.end());

  auto installed = install_plugin_archive(file, home.options());
  INFO((installed ? std::string() : installed.error().describe()));
  REQUIRE(installed.ok());
  CHECK(installed->plugin.name == "demo");
  CHECK(installed->plugin.version == "1.2.3");
  CHECK(installed->plugin.home == home.plugins + "/demo");
  CHECK_FALSE(installed->replaced);
  CHECK(installed->warnings.empty());

  const std::string target = home.plugins + "/demo";
  auto load = load_plugin(target, {});
  REQUIRE(load.plugin);
  CHECK(load.diagnostics.empty());
  CHECK(load.plugin->version == "1.2.3");
  CHECK(slurp(target + "/main/app.py") == "print('hello')\n");
  CHECK(slurp(target + "/site.css") == "body {}\n");  // through the link
  CHECK(fs::read_symlink(target + "/main/static/app.py") == "../app.py");
  CHECK(fs::is_directory(target + "/empty"));
  struct stat st {};
  REQUIRE(::stat((target + "/bin/run.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0755);

  auto metadata = nlohmann::json::parse(slurp(target + "/.metadata.json"));
  CHECK(metadata["name"] == "demo");
  CHECK(metadata["version"] == "1.2.3");
  CHECK(metadata["release"] == "1");
  CHECK(metadata["build_host"] == "builder");
  CHECK(metadata["build_date"] == "2023-11-14T22:13:20Z");
  CHECK(metadata["summary"] == "demo plugin");
  CHECK(metadata["license"] == "MIT");
  CHECK(metadata["packager"] == "tests");
  CHECK(metadata["vendor"] == "tests");
  CHECK(metadata["url"] == "https://example.invalid");
  CHECK(metadata["size"] == std::to_string(config("1.2.3").size() + 15 + 8 + 19));

  auto files = nlohmann::json::parse(slurp(target + "/.files.json"));
  std::map<std::string, nlohmann::json> by_path;
  for (const auto& item : files) {
    by_path[item["path"]] = item;
  }
  CHECK(by_path.size() == 7);  // config.ini, 3 files, 2 links, .metadata.json
  CHECK(by_path["main/app.py"]["sha256"] == af::sha256_hex("print('hello')\n"));
  CHECK(by_path["main/app.py"]["size"] == 15);
  CHECK(by_path["main/app.py"]["mode"] == "0644");
  CHECK(by_path["bin/run.sh"]["mode"] == "0755");
  CHECK(by_path["site.css"]["type"] == "symlink");
  CHECK(by_path["site.css"]["target"] == "main/static/site.css");
  CHECK_FALSE(by_path.contains(".files.json"));

  // Installed plugins are listed like the others, and can be rebuilt from where they are.
  auto listed = mfserv::images::list_installed(home.plugins, {});
  REQUIRE(listed.size() == 1);
  CHECK_FALSE(listed[0].dev_link);
  const std::string rebuilt =
      build_into(target, home.tmp / "again", BuildOptions{1700000000, "builder"});
  CHECK(slurp(rebuilt) == slurp(file));
}

TEST_CASE("archive: two builds of the same folder are byte-identical", "[images][archive]") {
  TempDir tmp;
  const std::string dir = write_source(tmp, "demo", "1.0.0");
  // Long enough for a pax extended header.
  const std::string deep = "node_modules/" + std::string(90, 'a') + "/" + std::string(90, 'b');
  tmp.write("src/demo/" + deep + "/index.js", "module.exports = 1;\n");

  const std::string first = build_into(dir, tmp / "one");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const std::string second = build_into(dir, tmp / "two");
  CHECK(slurp(first) == slurp(second));
  const auto first_names = entry_names(first);
  CHECK(std::find(first_names.begin(), first_names.end(), "metwork_plugin/" + deep + "/index.js") !=
        first_names.end());

  // The date is the newest file's, so the archive changes only when the input does.
  auto newest = fs::last_write_time(tmp / "src/demo/config.ini");
  fs::last_write_time(tmp / "src/demo/main/app.py", newest + std::chrono::hours(1));
  const std::string third = build_into(dir, tmp / "three");
  CHECK(slurp(third) != slurp(first));

  // The source folder's own date (a build written into it) does not count.
  const std::string inside = build_into(dir, dir);
  const std::string fourth = build_into(dir, tmp / "four");
  CHECK(slurp(fourth) == slurp(third));
  auto names = entry_names(fourth);
  CHECK(std::find(names.begin(), names.end(),
                  "metwork_plugin/demo-1.0.0-1.metwork.mfserv.plugin") == names.end());
  (void)inside;
}

TEST_CASE("archive: .releaseignore rules", "[images][archive][releaseignore]") {
  ReleaseIgnore ignore = ReleaseIgnore::parse(
      "# comment\n"
      "\n"
      "*.log\n"
      "!keep.log\n"
      "build/\n"
      "/secret.txt\n"
      "docs/*.md\n"
      "**/cache/**\n"
      "\\#hash\n"
      "tmp?  \n");
  CHECK(ignore.ignored("a.log", false));
  CHECK(ignore.ignored("deep/down/b.log", false));
  CHECK_FALSE(ignore.ignored("keep.log", false));
  CHECK(ignore.ignored("build", true));
  CHECK(ignore.ignored("sub/build", true));
  CHECK_FALSE(ignore.ignored("build", false));  // a file named build
  CHECK(ignore.ignored("secret.txt", false));
  CHECK_FALSE(ignore.ignored("sub/secret.txt", false));  // anchored
  CHECK(ignore.ignored("docs/readme.md", false));
  CHECK_FALSE(ignore.ignored("docs/sub/readme.md", false));
  CHECK_FALSE(ignore.ignored("other/docs/readme.md", false));
  CHECK(ignore.ignored("a/cache/x", false));
  CHECK(ignore.ignored("cache/x/y", false));
  CHECK_FALSE(ignore.ignored("cache", true));
  CHECK(ignore.ignored("#hash", false));
  CHECK(ignore.ignored("tmp1", false));
  CHECK_FALSE(ignore.ignored("tmp12", false));
  CHECK_FALSE(ignore.ignored("config.ini", false));
}

TEST_CASE("archive: build leaves out what .releaseignore names",
          "[images][archive][releaseignore]") {
  Home home;
  const std::string dir = write_source(home.tmp, "demo", "1.0.0");
  home.tmp.write("src/demo/.releaseignore", "*.pyc\n__pycache__/\n/notes.txt\n.git/\n");
  home.tmp.write("src/demo/main/__pycache__/app.cpython-311.pyc", "x");
  home.tmp.write("src/demo/main/other.pyc", "x");
  home.tmp.write("src/demo/notes.txt", "x");
  home.tmp.write("src/demo/main/notes.txt", "kept: the rule is anchored");
  home.tmp.write("src/demo/.git/HEAD", "ref: refs/heads/main\n");
  home.tmp.write("src/demo/node_modules/left-pad/index.js", "module.exports = 1;\n");

  const std::string file = build_into(dir, home.tmp / "out");
  auto names = entry_names(file);
  auto has = [&names](const std::string& rel) {
    return std::find(names.begin(), names.end(), "metwork_plugin/" + rel) != names.end();
  };
  CHECK_FALSE(has("main/__pycache__/"));
  CHECK_FALSE(has("main/__pycache__/app.cpython-311.pyc"));
  CHECK_FALSE(has("main/other.pyc"));
  CHECK_FALSE(has("notes.txt"));
  CHECK_FALSE(has(".git/HEAD"));
  CHECK(has("main/notes.txt"));
  CHECK(has(".releaseignore"));
  CHECK(has("node_modules/left-pad/index.js"));  // packed when present and not ignored

  auto installed = install_plugin_archive(file, home.options());
  REQUIRE(installed.ok());
  CHECK_FALSE(fs::exists(home.plugins + "/demo/notes.txt"));
  CHECK(fs::exists(home.plugins + "/demo/main/notes.txt"));
}

TEST_CASE("archive: build refuses what an install would refuse", "[images][archive]") {
  TempDir tmp;
  const std::string dir = write_source(tmp, "demo", "1.0.0");

  SECTION("a link out of the plugin, absolute") {
    REQUIRE(::symlink("/etc/passwd", (dir + "/passwd").c_str()) == 0);
  }
  SECTION("a link out of the plugin, relative") {
    REQUIRE(::symlink("../../outside", (dir + "/main/out").c_str()) == 0);
  }
  SECTION("a fifo") {
    REQUIRE(::mkfifo((dir + "/pipe").c_str(), 0644) == 0);
  }
  auto built = build_plugin_archive(dir, tmp / "out");
  REQUIRE_FALSE(built.ok());
  CHECK(built.error().message().find(".releaseignore") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "out/demo-1.0.0-1.metwork.mfserv.plugin"));
  CHECK(mfserv::list_dir(tmp / "out").empty());

  // Listed in .releaseignore, it is left out and the build works.
  tmp.write("src/demo/.releaseignore", "passwd\nmain/out\npipe\n");
  CHECK(build_plugin_archive(dir, tmp / "out").ok());
}

TEST_CASE("archive: a plugin with errors is not built", "[images][archive]") {
  TempDir tmp;
  tmp.write("src/bad/config.ini", config("1.0.0", "worker = 3\n"));
  auto built = build_plugin_archive(tmp / "src/bad", tmp / "out");
  REQUIRE_FALSE(built.ok());
  CHECK(built.error().message().find("worker") != std::string::npos);
}

TEST_CASE("archive: hostile archives are refused and change nothing (C16)",
          "[images][archive][c16]") {
  Home home;
  // Something installed already, and a dev link: neither may change.
  REQUIRE(install_plugin_archive(
              HandArchive().plugin("other", "1.0.0").write(home.tmp / "o.plugin"), home.options())
              .ok());
  home.tmp.write("src/dev/config.ini", config("1.0.0"));
  REQUIRE(mfserv::images::develop(home.plugins, home.tmp / "src/dev", {}).ok());
  const auto before = snapshot(home.tmp / "home");
  const auto outside_before = snapshot(home.tmp.path() + "/src");

  HandArchive archive;
  std::string expected;
  SECTION("absolute path") {
    archive.plugin("evil", "1.0.0").file("/tmp/mfserv-evil-absolute", "x");
    expected = "absolute path";
  }
  SECTION("'..' entry") {
    archive.plugin("evil", "1.0.0").file("metwork_plugin/../escaped", "x");
    expected = "'..'";
  }
  SECTION("'..' deeper in the path") {
    archive.plugin("evil", "1.0.0").file("metwork_plugin/main/../../escaped", "x");
    expected = "'..'";
  }
  SECTION("symlink out, absolute") {
    archive.plugin("evil", "1.0.0").symlink("metwork_plugin/passwd", "/etc/passwd");
    expected = "absolute path";
  }
  SECTION("symlink out, relative") {
    archive.plugin("evil", "1.0.0").symlink("metwork_plugin/main/up", "../../../src");
    expected = "leads out of the plugin folder";
  }
  SECTION("symlink out through a name") {
    archive.plugin("evil", "1.0.0")
        .symlink("metwork_plugin/here", ".")
        .symlink("metwork_plugin/up", "here/..");
    expected = "'..' after a name";
  }
  SECTION("writing through a link") {
    archive.plugin("evil", "1.0.0")
        .symlink("metwork_plugin/alias", "main")
        .file("metwork_plugin/alias/app2.py", "x");
    expected = "is a link or a file";
  }
  SECTION("hard link") {
    archive.plugin("evil", "1.0.0").hardlink("metwork_plugin/copy", "metwork_plugin/config.ini");
    expected = "hard link";
  }
  SECTION("character device") {
    archive.plugin("evil", "1.0.0").special("metwork_plugin/null", AE_IFCHR);
    expected = "character device";
  }
  SECTION("block device") {
    archive.plugin("evil", "1.0.0").special("metwork_plugin/disk", AE_IFBLK);
    expected = "block device";
  }
  SECTION("fifo") {
    archive.plugin("evil", "1.0.0").special("metwork_plugin/pipe", AE_IFIFO);
    expected = "fifo";
  }
  SECTION("entry outside metwork_plugin/") {
    archive.plugin("evil", "1.0.0").file("other/file", "x");
    expected = "outside metwork_plugin/";
  }
  SECTION("entry named like the top folder's neighbour") {
    archive.plugin("evil", "1.0.0").file("metwork_plugin2/file", "x");
    expected = "outside metwork_plugin/";
  }
  SECTION("file not listed in .files.json") {
    archive.plugin("evil", "1.0.0")
        .file("metwork_plugin/extra.py", "x")
        .unlisted("metwork_plugin/extra.py");
    expected = "not listed in .files.json";
  }
  SECTION("checksum mismatch") {
    archive.plugin("evil", "1.0.0").wrong_checksum("metwork_plugin/main/app.py");
    expected = "sha256 differs";
  }
  SECTION("duplicate entry") {
    archive.plugin("evil", "1.0.0").file("metwork_plugin/config.ini", config("6.6.6"));
    expected = "appears twice";
  }
  SECTION("no .files.json") {
    archive.plugin("evil", "1.0.0").without_files_json();
    expected = "no metwork_plugin/.files.json";
  }
  SECTION("a plugin with errors") {
    archive.dir("metwork_plugin")
        .file("metwork_plugin/config.ini", config("1.0.0", "workers = 2\n"))
        .file("metwork_plugin/.metadata.json", R"({"name": "evil"})");
    expected = "has errors";
  }
  SECTION("a name that is not allowed") {
    archive.dir("metwork_plugin")
        .file("metwork_plugin/config.ini", config("1.0.0"))
        .file("metwork_plugin/.metadata.json", R"({"name": "../evil"})");
    expected = "not allowed";
  }
  SECTION("replacing the installed plugin through its name, with --force") {
    archive.plugin("other", "2.0.0").special("metwork_plugin/pipe", AE_IFIFO);
    expected = "fifo";
  }
  const std::string file = archive.write(home.tmp / "evil.plugin");
  auto installed = install_plugin_archive(file, home.options(true));
  REQUIRE_FALSE(installed.ok());
  const std::string message = installed.error().message();
  INFO(message);
  CHECK(message.find(expected) != std::string::npos);
  CHECK(message.find(file) != std::string::npos);
  CHECK(snapshot(home.tmp / "home") == before);
  CHECK(snapshot(home.tmp.path() + "/src") == outside_before);
  CHECK_FALSE(fs::exists("/tmp/mfserv-evil-absolute"));
  CHECK_FALSE(fs::exists(home.tmp / "home/escaped"));
  CHECK_FALSE(fs::exists(home.tmp / "escaped"));
}

TEST_CASE("archive: what is not a .plugin archive is refused", "[images][archive][c16]") {
  Home home;
  std::string file;
  SECTION("garbage") {
    file = home.tmp.write("junk.plugin", std::string(4096, 'x'));
  }
  SECTION("truncated") {
    TempDir src;
    const std::string dir = write_source(src, "demo", "1.0.0");
    std::string whole = slurp(build_into(dir, src / "out"));
    file = home.tmp.write("cut.plugin", whole.substr(0, whole.size() / 2));
  }
  SECTION("an empty archive") {
    file = HandArchive().write(home.tmp / "empty.plugin");
  }
  auto installed = install_plugin_archive(file, home.options());
  REQUIRE_FALSE(installed.ok());
  INFO(installed.error().message());
  CHECK(installed.error().message().find(file) != std::string::npos);
  CHECK(mfserv::list_dir(home.plugins).empty());
}

// A tar stream whose one entry declares SIZE bytes and carries 512: what a bomb's first header
// looks like (libarchive's writer would pad it to SIZE, so the header is made by hand).
std::string declared_size_tar(std::uint64_t size) {
  std::string header(512, '\0');
  auto put = [&](std::size_t offset, const std::string& text) {
    std::copy(text.begin(), text.end(), header.begin() + static_cast<long>(offset));
  };
  put(0, "metwork_plugin/zeros");
  put(100, "0000644");
  put(108, "0000000");
  put(116, "0000000");
  char octal[16];
  std::snprintf(octal, sizeof octal, "%011llo", static_cast<unsigned long long>(size));
  put(124, octal);
  put(136, "00000000000");
  put(156, "0");
  put(257, "ustar");
  put(263, "00");
  put(148, "        ");
  unsigned sum = 0;
  for (unsigned char c : header) {
    sum += c;
  }
  std::snprintf(octal, sizeof octal, "%06o", sum);
  put(148, std::string(octal) + std::string(1, '\0') + " ");
  return header + std::string(512, '\0');
}

TEST_CASE("archive: an archive unpacking past the limit is refused before anything is written",
          "[images][archive][c16]") {
  Home home;
  // 5 GiB declared: once, gzip'd zeros filled the disk before .files.json was read.
  const std::string file = home.tmp.write("bomb.plugin", declared_size_tar(5ULL << 30));
  auto installed = install_plugin_archive(file, home.options());
  REQUIRE_FALSE(installed.ok());
  INFO(installed.error().message());
  CHECK(installed.error().message().find("unpacks to more than") != std::string::npos);
  CHECK(installed.error().message().find(file) != std::string::npos);
  CHECK(mfserv::list_dir(home.plugins).empty());  // not even a staging folder
}

TEST_CASE("archive: a failed install of version 2 leaves version 1 in place", "[images][archive]") {
  Home home;
  REQUIRE(install_plugin_archive(
              HandArchive().plugin("demo", "1.0.0").write(home.tmp / "v1.plugin"), home.options())
              .ok());
  const auto before = snapshot(home.plugins);
  HandArchive v2;
  SECTION("corrupt") {
    v2.plugin("demo", "2.0.0").wrong_checksum("metwork_plugin/config.ini");
  }
  SECTION("invalid config") {
    v2.dir("metwork_plugin")
        .file("metwork_plugin/config.ini", config("2.0.0", "numprocesses = many\n"))
        .file("metwork_plugin/.metadata.json", R"({"name": "demo"})");
  }
  auto installed = install_plugin_archive(v2.write(home.tmp / "v2.plugin"), home.options(true));
  REQUIRE_FALSE(installed.ok());
  CHECK(snapshot(home.plugins) == before);
  auto load = load_plugin(home.plugins + "/demo", {});
  REQUIRE(load.plugin);
  CHECK(load.plugin->version == "1.0.0");
}

TEST_CASE("archive: an installed version or a dev link is replaced only with --force",
          "[images][archive]") {
  Home home;
  const std::string v1 = HandArchive().plugin("demo", "1.0.0").write(home.tmp / "v1.plugin");
  const std::string v2 = HandArchive().plugin("demo", "2.0.0").write(home.tmp / "v2.plugin");

  SECTION("an installed version") {
    REQUIRE(install_plugin_archive(v1, home.options()).ok());
    auto again = install_plugin_archive(v2, home.options());
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message().find("plugin demo is already installed (version 1.0.0-1)") !=
          std::string::npos);
    CHECK(again.error().message().find("--force") != std::string::npos);

    auto forced = install_plugin_archive(v2, home.options(true));
    REQUIRE(forced.ok());
    REQUIRE(forced->replaced);
    CHECK(forced->replaced->version == "1.0.0");
    CHECK_FALSE(forced->replaced->dev_link);
  }
  SECTION("a dev link") {
    home.tmp.write("src/demo/config.ini", config("0.1.0"));
    REQUIRE(mfserv::images::develop(home.plugins, home.tmp / "src/demo", {}).ok());
    const auto working_copy = snapshot(home.tmp / "src/demo");
    auto refused = install_plugin_archive(v2, home.options());
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message().find("is a dev link") != std::string::npos);
    CHECK(is_link(home.plugins + "/demo"));

    auto forced = install_plugin_archive(v2, home.options(true));
    REQUIRE(forced.ok());
    REQUIRE(forced->replaced);
    CHECK(forced->replaced->dev_link);
    CHECK_FALSE(is_link(home.plugins + "/demo"));
    CHECK(snapshot(home.tmp / "src/demo") == working_copy);  // the working copy is untouched
  }
  auto load = load_plugin(home.plugins + "/demo", {});
  REQUIRE(load.plugin);
  CHECK(load.plugin->version == "2.0.0");
  CHECK(slurp(home.plugins + "/demo/main/app.py") == "print('hello 2.0.0')\n");
  // Nothing left over: only the plugin.
  CHECK(mfserv::list_dir(home.plugins) == std::vector<std::string>{"demo"});
}

TEST_CASE("archive: uninstall removes a folder or a dev link", "[images][archive]") {
  Home home;
  REQUIRE(install_plugin_archive(HandArchive().plugin("demo", "1.0.0").write(home.tmp / "a.plugin"),
                                 home.options())
              .ok());
  home.tmp.write("src/dev/config.ini", config("1.0.0"));
  REQUIRE(mfserv::images::develop(home.plugins, home.tmp / "src/dev", {}).ok());

  auto removed = uninstall_plugin("demo", home.plugins, home.lock);
  REQUIRE(removed.ok());
  CHECK(removed->version == "1.0.0");
  CHECK_FALSE(fs::exists(home.plugins + "/demo"));

  auto unlinked = uninstall_plugin("dev", home.plugins, home.lock);
  REQUIRE(unlinked.ok());
  CHECK(unlinked->dev_link);
  CHECK_FALSE(fs::exists(fs::symlink_status(home.plugins + "/dev")));
  CHECK(fs::exists(home.tmp / "src/dev/config.ini"));
  CHECK(mfserv::list_dir(home.plugins).empty());

  auto missing = uninstall_plugin("demo", home.plugins, home.lock);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message() == "plugin demo is not installed (see `mfserv plugin list`)");

  auto traversal = uninstall_plugin("../home", home.plugins, home.lock);
  REQUIRE_FALSE(traversal.ok());
  CHECK(traversal.error().message().find("is not a plugin name") != std::string::npos);
  CHECK(fs::exists(home.tmp / "home"));
}

TEST_CASE("archive: MFSERV archives (a .files.json of paths) install", "[images][archive]") {
  Home home;
  const std::string file = home.tmp / "legacy.plugin";
  {
    // What mfplugin's build writes: paths with the top folder, no checksums, no name.
    af::ArchiveWriter writer(archive_write_new());
    REQUIRE(archive_write_add_filter_gzip(writer.get()) == ARCHIVE_OK);
    REQUIRE(archive_write_set_format_gnutar(writer.get()) == ARCHIVE_OK);
    REQUIRE(archive_write_open_filename(writer.get(), file.c_str()) == ARCHIVE_OK);
    const std::vector<std::pair<std::string, std::string>> files = {
        {"metwork_plugin/.layerapi2_label", "plugin_legacy@mfserv\n"},
        {"metwork_plugin/.plugin_format_version", "1.0.0\n"},
        {"metwork_plugin/config.ini", config("3.0.0")},
        {"metwork_plugin/.files.json",
         R"(["metwork_plugin/.layerapi2_label", "metwork_plugin/.plugin_format_version",
             "metwork_plugin/config.ini"])"},
        {"metwork_plugin/.metadata.json", R"({"version": "3.0.0", "release": "1"})"}};
    for (const auto& [name, content] : files) {
      af::ArchiveEntry header(archive_entry_new());
      archive_entry_set_pathname(header.get(), name.c_str());
      archive_entry_set_filetype(header.get(), AE_IFREG);
      archive_entry_set_perm(header.get(), 0644);
      archive_entry_set_size(header.get(), static_cast<la_int64_t>(content.size()));
      REQUIRE(archive_write_header(writer.get(), header.get()) == ARCHIVE_OK);
      REQUIRE(archive_write_data(writer.get(), content.data(), content.size()) ==
              static_cast<la_ssize_t>(content.size()));
    }
    REQUIRE(archive_write_close(writer.get()) == ARCHIVE_OK);
  }
  auto installed = install_plugin_archive(file, home.options());
  INFO((installed ? std::string() : installed.error().describe()));
  REQUIRE(installed.ok());
  CHECK(installed->legacy_manifest);
  CHECK(installed->plugin.name == "legacy");
  CHECK(installed->plugin.version == "3.0.0");
  CHECK(fs::is_directory(home.plugins + "/legacy"));
}

TEST_CASE("archive: installs wait for the plugins lock", "[images][archive][lock]") {
  Home home;
  const std::string file = HandArchive().plugin("demo", "1.0.0").write(home.tmp / "a.plugin");
  REQUIRE(mfserv::make_dirs(home.plugins).ok());
  int held = ::open(home.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);

  auto pending = std::async(std::launch::async,
                            [&] { return install_plugin_archive(file, home.options()).ok(); });
  CHECK(pending.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
  CHECK_FALSE(fs::exists(home.plugins + "/demo"));
  ::close(held);
  CHECK(pending.get());
  CHECK(fs::is_directory(home.plugins + "/demo"));
}

TEST_CASE("archive: a staging folder left by a crash is removed by the next install",
          "[images][archive]") {
  Home home;
  home.tmp.write("home/plugins/.install-abcdef/metwork_plugin/config.ini", "x");
  REQUIRE(install_plugin_archive(HandArchive().plugin("demo", "1.0.0").write(home.tmp / "a.plugin"),
                                 home.options())
              .ok());
  CHECK(mfserv::list_dir(home.plugins) == std::vector<std::string>{"demo"});
}

TEST_CASE("archive: entry path and link target rules", "[images][archive][c16]") {
  CHECK(*af::plugin_relative_path("metwork_plugin/") == "");
  CHECK(*af::plugin_relative_path("metwork_plugin/a/b/") == "a/b");
  CHECK_FALSE(af::plugin_relative_path("./metwork_plugin/a").ok());
  CHECK_FALSE(af::plugin_relative_path("metwork_plugin//a").ok());
  CHECK_FALSE(af::plugin_relative_path("metwork_plugin/./a").ok());
  CHECK_FALSE(af::plugin_relative_path("/metwork_plugin/a").ok());
  CHECK_FALSE(af::plugin_relative_path("metwork_plugin/a/..").ok());

  CHECK(af::check_symlink_target("a/b/link", "../../x").ok());
  CHECK(af::check_symlink_target("a/link", "./b/./c").ok());
  CHECK(af::check_symlink_target("link", ".").ok());
  CHECK_FALSE(af::check_symlink_target("a/link", "../../x").ok());
  CHECK_FALSE(af::check_symlink_target("link", "..").ok());
  CHECK_FALSE(af::check_symlink_target("a/link", "b/../../x").ok());
  CHECK_FALSE(af::check_symlink_target("link", "").ok());
  CHECK_FALSE(af::check_symlink_target("link", "/x").ok());
}

TEST_CASE("archive: .files.json parsing refuses what it cannot check", "[images][archive]") {
  CHECK_FALSE(af::parse_files_json("{}").ok());
  CHECK_FALSE(af::parse_files_json("[{\"path\": \"a\"}]").ok());
  CHECK_FALSE(af::parse_files_json(R"([{"path": "../a", "size": 1, "mode": "0644", "sha256": ")" +
                                   std::string(64, 'a') + "\"}]")
                  .ok());
  CHECK_FALSE(
      af::parse_files_json(R"([{"path": "a", "size": 1, "mode": "0644", "sha256": "xyz"}])").ok());
  const std::string good =
      R"({"path": "a", "size": 1, "mode": "0644", "sha256": ")" + std::string(64, 'a') + "\"}";
  CHECK(af::parse_files_json("[" + good + "]").ok());
  CHECK_FALSE(af::parse_files_json("[" + good + "," + good + "]").ok());           // twice
  CHECK_FALSE(af::parse_files_json("[" + good + ", \"metwork_plugin/b\"]").ok());  // mixed
}
