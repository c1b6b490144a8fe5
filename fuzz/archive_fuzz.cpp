// libFuzzer target for `.plugin` install (archive_install.cpp, archive_entries.cpp): any
// bytes as an archive are refused or installed, and nothing is ever written outside the
// plugins folder, nor left hidden in it (abort() otherwise, so the fuzzer reports it).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "images/archive.hpp"
#include "images/archive_entries.hpp"

namespace fs = std::filesystem;

namespace {

struct Root {
  std::string path;
  std::string plugins;
  std::string lock;
};

Root make_root() {
  char pattern[] = "/tmp/mfserv-archive-fuzz-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    std::abort();
  }
  Root root{pattern, std::string(pattern) + "/home/plugins", std::string(pattern) + "/home/lock"};
  fs::create_directories(root.plugins);
  return root;
}

void check_and_clean(const Root& root) {
  for (const auto& entry : fs::directory_iterator(root.path)) {
    if (entry.path().filename() != "home") {
      std::abort();  // written next to the home: escaped
    }
  }
  for (const auto& entry : fs::directory_iterator(root.path + "/home")) {
    std::string name = entry.path().filename();
    if (name != "plugins" && name != "lock") {
      std::abort();
    }
  }
  for (const auto& entry : fs::directory_iterator(root.plugins)) {
    if (entry.path().filename().string().front() == '.') {
      std::abort();  // a staging folder was left behind
    }
    fs::remove_all(entry.path());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Root root = make_root();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)mfserv::images::archive_format::parse_files_json(text);
  (void)mfserv::images::archive_format::parse_metadata_json(text);

  int fd = ::memfd_create("plugin", MFD_CLOEXEC);
  if (fd < 0 || ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    std::abort();
  }
  mfserv::images::InstallOptions options;
  options.plugins_dir = root.plugins;
  options.lock_path = root.lock;
  options.force = true;
  (void)mfserv::images::install_plugin_archive("/proc/self/fd/" + std::to_string(fd), options);
  ::close(fd);
  check_and_clean(root);
  return 0;
}
