// The installed plugins of a home (see store.hpp): `plugin develop` links and the listing.
// Installing and removing `.plugin` archives live elsewhere; this file only reads folders and
// makes links.
#include "images/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "images/ini.hpp"
#include "images/plugin_dir.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

std::string read_link(const std::string& path) {
  char buffer[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
  return n < 0 ? std::string() : std::string(buffer, static_cast<size_t>(n));
}

// What can be read of a plugin that does not load: its name and [general] version/release.
InstalledPlugin read_broken(const std::string& entry, const std::string& path, bool dev_link) {
  InstalledPlugin item;
  item.name = entry;
  item.dev_link = dev_link;
  auto home = real_path(path);
  item.home = home ? *home : read_link(path);
  if (!home) {
    return item;
  }
  std::vector<Diagnostic> ignored;
  if (auto name = read_plugin_name(item.home, ignored)) {
    item.name = *name;
  }
  auto ini = read_ini(item.home + "/config.ini");
  if (ini) {
    item.release = "1";
    for (const IniEntry& entry_value : ini->entries) {
      if (entry_value.section == "general" && entry_value.key == "_version") {
        item.version = entry_value.value;
      } else if (entry_value.section == "general" && entry_value.key == "_release") {
        item.release = entry_value.value;
      }
    }
  }
  return item;
}

// Points LINK at TARGET, replacing an existing link in one rename(2) so that a running
// mfserv never sees the plugin missing.
Status replace_link(const std::string& target, const std::string& link,
                    const std::string& temporary) {
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT) {
    return Error::from_errno("removing " + temporary);
  }
  if (::symlink(target.c_str(), temporary.c_str()) != 0) {
    return Error::from_errno("linking " + temporary + " to " + target);
  }
  if (::rename(temporary.c_str(), link.c_str()) != 0) {
    Error error = Error::from_errno("renaming " + temporary + " to " + link);
    ::unlink(temporary.c_str());
    return error;
  }
  return {};
}

}  // namespace

Result<InstalledPlugin> develop(const std::string& plugins_dir, const std::string& dir,
                                const LoadOptions& options) {
  PluginLoad load = load_plugin(dir, options);
  if (!load.plugin) {
    std::string message = "cannot develop " + dir + ": the plugin has errors";
    for (const Diagnostic& diagnostic : load.diagnostics) {
      message += "\n" + diagnostic.describe();
    }
    return Error(message);
  }
  const PluginConfig& plugin = *load.plugin;
  if (auto status = make_dirs(plugins_dir, 0755); !status) {
    return status.error().with_context("developing plugin " + plugin.name);
  }
  const std::string link = plugins_dir + "/" + plugin.name;
  if (path_exists(link) && !is_symlink(link)) {
    return Error("plugin " + plugin.name +
                 " is already installed (not a dev link): uninstall it first");
  }
  // Re-pointing a link to another working copy is allowed (switching checkouts) but said.
  std::string previous = is_symlink(link) ? read_link(link) : std::string();
  // The temporary name starts with '.', which plugin listings skip.
  if (auto status = replace_link(plugin.dir, link, plugins_dir + "/." + plugin.name + ".link");
      !status) {
    return status.error().with_context("developing plugin " + plugin.name);
  }
  InstalledPlugin installed;
  installed.name = plugin.name;
  installed.version = plugin.version;
  installed.release = plugin.release;
  installed.home = plugin.dir;
  installed.dev_link = true;
  if (!previous.empty() && previous != plugin.dir) {
    installed.replaced_link = previous;
  }
  return installed;
}

std::vector<InstalledPlugin> list_installed(const std::string& plugins_dir,
                                            const LoadOptions& options) {
  std::vector<InstalledPlugin> installed;
  for (const std::string& entry : list_dir(plugins_dir)) {
    if (starts_with(entry, ".")) {
      continue;
    }
    const std::string path = plugins_dir + "/" + entry;
    const bool dev_link = is_symlink(path);
    if (!dev_link && !is_directory(path)) {
      continue;
    }
    PluginLoad load = load_plugin(path, options);
    if (!load.plugin) {
      installed.push_back(read_broken(entry, path, dev_link));
      continue;
    }
    InstalledPlugin item;
    item.name = load.plugin->name;
    item.version = load.plugin->version;
    item.release = load.plugin->release;
    item.home = load.plugin->dir;
    item.dev_link = dev_link;
    installed.push_back(std::move(item));
  }
  std::sort(installed.begin(), installed.end(),
            [](const InstalledPlugin& a, const InstalledPlugin& b) { return a.name < b.name; });
  return installed;
}

}  // namespace mfserv::images
