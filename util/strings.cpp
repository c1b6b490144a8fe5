#include "util/strings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace mfserv {

std::string trim(std::string_view text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) {
    ++begin;
  }
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) {
    --end;
  }
  return std::string(text.substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t pos = text.find(separator, start);
    parts.emplace_back(text.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) {
      break;
    }
    start = pos + 1;
  }
  return parts;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) {
    return text;
  }
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

bool is_valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  });
}

std::optional<long long> parse_int(std::string_view text) {
  std::string t = trim(text);
  long long value = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || ptr != t.data() + t.size() || t.empty()) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint64_t> parse_bytes(std::string_view text) {
  std::string t = trim(text);
  if (t.empty()) {
    return std::nullopt;
  }
  std::uint64_t multiplier = 1;
  char last = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
  if (last == 'B' && t.size() > 1) {
    t.pop_back();
    last = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
  }
  switch (last) {
    case 'K':
      multiplier = 1ULL << 10;
      break;
    case 'M':
      multiplier = 1ULL << 20;
      break;
    case 'G':
      multiplier = 1ULL << 30;
      break;
    case 'T':
      multiplier = 1ULL << 40;
      break;
    default:
      break;
  }
  if (multiplier != 1) {
    t.pop_back();
  }
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || ptr != t.data() + t.size() || t.empty()) {
    return std::nullopt;
  }
  if (value > UINT64_MAX / multiplier) {
    return std::nullopt;
  }
  return value * multiplier;
}

std::optional<bool> parse_bool(std::string_view text) {
  std::string t = to_lower(trim(text));
  if (t == "1" || t == "true" || t == "yes" || t == "on") {
    return true;
  }
  if (t == "0" || t == "false" || t == "no" || t == "off") {
    return false;
  }
  return std::nullopt;
}

std::string format_bytes(std::uint64_t bytes) {
  static const char* units[] = {"B", "K", "M", "G", "T"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) {
    return fmt::format("{}B", bytes);
  }
  return fmt::format("{:.1f}{}", value, units[unit]);
}

namespace {

template <typename Hash>
Hash fnv1a_of(std::string_view text, Hash offset_basis, Hash prime) {
  Hash hash = offset_basis;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= prime;
  }
  return hash;
}

}  // namespace

std::uint32_t fnv1a(std::string_view text) {
  return fnv1a_of<std::uint32_t>(text, 2166136261u, 16777619u);
}

std::uint64_t fnv1a_64(std::string_view text) {
  return fnv1a_of<std::uint64_t>(text, 14695981039346656037ull, 1099511628211ull);
}

}  // namespace mfserv
