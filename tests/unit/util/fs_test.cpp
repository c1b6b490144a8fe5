#include "util/fs.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;

TEST_CASE("list_subdirs lists directories only and not links to one", "[unit][util]") {
  std::string root = fs::temp_directory_path() / ("mfserv-subdirs-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root + "/b/inner");
  fs::create_directories(root + "/a");
  REQUIRE(mfserv::write_file_atomic(root + "/file", "x").ok());
  fs::create_directory_symlink(root + "/a", root + "/link-to-a");
  CHECK(mfserv::list_subdirs(root) == std::vector<std::string>{"a", "b"});
  CHECK(mfserv::list_subdirs(root + "/a").empty());
  CHECK(mfserv::list_subdirs(root + "/missing").empty());
  // cgroupfs, where every entry but the child groups is a control file.
  if (mfserv::is_directory("/sys/fs/cgroup")) {
    for (const auto& name : mfserv::list_subdirs("/sys/fs/cgroup")) {
      CHECK(fs::is_directory("/sys/fs/cgroup/" + name));
    }
  }
  fs::remove_all(root);
}

TEST_CASE("read_file reads regular files only and never waits", "[unit][util]") {
  std::string root = fs::temp_directory_path() / ("mfserv-read-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root + "/dir");
  REQUIRE(mfserv::write_file_atomic(root + "/file", "text\n").ok());
  fs::create_symlink(root + "/file", root + "/link");
  CHECK(*mfserv::read_file(root + "/file") == "text\n");
  CHECK(*mfserv::read_file(root + "/link") == "text\n");
  // A FIFO without a writer used to block the reader (the supervisor, on a reload).
  REQUIRE(::mkfifo((root + "/fifo").c_str(), 0600) == 0);
  auto fifo = mfserv::read_file(root + "/fifo");
  REQUIRE_FALSE(fifo.ok());
  CHECK(fifo.error().message() == root + "/fifo is not a regular file");
  // A device that never ends, through a link.
  fs::create_symlink("/dev/zero", root + "/zero");
  auto zero = mfserv::read_file(root + "/zero");
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().message() == root + "/zero is not a regular file");
  CHECK_FALSE(mfserv::read_file(root + "/dir").ok());
  CHECK_FALSE(mfserv::read_file(root + "/missing").ok());
  // Files the kernel generates are regular files of size 0 that still have content.
  CHECK(mfserv::read_file("/proc/self/mounts")->find(" / ") != std::string::npos);
  fs::remove_all(root);
}

TEST_CASE("untraversable_dir names the first folder a user cannot cross", "[unit][util]") {
  std::string root = "/var/tmp/mfserv-traverse-" + std::to_string(::getpid());
  fs::remove_all(root);
  fs::create_directories(root + "/open/closed/inner");
  fs::permissions(root, fs::perms(0755));
  fs::permissions(root + "/open", fs::perms(0755));
  fs::permissions(root + "/open/closed", fs::perms(0700));
  const uid_t someone = 4242;
  CHECK(mfserv::untraversable_dir(root + "/open/closed/inner", someone, someone, true) ==
        root + "/open/closed");
  // Ancestors only: the folder itself is not checked.
  CHECK(mfserv::untraversable_dir(root + "/open/closed", someone, someone, false).empty());
  CHECK(mfserv::untraversable_dir(root + "/open/closed", someone, someone, true) ==
        root + "/open/closed");
  // Its group may cross a 0710 folder; root crosses anything.
  REQUIRE(::chown((root + "/open/closed").c_str(), 0, 4343) == 0);
  fs::permissions(root + "/open/closed", fs::perms(0710));
  CHECK(mfserv::untraversable_dir(root + "/open/closed/inner", someone, 4343, true).empty());
  CHECK(mfserv::untraversable_dir(root + "/open/closed/inner", 0, 0, true).empty());
  fs::remove_all(root);
}
