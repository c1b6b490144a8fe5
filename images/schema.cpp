// The meaning of [general], [app_NAME] and [extra_daemon_NAME] keys (see schema.hpp).
// Key lists and defaults follow MFSERV (mfplugin configuration.py and command.py, mfserv
// adm/plugins.py); the cgroup and sandbox keys are new in mfserv.
#include "images/schema.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <limits>
#include <set>
#include <utility>

#include "images/values.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace mfserv::images {

namespace {

using Severity = Diagnostic::Severity;

constexpr int k_default_timeout = 60;  // MFSERV_NGINX_TIMEOUT
constexpr int k_daemon_graceful_timeout = 10;
constexpr int k_graceful_margin = 10;
// Time settings in seconds stay within a day (max_age: a year), so that derived values
// (graceful_timeout = timeout + smart_stop_delay + 10, microsecond timers) never overflow and
// a stop always ends.
constexpr int k_max_seconds = 86400;
constexpr int k_max_age_seconds =
    365 * 86400;  // graceful_timeout = timeout + smart_stop_delay + 10
constexpr long long k_max_numprocesses = 4096;

struct KeyContext {
  const std::string& plugin_dir;
};

using Apply = Status (*)(AppConfig&, const std::string&, const KeyContext&);

enum class Scope { Any, AppOnly };

struct KeySpec {
  std::string_view name;
  Scope scope;
  Apply apply;
};

// MFSERV keys mfserv does not implement: accepted with a warning unless the value is one of
// HARMLESS (MFSERV's defaults, which mean "nothing special").
struct IgnoredKey {
  std::string_view name;
  std::vector<std::string_view> harmless;
};

bool is_null(const std::string& value) {
  return value.empty() || value == "null";
}

template <int AppConfig::*Field, long long Min, long long Max>
Status set_int(AppConfig& app, const std::string& value, const KeyContext&) {
  auto parsed = parse_int_in(value, Min, Max);
  if (!parsed) {
    return parsed.error();
  }
  app.*Field = static_cast<int>(*parsed);
  return {};
}

template <bool AppConfig::*Field>
Status set_flag(AppConfig& app, const std::string& value, const KeyContext&) {
  auto parsed = parse_flag(value);
  if (!parsed) {
    return parsed.error();
  }
  app.*Field = *parsed;
  return {};
}

template <std::string AppConfig::*Field>
Status set_string(AppConfig& app, const std::string& value, const KeyContext&) {
  app.*Field = value;
  return {};
}

// rlimit_as/_stack/_fsize: bytes, 0 / "" / max meaning unset.
template <std::uint64_t AppConfig::*Field>
Status set_rlimit_bytes(AppConfig& app, const std::string& value, const KeyContext&) {
  auto parsed = parse_byte_limit(value);
  if (!parsed) {
    return parsed.error();
  }
  app.*Field = parsed->value_or(0);
  return {};
}

// A plugin's nginx fragment runs inside nginx's root master: only directives that shape the
// proxied request and response are accepted. Anything that opens or writes files
// (access_log, include, alias, *_temp_path, proxy_store...), nests blocks or loads code is
// refused at load time. The text checked here is the text nginx gets (AppConfig::
// extra_nginx_conf, copied into the home): a later edit of the file changes nothing until
// the plugin is loaded, and checked, again.
Result<std::string> checked_nginx_fragment(const std::string& path) {
  static const std::set<std::string> k_allowed = {"add_header",
                                                  "expires",
                                                  "etag",
                                                  "charset",
                                                  "default_type",
                                                  "gzip",
                                                  "gzip_types",
                                                  "gzip_min_length",
                                                  "gzip_comp_level",
                                                  "gzip_vary",
                                                  "gzip_proxied",
                                                  "client_max_body_size",
                                                  "client_body_buffer_size",
                                                  "client_body_timeout",
                                                  "send_timeout",
                                                  "keepalive_timeout",
                                                  "limit_rate",
                                                  "limit_rate_after",
                                                  "chunked_transfer_encoding",
                                                  "if_modified_since",
                                                  "tcp_nodelay",
                                                  "tcp_nopush",
                                                  "sendfile",
                                                  "server_tokens",
                                                  "proxy_set_header",
                                                  "proxy_hide_header",
                                                  "proxy_pass_header",
                                                  "proxy_ignore_headers",
                                                  "proxy_read_timeout",
                                                  "proxy_send_timeout",
                                                  "proxy_connect_timeout",
                                                  "proxy_buffering",
                                                  "proxy_buffer_size",
                                                  "proxy_buffers",
                                                  "proxy_busy_buffers_size",
                                                  "proxy_request_buffering",
                                                  "proxy_max_temp_file_size",
                                                  "proxy_http_version",
                                                  "proxy_redirect",
                                                  "proxy_intercept_errors",
                                                  "proxy_next_upstream",
                                                  "proxy_next_upstream_tries",
                                                  "proxy_next_upstream_timeout",
                                                  "proxy_cookie_domain",
                                                  "proxy_cookie_path",
                                                  "proxy_pass_request_body",
                                                  "proxy_pass_request_headers",
                                                  "proxy_ignore_client_abort"};
  auto content = read_file(path);
  if (!content) {
    return content.error();
  }
  // nginx's own tokenizer rules (ngx_conf_read_token): '#' starts a comment only where a
  // word could start; quoted words run to the matching quote, '\\' escaping; ';' ends a
  // directive and '{' / '}' open or close a block, outside quotes only.
  auto at = [&](int line) { return path + ":" + std::to_string(line); };
  const std::string& text = *content;
  std::vector<std::string> words;
  int line = 1;
  int directive_line = 1;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '#') {
      while (i < text.size() && text[i] != '\n') {
        ++i;
      }
    } else if (c == '{' || c == '}') {
      return Error(at(line) + ": blocks are not allowed in a plugin's nginx fragment");
    } else if (c == ';') {
      if (words.empty()) {
        return Error(at(line) + ": an empty directive (';' alone)");
      }
      if (!k_allowed.count(words.front())) {
        return Error(at(directive_line) + ": directive '" + words.front() +
                     "' is not allowed in a plugin's nginx fragment (nginx's master runs as "
                     "root); allowed: add_header, expires, gzip*, client_* sizes and timeouts, "
                     "limit_rate, and proxy_ header, timeout and buffering settings");
      }
      words.clear();
      ++i;
    } else {
      if (words.empty()) {
        directive_line = line;
      }
      std::string word;
      if (c == '"' || c == '\'') {
        char quote = c;
        int opened = line;
        ++i;
        while (i < text.size() && text[i] != quote) {
          if (text[i] == '\\' && i + 1 < text.size()) {
            ++i;
          }
          line += text[i] == '\n' ? 1 : 0;
          word += text[i++];
        }
        if (i >= text.size()) {
          return Error(at(opened) + ": a quoted string is not closed");
        }
        ++i;
      } else {
        while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) &&
               text[i] != ';' && text[i] != '{' && text[i] != '}' && text[i] != '"' &&
               text[i] != '\'') {
          if (text[i] == '\\' && i + 1 < text.size()) {
            ++i;
          }
          word += text[i++];
        }
      }
      words.push_back(word);
    }
  }
  if (!words.empty()) {
    return Error(at(directive_line) + ": directive '" + words.front() + "' has no ';'");
  }
  return *content;
}

template <std::optional<std::uint64_t> AppConfig::*Field>
Status set_byte_limit(AppConfig& app, const std::string& value, const KeyContext&) {
  auto parsed = parse_byte_limit(value);
  if (!parsed) {
    return parsed.error();
  }
  app.*Field = *parsed;
  return {};
}

template <std::vector<std::string> AppConfig::*Field>
Status set_paths(AppConfig& app, const std::string& value, const KeyContext& context) {
  auto parsed = parse_path_list(value, context.plugin_dir);
  if (!parsed) {
    return parsed.error();
  }
  app.*Field = std::move(*parsed);
  return {};
}

Status set_choice(std::string& field, const std::string& value,
                  std::initializer_list<std::string_view> choices) {
  std::string text = to_lower(trim(value));
  std::string accepted;
  for (std::string_view choice : choices) {
    if (text == choice) {
      field = text;
      return {};
    }
    accepted += (accepted.empty() ? "" : " or ") + std::string(choice);
  }
  return Error("expected " + accepted);
}

const std::vector<KeySpec>& app_keys() {
  static const std::vector<KeySpec> keys = {
      {"_cmd_and_args", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         app.cmd_and_args = is_null(value) ? "" : value;
         return {};
       }},
      {"numprocesses", Scope::Any, set_int<&AppConfig::numprocesses, 0, k_max_numprocesses>},
      {"timeout", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_int_in(value, INT_MIN, k_max_seconds);
         if (!parsed) {
           return Error("expected an integer number of seconds up to " +
                        std::to_string(k_max_seconds) + " (<= 0 means 60)");
         }
         app.timeout = *parsed <= 0 ? k_default_timeout : static_cast<int>(*parsed);
         return {};
       }},
      {"graceful_timeout", Scope::Any, set_int<&AppConfig::graceful_timeout, 0, k_max_seconds>},
      {"smart_stop_signal", Scope::Any, set_int<&AppConfig::smart_stop_signal, 1, 64>},
      {"smart_stop_delay", Scope::Any, set_int<&AppConfig::smart_stop_delay, 0, k_max_seconds>},
      {"smart_start_delay", Scope::Any, set_int<&AppConfig::smart_start_delay, 0, k_max_seconds>},
      {"debug", Scope::Any, set_flag<&AppConfig::debug>},
      {"_debug_extra_options", Scope::Any, set_string<&AppConfig::debug_extra_options>},
      {"max_age", Scope::Any, set_int<&AppConfig::max_age, 0, k_max_age_seconds>},
      {"rlimit_as", Scope::Any, set_rlimit_bytes<&AppConfig::rlimit_as>},
      {"rlimit_nofile", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_int_in(value, 0, INT_MAX);
         if (!parsed) {
           return parsed.error();
         }
         app.rlimit_nofile = static_cast<std::uint64_t>(*parsed);
         return {};
       }},
      {"rlimit_stack", Scope::Any, set_rlimit_bytes<&AppConfig::rlimit_stack>},
      {"rlimit_fsize", Scope::Any, set_rlimit_bytes<&AppConfig::rlimit_fsize>},
      {"memory_max", Scope::Any, set_byte_limit<&AppConfig::memory_max>},
      {"worker_memory_max", Scope::Any, set_byte_limit<&AppConfig::worker_memory_max>},
      {"memory_high", Scope::Any, set_byte_limit<&AppConfig::memory_high>},
      {"swap_max", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         std::string text = to_lower(trim(value));
         if (text == "max") {
           // No swap limit; the kernel clamps any large number to "max" (mm/page_counter.c).
           app.swap_max = std::numeric_limits<std::uint64_t>::max();
           return {};
         }
         auto parsed = parse_byte_limit(text);
         if (!parsed) {
           return parsed.error();
         }
         app.swap_max = parsed->value_or(0);
         return {};
       }},
      {"pids_max", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         std::string text = to_lower(trim(value));
         if (text.empty() || text == "max") {
           app.pids_max.reset();
           return {};
         }
         auto parsed = parse_int_in(text, 1, INT_MAX);
         if (!parsed) {
           return Error("expected an integer >= 1 or max");
         }
         app.pids_max = static_cast<std::uint64_t>(*parsed);
         return {};
       }},
      {"cpu_weight", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         if (trim(value).empty()) {
           app.cpu_weight.reset();
           return {};
         }
         auto parsed = parse_int_in(value, 1, 10000);
         if (!parsed) {
           return parsed.error();
         }
         app.cpu_weight = static_cast<std::uint64_t>(*parsed);
         return {};
       }},
      {"cpu_max", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_cpu_max(value);
         if (!parsed) {
           return parsed.error();
         }
         app.cpu_max = *parsed;
         return {};
       }},
      {"user", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         std::string text = trim(value);
         if (!text.empty()) {
           if (auto status = check_user(text); !status) {
             return status;
           }
         }
         app.user = text;
         return {};
       }},
      {"network", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         return set_choice(app.network, value, {"host", "none"});
       }},
      {"readonly_paths", Scope::Any, set_paths<&AppConfig::readonly_paths>},
      {"writable_paths", Scope::Any, set_paths<&AppConfig::writable_paths>},
      {"seccomp", Scope::Any,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         return set_choice(app.seccomp, value, {"default", "off"});
       }},

      // Routing and health check: apps only.
      {"_prefix_based_routing", Scope::AppOnly, set_flag<&AppConfig::prefix_based_routing>},
      {"_virtualdomain_based_routing", Scope::AppOnly,
       set_flag<&AppConfig::virtualdomain_based_routing>},
      // MFSERV spells it without the leading '_' (adm/plugins.py); both are accepted.
      {"_virtualdomain_based_routing_extra_vhosts", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_vhosts(value);
         if (!parsed) {
           return parsed.error();
         }
         app.virtualdomain_extra_vhosts = std::move(*parsed);
         return {};
       }},
      {"virtualdomain_based_routing_extra_vhosts", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_vhosts(value);
         if (!parsed) {
           return parsed.error();
         }
         app.virtualdomain_extra_vhosts = std::move(*parsed);
         return {};
       }},
      {"_static_routing", Scope::AppOnly, set_flag<&AppConfig::static_routing>},
      {"_static_url_prefix", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_url_prefix(value);
         if (!parsed) {
           return parsed.error();
         }
         app.static_url_prefix = *parsed;
         return {};
       }},
      {"_static_directory", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         if (auto status = check_nginx_safe_path(value); !status) {
           return status;
         }
         app.static_directory = value;
         return {};
       }},
      {"prefix_based_routing_extra_routes", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         auto parsed = parse_extra_routes(value);
         if (!parsed) {
           return parsed.error();
         }
         app.extra_routes = std::move(*parsed);
         return {};
       }},
      {"_extra_nginx_conf_filename", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext& context) -> Status {
         if (is_null(value)) {
           app.extra_nginx_conf_filename.clear();
           app.extra_nginx_conf.clear();
           return {};
         }
         if (auto status = check_nginx_safe_path(value); !status) {
           return status;
         }
         if (value[0] == '/') {
           return Error("expected a path relative to the plugin folder");
         }
         std::string path = context.plugin_dir + "/" + value;
         if (!path_exists(path) || is_directory(path)) {
           return Error("expected a file relative to the plugin folder: " + path +
                        " is not a file");
         }
         auto fragment = checked_nginx_fragment(path);
         if (!fragment) {
           return fragment.error();
         }
         app.extra_nginx_conf_filename = value;
         app.extra_nginx_conf = std::move(*fragment);
         return {};
       }},
      {"_http_test_endpoint", Scope::AppOnly,
       [](AppConfig& app, const std::string& value, const KeyContext&) -> Status {
         if (is_null(value)) {
           app.http_test_endpoint.clear();
           return {};
         }
         bool ok = value[0] == '/';
         for (char c : value) {
           ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
         }
         if (!ok) {
           return Error("expected \"\" or a URL path starting with '/', without blanks");
         }
         app.http_test_endpoint = value;
         return {};
       }},
      {"_http_test_expected_status_code", Scope::AppOnly,
       set_int<&AppConfig::http_test_expected_status_code, 100, 599>},
      {"_http_test_expected_body", Scope::AppOnly, set_string<&AppConfig::http_test_expected_body>},
      {"_http_test_timeout", Scope::AppOnly, set_int<&AppConfig::http_test_timeout, 1, 3600>},
  };
  return keys;
}

const std::vector<IgnoredKey>& ignored_app_keys() {
  static const std::vector<IgnoredKey> keys = {
      {"log_split_stdout_stderr", {"", "auto", "0", "false"}},
      {"log_split_multiple_workers", {"", "auto", "0", "false"}},
      {"_gateway_interface_mode", {"", "proxy"}},
      {"max_age_variance", {""}},
      {"_extra_nginx_conf_static_filename", {"", "null"}},
  };
  return keys;
}

const std::vector<IgnoredKey>& ignored_general_keys() {
  static const std::vector<IgnoredKey> keys = {
      {"_extra_nginx_http_conf_filename", {"", "null"}},
      {"_extra_nginx_server_conf_filename", {"", "null"}},
      {"_extra_nginx_init_worker_by_lua_block_filename", {"", "null"}},
      {"_add_plugin_dir_to_lua_path", {"", "0", "false", "1", "true"}},
  };
  return keys;
}

const std::vector<std::string_view>& general_keys() {
  static const std::vector<std::string_view> keys = {
      "_version", "_release",    "_summary", "_license",
      "_url",     "_maintainer", "_vendor",  "_add_plugin_dir_to_python_path"};
  return keys;
}

// Keys other products use that people put in config.ini: a hint better than edit distance.
std::string explicit_hint(std::string_view key) {
  if (key == "workers" || key == "processes" || key == "numprocs") {
    return "did you mean 'numprocesses'?";
  }
  if (key == "max_memory_size" || key == "memory_limit" || key == "max_memory") {
    return "did you mean 'memory_max' (the app as a whole) or 'worker_memory_max' (each "
           "worker)?";
  }
  if (key == "autorestart" || key == "autostart") {
    return "mfserv always restarts workers that exit; remove this key";
  }
  return "";
}

const IgnoredKey* find_ignored(const std::vector<IgnoredKey>& keys, const std::string& key) {
  for (const IgnoredKey& ignored : keys) {
    if (ignored.name == key) {
      return &ignored;
    }
  }
  return nullptr;
}

void warn_ignored(const IgnoredKey& ignored, const LayeredSection& section,
                  const LayeredValue& value, std::vector<Diagnostic>& diagnostics) {
  std::string text = to_lower(trim(value.value));
  if (std::find(ignored.harmless.begin(), ignored.harmless.end(), text) != ignored.harmless.end()) {
    return;
  }
  diagnostics.push_back(make_diagnostic(Severity::Warning, value.file, value.line,
                                        section.name + "." + value.key,
                                        "not implemented by mfserv, ignored"));
}

void report_unknown(const LayeredSection& section, const LayeredValue& value,
                    std::vector<std::string_view> candidates,
                    std::vector<Diagnostic>& diagnostics) {
  std::string hint = explicit_hint(value.key);
  if (hint.empty()) {
    std::string closest = closest_key(value.key, candidates);
    if (!closest.empty()) {
      hint = "did you mean '" + closest + "'?";
    }
  }
  diagnostics.push_back(make_diagnostic(Severity::Error, value.file, value.line,
                                        section.name + "." + value.key,
                                        "unknown key" + (hint.empty() ? "" : "; " + hint)));
}

void report_bad_value(const LayeredSection& section, const LayeredValue& value, const Error& error,
                      std::vector<Diagnostic>& diagnostics) {
  diagnostics.push_back(
      make_diagnostic(Severity::Error, value.file, value.line, section.name + "." + value.key,
                      "invalid value " + quote_value(value.value) + ": " + error.message()));
}

}  // namespace

void parse_general_section(const LayeredSection& section, PluginConfig& plugin,
                           std::vector<Diagnostic>& diagnostics) {
  for (const LayeredValue& value : section.values) {
    const std::string& key = value.key;
    if (key == "_version" || key == "_release") {
      if (!is_version_string(value.value)) {
        report_bad_value(section, value,
                         Error("expected lower-case letters, digits, '-', '_' and '.' "
                               "(^[a-z0-9-_.]+$)"),
                         diagnostics);
      } else if (key == "_version") {
        plugin.version = value.value;
      } else {
        plugin.release = value.value;
      }
    } else if (key == "_summary") {
      plugin.summary = value.value;
    } else if (key == "_license") {
      plugin.license = value.value;
    } else if (key == "_url") {
      plugin.url = value.value;
    } else if (key == "_maintainer") {
      plugin.maintainer = value.value;
    } else if (key == "_vendor") {
      plugin.vendor = value.value;
    } else if (key == "_add_plugin_dir_to_python_path") {
      auto parsed = parse_flag(value.value);
      if (!parsed) {
        report_bad_value(section, value, parsed.error(), diagnostics);
      } else {
        plugin.add_plugin_dir_to_python_path = *parsed;
      }
    } else if (key == "name") {
      diagnostics.push_back(make_diagnostic(
          Severity::Warning, value.file, value.line, section.name + "." + key,
          "not used: the plugin's name comes from .layerapi2_label or the folder's name"));
    } else if (const IgnoredKey* ignored = find_ignored(ignored_general_keys(), key)) {
      warn_ignored(*ignored, section, value, diagnostics);
    } else {
      std::vector<std::string_view> candidates = general_keys();
      for (const IgnoredKey& other : ignored_general_keys()) {
        candidates.push_back(other.name);
      }
      report_unknown(section, value, candidates, diagnostics);
    }
  }
  if (!section.find("_version")) {
    diagnostics.push_back(make_diagnostic(Severity::Error, section.file, section.line,
                                          section.name + "._version",
                                          "missing: [general] must set _version (like 1.0.0)"));
  }
}

AppConfig parse_app_section(const LayeredSection& section, AppConfig::Kind kind,
                            const std::string& name, const std::string& plugin_dir,
                            std::vector<Diagnostic>& diagnostics) {
  AppConfig app;
  app.kind = kind;
  app.name = name;
  app.section = section.name;
  if (kind == AppConfig::Kind::ExtraDaemon) {
    app.numprocesses = 1;
  }
  const KeyContext context{plugin_dir};
  std::set<std::string> set_keys;
  for (const LayeredValue& value : section.values) {
    const auto& keys = app_keys();
    auto spec = std::find_if(keys.begin(), keys.end(),
                             [&](const KeySpec& k) { return k.name == value.key; });
    if (spec != keys.end()) {
      if (spec->scope == Scope::AppOnly && kind == AppConfig::Kind::ExtraDaemon) {
        diagnostics.push_back(make_diagnostic(
            Severity::Error, value.file, value.line, section.name + "." + value.key,
            "only for [app_*] sections: an extra daemon has no nginx routing and no HTTP "
            "test"));
        continue;
      }
      if (auto status = spec->apply(app, value.value, context); !status) {
        report_bad_value(section, value, status.error(), diagnostics);
        continue;
      }
      set_keys.insert(value.key);
      if ((value.key == "user" || value.key == "seccomp" || value.key == "writable_paths" ||
           value.key == "readonly_paths") &&
          value.file == section.file) {
        app.sandbox_keys_from_plugin.push_back(value.key);
      }
    } else if (const IgnoredKey* ignored = find_ignored(ignored_app_keys(), value.key)) {
      warn_ignored(*ignored, section, value, diagnostics);
    } else {
      std::vector<std::string_view> candidates;
      for (const KeySpec& k : keys) {
        if (k.scope == Scope::Any || kind == AppConfig::Kind::App) {
          candidates.push_back(k.name);
        }
      }
      report_unknown(section, value, candidates, diagnostics);
    }
  }

  // MFSERV (adm/plugins.py MfservApp): debug means one worker, never recycled.
  if (app.debug) {
    if (app.numprocesses > 0) {
      app.numprocesses = 1;
    }
    app.max_age = 0;
  }
  if (!set_keys.contains("graceful_timeout")) {
    // Longer than the request timeout plus the stop delay, so a draining worker is not
    // killed before its last request ends.
    app.graceful_timeout = kind == AppConfig::Kind::App
                               ? app.timeout + app.smart_stop_delay + k_graceful_margin
                               : k_daemon_graceful_timeout;
  }
  if (app.numprocesses > 0 && trim(app.cmd_and_args).empty()) {
    const LayeredValue* where = section.find("numprocesses");
    diagnostics.push_back(
        make_diagnostic(Severity::Error, where ? where->file : section.file,
                        where ? where->line : section.line, section.name + "._cmd_and_args",
                        "missing: numprocesses is " + std::to_string(app.numprocesses) +
                            " but _cmd_and_args is empty; set the command, or numprocesses = 0"));
  }
  return app;
}

std::string closest_key(std::string_view key, const std::vector<std::string_view>& candidates) {
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) {
      row[j] = j;
    }
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  // Close enough: a typo or two, never more than a third of the word.
  size_t limit = std::max<size_t>(1, std::min<size_t>(3, key.size() / 3));
  std::string best;
  size_t best_distance = limit + 1;
  for (std::string_view candidate : candidates) {
    size_t d = distance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace mfserv::images
