// What the keys of [general], [app_NAME] and [extra_daemon_NAME] mean: which exist, which
// are for apps only, which MFSERV has and mfserv ignores (a warning), their defaults, and
// how each value is parsed into the model. Unknown keys are errors with a "did you mean".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "images/layers.hpp"
#include "images/plugin.hpp"

namespace mfserv::images {

// Fills PLUGIN's [general] fields from SECTION; problems go to DIAGNOSTICS.
void parse_general_section(const LayeredSection& section, PluginConfig& plugin,
                           std::vector<Diagnostic>& diagnostics);

// Parses one [app_NAME] or [extra_daemon_NAME] section (NAME already checked) with MFSERV's
// defaults; PLUGIN_DIR resolves relative paths. Problems go to DIAGNOSTICS.
AppConfig parse_app_section(const LayeredSection& section, AppConfig::Kind kind,
                            const std::string& name, const std::string& plugin_dir,
                            std::vector<Diagnostic>& diagnostics);

// The candidate closest to KEY by edit distance, or "" when none is close enough to be
// what was meant.
std::string closest_key(std::string_view key, const std::vector<std::string_view>& candidates);

}  // namespace mfserv::images
