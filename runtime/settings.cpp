// HOME/config/mfserv.ini → FrontSettings (see settings.hpp for the keys and their defaults).
// Each value is checked here, before it reaches nginx.conf: nothing the file says is pasted
// into the configuration unchecked.
#include "runtime/settings.hpp"

#include <pwd.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "images/ini.hpp"
#include "images/schema.hpp"
#include "images/values.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::runtime {
namespace {

constexpr std::string_view k_nginx_section = "nginx";
constexpr int k_max_worker_processes = 1024;
constexpr int k_max_timeout_s = 24 * 3600;

using Setter = std::function<Status(FrontSettings&, const std::string&)>;

struct Key {
  std::string_view name;
  Setter set;
};

// A 0/1 key (images::parse_flag's spellings) stored in MEMBER.
Setter flag_setter(bool FrontSettings::*member) {
  return [member](FrontSettings& settings, const std::string& value) -> Status {
    auto flag = images::parse_flag(value);
    if (!flag) {
      return flag.error();
    }
    settings.*member = *flag;
    return {};
  };
}

// nginx's size syntax (ngx_parse_size): digits, then optionally k, m or g in either case.
Status check_nginx_size(const std::string& value) {
  const size_t digits = value.find_first_not_of("0123456789");
  const bool ok = digits != 0 && value.size() <= 12 &&
                  (digits == std::string::npos ||
                   (digits == value.size() - 1 &&
                    std::string_view("kKmMgG").find(value.back()) != std::string_view::npos));
  if (!ok) {
    return Error("expected a size like 100m: digits, then optionally k, m or g (0: no limit)");
  }
  return {};
}

// nginx's `user` directive takes a name it looks up with getpwnam, not a uid.
Status check_nginx_user(const std::string& value) {
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    return Error("expected a user name (nginx does not take a numeric uid)");
  }
  if (auto status = images::check_user(value); !status) {
    return status;
  }
  if (::getpwnam(value.c_str()) == nullptr) {
    return Error("no user '" + value + "' on this host: create it or choose another");
  }
  return {};
}

const std::vector<Key>& nginx_keys() {
  static const std::vector<Key> keys = {
      {"port",
       [](FrontSettings& settings, const std::string& value) -> Status {
         auto port = images::parse_int_in(value, 1, 65535);
         if (!port) {
           return port.error();
         }
         settings.port = static_cast<int>(*port);
         return {};
       }},
      {"worker_processes",
       [](FrontSettings& settings, const std::string& value) -> Status {
         if (to_lower(value) == "auto") {
           settings.worker_processes = 0;
           return {};
         }
         auto count = images::parse_int_in(value, 1, k_max_worker_processes);
         if (!count) {
           return Error(count.error().message() + " or auto");
         }
         settings.worker_processes = static_cast<int>(*count);
         return {};
       }},
      {"client_max_body_size",
       [](FrontSettings& settings, const std::string& value) -> Status {
         if (auto status = check_nginx_size(value); !status) {
           return status;
         }
         settings.client_max_body_size = value;
         return {};
       }},
      {"timeout",
       [](FrontSettings& settings, const std::string& value) -> Status {
         auto seconds = images::parse_int_in(value, 1, k_max_timeout_s);
         if (!seconds) {
           return seconds.error();
         }
         settings.timeout = static_cast<int>(*seconds);
         return {};
       }},
      {"accept_incoming_request_id", flag_setter(&FrontSettings::accept_incoming_request_id)},
      {"add_x_forwarded_headers", flag_setter(&FrontSettings::add_x_forwarded_headers)},
      {"add_request_id_header", flag_setter(&FrontSettings::add_request_id_header)},
      {"hostname",
       [](FrontSettings& settings, const std::string& value) -> Status {
         if (!images::is_dns_name(value)) {
           return Error("expected a DNS name: letters, digits, '-' and dots");
         }
         settings.hostname = to_lower(value);
         return {};
       }},
      {"log_format",
       [](FrontSettings& settings, const std::string& value) -> Status {
         if (value == "json") {
           settings.log_format = nginx::LogFormat::json;
         } else if (value == "combined") {
           settings.log_format = nginx::LogFormat::combined;
         } else {
           return Error("expected json or combined");
         }
         return {};
       }},
      {"user",
       [](FrontSettings& settings, const std::string& value) -> Status {
         if (auto status = check_nginx_user(value); !status) {
           return status;
         }
         settings.nginx_user = value;
         return {};
       }},
  };
  return keys;
}

// MFSERV's names for some of these keys: a better hint than edit distance.
std::string explicit_hint(std::string_view key) {
  if (key == "workers") {
    return "did you mean 'worker_processes'?";
  }
  if (key == "accept_incoming_request_id_header") {
    return "did you mean 'accept_incoming_request_id'?";
  }
  return "";
}

images::Diagnostic diagnostic_at(const std::string& file, int line, std::string key,
                                 std::string message) {
  images::Diagnostic diagnostic;
  diagnostic.file = file;
  diagnostic.line = line;
  diagnostic.key = std::move(key);
  diagnostic.message = std::move(message);
  return diagnostic;
}

}  // namespace

std::string settings_path(const Home& home) {
  return home.config_dir() + "/mfserv.ini";
}

Result<FrontSettings> parse_settings(std::string_view text, const std::string& file) {
  images::IniDocument doc = images::parse_ini(text, file);
  std::vector<images::Diagnostic> problems = doc.diagnostics;
  for (const images::IniSection& section : doc.sections) {
    if (section.name != k_nginx_section) {
      problems.push_back(
          diagnostic_at(file, section.line, "",
                        "unknown section [" + section.name + "]: mfserv.ini has only [nginx]"));
    }
  }
  std::vector<std::string_view> names;
  for (const Key& key : nginx_keys()) {
    names.push_back(key.name);
  }
  FrontSettings settings;
  for (const images::IniEntry& entry : doc.entries) {
    if (entry.section != k_nginx_section) {
      continue;  // reported once, at the section's header
    }
    const std::string where = entry.section + "." + entry.key;
    auto key = std::find_if(nginx_keys().begin(), nginx_keys().end(),
                            [&](const Key& candidate) { return candidate.name == entry.key; });
    if (key == nginx_keys().end()) {
      std::string hint = explicit_hint(entry.key);
      if (hint.empty()) {
        if (std::string closest = images::closest_key(entry.key, names); !closest.empty()) {
          hint = "did you mean '" + closest + "'?";
        }
      }
      problems.push_back(diagnostic_at(file, entry.line, where,
                                       "unknown key" + (hint.empty() ? "" : "; " + hint)));
      continue;
    }
    settings.lines[entry.key] = entry.line;
    if (auto status = key->set(settings, entry.value); !status) {
      problems.push_back(diagnostic_at(
          file, entry.line, where,
          "invalid value " + images::quote_value(entry.value) + ": " + status.error().message()));
    }
  }
  if (!problems.empty()) {
    std::stable_sort(problems.begin(), problems.end(),
                     [](const auto& a, const auto& b) { return a.line < b.line; });
    std::string message;
    for (const images::Diagnostic& problem : problems) {
      message += (message.empty() ? "" : "\n") + problem.describe();
    }
    return Error(message);
  }
  return settings;
}

Result<FrontSettings> load_settings(const Home& home) {
  const std::string path = settings_path(home);
  if (!path_exists(path)) {
    return FrontSettings{};
  }
  auto text = read_file(path);
  if (!text) {
    return text.error().with_context("reading the settings");
  }
  return parse_settings(*text, path);
}

}  // namespace mfserv::runtime
