// The nginx front as data, and its rendering to nginx.conf text. Rendering makes no system
// call and takes no decision about apps: the runtime fills the model, this turns it into text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mfserv::nginx {

// One routed app: an upstream (when it has workers) and its locations.
struct AppRoute {
  std::string plugin;
  std::string app;
  std::vector<std::string> sockets;  // one unix socket per worker; empty: no upstream
  int timeout = 60;                  // proxy_{connect,send,read}_timeout, seconds

  bool prefix_routing = true;             // /PLUGIN/APP/...
  bool plugin_prefix = false;             // also /PLUGIN/... (the app is "main" or the sole app)
  std::vector<std::string> extra_routes;  // more prefixes ("/" included) routed the same way

  bool static_routing = true;
  // "" or "/something". "" puts the static files at the route itself: for an app without
  // sockets (a static site) everything is served from static_dir; for an app with sockets,
  // a request naming a regular file of static_dir gets the file and every other request
  // (directories, missing files, the bare prefix) goes to the app.
  std::string static_url_prefix = "/static";
  std::string static_dir;  // absolute directory served for static requests (no trailing /)

  bool virtualdomain_routing = false;  // server_name APP.PLUGIN.HOST
  std::vector<std::string> extra_vhosts;

  std::string extra_conf_path;         // absolute path of a fragment included in the app's location
  std::string extra_conf_static_path;  // the same, included in the app's static location(s)
};

// The access log's format: MFSERV's JSON lines, or nginx's predefined "combined" (for tools
// that parse Apache-style logs; it carries neither the request id nor the plugin and app).
enum class LogFormat { json, combined };

struct FrontConfig {
  int port = 18868;
  std::string user;   // nginx worker user; "" to omit the directive (non-root)
  std::string group;  // its group; "": nginx's default, the group named like the user
  int worker_processes = 2;
  std::string hostname = "localhost";  // HOST part of virtual domains
  std::string pid_file;
  std::string error_log;
  std::string access_log;
  std::string temp_dir;      // client_body, proxy, fastcgi, uwsgi, scgi temp paths live below
  std::string mime_types;    // path of mime.types, "" to omit
  std::string running_flag;  // /__health: 200 while this file exists, else 503; "": always 200
  std::string client_max_body_size = "100m";
  // nginx's own timeouts towards the client (client_header_timeout, client_body_timeout,
  // send_timeout), seconds. Each app's proxy timeouts come from its AppRoute::timeout.
  int client_timeout = 60;
  LogFormat log_format = LogFormat::json;
  // Keep a client's X-Request-Id instead of generating one (MFSERV's
  // accept_incoming_request_id_header) when it is 1 to 128 of [A-Za-z0-9._~:+/=-]; a missing,
  // empty or other header still gets a fresh id.
  bool accept_incoming_request_id = false;
  // X-Real-IP, X-Forwarded-For/-Proto/-Host to the app (MFSERV's add_x_forwarded_headers).
  bool add_x_forwarded_headers = true;
  // X-Request-Id to the app and back to the client (MFSERV's add_request_id_header); the
  // access log keeps the id either way.
  bool add_request_id_header = true;
};

// The whole nginx.conf. Input is trusted: names, routes and paths were validated by images/
// (names match ^[A-Za-z0-9_-]+$, routes start with '/'); use model_problems() to check a model
// built elsewhere. Locations are ordered most specific first, since nginx tries regex
// locations in file order; a route claimed twice is rendered once (first app wins) with a
// comment.
std::string render(const FrontConfig& front, const std::vector<AppRoute>& apps);

// True when TEXT can be pasted into nginx.conf as a bare token without changing its meaning:
// only [A-Za-z0-9] and "/._-+:@~,". Whitespace, quotes, ';', braces, '$', '#', '\\' and
// control characters are refused. The empty string is safe (nothing is pasted).
bool is_safe_for_config(std::string_view text);

// Every field of the model that render() would paste unsafely or that makes no sense
// (relative paths, routes without a leading '/', a port out of range), one sentence each.
// Empty when the model can be rendered.
std::vector<std::string> model_problems(const FrontConfig& front,
                                        const std::vector<AppRoute>& apps);

// The upstream name of an app: stable, valid in nginx, unique per plugin/app.
std::string upstream_name(const std::string& plugin, const std::string& app);

// The body of /__upstream_status: every upstream of the model with its servers, as one JSON
// object. It describes the configuration nginx was given, not the live state of each peer
// (stock nginx exposes none without the commercial API module or lua); `mfserv ps` has the
// workers' live state.
std::string upstream_status_json(const std::vector<AppRoute>& apps);

// TEXT as one nginx single-quoted token ('...', with '\\', '\'', newline, CR and tab
// escaped) that nginx's parser turns back into TEXT byte for byte. TEXT must not contain '$': nginx
// would expand it as a variable in a `return` or `set` value.
std::string nginx_single_quoted(std::string_view text);

}  // namespace mfserv::nginx
