// Override layering (see layers.hpp).
#include "images/layers.hpp"

#include <algorithm>
#include <utility>

#include "images/ini.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

using Severity = Diagnostic::Severity;

LayeredSection* find_section(std::vector<LayeredSection>& sections, const std::string& name) {
  auto it = std::find_if(sections.begin(), sections.end(),
                         [&](const LayeredSection& s) { return s.name == name; });
  return it == sections.end() ? nullptr : &*it;
}

void apply_override(const IniDocument& doc, std::vector<LayeredSection>& sections,
                    std::vector<Diagnostic>& diagnostics) {
  for (const IniSection& header : doc.sections) {
    if (!find_section(sections, header.name)) {
      diagnostics.push_back(make_diagnostic(
          Severity::Error, doc.file, header.line, "",
          "section [" + header.name +
              "] is not in the plugin's config.ini: an override may only change keys of "
              "sections the plugin has"));
    }
  }
  for (const IniEntry& entry : doc.entries) {
    LayeredSection* section = find_section(sections, entry.section);
    if (!section) {
      continue;  // reported once, at the section's header
    }
    if (starts_with(entry.key, "_")) {
      diagnostics.push_back(make_diagnostic(
          Severity::Error, doc.file, entry.line, entry.section + "." + entry.key,
          "cannot be overridden: keys starting with '_' are private to the plugin's "
          "config.ini"));
      continue;
    }
    LayeredValue value{entry.key, entry.value, entry.file, entry.line};
    auto it = std::find_if(section->values.begin(), section->values.end(),
                           [&](const LayeredValue& v) { return v.key == entry.key; });
    if (it != section->values.end()) {
      *it = std::move(value);
    } else {
      section->values.push_back(std::move(value));
    }
  }
}

}  // namespace

const LayeredValue* LayeredSection::find(std::string_view key) const {
  for (const LayeredValue& value : values) {
    if (value.key == key) {
      return &value;
    }
  }
  return nullptr;
}

std::vector<LayeredSection> read_layers(const std::string& config_ini,
                                        const std::vector<std::string>& override_files,
                                        std::vector<Diagnostic>& diagnostics) {
  std::vector<LayeredSection> sections;
  if (!path_exists(config_ini)) {
    diagnostics.push_back(make_diagnostic(Severity::Error, config_ini, 0, "",
                                          "config.ini is missing: every plugin needs one"));
    return sections;
  }
  auto base = read_ini(config_ini);
  if (!base) {
    diagnostics.push_back(
        make_diagnostic(Severity::Error, config_ini, 0, "", base.error().describe()));
    return sections;
  }
  diagnostics.insert(diagnostics.end(), base->diagnostics.begin(), base->diagnostics.end());
  for (const IniSection& header : base->sections) {
    sections.push_back(LayeredSection{header.name, header.file, header.line, {}});
  }
  for (const IniEntry& entry : base->entries) {
    find_section(sections, entry.section)
        ->values.push_back(LayeredValue{entry.key, entry.value, entry.file, entry.line});
  }
  for (const std::string& path : override_files) {
    if (!path_exists(path)) {
      continue;
    }
    auto layer = read_ini(path);
    if (!layer) {
      diagnostics.push_back(
          make_diagnostic(Severity::Error, path, 0, "", layer.error().describe()));
      continue;
    }
    diagnostics.insert(diagnostics.end(), layer->diagnostics.begin(), layer->diagnostics.end());
    apply_override(*layer, sections, diagnostics);
  }
  return sections;
}

Diagnostic make_diagnostic(Diagnostic::Severity severity, std::string file, int line,
                           std::string key, std::string message) {
  Diagnostic diagnostic;
  diagnostic.severity = severity;
  diagnostic.file = std::move(file);
  diagnostic.line = line;
  diagnostic.key = std::move(key);
  diagnostic.message = std::move(message);
  return diagnostic;
}

}  // namespace mfserv::images
