// libFuzzer target for the config.ini loader (ini.cpp, layers.cpp, schema.cpp, values.cpp):
// any bytes as a plugin's config.ini — and, after a NUL byte, as its override file — give a
// model or diagnostics, never a crash, a hang or a leak.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "images/plugin.hpp"

namespace {

std::string make_root() {
  char pattern[] = "/tmp/mfserv-config-fuzz-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    std::abort();
  }
  std::string root = pattern;
  std::system(("mkdir -p " + root + "/fuzzplugin " + root + "/overrides").c_str());
  return root;
}

void write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string root = make_root();
  std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t nul = input.find('\0');
  write(root + "/fuzzplugin/config.ini", input.substr(0, nul));
  write(root + "/overrides/fuzzplugin.ini",
        nul == std::string::npos ? std::string() : input.substr(nul + 1));

  mfserv::images::LoadOptions options;
  options.override_dirs.push_back(root + "/overrides");
  mfserv::images::PluginLoad load = mfserv::images::load_plugin(root + "/fuzzplugin", options);
  for (const auto& diagnostic : load.diagnostics) {
    (void)diagnostic.describe();
  }
  if (load.plugin) {
    for (const auto& app : load.plugin->apps) {
      (void)mfserv::images::expand_command(*load.plugin, app, "/run/x.socket");
    }
  }
  return 0;
}
