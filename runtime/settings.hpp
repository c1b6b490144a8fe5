// The instance's global settings: HOME/config/mfserv.ini, read with the project's INI reader
// (images/ini.hpp) so that every error names its file, line and key. A missing file means
// all defaults. Today the file has one section:
//
//   [nginx]
//   port = 18868                      # 1-65535; `mfserv run --port N` overrides it
//   worker_processes = 4              # 1-1024 or auto; default: one per core, at most 4
//   client_max_body_size = 100m       # nginx size: N, Nk, Nm or Ng (0: no limit)
//   timeout = 60                      # seconds nginx waits on a client (header, body, send);
//                                     # each app's proxy timeouts are its own `timeout`
//   accept_incoming_request_id = 0    # 1: keep a client's X-Request-Id instead of a new one
//                                     # (when it is a plain token of at most 128 characters)
//   add_x_forwarded_headers = 1       # 0: no X-Real-IP, X-Forwarded-For/-Proto/-Host to apps
//   add_request_id_header = 1         # 0: no X-Request-Id to apps nor clients (still logged)
//   hostname = myhost.example.org     # HOST of APP.PLUGIN.HOST; default: the host's name
//   log_format = json                 # json (plugin, app, request_id...) or combined
//   user = www-data                   # nginx workers' user; default www-data, else nobody
//
// Unknown sections and keys are errors (a typo must not silently keep a default).
// `mfserv reload` re-reads the file; `port` and `user` take effect at the next `mfserv run`.
#pragma once

#include <string>
#include <string_view>

#include "runtime/front.hpp"
#include "runtime/home.hpp"
#include "util/result.hpp"

namespace mfserv::runtime {

// HOME/config/mfserv.ini.
std::string settings_path(const Home& home);

// Reads HOME/config/mfserv.ini. On any problem the Error lists every one of them, one per
// line, as "FILE:LINE: [nginx] key: what is wrong".
Result<FrontSettings> load_settings(const Home& home);

// The same from TEXT; FILE only names where it came from.
Result<FrontSettings> parse_settings(std::string_view text, const std::string& file);

}  // namespace mfserv::runtime
