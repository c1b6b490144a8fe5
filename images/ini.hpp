// A small INI reader with Python configparser semantics, keeping the file and line of
// everything it reads.
//
// Why hand-written: MFSERV plugins are read by Python's configparser, and the distribution's
// C reader does not behave the same. Debian 12's libinih is compiled with INI_MAX_LINE=200
// (long `_cmd_and_args` lines would be cut) and INI_HANDLER_LINENO=0 (errors could not name
// their line); it also takes inline comments and has no duplicate checks.
//
// Semantics (configparser defaults, strict mode):
// - `[section]` headers; section names are case-sensitive (surrounding blanks are trimmed).
// - `key = value` or `key: value`, split on the first '=' or ':'; keys are lower-cased and
//   trimmed, values trimmed; any line length.
// - Full-line comments start with '#' or ';' (after optional blanks); there are NO inline
//   comments: `a = b ; c` has the value `b ; c`.
// - A line indented deeper than its key line continues the value: "\n" + the stripped text.
//   Blank lines inside a continued value are kept, trailing ones dropped.
// - No interpolation (`%(x)s` stays as written) and no [DEFAULT] inheritance.
// Syntax errors (a line outside any section, a line without '=' or ':', an empty key,
// a duplicate section or key) are returned as diagnostics and reading goes on.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "images/plugin.hpp"
#include "util/result.hpp"

namespace mfserv::images {

struct IniSection {
  std::string name;
  std::string file;
  int line = 0;  // of the header
};

struct IniEntry {
  std::string section;
  std::string key;    // lower case
  std::string value;  // trimmed; continuation lines joined with '\n'
  std::string file;
  int line = 0;  // of the key
};

struct IniDocument {
  std::string file;
  std::vector<IniSection> sections;  // in file order, each once
  std::vector<IniEntry> entries;     // in file order; a duplicate key keeps the first
  std::vector<Diagnostic> diagnostics;
};

// Parses TEXT; FILE only names where it came from in entries and diagnostics.
IniDocument parse_ini(std::string_view text, const std::string& file);

// Reads and parses PATH; an Error only when the file cannot be read.
Result<IniDocument> read_ini(const std::string& path);

}  // namespace mfserv::images
