// Value parsers and safety checks for config.ini (see values.hpp).
#include "images/values.hpp"

#include <cctype>
#include <climits>

#include <fmt/format.h>

#include "util/strings.hpp"

namespace mfserv::images {

namespace {

constexpr long long k_cpu_period_default = 100000;
// cgroup-v2.rst, cpu.max: the period is 1ms..1s and the quota at least 1ms (kernel/sched/core.c).
constexpr long long k_cpu_period_min = 1000;
constexpr long long k_cpu_period_max = 1000000;
constexpr long long k_cpu_quota_min = 1000;
constexpr long long k_cpu_quota_max = 1000000000000LL;
constexpr size_t k_quote_max = 60;

bool is_url_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '~' ||
         c == '-';
}

bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// ^(/[A-Za-z0-9._~-]+)+$ without "." or ".." segments.
bool is_url_path(std::string_view text) {
  if (text.size() < 2 || text[0] != '/') {
    return false;
  }
  for (const std::string& segment : split(text.substr(1), '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return false;
    }
    for (char c : segment) {
      if (!is_url_char(c)) {
        return false;
      }
    }
  }
  return true;
}

bool is_none(const std::string& text) {
  return text.empty() || text == "null";
}

// Splits on any of SEPARATORS, trims, drops empty items.
std::vector<std::string> split_items(std::string_view text, std::string_view separators) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(separators, start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string item = trim(text.substr(start, end - start));
    if (!item.empty()) {
      items.push_back(std::move(item));
    }
    start = end + 1;
  }
  return items;
}

}  // namespace

Result<long long> parse_int_in(std::string_view text, long long min, long long max) {
  auto value = parse_int(text);
  if (value && *value >= min && *value <= max) {
    return *value;
  }
  if (max == LLONG_MAX || max == INT_MAX) {
    return Error(fmt::format("expected an integer >= {}", min));
  }
  return Error(fmt::format("expected an integer from {} to {}", min, max));
}

Result<bool> parse_flag(std::string_view text) {
  auto value = parse_bool(text);
  if (!value) {
    return Error("expected a boolean: 1, 0, true, false, yes, no, on or off");
  }
  return *value;
}

Result<std::optional<std::uint64_t>> parse_byte_limit(std::string_view text) {
  std::string value = to_lower(trim(text));
  if (value.empty() || value == "max") {
    return std::optional<std::uint64_t>();
  }
  auto bytes = parse_bytes(value);
  if (!bytes) {
    return Error("expected a size in bytes (1048576, 512K, 64M, 1G) or max");
  }
  return std::optional<std::uint64_t>(*bytes);
}

Result<std::string> parse_cpu_max(std::string_view text) {
  std::vector<std::string> words = split_items(text, " \t");
  if (words.empty()) {
    return std::string();
  }
  const auto expected = Error(fmt::format(
      "expected \"QUOTA [PERIOD]\" or \"max [PERIOD]\" in microseconds, QUOTA from {} to {}, "
      "PERIOD from {} to {} (default {})",
      k_cpu_quota_min, k_cpu_quota_max, k_cpu_period_min, k_cpu_period_max, k_cpu_period_default));
  if (words.size() > 2) {
    return expected;
  }
  std::string quota = to_lower(words[0]);
  if (quota != "max") {
    auto value = parse_int(quota);
    if (!value || *value < k_cpu_quota_min || *value > k_cpu_quota_max) {
      return expected;
    }
    quota = std::to_string(*value);
  }
  long long period = k_cpu_period_default;
  if (words.size() == 2) {
    auto value = parse_int(words[1]);
    if (!value || *value < k_cpu_period_min || *value > k_cpu_period_max) {
      return expected;
    }
    period = *value;
  }
  return quota + " " + std::to_string(period);
}

Result<std::string> parse_url_prefix(std::string_view text) {
  std::string value = trim(text);
  if (value.empty() || is_url_path(value)) {
    return value;
  }
  return Error(
      "expected \"\" or a URL path like /static (segments of letters, digits, '.', '_', '~', "
      "'-'; no trailing '/', no '//')");
}

Result<std::vector<std::string>> parse_extra_routes(std::string_view text) {
  std::string value = trim(text);
  if (is_none(value)) {
    return std::vector<std::string>();
  }
  std::vector<std::string> routes = split_items(value, ";");
  for (const std::string& route : routes) {
    if (route != "/" && !is_url_path(route)) {
      return Error("route " + quote_value(route) +
                   " is not valid: expected routes separated by ';', each \"/\" or a URL path "
                   "like /foo/bar (letters, digits, '.', '_', '~', '-'; no trailing '/', no "
                   "'//')");
    }
  }
  return routes;
}

bool is_dns_name(std::string_view text) {
  if (text.empty() || text.size() > 253) {
    return false;
  }
  for (const std::string& label : split(text, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return false;
      }
    }
  }
  return true;
}

Result<std::vector<std::string>> parse_vhosts(std::string_view text) {
  std::string value = trim(text);
  if (is_none(value)) {
    return std::vector<std::string>();
  }
  std::vector<std::string> hosts = split_items(value, ",;");
  for (const std::string& host : hosts) {
    if (host != "null" && !is_dns_name(host)) {
      return Error("host " + quote_value(host) +
                   " is not valid: expected DNS names (letters, digits, '-' and dots) "
                   "separated by ',' or ';'");
    }
  }
  std::erase(hosts, "null");
  return hosts;
}

Status check_nginx_safe_path(std::string_view text) {
  bool bad = text.find("..") != std::string_view::npos;
  for (char c : text) {
    if (is_control(c) || std::isspace(static_cast<unsigned char>(c)) ||
        std::string_view("\"'`;{}$#\\").find(c) != std::string_view::npos) {
      bad = true;
    }
  }
  if (bad) {
    return Error(
        "expected a path without '..', blanks, quotes, ';', '{', '}', '$', '#', '\\' or "
        "control characters (it is written into nginx.conf)");
  }
  return {};
}

Result<std::vector<std::string>> parse_path_list(std::string_view text,
                                                 const std::string& base_dir) {
  std::vector<std::string> paths;
  for (const std::string& item : split_items(text, ",")) {
    bool bad = false;
    for (char c : item) {
      bad = bad || is_control(c);
    }
    for (const std::string& segment : split(item, '/')) {
      bad = bad || segment == "..";
    }
    if (bad) {
      return Error("path " + quote_value(item) +
                   " is not valid: expected paths separated by ',', absolute or relative to "
                   "the plugin folder, without '..' or control characters");
    }
    paths.push_back(item[0] == '/' ? item : base_dir + "/" + item);
  }
  return paths;
}

Status check_user(std::string_view text) {
  std::string value = trim(text);
  if (!value.empty() && value.size() <= 10 &&
      value.find_first_not_of("0123456789") == std::string::npos) {
    auto uid = parse_int(value);
    if (uid && *uid < 4294967295LL) {
      return {};
    }
  }
  bool ok = !value.empty() && value.size() <= 32 &&
            (std::islower(static_cast<unsigned char>(value[0])) || value[0] == '_');
  for (char c : value) {
    ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  }
  if (!ok) {
    return Error(
        "expected a user name (lower-case letters, digits, '_', '-', starting with a letter "
        "or '_', at most 32) or a numeric uid");
  }
  return {};
}

bool is_version_string(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (char c : text) {
    bool ok = std::islower(static_cast<unsigned char>(c)) ||
              std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

Status check_plugin_name(std::string_view name) {
  if (!is_valid_name(name)) {
    return Error("invalid plugin name " + quote_value(name) +
                 ": names may only contain letters, digits, '_' and '-'");
  }
  if (starts_with(name, "-")) {
    return Error("invalid plugin name " + quote_value(name) +
                 ": a name must not start with '-' (`mfserv restart " + std::string(name) +
                 "` would read it as an option)");
  }
  if (starts_with(name, "plugin_") || starts_with(name, "__")) {
    return Error("invalid plugin name " + quote_value(name) +
                 ": a name must not start with 'plugin_' or '__'");
  }
  if (name == "base" || name == "config") {
    return Error("invalid plugin name " + quote_value(name) + ": 'base' and 'config' are reserved");
  }
  return {};
}

std::string quote_value(std::string_view value) {
  std::string out = "'";
  size_t shown = 0;
  for (char c : value) {
    if (shown == k_quote_max) {
      out += "...";
      break;
    }
    if (c == '\n') {
      out += "\\n";
    } else if (is_control(c)) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
    ++shown;
  }
  return out + "'";
}

}  // namespace mfserv::images
