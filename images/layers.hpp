// Override layering: a plugin's config.ini, then each override file in order (MFSERV's
// HOME/config/plugins/NAME.ini then /etc/.../NAME.ini). Each final value remembers the file
// and line it came from, so a bad value is reported where it was written.
// Rules: keys starting with '_' are private to config.ini; an override may only set keys of
// sections config.ini has.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "images/plugin.hpp"

namespace mfserv::images {

struct LayeredValue {
  std::string key;
  std::string value;
  std::string file;  // where the final value was written
  int line = 0;
};

struct LayeredSection {
  std::string name;
  std::string file;                  // config.ini
  int line = 0;                      // of the header in config.ini
  std::vector<LayeredValue> values;  // config.ini order, keys added by overrides at the end

  const LayeredValue* find(std::string_view key) const;
};

// Reads CONFIG_INI then each of OVERRIDE_FILES that exists. Every problem is appended to
// DIAGNOSTICS; what could be read is returned (empty when config.ini cannot be read).
std::vector<LayeredSection> read_layers(const std::string& config_ini,
                                        const std::vector<std::string>& override_files,
                                        std::vector<Diagnostic>& diagnostics);

Diagnostic make_diagnostic(Diagnostic::Severity severity, std::string file, int line,
                           std::string key, std::string message);

}  // namespace mfserv::images
