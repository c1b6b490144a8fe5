// What a `.plugin` archive may hold, shared by the builder and the installer so that the
// builder never produces an archive the installer would refuse: entry path rules, the symlink
// target rule, the `.files.json` and `.metadata.json` documents, SHA-256 (nettle), and owners
// for libarchive handles.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nettle/sha2.h>

#include "util/result.hpp"

struct archive;
struct archive_entry;

namespace mfserv::images::archive_format {

// MFSERV's layout: one top folder holding the plugin, plus two documents written by the build.
constexpr std::string_view k_top_folder = "metwork_plugin";
constexpr std::string_view k_files_json = ".files.json";
constexpr std::string_view k_metadata_json = ".metadata.json";
constexpr std::string_view k_suffix = ".metwork.mfserv.plugin";

// An archive entry name → the path relative to the plugin folder ("" for the top folder
// itself, no trailing '/'). Refused, with the reason as the message: absolute paths, '..',
// '.' or empty components, and anything outside metwork_plugin/.
Result<std::string> plugin_relative_path(std::string_view entry_name);

// A symbolic link at REL_PATH (relative to the plugin folder) pointing at TARGET stays in the
// plugin folder: TARGET is relative, its '..' components all come first (after a name, '..'
// would be resolved through whatever that name is, possibly another link), and they climb no
// higher than the plugin folder.
Status check_symlink_target(std::string_view rel_path, std::string_view target);

// One file of `.files.json`.
struct ManifestEntry {
  enum class Type { File, Symlink, Unknown };  // Unknown: MFSERV's list of paths
  std::string path;                            // relative to the plugin folder
  Type type = Type::File;
  std::uint64_t size = 0;  // bytes; for a link, the length of its target
  unsigned mode = 0;       // permission bits
  std::string sha256;      // hex; for a link, of its target
  std::string target;      // links only
};

struct Manifest {
  std::vector<ManifestEntry> entries;
  // MFSERV's `.files.json` is a list of "metwork_plugin/PATH" strings: paths only, nothing
  // to verify the content against.
  bool legacy = false;
};

std::string render_files_json(const std::vector<ManifestEntry>& entries);
Result<Manifest> parse_files_json(std::string_view text);

// `.metadata.json`: MFSERV's fields plus the plugin's name. Values are strings, as in MFSERV.
struct Metadata {
  std::string name;
  std::string version;
  std::string release;
  std::string build_host;
  std::string build_date;  // ISO 8601, UTC: 2024-05-01T12:00:00Z
  std::string size;        // total bytes of the regular files
  std::string summary;
  std::string license;
  std::string packager;
  std::string vendor;
  std::string url;
};

std::string render_metadata_json(const Metadata& metadata);
Result<Metadata> parse_metadata_json(std::string_view text);

// Streaming SHA-256 (nettle, which libarchive already links).
class Sha256 {
 public:
  Sha256() { sha256_init(&m_context); }
  void update(const void* data, size_t size) {
    sha256_update(&m_context, size, static_cast<const std::uint8_t*>(data));
  }
  std::string hex_digest();

 private:
  sha256_ctx m_context{};
};

std::string sha256_hex(std::string_view data);
std::string format_mode(unsigned mode);  // "0644"

struct ArchiveReadDeleter {
  void operator()(archive* handle) const;
};
struct ArchiveWriteDeleter {
  void operator()(archive* handle) const;
};
struct ArchiveEntryDeleter {
  void operator()(archive_entry* entry) const;
};
using ArchiveReader = std::unique_ptr<archive, ArchiveReadDeleter>;
using ArchiveWriter = std::unique_ptr<archive, ArchiveWriteDeleter>;
using ArchiveEntry = std::unique_ptr<archive_entry, ArchiveEntryDeleter>;

// libarchive's message for the last error on HANDLE, or "unknown error".
std::string archive_message(archive* handle);

}  // namespace mfserv::images::archive_format
