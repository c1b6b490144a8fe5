// Rules and documents shared by `.plugin` build and install (see archive_entries.hpp).
// nlohmann/json exceptions stay in this file: parsing returns Result.
#include "images/archive_entries.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "util/strings.hpp"

namespace mfserv::images::archive_format {

namespace {

using nlohmann::json;

// "a/b/c" → {"a", "b", "c"}; an empty text gives no component.
std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  if (parts.size() == 1 && parts[0].empty()) {
    parts.clear();
  }
  return parts;
}

bool is_hex_sha256(const std::string& text) {
  if (text.size() != 64) {
    return false;
  }
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// A .files.json path: relative to the plugin folder, canonical (same rules as entries).
Result<std::string> manifest_path(std::string_view path) {
  std::string entry = std::string(k_top_folder) + "/" + std::string(path);
  auto relative = plugin_relative_path(entry);
  if (!relative) {
    return relative.error();
  }
  if (relative->empty() || *relative != path) {
    return Error("path " + json(std::string(path)).dump() + " is not a canonical file path");
  }
  return relative;
}

Result<ManifestEntry> parse_entry(const json& item) {
  if (!item.is_object()) {
    return Error("expected an object with path, type, size, mode and sha256, found " + item.dump());
  }
  for (const char* key : {"path", "size", "mode", "sha256"}) {
    if (!item.contains(key)) {
      return Error(item.dump() + " has no \"" + std::string(key) + "\"");
    }
  }
  if (!item["path"].is_string() || !item["mode"].is_string() || !item["sha256"].is_string() ||
      !item["size"].is_number_unsigned()) {
    return Error(item.dump() + ": path, mode and sha256 must be strings and size a number");
  }
  ManifestEntry entry;
  auto path = manifest_path(item["path"].get<std::string>());
  if (!path) {
    return path.error();
  }
  entry.path = *path;
  std::string type = item.value("type", std::string("file"));
  if (type == "file") {
    entry.type = ManifestEntry::Type::File;
  } else if (type == "symlink" && item.contains("target") && item["target"].is_string()) {
    entry.type = ManifestEntry::Type::Symlink;
    entry.target = item["target"].get<std::string>();
  } else {
    return Error(entry.path + ": type " + json(type).dump() +
                 " is not \"file\" or \"symlink\" (with a \"target\")");
  }
  entry.size = item["size"].get<std::uint64_t>();
  std::string mode_text = item["mode"].get<std::string>();
  if (mode_text.empty() || mode_text.size() > 4 ||
      mode_text.find_first_not_of("01234567") != std::string::npos) {
    return Error(entry.path + ": mode " + json(mode_text).dump() + " is not octal like \"0644\"");
  }
  entry.mode = static_cast<unsigned>(std::stoul(mode_text, nullptr, 8));
  entry.sha256 = item["sha256"].get<std::string>();
  if (!is_hex_sha256(entry.sha256)) {
    return Error(entry.path + ": sha256 is not 64 lower-case hex digits");
  }
  return entry;
}

}  // namespace

Result<std::string> plugin_relative_path(std::string_view entry_name) {
  if (entry_name.empty()) {
    return Error("empty entry name");
  }
  if (entry_name.front() == '/') {
    return Error("absolute path");
  }
  std::vector<std::string_view> parts = components(entry_name);
  if (!parts.empty() && parts.back().empty()) {
    parts.pop_back();  // "dir/": a directory entry
  }
  for (std::string_view part : parts) {
    if (part == "..") {
      return Error("'..' component (it would write outside the plugin folder)");
    }
  }
  if (parts.empty() || parts.front() != k_top_folder) {
    return Error("outside " + std::string(k_top_folder) +
                 "/ (a .plugin archive holds one top "
                 "folder, metwork_plugin/)");
  }
  std::string relative;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].empty() || parts[i] == ".") {
      return Error("empty or '.' component (not a canonical path)");
    }
    if (!relative.empty()) {
      relative += '/';
    }
    relative += parts[i];
  }
  return relative;
}

Status check_symlink_target(std::string_view rel_path, std::string_view target) {
  if (target.empty()) {
    return Error("empty link target");
  }
  if (target.front() == '/') {
    return Error("link to an absolute path (" + std::string(target) +
                 ") leads out of the plugin folder");
  }
  // Depth of the folder holding the link: "a/b/link" is in "a/b", depth 2.
  size_t depth = components(rel_path).size();
  depth = depth > 0 ? depth - 1 : 0;
  size_t climbs = 0;
  bool named = false;
  for (std::string_view part : components(target)) {
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      if (named) {
        return Error("link target " + std::string(target) +
                     " has '..' after a name: only leading '../' can be checked to stay "
                     "inside the plugin folder");
      }
      ++climbs;
      continue;
    }
    named = true;
  }
  if (climbs > depth) {
    return Error("link target " + std::string(target) + " leads out of the plugin folder");
  }
  return {};
}

std::string render_files_json(const std::vector<ManifestEntry>& entries) {
  json list = json::array();
  for (const ManifestEntry& entry : entries) {
    json item = {{"path", entry.path},
                 {"type", entry.type == ManifestEntry::Type::Symlink ? "symlink" : "file"},
                 {"size", entry.size},
                 {"mode", format_mode(entry.mode)},
                 {"sha256", entry.sha256}};
    if (entry.type == ManifestEntry::Type::Symlink) {
      item["target"] = entry.target;
    }
    list.push_back(std::move(item));
  }
  return list.dump(2) + "\n";
}

Result<Manifest> parse_files_json(std::string_view text) {
  Manifest manifest;
  std::set<std::string> seen;
  try {
    json document = json::parse(text);
    if (!document.is_array()) {
      return Error("expected a JSON list of files");
    }
    for (const json& item : document) {
      ManifestEntry entry;
      if (item.is_string()) {
        // MFSERV: "metwork_plugin/PATH".
        manifest.legacy = true;
        auto relative = plugin_relative_path(item.get<std::string>());
        if (!relative || relative->empty()) {
          return Error(
              "entry " + item.dump() + ": " +
              (relative ? std::string("names the top folder") : relative.error().message()));
        }
        entry.path = *relative;
        entry.type = ManifestEntry::Type::Unknown;
      } else {
        auto parsed = parse_entry(item);
        if (!parsed) {
          return parsed.error();
        }
        entry = std::move(*parsed);
      }
      if (!seen.insert(entry.path).second) {
        return Error(entry.path + " is listed twice");
      }
      manifest.entries.push_back(std::move(entry));
    }
    bool mixed = manifest.legacy && std::any_of(manifest.entries.begin(), manifest.entries.end(),
                                                [](const ManifestEntry& e) {
                                                  return e.type != ManifestEntry::Type::Unknown;
                                                });
    if (mixed) {
      return Error("mixes MFSERV path strings and mfserv file objects");
    }
  } catch (const json::exception& e) {
    return Error(std::string("not valid: ") + e.what());
  }
  return manifest;
}

std::string render_metadata_json(const Metadata& metadata) {
  json document = {{"name", metadata.name},
                   {"version", metadata.version},
                   {"release", metadata.release},
                   {"build_host", metadata.build_host},
                   {"build_date", metadata.build_date},
                   {"size", metadata.size},
                   {"summary", metadata.summary},
                   {"license", metadata.license},
                   {"packager", metadata.packager},
                   {"vendor", metadata.vendor},
                   {"url", metadata.url}};
  return document.dump(4) + "\n";
}

Result<Metadata> parse_metadata_json(std::string_view text) {
  try {
    json document = json::parse(text);
    if (!document.is_object()) {
      return Error("expected a JSON object");
    }
    auto field = [&document](const char* key) {
      auto it = document.find(key);
      if (it == document.end() || it->is_null()) {
        return std::string();
      }
      return it->is_string() ? it->get<std::string>() : it->dump();
    };
    Metadata metadata;
    metadata.name = field("name");
    metadata.version = field("version");
    metadata.release = field("release");
    metadata.build_host = field("build_host");
    metadata.build_date = field("build_date");
    metadata.size = field("size");
    metadata.summary = field("summary");
    metadata.license = field("license");
    metadata.packager = field("packager");
    metadata.vendor = field("vendor");
    metadata.url = field("url");
    return metadata;
  } catch (const json::exception& e) {
    return Error(std::string("not valid: ") + e.what());
  }
}

std::string Sha256::hex_digest() {
  std::uint8_t digest[SHA256_DIGEST_SIZE];
  sha256_digest(&m_context, sizeof digest, digest);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof digest);
  for (std::uint8_t byte : digest) {
    out += k_hex[byte >> 4];
    out += k_hex[byte & 0xf];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 hash;
  hash.update(data.data(), data.size());
  return hash.hex_digest();
}

std::string format_mode(unsigned mode) {
  std::string octal;
  for (int shift = 9; shift >= 0; shift -= 3) {
    octal += static_cast<char>('0' + ((mode >> shift) & 7));
  }
  return octal;
}

void ArchiveReadDeleter::operator()(archive* handle) const {
  archive_read_free(handle);
}
void ArchiveWriteDeleter::operator()(archive* handle) const {
  archive_write_free(handle);
}
void ArchiveEntryDeleter::operator()(archive_entry* entry) const {
  archive_entry_free(entry);
}

std::string archive_message(archive* handle) {
  const char* message = handle ? archive_error_string(handle) : nullptr;
  return message ? message : "unknown error";
}

}  // namespace mfserv::images::archive_format
