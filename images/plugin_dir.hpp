// A plugin folder on disk: where it really is, whether it is a dev link, and its name
// (`.layerapi2_label` for MFSERV plugins, else the folder's name).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "images/plugin.hpp"
#include "util/result.hpp"

namespace mfserv::images {

// PATH with symbolic links resolved (realpath(3)).
Result<std::string> real_path(const std::string& path);
// PATH itself (not its target) is a symbolic link; a trailing '/' is ignored.
bool is_symlink(const std::string& path);
// The last component of PATH ("/a/b/" gives "b").
std::string base_name(const std::string& path);

// The plugin name of the folder DIR (absolute, resolved): `plugin_NAME@mfserv` from
// DIR/.layerapi2_label when it exists, else DIR's name. A name that is not allowed (see
// check_plugin_name) is reported in DIAGNOSTICS and gives nullopt.
std::optional<std::string> read_plugin_name(const std::string& dir,
                                            std::vector<Diagnostic>& diagnostics);

}  // namespace mfserv::images
