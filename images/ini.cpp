// The INI reader (see ini.hpp for the configparser rules it follows).
#include "images/ini.hpp"

#include <cctype>
#include <map>
#include <optional>
#include <utility>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

// Splits on "\n", "\r\n" and a lone "\r" (Python's universal newlines).
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || text[i] == '\r') {
      lines.push_back(text.substr(start, i - start));
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
        ++i;
      }
      start = i + 1;
    }
  }
  if (start < text.size()) {
    lines.push_back(text.substr(start));
  }
  return lines;
}

size_t indent_of(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) {
    ++i;
  }
  return i;
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& file) : m_text(text) { m_doc.file = file; }

  IniDocument run() {
    if (starts_with(m_text, "\xEF\xBB\xBF")) {
      m_text.remove_prefix(3);
    }
    int number = 0;
    for (std::string_view line : split_lines(m_text)) {
      ++number;
      parse_line(line, number);
    }
    for (IniEntry& entry : m_doc.entries) {
      // configparser joins the lines then strips the end (trailing blank lines go away).
      entry.value = rtrim(entry.value);
    }
    return std::move(m_doc);
  }

 private:
  static std::string rtrim(const std::string& text) {
    size_t end = text.size();
    while (end > 0 && std::isspace(static_cast<unsigned char>(text[end - 1]))) {
      --end;
    }
    return text.substr(0, end);
  }

  void error(int line, std::string key, std::string message) {
    Diagnostic diagnostic;
    diagnostic.file = m_doc.file;
    diagnostic.line = line;
    diagnostic.key = std::move(key);
    diagnostic.message = std::move(message);
    m_doc.diagnostics.push_back(std::move(diagnostic));
  }

  void parse_line(std::string_view line, int number) {
    std::string value = trim(line);
    if (!value.empty() && (value[0] == '#' || value[0] == ';')) {
      return;  // a full-line comment; it neither ends nor extends a value
    }
    if (value.empty()) {
      if (m_current) {
        ++m_pending_blank_lines;
      }
      return;
    }
    size_t indent = indent_of(line);
    if ((m_current || m_swallow) && indent > m_indent) {
      if (m_current) {
        IniEntry& entry = m_doc.entries[*m_current];
        entry.value += std::string(m_pending_blank_lines + 1, '\n');
        entry.value += value;
      }
      m_pending_blank_lines = 0;
      return;
    }
    m_pending_blank_lines = 0;
    m_current.reset();
    // A bad line's continuation lines are skipped: one mistake, one diagnostic.
    m_swallow = true;
    m_indent = indent;
    if (value[0] == '[') {
      parse_header(value, number);
    } else if (!m_in_section) {
      if (!m_reported_outside) {
        error(number, "", "line outside any section: add a [section] header above it");
        m_reported_outside = true;
      }
    } else {
      parse_option(value, number);
    }
  }

  void parse_header(const std::string& value, int number) {
    // The keys below a bad header are not reported again as being outside any section.
    m_reported_outside = true;
    size_t close = value.rfind(']');
    if (close == std::string::npos || close == 0) {
      m_in_section = false;
      error(number, "", "bad section header '" + value + "': expected [name]");
      return;
    }
    if (close != value.size() - 1) {
      m_in_section = false;
      error(number, "", "text after the section header '" + value + "'");
      return;
    }
    std::string name = trim(std::string_view(value).substr(1, close - 1));
    if (name.empty()) {
      m_in_section = false;
      error(number, "", "empty section name");
      return;
    }
    m_in_section = true;
    m_swallow = false;
    m_reported_outside = false;
    m_section = name;
    auto [it, inserted] = m_section_lines.emplace(name, number);
    if (!inserted) {
      error(number, "",
            "duplicate section [" + name + "] (first at line " + std::to_string(it->second) +
                "): merge the two sections");
      return;
    }
    m_doc.sections.push_back(IniSection{name, m_doc.file, number});
  }

  void parse_option(const std::string& value, int number) {
    size_t separator = value.find_first_of("=:");
    if (separator == std::string::npos) {
      error(number, "", "line without '=' or ':' in [" + m_section + "]: expected key = value");
      return;
    }
    std::string key = to_lower(trim(std::string_view(value).substr(0, separator)));
    if (key.empty()) {
      error(number, "", "a line with no key before '" + std::string(1, value[separator]) + "'");
      return;
    }
    auto [it, inserted] = m_key_lines.emplace(std::make_pair(m_section, key), number);
    if (!inserted) {
      error(number, m_section + "." + key,
            "duplicate key (first set at line " + std::to_string(it->second) + "): keep only one");
      return;
    }
    IniEntry entry;
    entry.section = m_section;
    entry.key = std::move(key);
    entry.value = trim(std::string_view(value).substr(separator + 1));
    entry.file = m_doc.file;
    entry.line = number;
    m_current = m_doc.entries.size();
    m_swallow = false;
    m_doc.entries.push_back(std::move(entry));
  }

  std::string_view m_text;
  IniDocument m_doc;
  bool m_in_section = false;
  std::string m_section;
  std::optional<size_t> m_current;  // the entry a deeper-indented line continues
  bool m_swallow = false;           // continuation lines of a bad line are skipped
  bool m_reported_outside = false;  // "outside any section" is said once per run of lines
  size_t m_indent = 0;              // indentation of the last key or header line
  size_t m_pending_blank_lines = 0;
  std::map<std::string, int> m_section_lines;
  std::map<std::pair<std::string, std::string>, int> m_key_lines;
};

}  // namespace

IniDocument parse_ini(std::string_view text, const std::string& file) {
  return Parser(text, file).run();
}

Result<IniDocument> read_ini(const std::string& path) {
  auto content = read_file(path);
  if (!content) {
    return content.error();
  }
  return parse_ini(*content, path);
}

}  // namespace mfserv::images
