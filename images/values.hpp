// Parsers and checks for config.ini values. Plugin values end up in nginx.conf, in paths, in
// cgroup files and on command lines, so each check says exactly what it accepts; the
// Error's message is that "expected ..." sentence, the caller adds file, line and key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hpp"

namespace mfserv::images {

// A decimal integer in [MIN, MAX].
Result<long long> parse_int_in(std::string_view text, long long min, long long max);
// 1/0, true/false, yes/no, on/off (any case).
Result<bool> parse_flag(std::string_view text);
// "64M", "1G", "512k", plain bytes; "" and "max" mean no limit (nullopt).
Result<std::optional<std::uint64_t>> parse_byte_limit(std::string_view text);
// "" (unset), "QUOTA [PERIOD]" or "max [PERIOD]" in microseconds, normalised to
// "QUOTA PERIOD" (PERIOD defaults to 100000, the kernel's default; see cgroup-v2.rst cpu.max).
Result<std::string> parse_cpu_max(std::string_view text);

// _static_url_prefix: "" or ^(/[A-Za-z0-9._~-]+)+$ ("." and ".." segments refused).
Result<std::string> parse_url_prefix(std::string_view text);
// prefix_based_routing_extra_routes: ';'-separated, each "/" or ^(/[A-Za-z0-9._~-]+)+$
// (no trailing '/', no "//"); "" and "null" mean none.
Result<std::vector<std::string>> parse_extra_routes(std::string_view text);
// Extra virtual hosts: DNS names separated by ',' (MFSERV) or ';'; "" and "null" mean none.
Result<std::vector<std::string>> parse_vhosts(std::string_view text);
bool is_dns_name(std::string_view text);
// A path that nginx.conf quotes nowhere: no "..", whitespace, quotes, ';', '{', '}', '$',
// '#', '\\' or control characters. Used for _static_directory and nginx fragment names.
Status check_nginx_safe_path(std::string_view text);
// readonly_paths / writable_paths: ','-separated (':' is legal in file names, ',' rarely
// is), each absolute or relative to BASE_DIR, no ".." segment, no control character.
// Returns absolute paths.
Result<std::vector<std::string>> parse_path_list(std::string_view text,
                                                 const std::string& base_dir);
// A user name (as in useradd: ^[a-z_][a-z0-9_-]*$, at most 32) or a numeric uid.
Status check_user(std::string_view text);
// _version and _release: ^[a-z0-9-_.]+$ (they end up in archive file names).
bool is_version_string(std::string_view text);
// A plugin name: ^[A-Za-z0-9_-]+$, not starting with "plugin_" or "__", not "base" or
// "config" (MFSERV's rules).
Status check_plugin_name(std::string_view name);

// VALUE for an error message: quoted, control characters escaped, long values shortened.
std::string quote_value(std::string_view value);

}  // namespace mfserv::images
