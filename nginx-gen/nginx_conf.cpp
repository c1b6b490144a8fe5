// Renders the nginx front (FrontConfig + AppRoutes) to nginx.conf text in MFSERV's URL layout
// (reference §3): per app one upstream, and per route a static alias location and a proxy
// location. Pure text: no system call, and the same model always gives the same bytes, which
// is what the golden tests in tests/golden/ rely on.
#include "nginx-gen/nginx_conf.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "util/strings.hpp"

namespace mfserv::nginx {
namespace {

constexpr std::string_view k_indent = "    ";
// What follows a route in every regex location: the bare route or route/anything, the
// anything captured as $locrq for alias (MFSERV's regex).
constexpr std::string_view k_route_tail = "(?:/(?<locrq>.*))?$";
constexpr std::string_view k_log_format = "mfserv_json";
constexpr int k_worker_connections = 4096;
// A proxied request holds two descriptors (client and upstream), plus logs and files served.
constexpr int k_worker_rlimit_nofile = 2 * k_worker_connections + 1024;
constexpr int k_upstream_keepalive = 16;
// nginx reads a configuration token into a 4096-byte buffer ("too long parameter" beyond,
// NGX_CONF_BUFFER in src/core/ngx_conf_file.c): a long string is set in pieces of at most
// this many bytes once quoted, then joined.
constexpr size_t k_max_quoted_piece = 3900;
// /__upstream_status pieces hold this many parts of the JSON (its head, an upstream each, its
// tail): cut by count rather than by size, the text's shape does not depend on path lengths.
constexpr size_t k_parts_per_piece = 8;
// How many "$piece" references one `set` joins, well under the same 4096 bytes.
constexpr size_t k_max_joined_pieces = 100;
constexpr std::string_view k_upstream_status_variable = "$mfserv_upstream_status";
constexpr std::string_view k_piece_variable = "$mfserv_us";  // short: see the variables hash
constexpr size_t k_builtin_variables = 256;
// Up to this many `set` variables nginx's default variables_hash_max_size (1024) is enough.
constexpr size_t k_variables_default_hash_fits = 64;

// Indented text, one directive per line.
class ConfWriter {
 public:
  void line(std::string_view text) {
    for (int i = 0; i < m_depth; ++i) {
      m_text += k_indent;
    }
    m_text += text;
    m_text += '\n';
  }
  void open(std::string_view header) {
    line(std::string(header) + " {");
    ++m_depth;
  }
  void close() {
    --m_depth;
    line("}");
  }
  void blank() { m_text += '\n'; }
  std::string take() { return std::move(m_text); }

 private:
  std::string m_text;
  int m_depth = 0;
};

// A location block before it is ordered and written.
struct Location {
  // The order of the enumerators is the order in the file.
  enum class Kind { exact, regex, root, named };
  Kind kind = Kind::regex;
  std::string match;  // what follows "location "
  std::string path;   // regex: the literal path it matches, with or without a subpath
  std::string owner;  // "plugin/app"; "" for the built-in fallback
  std::vector<std::string> body;
};

// Routes and static prefixes as the empty string or "/a/b": "/" and "" are the root (so that
// "/" + "/static" never gives "//static", C12), a trailing '/' is dropped and repeated slashes
// are merged, as nginx merges them in request URIs before matching.
std::string normalize_route(std::string_view route) {
  std::string out;
  for (char c : route) {
    if (c == '/' && !out.empty() && out.back() == '/') {
      continue;
    }
    out += c;
  }
  while (!out.empty() && out.back() == '/') {
    out.pop_back();
  }
  if (!out.empty() && out.front() != '/') {
    out.insert(out.begin(), '/');
  }
  return out;
}

std::string regex_escape(std::string_view literal) {
  constexpr std::string_view k_special = "\\.^$|?*+()[]{}";
  std::string out;
  for (char c : literal) {
    if (k_special.find(c) != std::string_view::npos) {
      out += '\\';
    }
    out += c;
  }
  return out;
}

std::string app_label(const AppRoute& app) {
  return app.plugin + "/" + app.app;
}

std::string request_id_variable(const FrontConfig& front) {
  return front.accept_incoming_request_id ? "$mfserv_request_id" : "$request_id";
}

// Connection (upstream keepalive) and Host always; the X-Forwarded-* family and X-Request-Id
// unless mfserv.ini turns them off (MFSERV's add_x_forwarded_headers, add_request_id_header).
// Off means none reaches the app, not the client's own: an app trusting X-Forwarded-For (a
// proxy-fix middleware) must never see a value nginx did not set.
std::vector<std::string> proxy_header_lines(const FrontConfig& front) {
  std::vector<std::string> lines = {
      "proxy_set_header Connection \"\";",
      "proxy_set_header Host $mfserv_host;",
  };
  const std::vector<std::pair<std::string, std::string>> forwarded = {
      {"X-Real-IP", "$remote_addr"},
      {"X-Forwarded-For", "$proxy_add_x_forwarded_for"},
      {"X-Forwarded-Proto", "$scheme"},
      {"X-Forwarded-Host", "$mfserv_host"},
  };
  for (const auto& [name, value] : forwarded) {
    lines.push_back("proxy_set_header " + name + " " +
                    (front.add_x_forwarded_headers ? value : "\"\"") + ";");
  }
  lines.push_back("proxy_set_header X-Request-Id " +
                  (front.add_request_id_header ? request_id_variable(front) : "\"\"") + ";");
  return lines;
}

// The request id echoed to the client, or nothing.
std::vector<std::string> response_header_lines(const FrontConfig& front) {
  if (!front.add_request_id_header) {
    return {};
  }
  return {"add_header X-Request-Id " + request_id_variable(front) + " always;"};
}

void append(std::vector<std::string>& to, const std::vector<std::string>& lines) {
  to.insert(to.end(), lines.begin(), lines.end());
}

std::vector<std::string> owner_lines(const AppRoute& app) {
  return {"set $mfserv_plugin \"" + app.plugin + "\";", "set $mfserv_app \"" + app.app + "\";"};
}

// nginx inherits proxy_set_header and add_header only into blocks that set none of their own,
// so a fragment adding one header would silently drop ours: repeat them before the include.
std::vector<std::string> include_lines(const std::string& path, const FrontConfig& front,
                                       bool proxying) {
  if (path.empty()) {
    return {};
  }
  std::vector<std::string> lines = {
      "# repeated here: headers set by the fragment would hide "
      "the inherited ones"};
  if (proxying) {
    append(lines, proxy_header_lines(front));
  }
  append(lines, response_header_lines(front));
  lines.push_back("include " + path + ";");
  return lines;
}

std::vector<std::string> proxy_lines(const AppRoute& app, const FrontConfig& front) {
  std::vector<std::string> lines = owner_lines(app);
  // No URI part after the upstream: the app sees the request path unchanged (MFSERV).
  lines.push_back("proxy_pass http://" + upstream_name(app.plugin, app.app) + ";");
  for (std::string_view phase : {"connect", "send", "read"}) {
    lines.push_back(fmt::format("proxy_{}_timeout {}s;", phase, app.timeout));
  }
  append(lines, include_lines(app.extra_conf_path, front, true));
  return lines;
}

// A location for the literal path PATH: `location /` for the root, else MFSERV's regex.
Location location_at(const AppRoute& app, const std::string& path) {
  Location location;
  location.owner = app_label(app);
  location.path = path;
  if (path.empty()) {
    location.kind = Location::Kind::root;
    location.match = "/";
  } else {
    location.kind = Location::Kind::regex;
    location.match = "~ ^" + regex_escape(path) + std::string(k_route_tail);
  }
  return location;
}

// Files of static_dir served under PATH by nginx alone.
Location static_location(const AppRoute& app, const std::string& path, const FrontConfig& front) {
  Location location = location_at(app, path);
  location.body = owner_lines(app);
  if (path.empty()) {
    // `location /`: the URI maps under the folder as is. A root, not an alias of "/", so that
    // the same lines also serve as a route group's fallback (write_locations).
    location.body.push_back("root " + app.static_dir + ";");
  } else {
    location.body.push_back("alias " + app.static_dir + "/$locrq;");
  }
  append(location.body, include_lines(app.extra_conf_static_path, front, false));
  return location;
}

// Empty static prefix on an app with workers: a regular file of static_dir is served, any other
// request falls through to the app's named location. try_files runs before the request body is
// read, so a POST reaches the app whole (error_page 404 fallbacks would drop its body), and
// try_files on a path without a trailing '/' matches regular files only, so "/p/a/" still
// reaches the app.
Location static_or_app_location(const AppRoute& app, const std::string& path,
                                const FrontConfig& front) {
  Location location = location_at(app, path);
  location.body = owner_lines(app);
  location.body.push_back("root " + app.static_dir + ";");
  const std::string tried = path.empty() ? "$uri" : "/$locrq";
  location.body.push_back("try_files " + tried + " @" + upstream_name(app.plugin, app.app) + ";");
  append(location.body, include_lines(app.extra_conf_static_path, front, false));
  return location;
}

Location named_app_location(const AppRoute& app, const FrontConfig& front) {
  Location location;
  location.kind = Location::Kind::named;
  location.match = "@" + upstream_name(app.plugin, app.app);
  location.owner = app_label(app);
  location.body = proxy_lines(app, front);
  return location;
}

Location app_location(const AppRoute& app, const std::string& path, const FrontConfig& front) {
  Location location = location_at(app, path);
  location.body = proxy_lines(app, front);
  return location;
}

// The locations of APP for each of ROUTES (normalized), in MFSERV's shape: static first.
void add_app_locations(std::vector<Location>& out, const AppRoute& app,
                       const std::vector<std::string>& routes, const FrontConfig& front) {
  const bool has_upstream = !app.sockets.empty();
  const bool has_statics = app.static_routing && !app.static_dir.empty();
  const std::string static_prefix = normalize_route(app.static_url_prefix);
  for (const std::string& route : routes) {
    if (has_statics && !static_prefix.empty()) {
      out.push_back(static_location(app, route + static_prefix, front));
    }
    if (has_statics && static_prefix.empty()) {
      if (has_upstream) {
        out.push_back(static_or_app_location(app, route, front));
        out.push_back(named_app_location(app, front));
      } else {
        out.push_back(static_location(app, route, front));
      }
    } else if (has_upstream) {
      out.push_back(app_location(app, route, front));
    }
  }
}

std::vector<std::string> prefix_routes(const AppRoute& app) {
  std::vector<std::string> routes;
  auto add = [&routes](const std::string& route) {
    std::string normalized = normalize_route(route);
    if (std::find(routes.begin(), routes.end(), normalized) == routes.end()) {
      routes.push_back(std::move(normalized));
    }
  };
  if (app.prefix_routing) {
    add("/" + app.plugin + "/" + app.app);
  }
  if (app.plugin_prefix) {
    add("/" + app.plugin);
  }
  for (const std::string& route : app.extra_routes) {
    add(route);
  }
  return routes;
}

// Requests no app claims get a 404 here rather than nginx's compiled-in html root.
Location fallback_location() {
  Location location;
  location.kind = Location::Kind::root;
  location.match = "/";
  location.body = {"return 404;"};
  return location;
}

// The first segment of a regex location's path: "/api/v1.0" -> "/api". Its regex matches only
// URIs whose first segment is exactly that one.
std::string first_segment(const std::string& path) {
  return path.substr(0, path.find('/', 1));
}

// Writes LOCATIONS most specific first: nginx takes exact matches, then the first regex that
// matches in file order, then the longest prefix; a longer literal route is a subtree of a
// shorter one, never the reverse, so regexes go by decreasing literal length. The first claim
// of a route wins; a later claim by another app is left as a comment.
//
// Regexes are grouped by the first segment of their path, each group nested in a
// `location ^~ /SEGMENT`: nginx then tries only the regexes of the request's first segment
// instead of every route of every plugin in turn (400 regexes for 100 plugins cost ~12 us of
// nginx CPU per request, more than the rest of the proxying). The same location wins as in
// one flat list: a group's regexes keep their order, no regex can match a URI of another
// first segment, and a URI of the group that none matches (or that only starts like the
// segment, "/SEGMENTxyz") gets what `location /` would give it, repeated in a catch-all regex
// tried last (`^~` keeps nginx from trying other regexes). Not as the group's own content:
// nested locations inherit it (add_header, proxy_set_header, client_max_body_size of the
// root app's fragment would reach every route of the group).
void write_locations(ConfWriter& writer, std::vector<Location> locations) {
  std::stable_sort(locations.begin(), locations.end(), [](const Location& a, const Location& b) {
    if (a.kind != b.kind) {
      return a.kind < b.kind;
    }
    return a.kind == Location::Kind::regex && a.path.size() > b.path.size();
  });
  // Drops what an earlier location already claims, a comment in its place for another owner.
  struct Entry {
    const Location* location;
    std::string comment;
  };
  std::vector<Entry> entries;
  std::unordered_map<std::string, std::string> claimed;  // match -> owner
  const Location* root = nullptr;
  for (const Location& location : locations) {
    auto previous = claimed.find(location.match);
    if (previous == claimed.end()) {
      claimed.emplace(location.match, location.owner);
      entries.push_back({&location, ""});
      if (location.kind == Location::Kind::root && root == nullptr) {
        root = &location;
      }
    } else if (!location.owner.empty() && location.owner != previous->second) {
      entries.push_back({&location, "# location " + location.match + " of " + location.owner +
                                        ": already routed to " + previous->second});
    }
  }
  std::vector<std::string> group_order;
  std::unordered_map<std::string, std::vector<const Entry*>> groups;
  for (const Entry& entry : entries) {
    if (entry.location->kind == Location::Kind::regex) {
      std::string segment = first_segment(entry.location->path);
      auto [it, added] = groups.try_emplace(segment);
      if (added) {
        group_order.push_back(segment);
      }
      it->second.push_back(&entry);
    }
  }
  const std::vector<std::string> fallback =
      root ? root->body : std::vector<std::string>{"return 404;"};

  bool first = true;
  auto separate = [&writer, &first] {
    if (!first) {
      writer.blank();
    }
    first = false;
  };
  auto write_entry = [&writer](const Entry& entry) {
    if (!entry.comment.empty()) {
      writer.line(entry.comment);
      return;
    }
    writer.open("location " + entry.location->match);
    for (const std::string& line : entry.location->body) {
      writer.line(line);
    }
    writer.close();
  };
  auto write_group = [&](const std::string& segment) {
    separate();
    writer.open("location ^~ " + segment);
    bool first_in_group = true;
    for (const Entry* member : groups[segment]) {
      if (!first_in_group) {
        writer.blank();
      }
      first_in_group = false;
      write_entry(*member);
    }
    writer.blank();
    writer.line("# no route of " + segment + " matched: as `location /`");
    writer.open("location ~ ^/");
    for (const std::string& line : fallback) {
      writer.line(line);
    }
    writer.close();
    writer.close();
  };
  // In the kinds' order: exact matches, the regex groups, then `location /` and named ones.
  for (const Entry& entry : entries) {
    if (entry.location->kind == Location::Kind::exact) {
      separate();
      write_entry(entry);
    }
  }
  for (const std::string& segment : group_order) {
    write_group(segment);
  }
  for (const Entry& entry : entries) {
    if (entry.location->kind > Location::Kind::regex) {
      separate();
      write_entry(entry);
    }
  }
}

std::vector<std::string> upstream_status_parts(const std::vector<AppRoute>& apps);

// The body of /__upstream_status in parts: the JSON and a final newline.
std::vector<std::string> upstream_status_body_parts(const std::vector<AppRoute>& apps) {
  std::vector<std::string> parts = upstream_status_parts(apps);
  parts.back() += "\n";
  return parts;
}

// How many bytes C takes in an nginx quoted string (see nginx_single_quoted).
size_t quoted_width(char c) {
  return std::string_view("\\'\n\r\t").find(c) == std::string_view::npos ? 1 : 2;
}

// PARTS regrouped into the pieces of a long string: k_parts_per_piece parts each, a group
// that would be longer than k_max_quoted_piece once quoted cut where it reaches that size.
std::vector<std::string> string_pieces(const std::vector<std::string>& parts) {
  std::vector<std::string> pieces;
  for (size_t first = 0; first < parts.size(); first += k_parts_per_piece) {
    std::string piece;
    size_t quoted = 0;
    for (size_t i = first; i < std::min(parts.size(), first + k_parts_per_piece); ++i) {
      for (char c : parts[i]) {
        if (quoted + quoted_width(c) > k_max_quoted_piece) {
          pieces.push_back(std::move(piece));
          piece.clear();
          quoted = 0;
        }
        piece += c;
        quoted += quoted_width(c);
      }
    }
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

// The names of the variables joining COUNT pieces, level by level; the last one is the
// whole string. Empty when there is one piece (it is set to the whole string directly).
std::vector<std::vector<std::string>> join_levels(size_t count) {
  std::vector<std::vector<std::string>> levels;
  for (size_t depth = 2; count > 1; ++depth) {
    const size_t joins = (count + k_max_joined_pieces - 1) / k_max_joined_pieces;
    std::vector<std::string> names;
    for (size_t n = 1; n <= joins; ++n) {
      names.push_back(joins == 1 ? std::string(k_upstream_status_variable)
                                 : fmt::format("{}_j{}_{}", k_piece_variable, depth, n));
    }
    levels.push_back(std::move(names));
    count = joins;
  }
  return levels;
}

// How many variables the `set` lines of /__upstream_status declare.
size_t upstream_status_variables(const std::vector<AppRoute>& apps) {
  const size_t pieces = string_pieces(upstream_status_body_parts(apps)).size();
  size_t variables = pieces;
  for (const auto& level : join_levels(pieces)) {
    variables += level.size();
  }
  return variables;
}

// `set` lines that leave the concatenation of PARTS (no '$' in them) in
// $mfserv_upstream_status, each token short enough for nginx's parser.
void write_upstream_status_variable(ConfWriter& writer, const std::vector<std::string>& parts) {
  const std::vector<std::string> pieces = string_pieces(parts);
  if (pieces.size() == 1) {
    writer.line("set " + std::string(k_upstream_status_variable) + " " +
                nginx_single_quoted(pieces.front()) + ";");
    return;
  }
  std::vector<std::string> previous;
  for (const std::string& piece : pieces) {
    previous.push_back(fmt::format("{}_{}", k_piece_variable, previous.size() + 1));
    writer.line("set " + previous.back() + " " + nginx_single_quoted(piece) + ";");
  }
  for (const std::vector<std::string>& level : join_levels(pieces.size())) {
    for (size_t n = 0; n < level.size(); ++n) {
      std::string value;
      for (size_t i = n * k_max_joined_pieces;
           i < std::min(previous.size(), (n + 1) * k_max_joined_pieces); ++i) {
        value += previous[i];
      }
      writer.line("set " + level[n] + " \"" + value + "\";");
    }
    previous = level;
  }
}

// The configured upstreams as JSON, loopback only. `return` runs in the rewrite phase, before
// allow/deny would be looked at (ngx_http_rewrite_module), so the address is tested with `if`.
void write_upstream_status_location(ConfWriter& writer, const std::vector<AppRoute>& apps) {
  writer.open("location = /__upstream_status");
  writer.open("if ($remote_addr != \"127.0.0.1\")");
  writer.line("return 403;");
  writer.close();
  writer.line("default_type application/json;");
  write_upstream_status_variable(writer, upstream_status_body_parts(apps));
  writer.line("return 200 " + std::string(k_upstream_status_variable) + ";");
  writer.close();
  writer.blank();
}

void write_builtin_locations(ConfWriter& writer, const FrontConfig& front,
                             const std::vector<AppRoute>& apps) {
  writer.open("location = /__health");
  writer.line("default_type text/plain;");
  if (front.running_flag.empty()) {
    writer.line("return 200 \"OK\\n\";");
  } else {
    writer.open("if (-f " + front.running_flag + ")");
    writer.line("return 200 \"OK\\n\";");
    writer.close();
    writer.line("return 503 \"STOPPING\\n\";");
  }
  writer.close();
  writer.blank();
  writer.open("location = /status");
  writer.line("stub_status;");
  writer.line("allow 127.0.0.1;");
  writer.line("deny all;");
  writer.close();
  writer.blank();
  write_upstream_status_location(writer, apps);
}

void write_server_head(ConfWriter& writer, const FrontConfig& front, bool default_server,
                       const std::string& server_names) {
  writer.open("server");
  writer.line(
      fmt::format("listen 0.0.0.0:{}{};", front.port, default_server ? " default_server" : ""));
  writer.line("server_name " + server_names + ";");
  writer.line("set $mfserv_plugin \"\";");
  writer.line("set $mfserv_app \"\";");
  writer.blank();
}

void write_main_server(ConfWriter& writer, const FrontConfig& front,
                       const std::vector<AppRoute>& apps) {
  write_server_head(writer, front, true, "_");
  write_builtin_locations(writer, front, apps);
  std::vector<Location> locations;
  for (const AppRoute& app : apps) {
    add_app_locations(locations, app, prefix_routes(app), front);
  }
  locations.push_back(fallback_location());
  write_locations(writer, std::move(locations));
  writer.close();
}

// APP.PLUGIN.HOST (and the extra vhosts): the app owns the whole URL space of that name.
void write_virtualdomain_server(ConfWriter& writer, const FrontConfig& front, const AppRoute& app) {
  std::string names = app.app + "." + app.plugin + "." + front.hostname;
  for (const std::string& vhost : app.extra_vhosts) {
    names += " " + vhost;
  }
  writer.blank();
  write_server_head(writer, front, false, names);
  std::vector<Location> locations;
  add_app_locations(locations, app, {""}, front);
  locations.push_back(fallback_location());
  write_locations(writer, std::move(locations));
  writer.close();
}

void write_upstream(ConfWriter& writer, const AppRoute& app) {
  writer.open("upstream " + upstream_name(app.plugin, app.app));
  writer.line("least_conn;");
  for (const std::string& socket : app.sockets) {
    writer.line("server unix:" + socket + " max_fails=0;");
  }
  writer.line(fmt::format("keepalive {};", k_upstream_keepalive));
  writer.close();
  writer.blank();
}

void write_main(ConfWriter& writer, const FrontConfig& front) {
  writer.line("# Generated by mfserv from the installed plugins; rewritten on every change.");
  writer.line("daemon off;");
  writer.line("master_process on;");
  if (front.worker_processes > 0) {
    writer.line(fmt::format("worker_processes {};", front.worker_processes));
  } else {
    writer.line("worker_processes auto;");
  }
  if (!front.pid_file.empty()) {
    writer.line("pid " + front.pid_file + ";");
  }
  if (!front.error_log.empty()) {
    writer.line("error_log " + front.error_log + " warn;");
  }
  if (!front.user.empty()) {
    writer.line("user " + front.user + (front.group.empty() ? "" : " " + front.group) + ";");
  }
  writer.line(fmt::format("worker_rlimit_nofile {};", k_worker_rlimit_nofile));
  writer.blank();
  writer.open("events");
  writer.line(fmt::format("worker_connections {};", k_worker_connections));
  writer.close();
  writer.blank();
}

void write_http_settings(ConfWriter& writer, const FrontConfig& front,
                         const std::vector<AppRoute>& apps) {
  if (!front.mime_types.empty()) {
    writer.line("include " + front.mime_types + ";");
  }
  writer.line("default_type application/octet-stream;");
  writer.line("client_max_body_size " + front.client_max_body_size + ";");
  if (!front.temp_dir.empty()) {
    for (std::string_view kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
      writer.line(fmt::format("{}_temp_path {}/{};", kind, front.temp_dir, kind));
    }
  }
  for (std::string_view kind : {"client_header", "client_body", "send"}) {
    writer.line(fmt::format("{}_timeout {}s;", kind, front.client_timeout));
  }
  // nginx's variables hash holds its ~200 own variables and every `set` one; past its
  // default size of 1024 it warns at each start (ngx_http_variables_init_vars). Four slots
  // per variable leave the hash room to place them all in 64-byte buckets.
  if (const size_t added = upstream_status_variables(apps); added > k_variables_default_hash_fits) {
    writer.line(fmt::format("variables_hash_max_size {};", 4 * (k_builtin_variables + added)));
  }
  writer.line("server_tokens off;");
  // Redirects made by nginx (a directory without its '/') stay relative, so they never name
  // the internal address or port.
  writer.line("absolute_redirect off;");
  writer.blank();

  if (front.accept_incoming_request_id) {
    // Only an id that is a plain token is kept: it goes to the app, back to the client and
    // into the log, so anything longer or stranger is replaced like a missing one.
    writer.open("map $http_x_request_id $mfserv_request_id");
    writer.line("\"~^[A-Za-z0-9._~:+/=-]{1,128}$\" $http_x_request_id;");
    writer.line("default $request_id;");
    writer.close();
  }
  // The Host the client sent, port included, so the app builds correct URLs; HTTP/1.0
  // requests without a Host header get the server's name instead of no Host at all.
  writer.open("map $http_host $mfserv_host");
  writer.line("\"\" $host;");
  writer.line("default $http_host;");
  writer.close();
  writer.blank();

  if (front.access_log.empty()) {
    writer.line("access_log off;");
  } else if (front.log_format == LogFormat::combined) {
    writer.line("access_log " + front.access_log + " combined;");
  } else {
    const std::string id = request_id_variable(front);
    writer.line(std::string("log_format ") + std::string(k_log_format) + " escape=json '{" +
                "\"time\":\"$time_iso8601\"," + "\"remote_addr\":\"$remote_addr\"," +
                "\"request_method\":\"$request_method\"," + "\"request_uri\":\"$request_uri\"," +
                "\"status\":\"$status\"," + "\"body_bytes_sent\":\"$body_bytes_sent\"," +
                "\"request_time\":\"$request_time\"," +
                "\"upstream_response_time\":\"$upstream_response_time\"," + "\"request_id\":\"" +
                id + "\"," + "\"plugin\":\"$mfserv_plugin\"," + "\"app\":\"$mfserv_app\"" + "}';");
    writer.line("access_log " + front.access_log + " " + std::string(k_log_format) + ";");
  }
  writer.blank();

  writer.line("proxy_http_version 1.1;");
  writer.line("proxy_buffering off;");
  // A refused connection (a crash-looping worker) moves on to the next worker. nginx's
  // "error" also covers a worker dying before its response header, so an idempotent request
  // is retried then too: once only, so that a request which kills its worker takes at most
  // two with it, not every worker of the app. Without "non_idempotent" a POST, PATCH or LOCK
  // once sent is never retried.
  writer.line("proxy_next_upstream error;");
  writer.line("proxy_next_upstream_tries 2;");
  for (const std::string& line : proxy_header_lines(front)) {
    writer.line(line);
  }
  for (const std::string& line : response_header_lines(front)) {
    writer.line(line);
  }
  writer.blank();
}

std::string sanitize_for_name(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const bool keep =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!keep) {
      c = '_';
    }
  }
  return out;
}

bool is_absolute_path(std::string_view path) {
  return !path.empty() && path.front() == '/';
}

// TEXT as a JSON string. '$' is written \u0024 too, so that the JSON can sit in an nginx
// string that expands variables.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || c == '$' || byte == 0x7f) {
      out += fmt::format("\\u{:04x}", byte);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The JSON of /__upstream_status in parts: the head, one part per upstream, the tail.
std::vector<std::string> upstream_status_parts(const std::vector<AppRoute>& apps) {
  std::vector<std::string> parts = {"{\"source\":\"configuration\",\"upstreams\":["};
  bool first_app = true;
  for (const AppRoute& app : apps) {
    if (app.sockets.empty()) {
      continue;
    }
    std::string part = first_app ? "" : ",";
    first_app = false;
    part += "{\"name\":" + json_string(upstream_name(app.plugin, app.app)) +
            ",\"plugin\":" + json_string(app.plugin) + ",\"app\":" + json_string(app.app) +
            fmt::format(",\"balancing\":\"least_conn\",\"keepalive\":{},\"timeout_s\":{}",
                        k_upstream_keepalive, app.timeout) +
            ",\"servers\":[";
    for (size_t i = 0; i < app.sockets.size(); ++i) {
      part += fmt::format("{}{{\"worker\":{},\"address\":{},\"max_fails\":0}}", i == 0 ? "" : ",",
                          i + 1, json_string("unix:" + app.sockets[i]));
    }
    part += "]}";
    parts.push_back(std::move(part));
  }
  parts.emplace_back("]}");
  return parts;
}

}  // namespace

std::string upstream_status_json(const std::vector<AppRoute>& apps) {
  std::string out;
  for (const std::string& part : upstream_status_parts(apps)) {
    out += part;
  }
  return out;
}

std::string nginx_single_quoted(std::string_view text) {
  // The escapes nginx's parser undoes in a quoted token (ngx_conf_read_token).
  std::string out = "'";
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      if (c == '\\' || c == '\'') {
        out += '\\';
      }
      out += c;
    }
  }
  return out + "'";
}

std::string upstream_name(const std::string& plugin, const std::string& app) {
  // The hash keeps names apart that sanitizing merges ("a-b" and "a_b", "a__b"/"c" and "a"/"b__c").
  return fmt::format("mfserv_{}__{}_{:08x}", sanitize_for_name(plugin), sanitize_for_name(app),
                     fnv1a(plugin + "/" + app));
}

bool is_safe_for_config(std::string_view text) {
  constexpr std::string_view k_allowed_punctuation = "/._-+:@~,";
  return std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           k_allowed_punctuation.find(c) != std::string_view::npos;
  });
}

std::vector<std::string> model_problems(const FrontConfig& front,
                                        const std::vector<AppRoute>& apps) {
  std::vector<std::string> problems;
  auto check_text = [&](const std::string& where, const std::string& field,
                        const std::string& value) {
    if (!is_safe_for_config(value)) {
      problems.push_back(where + field + " '" + value +
                         "' contains a character nginx.conf cannot carry as is");
    }
  };
  auto check_path = [&](const std::string& where, const std::string& field,
                        const std::string& value) {
    check_text(where, field, value);
    if (!value.empty() && !is_absolute_path(value)) {
      problems.push_back(where + field + " '" + value + "' is not an absolute path");
    }
  };
  auto check_route = [&](const std::string& where, const std::string& field,
                         const std::string& value) {
    check_text(where, field, value);
    if (!value.empty() && value.front() != '/') {
      problems.push_back(where + field + " '" + value + "' does not start with '/'");
    }
  };

  if (front.client_timeout <= 0) {
    problems.push_back(
        fmt::format("client_timeout {} is not a positive number of seconds", front.client_timeout));
  }
  if (front.port < 1 || front.port > 65535) {
    problems.push_back(fmt::format("port {} is out of range 1-65535", front.port));
  }
  check_text("", "user", front.user);
  check_text("", "group", front.group);
  check_text("", "hostname", front.hostname);
  check_text("", "client_max_body_size", front.client_max_body_size);
  check_path("", "pid_file", front.pid_file);
  check_path("", "error_log", front.error_log);
  check_path("", "access_log", front.access_log);
  check_path("", "temp_dir", front.temp_dir);
  check_path("", "mime_types", front.mime_types);
  check_path("", "running_flag", front.running_flag);

  for (const AppRoute& app : apps) {
    const std::string where = app_label(app) + ": ";
    if (!is_valid_name(app.plugin) || !is_valid_name(app.app)) {
      problems.push_back(where + "plugin and app names must match ^[A-Za-z0-9_-]+$");
    }
    if (app.timeout <= 0) {
      problems.push_back(
          where + fmt::format("timeout {} is not a positive number of seconds", app.timeout));
    }
    for (const std::string& socket : app.sockets) {
      check_path(where, "socket", socket);
    }
    for (const std::string& route : app.extra_routes) {
      check_route(where, "extra route", route);
    }
    check_route(where, "static_url_prefix", app.static_url_prefix);
    check_path(where, "static_dir", app.static_dir);
    for (const std::string& vhost : app.extra_vhosts) {
      check_text(where, "extra vhost", vhost);
    }
    check_path(where, "extra_conf_path", app.extra_conf_path);
    check_path(where, "extra_conf_static_path", app.extra_conf_static_path);
  }
  return problems;
}

std::string render(const FrontConfig& front, const std::vector<AppRoute>& apps) {
  ConfWriter writer;
  write_main(writer, front);
  writer.open("http");
  write_http_settings(writer, front, apps);
  for (const AppRoute& app : apps) {
    if (!app.sockets.empty()) {
      write_upstream(writer, app);
    }
  }
  write_main_server(writer, front, apps);
  for (const AppRoute& app : apps) {
    if (app.virtualdomain_routing) {
      write_virtualdomain_server(writer, front, app);
    }
  }
  writer.close();
  return writer.take();
}

}  // namespace mfserv::nginx
