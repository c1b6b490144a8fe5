// `.releaseignore` rules (see archive_ignore.hpp).
#include "images/archive_ignore.hpp"

#include <fnmatch.h>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

std::vector<std::string> split_segments(std::string_view path) {
  std::vector<std::string> segments;
  for (std::string& part : split(path, '/')) {
    if (!part.empty()) {
      segments.push_back(std::move(part));
    }
  }
  return segments;
}

// PATTERN[p..] matches NAMES[n..]; '**' takes zero or more names (at least one when it ends
// the pattern: "dir/**" is what is inside dir, not dir itself).
bool match_from(const std::vector<std::string>& pattern, size_t p,
                const std::vector<std::string>& names, size_t n) {
  if (p == pattern.size()) {
    return n == names.size();
  }
  if (pattern[p] == "**") {
    size_t first = p + 1 == pattern.size() ? n + 1 : n;
    for (size_t skip = first; skip <= names.size(); ++skip) {
      if (match_from(pattern, p + 1, names, skip)) {
        return true;
      }
    }
    return false;
  }
  if (n == names.size() || ::fnmatch(pattern[p].c_str(), names[n].c_str(), 0) != 0) {
    return false;
  }
  return match_from(pattern, p + 1, names, n + 1);
}

}  // namespace

ReleaseIgnore ReleaseIgnore::parse(std::string_view text) {
  ReleaseIgnore ignore;
  for (const std::string& raw : split(text, '\n')) {
    std::string line = raw;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.pop_back();
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    Rule rule;
    if (line.front() == '!') {
      rule.negate = true;
      line.erase(0, 1);
    } else if (line.front() == '\\') {
      line.erase(0, 1);  // "\#name", "\!name": a literal first character
    }
    if (!line.empty() && line.back() == '/') {
      rule.dir_only = true;
      while (!line.empty() && line.back() == '/') {
        line.pop_back();
      }
    }
    if (line.empty()) {
      continue;
    }
    // Without a '/' (a trailing one removed above), a pattern names files at any depth.
    bool anchored = line.find('/') != std::string::npos;
    rule.segments = split_segments(line);
    if (rule.segments.empty()) {
      continue;
    }
    if (!anchored) {
      rule.segments.insert(rule.segments.begin(), "**");
    }
    ignore.m_rules.push_back(std::move(rule));
  }
  return ignore;
}

Result<ReleaseIgnore> ReleaseIgnore::read(const std::string& file) {
  if (!path_exists(file)) {
    return ReleaseIgnore();
  }
  auto text = read_file(file);
  if (!text) {
    return text.error();
  }
  return parse(*text);
}

bool ReleaseIgnore::ignored(std::string_view rel_path, bool is_dir) const {
  std::vector<std::string> names = split_segments(rel_path);
  bool result = false;
  for (const Rule& rule : m_rules) {
    if (rule.dir_only && !is_dir) {
      continue;
    }
    if (match_from(rule.segments, 0, names, 0)) {
      result = !rule.negate;
    }
  }
  return result;
}

}  // namespace mfserv::images
