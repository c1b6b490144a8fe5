// `mfserv plugin new|build|install|uninstall`: plugin templates and `.plugin` archives
// (images/template.hpp, images/archive.hpp). Printing only; each returns the exit code.
#pragma once

#include <string>

#include "cli/commands.hpp"

namespace mfserv::cli {

int cmd_plugin_new(const std::string& template_name, const std::string& name,
                   const std::string& dir);
int cmd_plugin_build(const std::string& dir, const std::string& output_dir);
int cmd_plugin_install(const Globals& globals, const std::string& file, bool force);
int cmd_plugin_hotswap(const Globals& globals, const std::string& file);
int cmd_plugin_uninstall(const Globals& globals, const std::string& name);

}  // namespace mfserv::cli
