// `plugin new --template T NAME`: a new plugin folder from one of the templates shipped with
// mfserv (images/templates/T/, every file copied with `{{name}}` replaced by NAME). A new
// plugin loads without a diagnostic and runs as generated.
#pragma once

#include <string>
#include <vector>

#include "util/result.hpp"

namespace mfserv::images {

// $MFSERV_TEMPLATES_DIR, else the folder the build was configured with.
std::string templates_dir();
// The templates found there, sorted.
std::vector<std::string> list_templates();

struct NewPlugin {
  std::string dir;                 // PARENT_DIR/NAME, absolute
  std::vector<std::string> files;  // relative to DIR, sorted
};

// Creates PARENT_DIR/NAME from TEMPLATE. It appears whole or not at all (written in a hidden
// folder of PARENT_DIR, then renamed); an existing NAME is never touched.
Result<NewPlugin> create_plugin_from_template(const std::string& template_name,
                                              const std::string& name,
                                              const std::string& parent_dir);

}  // namespace mfserv::images
