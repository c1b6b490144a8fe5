// The installed plugins of a home: HOME/plugins/NAME is a folder (installed) or a symbolic
// link to a working copy (`plugin develop`).
#pragma once

#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "util/result.hpp"

namespace mfserv::images {

struct InstalledPlugin {
  std::string name;
  std::string version;
  std::string release;
  std::string home;  // the plugin's folder (the link's target for dev links)
  bool dev_link = false;
  std::string replaced_link;  // develop: the other folder the link pointed to before, if any
};

// Links DIR into PLUGINS_DIR under the plugin's name. Refuses a plugin with errors (they are
// returned in the Error's message, one per line) and a name already taken by another folder.
Result<InstalledPlugin> develop(const std::string& plugins_dir, const std::string& dir,
                                const LoadOptions& options);

// Every plugin folder or link under PLUGINS_DIR, sorted by name (broken ones included, with
// what could be read).
std::vector<InstalledPlugin> list_installed(const std::string& plugins_dir,
                                            const LoadOptions& options);

}  // namespace mfserv::images
