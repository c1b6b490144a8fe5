// `.releaseignore`: which files of a plugin folder `plugin build` leaves out (MFSERV reads it
// with gitignore semantics). Supported: blank lines and '#' comments, '!' to re-include,
// a trailing '/' for folders only, a '/' elsewhere anchoring the pattern at the plugin
// folder (otherwise it matches a name at any depth), fnmatch(3) '*', '?' and '[...]' within
// a name, and '**' for any number of folders. The last matching line wins; a file inside an
// ignored folder cannot be re-included (as in git).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/result.hpp"

namespace mfserv::images {

class ReleaseIgnore {
 public:
  static ReleaseIgnore parse(std::string_view text);
  // FILE's rules; a missing file means nothing is ignored.
  static Result<ReleaseIgnore> read(const std::string& file);

  // REL_PATH is relative to the plugin folder ("main/app.py"); its parent folders are not
  // ignored (the walk does not enter ignored folders).
  bool ignored(std::string_view rel_path, bool is_dir) const;

 private:
  struct Rule {
    std::vector<std::string> segments;  // "**" matches any number of names
    bool negate = false;
    bool dir_only = false;
  };
  std::vector<Rule> m_rules;
};

}  // namespace mfserv::images
