#include "util/fs.hpp"

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
