// String helpers shared by every part.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mfserv {

std::string trim(std::string_view text);
std::vector<std::string> split(std::string_view text, char separator);
bool starts_with(std::string_view text, std::string_view prefix);
std::string to_lower(std::string_view text);
std::string replace_all(std::string text, std::string_view from, std::string_view to);
// ^[A-Za-z0-9_-]+$ : plugin, app and daemon names end up in paths, cgroups and nginx config.
bool is_valid_name(std::string_view name);
std::optional<long long> parse_int(std::string_view text);
// "64M", "1G", "512k", "1048576", "max" (nullopt means unlimited is not accepted here).
std::optional<std::uint64_t> parse_bytes(std::string_view text);
std::optional<bool> parse_bool(std::string_view text);
std::string format_bytes(std::uint64_t bytes);
// FNV-1a, 32 bits: short stable names (instances, upstreams, fragment copies), not security.
std::uint32_t fnv1a(std::string_view text);
// FNV-1a, 64 bits: change detection (reload), where a chance collision is negligible.
std::uint64_t fnv1a_64(std::string_view text);

}  // namespace mfserv
