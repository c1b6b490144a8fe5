// `plugin install` and `plugin uninstall` (see archive.hpp). An archive is untrusted input
// (C16 in the project's failure cases): every entry is checked before anything is written,
// files are created only below a folder we made, through openat(2) with O_NOFOLLOW on every
// component, and the result must match `.files.json` and load as a plugin before it replaces
// anything. Steps of install:
//   lock → extract into PLUGINS_DIR/.install-XXXXXX/metwork_plugin → verify against
//   .files.json → name it → load_plugin → exchange with PLUGINS_DIR/NAME (or rename into
//   place) → delete what was replaced.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "images/archive.hpp"
#include "images/archive_entries.hpp"
#include "images/plugin_dir.hpp"
#include "images/values.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/unique_fd.hpp"

namespace mfserv::images {

namespace {

namespace af = archive_format;

constexpr std::size_t k_chunk = 64 * 1024;
constexpr std::uint64_t k_max_document = 64ULL << 20;  // .files.json, .metadata.json
// What an archive may unpack to, whatever the space left: a plugin is code and assets, and a
// few megabytes of gzip'd zeros must not fill the disk before .files.json is even read.
constexpr std::uint64_t k_max_unpacked = 4ULL << 30;
constexpr std::string_view k_install_prefix = ".install-";
constexpr std::string_view k_uninstall_prefix = ".uninstall-";

// Holds PLUGINS_DIR for one install or uninstall (flock(2), released on close).
Result<UniqueFd> lock_plugins(const std::string& lock_path) {
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) {
    return Error::from_errno("opening the plugins lock " + lock_path);
  }
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return Error::from_errno("locking " + lock_path);
    }
  }
  return fd;
}

Status remove_tree(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);  // does not follow links
  if (error) {
    return Error("removing " + path + ": " + error.message(), error.value());
  }
  return {};
}

// Under the lock, a hidden staging folder can only be left over by a crash.
void remove_stale_staging(const std::string& plugins_dir) {
  for (const std::string& name : list_dir(plugins_dir)) {
    if (starts_with(name, k_install_prefix) || starts_with(name, k_uninstall_prefix)) {
      (void)remove_tree(plugins_dir + "/" + name);
    }
  }
}

// A hidden folder in PLUGINS_DIR (same file system, so renames out of it are atomic; the
// leading '.' makes plugin loaders skip it), removed with its content unless released.
class Staging {
 public:
  static Result<Staging> create(const std::string& parent, std::string_view prefix) {
    std::string path = parent + "/" + std::string(prefix) + "XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) {
      return Error::from_errno("creating a temporary folder in " + parent);
    }
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      Error error = Error::from_errno("opening " + path);
      ::rmdir(path.c_str());
      return error;
    }
    return Staging(std::move(path), std::move(fd));
  }
  Staging(Staging&& other) noexcept
      : m_path(std::exchange(other.m_path, std::string())), m_fd(std::move(other.m_fd)) {}
  Staging& operator=(Staging&&) = delete;
  ~Staging() {
    if (!m_path.empty()) {
      (void)remove_tree(m_path);
    }
  }
  const std::string& path() const { return m_path; }
  int fd() const { return m_fd.get(); }
  // Removes it now, reporting a failure.
  Status remove() {
    m_fd.reset();
    std::string path = std::exchange(m_path, std::string());
    return remove_tree(path);
  }

 private:
  Staging(std::string path, UniqueFd fd) : m_path(std::move(path)), m_fd(std::move(fd)) {}
  std::string m_path;
  UniqueFd m_fd;
};

std::string type_name(mode_t type) {
  switch (type) {
    case AE_IFCHR:
      return "a character device";
    case AE_IFBLK:
      return "a block device";
    case AE_IFIFO:
      return "a fifo";
    case AE_IFSOCK:
      return "a socket";
    default:
      return "of an unknown type";
  }
}

struct Extracted {
  std::string rel;
  bool symlink = false;
  std::uint64_t size = 0;
  unsigned mode = 0;
  std::string sha256;
  std::string target;
};

// Extracts one archive into a folder, refusing what C16 lists. Errors name the archive and
// the entry.
class Extractor {
 public:
  Extractor(std::string file, int root_fd) : m_file(std::move(file)), m_root_fd(root_fd) {}

  Status run(archive* reader) {
    for (;;) {
      archive_entry* entry = nullptr;
      int rc = archive_read_next_header(reader, &entry);
      if (rc == ARCHIVE_EOF) {
        break;
      }
      if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
        return unreadable(reader);
      }
      if (auto status = extract(reader, entry); !status) {
        return status;
      }
    }
    if (!m_seen_root && m_seen.empty()) {
      return Error(m_file + " holds no metwork_plugin/ folder: it is not a .plugin archive");
    }
    return apply_folder_modes();
  }

  const std::vector<Extracted>& files() const { return m_files; }
  const std::optional<std::string>& files_json() const { return m_files_json; }
  const std::optional<std::string>& metadata_json() const { return m_metadata_json; }

  Error refuse(const std::string& entry, const std::string& reason) const {
    return Error(m_file + ": entry " + quote_value(entry) + ": " + reason +
                 "; the archive is refused and nothing was changed");
  }

 private:
  Error unreadable(archive* reader) const {
    return Error(m_file + " is not a readable .plugin archive (tar.gz): " +
                 af::archive_message(reader) + "; build it again with `mfserv plugin build`");
  }

  Status extract(archive* reader, archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr) {
      return refuse("?", "its name cannot be read");
    }
    const std::string name = raw_name;
    auto rel = af::plugin_relative_path(name);
    if (!rel) {
      return refuse(name, rel.error().message());
    }
    if (archive_entry_hardlink(entry) != nullptr) {
      return refuse(name, std::string("hard link to ") +
                              quote_value(archive_entry_hardlink(entry)) +
                              " (hard links are not accepted)");
    }
    const mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      return refuse(name,
                    "is " + type_name(type) + " (only files, folders and links are accepted)");
    }
    if (rel->empty()) {
      if (type != AE_IFDIR || m_seen_root) {
        return refuse(name, m_seen_root ? "appears twice" : "metwork_plugin must be a folder");
      }
      m_seen_root = true;
      m_root_mode = archive_entry_perm(entry) & 0777;
      return {};
    }
    if (!m_seen.insert(*rel).second) {
      return refuse(name, "appears twice");
    }
    const unsigned mode = archive_entry_perm(entry) & 0777;  // never setuid, setgid, sticky
    const bool is_document = *rel == af::k_files_json || *rel == af::k_metadata_json;
    if (is_document && type != AE_IFREG) {
      return refuse(name, "must be a regular file");
    }

    std::vector<std::string> parts = split(*rel, '/');
    const std::string base = parts.back();
    parts.pop_back();
    auto parent = open_parent(name, parts);
    if (!parent) {
      return parent.error();
    }
    if (type == AE_IFDIR) {
      return make_folder(name, parent->get(), base, *rel, mode);
    }
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (target == nullptr) {
        return refuse(name, "link without a readable target");
      }
      if (auto status = af::check_symlink_target(*rel, target); !status) {
        return refuse(name, status.error().message());
      }
      if (::symlinkat(target, parent->get(), base.c_str()) != 0) {
        return Error::from_errno("extracting " + name).with_context(m_file);
      }
      Extracted link;
      link.rel = *rel;
      link.symlink = true;
      link.target = target;
      link.size = link.target.size();
      link.mode = 0777;
      link.sha256 = af::sha256_hex(link.target);
      m_files.push_back(std::move(link));
      return {};
    }
    return write_file(reader, entry, name, parent->get(), base, *rel, mode);
  }

  // Opens the folder holding the entry, creating missing folders; never through a link.
  Result<UniqueFd> open_parent(const std::string& name, const std::vector<std::string>& parts) {
    UniqueFd current(::fcntl(m_root_fd, F_DUPFD_CLOEXEC, 0));
    if (!current) {
      return Error::from_errno("duplicating a folder descriptor");
    }
    std::string so_far;
    for (const std::string& part : parts) {
      so_far += (so_far.empty() ? "" : "/") + part;
      if (::mkdirat(current.get(), part.c_str(), 0700) == 0) {
        m_implicit_folders.insert(so_far);
      } else if (errno != EEXIST) {
        return Error::from_errno("extracting " + name).with_context(m_file);
      }
      UniqueFd next(
          ::openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next) {
        if (errno == ELOOP || errno == ENOTDIR) {
          return refuse(name, "its folder " + quote_value(so_far) +
                                  " is a link or a file in this archive (writing through it is "
                                  "not accepted)");
        }
        return Error::from_errno("extracting " + name).with_context(m_file);
      }
      current = std::move(next);
    }
    return current;
  }

  Status make_folder(const std::string& name, int parent_fd, const std::string& base,
                     const std::string& rel, unsigned mode) {
    if (::mkdirat(parent_fd, base.c_str(), 0700) != 0) {
      struct stat st {};
      bool implicit_folder = errno == EEXIST && m_implicit_folders.contains(rel) &&
                             ::fstatat(parent_fd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                             S_ISDIR(st.st_mode);
      if (!implicit_folder) {
        return Error::from_errno("extracting " + name).with_context(m_file);
      }
    }
    m_folder_modes[rel] = mode;
    return {};
  }

  Status write_file(archive* reader, archive_entry* entry, const std::string& name, int parent_fd,
                    const std::string& base, const std::string& rel, unsigned mode) {
    const bool keep = rel == af::k_files_json || rel == af::k_metadata_json;
    const auto expected = static_cast<std::uint64_t>(archive_entry_size(entry));
    if (keep && expected > k_max_document) {
      return refuse(name, "is larger than " + std::to_string(k_max_document >> 20) + " MiB");
    }
    UniqueFd fd(::openat(parent_fd, base.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
      return Error::from_errno("extracting " + name).with_context(m_file);
    }
    af::Sha256 hash;
    std::string kept;
    std::vector<char> buffer(k_chunk);
    std::uint64_t done = 0;
    for (;;) {
      la_ssize_t n = archive_read_data(reader, buffer.data(), buffer.size());
      if (n < 0) {
        return unreadable(reader);
      }
      if (n == 0) {
        break;
      }
      auto count = static_cast<std::size_t>(n);
      done += count;
      if (done > expected) {
        return refuse(name, "holds more data than its header says");
      }
      hash.update(buffer.data(), count);
      if (keep) {
        kept.append(buffer.data(), count);
      }
      for (std::size_t written = 0; written < count;) {
        ssize_t w = ::write(fd.get(), buffer.data() + written, count - written);
        if (w < 0 && errno == EINTR) {
          continue;
        }
        if (w < 0) {
          return Error::from_errno("extracting " + name).with_context(m_file);
        }
        written += static_cast<std::size_t>(w);
      }
    }
    if (done != expected) {
      return refuse(name, "is truncated");
    }
    if (::fchmod(fd.get(), mode) != 0) {
      return Error::from_errno("setting the mode of " + name).with_context(m_file);
    }
    if (rel == af::k_files_json) {
      m_files_json = std::move(kept);
      return {};  // not listed in itself
    }
    if (rel == af::k_metadata_json) {
      m_metadata_json = std::move(kept);
    }
    Extracted file;
    file.rel = rel;
    file.size = done;
    file.mode = mode;
    file.sha256 = hash.hex_digest();
    m_files.push_back(std::move(file));
    return {};
  }

  // Last, as tar(1) does: a read-only folder would refuse its own content. The owner keeps
  // rwx so that the folder can always be replaced and removed.
  Status apply_folder_modes() {
    for (const auto& [rel, mode] : m_folder_modes) {
      if (::fchmodat(m_root_fd, rel.c_str(), mode | 0700, 0) != 0) {
        return Error::from_errno("setting the mode of " + rel).with_context(m_file);
      }
    }
    for (const std::string& rel : m_implicit_folders) {
      if (!m_folder_modes.contains(rel) && ::fchmodat(m_root_fd, rel.c_str(), 0755, 0) != 0) {
        return Error::from_errno("setting the mode of " + rel).with_context(m_file);
      }
    }
    if (::fchmod(m_root_fd, (m_seen_root ? m_root_mode : 0755) | 0700) != 0) {
      return Error::from_errno("setting the mode of the plugin folder").with_context(m_file);
    }
    return {};
  }

  std::string m_file;
  int m_root_fd;
  bool m_seen_root = false;
  unsigned m_root_mode = 0755;
  std::set<std::string> m_seen;
  std::set<std::string> m_implicit_folders;
  std::map<std::string, unsigned> m_folder_modes;
  std::vector<Extracted> m_files;
  std::optional<std::string> m_files_json;
  std::optional<std::string> m_metadata_json;
};

std::string entry_name(const std::string& rel) {
  return std::string(af::k_top_folder) + "/" + rel;
}

// Every extracted file and link against .files.json, and .files.json against the archive.
Status verify(const Extractor& extractor, const af::Manifest& manifest) {
  std::map<std::string, const af::ManifestEntry*> listed;
  for (const af::ManifestEntry& entry : manifest.entries) {
    listed.emplace(entry.path, &entry);
  }
  std::set<std::string> found;
  for (const Extracted& file : extractor.files()) {
    const std::string name = entry_name(file.rel);
    auto it = listed.find(file.rel);
    if (it == listed.end()) {
      if (manifest.legacy && (file.symlink || file.rel == af::k_metadata_json)) {
        continue;  // MFSERV lists neither links to folders nor its documents
      }
      return extractor.refuse(name, "is not listed in .files.json");
    }
    found.insert(file.rel);
    const af::ManifestEntry& entry = *it->second;
    if (manifest.legacy) {
      continue;
    }
    const bool listed_link = entry.type == af::ManifestEntry::Type::Symlink;
    if (listed_link != file.symlink) {
      return extractor.refuse(name, std::string("is a ") + (file.symlink ? "link" : "file") +
                                        " but .files.json says it is a " +
                                        (listed_link ? "link" : "file"));
    }
    if (file.symlink) {
      if (entry.target != file.target) {
        return extractor.refuse(name, "points to " + quote_value(file.target) +
                                          " but .files.json says " + quote_value(entry.target));
      }
      continue;
    }
    if (entry.size != file.size) {
      return extractor.refuse(name, "has " + std::to_string(file.size) +
                                        " bytes but .files.json "
                                        "says " +
                                        std::to_string(entry.size) +
                                        " (the archive is corrupt or was altered)");
    }
    if (entry.sha256 != file.sha256) {
      return extractor.refuse(name,
                              "its sha256 differs from .files.json (the archive is corrupt "
                              "or was altered)");
    }
    if (entry.mode != file.mode) {
      return extractor.refuse(name, "has mode " + af::format_mode(file.mode) +
                                        " but .files.json says " + af::format_mode(entry.mode));
    }
  }
  for (const af::ManifestEntry& entry : manifest.entries) {
    if (!found.contains(entry.path)) {
      return extractor.refuse(entry_name(entry.path),
                              "is listed in .files.json but missing from the archive");
    }
  }
  return {};
}

// The plugin's name: `.layerapi2_label` (MFSERV) and `.metadata.json` must agree; at least
// one must say it.
Result<std::string> plugin_name(const std::string& file, const std::string& extracted,
                                const af::Metadata& metadata) {
  std::optional<std::string> label_name;
  if (path_exists(extracted + "/.layerapi2_label")) {
    std::vector<Diagnostic> diagnostics;
    label_name = read_plugin_name(extracted, diagnostics);
    if (!label_name) {
      std::string why = diagnostics.empty() ? "unreadable" : diagnostics.front().message;
      return Error(file + ": metwork_plugin/.layerapi2_label: " + why +
                   "; the archive is refused and nothing was changed");
    }
  }
  if (label_name && !metadata.name.empty() && *label_name != metadata.name) {
    return Error(file + ": .layerapi2_label names the plugin " + *label_name +
                 " but .metadata.json names it " + metadata.name +
                 "; the archive is refused and nothing was changed");
  }
  std::string name = label_name ? *label_name : metadata.name;
  if (name.empty()) {
    return Error(file +
                 " does not say the plugin's name (no .layerapi2_label and no name in "
                 ".metadata.json): build it again with `mfserv plugin build`");
  }
  if (auto status = check_plugin_name(name); !status) {
    return Error(file + ": the plugin name " + quote_value(name) +
                 " is not allowed: " + status.error().message());
  }
  return name;
}

InstalledPlugin describe_installed(const std::string& path, const std::string& name,
                                   const LoadOptions& options) {
  InstalledPlugin item;
  item.name = name;
  item.dev_link = is_symlink(path);
  PluginLoad load = load_plugin(path, options);
  if (load.plugin) {
    item.version = load.plugin->version;
    item.release = load.plugin->release;
    item.home = load.plugin->dir;
  } else {
    auto home = real_path(path);
    item.home = home ? *home : path;
  }
  return item;
}

bool unsupported(int error) {
  return error == EINVAL || error == ENOSYS || error == EOPNOTSUPP;
}

// Puts FROM (a folder in STAGING) at TO. TO, when it exists, is replaced in one
// renameat2(RENAME_EXCHANGE) and ends up in STAGING (deleted with it); where the file system
// lacks the exchange, it is renamed aside first and restored if the second rename fails.
Status put_in_place(const Staging& staging, const std::string& from, const std::string& to,
                    bool replace) {
  const std::string source = staging.path() + "/" + from;
  if (!replace) {
    if (::renameat2(AT_FDCWD, source.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
      return {};
    }
    if (!unsupported(errno)) {
      return Error::from_errno("renaming " + source + " to " + to);
    }
    if (path_exists(to)) {
      return Error(to + " appeared during the install: try again", EEXIST);
    }
    if (::rename(source.c_str(), to.c_str()) != 0) {
      return Error::from_errno("renaming " + source + " to " + to);
    }
    return {};
  }
  if (::renameat2(AT_FDCWD, source.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
    return {};
  }
  if (!unsupported(errno)) {
    return Error::from_errno("exchanging " + source + " and " + to);
  }
  const std::string aside = staging.path() + "/previous";
  if (::rename(to.c_str(), aside.c_str()) != 0) {
    return Error::from_errno("moving " + to + " aside");
  }
  if (::rename(source.c_str(), to.c_str()) != 0) {
    Error error = Error::from_errno("renaming " + source + " to " + to);
    if (::rename(aside.c_str(), to.c_str()) != 0) {
      return error.with_context("the previous version is kept in " + aside +
                                " (restoring it failed too)");
    }
    return error;
  }
  return {};
}

Result<af::ArchiveReader> open_reader(const std::string& file, int fd) {
  af::ArchiveReader reader(archive_read_new());
  if (!reader) {
    return Error("creating an archive reader", ENOMEM);
  }
  // tar.gz only: what `plugin build` and MFSERV write; nothing else is parsed.
  if (archive_read_support_filter_gzip(reader.get()) != ARCHIVE_OK ||
      archive_read_support_format_tar(reader.get()) != ARCHIVE_OK ||
      archive_read_open_fd(reader.get(), fd, k_chunk) != ARCHIVE_OK) {
    return Error(
        file + " is not a readable .plugin archive (tar.gz): " + af::archive_message(reader.get()));
  }
  return reader;
}

// First pass, headers only (nothing is written): the sizes the entries declare, which the
// extraction then holds them to, must fit under k_max_unpacked and in the space left.
Status check_unpacked_size(const std::string& file, int fd, const std::string& plugins_dir) {
  auto opened = open_reader(file, fd);
  if (!opened) {
    return opened.error();
  }
  af::ArchiveReader reader = std::move(*opened);
  std::uint64_t limit = k_max_unpacked;
  std::string why = "the limit of " + std::to_string(k_max_unpacked >> 30) + " GiB";
  struct statvfs space {};
  if (::statvfs(plugins_dir.c_str(), &space) == 0) {
    std::uint64_t available = static_cast<std::uint64_t>(space.f_bavail) * space.f_frsize;
    if (available < limit) {
      limit = available;
      why = "the " + std::to_string(available >> 20) + " MiB free in " + plugins_dir;
    }
  }
  std::uint64_t total = 0;
  for (;;) {
    archive_entry* entry = nullptr;
    int rc = archive_read_next_header(reader.get(), &entry);
    if (rc == ARCHIVE_EOF) {
      break;
    }
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return Error(file + " is not a readable .plugin archive (tar.gz): " +
                   af::archive_message(reader.get()) +
                   "; build it again with `mfserv plugin build`");
    }
    la_int64_t size = archive_entry_size(entry);
    total += size > 0 ? static_cast<std::uint64_t>(size) : 0;
    if (total > limit) {
      return Error(file + " unpacks to more than " + why +
                   "; the archive is refused and nothing was changed");
    }
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    return Error::from_errno("rewinding " + file);
  }
  return {};
}

Result<UniqueFd> open_archive_file(const std::string& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return Error::from_errno("cannot read the archive " + file);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error(file + " is not a file: give the path of a .plugin archive");
  }
  return fd;
}

}  // namespace

Result<InstallResult> install_plugin_archive(const std::string& file,
                                             const InstallOptions& options) {
  auto archive_fd = open_archive_file(file);
  if (!archive_fd) {
    return archive_fd.error();
  }
  if (auto status = make_dirs(options.plugins_dir, 0755); !status) {
    return status.error().with_context("installing " + file);
  }
  if (auto status = check_unpacked_size(file, archive_fd->get(), options.plugins_dir); !status) {
    return status.error();
  }
  auto opened = open_reader(file, archive_fd->get());
  if (!opened) {
    return opened.error();
  }
  af::ArchiveReader reader = std::move(*opened);

  auto lock = lock_plugins(options.lock_path);
  if (!lock) {
    return lock.error();
  }
  remove_stale_staging(options.plugins_dir);
  auto staging = Staging::create(options.plugins_dir, k_install_prefix);
  if (!staging) {
    return staging.error().with_context("installing " + file);
  }

  // 1. Extract, refusing hostile entries before they are written.
  const std::string top(af::k_top_folder);
  if (::mkdirat(staging->fd(), top.c_str(), 0700) != 0) {
    return Error::from_errno("creating " + staging->path() + "/" + top);
  }
  UniqueFd root(
      ::openat(staging->fd(), top.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) {
    return Error::from_errno("opening " + staging->path() + "/" + top);
  }
  Extractor extractor(file, root.get());
  if (auto status = extractor.run(reader.get()); !status) {
    return status.error();
  }

  // 2. Compare with .files.json.
  if (!extractor.files_json()) {
    return Error(file +
                 " has no metwork_plugin/.files.json: it is not a .plugin archive; "
                 "build it with `mfserv plugin build`");
  }
  auto manifest = af::parse_files_json(*extractor.files_json());
  if (!manifest) {
    return Error(file + ": metwork_plugin/.files.json " + manifest.error().message() +
                 "; the archive is refused and nothing was changed");
  }
  if (auto status = verify(extractor, *manifest); !status) {
    return status.error();
  }
  af::Metadata metadata;
  if (extractor.metadata_json()) {
    auto parsed = af::parse_metadata_json(*extractor.metadata_json());
    if (!parsed) {
      return Error(file + ": metwork_plugin/.metadata.json is " + parsed.error().message() +
                   "; the archive is refused and nothing was changed");
    }
    metadata = std::move(*parsed);
  }

  // 3. Name it, then load it as `run` will (with the home's overrides).
  const std::string extracted = staging->path() + "/" + top;
  auto name = plugin_name(file, extracted, metadata);
  if (!name) {
    return name.error();
  }
  if (::renameat(staging->fd(), top.c_str(), staging->fd(), name->c_str()) != 0) {
    return Error::from_errno("renaming " + extracted);
  }
  const std::string candidate = staging->path() + "/" + *name;
  PluginLoad load = load_plugin(candidate, options.load);
  if (!load.plugin) {
    std::string message = file + ": plugin " + *name + " has errors and is not installed";
    for (const Diagnostic& diagnostic : load.diagnostics) {
      message += "\n" + diagnostic.describe();
    }
    return Error(message);
  }

  InstallResult result;
  result.legacy_manifest = manifest->legacy;
  for (const Diagnostic& diagnostic : load.diagnostics) {
    result.warnings.push_back(diagnostic);
  }

  // 4. Into place; what it replaces stays until then.
  const std::string target = options.plugins_dir + "/" + *name;
  const bool exists = path_exists(target);
  if (exists) {
    InstalledPlugin previous = describe_installed(target, *name, options.load);
    if (!options.force) {
      if (previous.dev_link) {
        return Error("plugin " + *name + " is a dev link to " + previous.home +
                     ": use --force to replace it with " + file +
                     ", or `mfserv plugin "
                     "uninstall " +
                     *name + "` first");
      }
      std::string version = previous.version.empty()
                                ? std::string()
                                : " (version " + previous.version + "-" + previous.release + ")";
      return Error("plugin " + *name + " is already installed" + version +
                   ": use --force to replace it, or `mfserv plugin uninstall " + *name + "` first");
    }
    result.replaced = previous;
  }
  if (auto status = put_in_place(*staging, *name, target, exists); !status) {
    return status.error().with_context("installing " + file);
  }
  result.plugin.name = *name;
  result.plugin.version = load.plugin->version;
  result.plugin.release = load.plugin->release;
  result.plugin.home = target;
  // What was replaced is now in the staging folder.
  if (auto status = staging->remove(); !status) {
    result.warnings.push_back(
        Diagnostic{Diagnostic::Severity::Warning, "", 0, "",
                   "the replaced version could not be deleted: " + status.error().describe()});
  }
  return result;
}

Result<InstalledPlugin> uninstall_plugin(const std::string& name, const std::string& plugins_dir,
                                         const std::string& lock_path, const LoadOptions& options) {
  if (!is_valid_name(name)) {
    return Error(quote_value(name) +
                 " is not a plugin name (letters, digits, '_' and '-'): see "
                 "`mfserv plugin list`");
  }
  const std::string path = plugins_dir + "/" + name;
  if (!path_exists(path)) {
    return Error("plugin " + name + " is not installed (see `mfserv plugin list`)");
  }
  auto lock = lock_plugins(lock_path);
  if (!lock) {
    return lock.error();
  }
  remove_stale_staging(plugins_dir);
  if (!path_exists(path)) {
    return Error("plugin " + name + " is not installed (see `mfserv plugin list`)");
  }
  InstalledPlugin removed = describe_installed(path, name, options);
  if (removed.dev_link) {
    if (::unlink(path.c_str()) != 0) {
      return Error::from_errno("removing the dev link " + path);
    }
    return removed;
  }
  // Out of the plugins in one rename, then deleted.
  auto staging = Staging::create(plugins_dir, k_uninstall_prefix);
  if (!staging) {
    return staging.error().with_context("uninstalling " + name);
  }
  if (::rename(path.c_str(), (staging->path() + "/" + name).c_str()) != 0) {
    return Error::from_errno("moving " + path + " out of the plugins");
  }
  if (auto status = staging->remove(); !status) {
    return status.error().with_context("plugin " + name + " is uninstalled but its files remain");
  }
  return removed;
}

}  // namespace mfserv::images
