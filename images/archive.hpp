// `.plugin` archives, MFSERV's format: a tar.gz named NAME-VERSION-RELEASE.metwork.mfserv.plugin
// whose one top folder `metwork_plugin/` holds the plugin's files plus `.metadata.json` and
// `.files.json` (every file's path, type, size, mode and sha256).
//
// build: packs a plugin folder (minus what `.releaseignore` names), reproducibly.
// install: refuses anything that could write outside the plugin's folder or does not match
//   `.files.json`, extracts into a hidden folder of PLUGINS_DIR, validates the plugin, and
//   only then puts it in place; the previous version stays until the new one is in place.
// uninstall: removes the folder or dev link.
// Install and uninstall are serialized by flock(2) on a lock file of the home. None of this
// needs privileges. Telling a running supervisor is the caller's job (see ARCHITECTURE.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "images/store.hpp"
#include "util/result.hpp"

namespace mfserv::images {

struct BuildOptions {
  // The date stored in the archive (entries' mtime and build_date). Unset: $SOURCE_DATE_EPOCH,
  // else the newest modification time of the packed files, so the same input gives the same
  // bytes.
  std::optional<std::int64_t> timestamp;
  std::string build_host;  // "": gethostname(2)
};

struct BuildResult {
  std::string path;  // OUTPUT_DIR/NAME-VERSION-RELEASE.metwork.mfserv.plugin
  std::string name;
  std::string version;
  std::string release;
  std::size_t files = 0;   // regular files and links packed
  std::uint64_t size = 0;  // bytes of regular files
};

// Packs the plugin folder DIR into OUTPUT_DIR. The plugin must load without errors (its own
// config.ini, no host overrides). Never packed: an existing .files.json/.metadata.json at the
// top (they are regenerated) and `*.metwork.mfserv.plugin` files (earlier builds). A link
// leading out of the folder, or a device, fifo or socket, is an error naming the file.
Result<BuildResult> build_plugin_archive(const std::string& dir, const std::string& output_dir,
                                         const BuildOptions& options = {});

// `npm install` in DIR when DIR/package.json exists and DIR/node_modules does not (what
// `plugin build` does first for Node plugins). Returns whether it ran.
Result<bool> install_node_modules(const std::string& dir);

struct InstallOptions {
  std::string plugins_dir;  // HOME/plugins
  std::string lock_path;    // HOME/run/plugins.lock
  LoadOptions load;         // the home's overrides, used to validate the plugin
  bool force = false;       // replace an installed version or a dev link of the same name
};

struct InstallResult {
  InstalledPlugin plugin;                   // as installed (home is PLUGINS_DIR/NAME)
  std::optional<InstalledPlugin> replaced;  // what --force replaced
  std::vector<Diagnostic> warnings;         // of the new plugin's config
  bool legacy_manifest = false;             // MFSERV's .files.json: paths checked, no checksums
};

Result<InstallResult> install_plugin_archive(const std::string& file,
                                             const InstallOptions& options);

// Removes PLUGINS_DIR/NAME (a folder, or only the link of a dev link); "not installed" is an
// error. LOCK_PATH as for install.
Result<InstalledPlugin> uninstall_plugin(const std::string& name, const std::string& plugins_dir,
                                         const std::string& lock_path,
                                         const LoadOptions& options = {});

}  // namespace mfserv::images
