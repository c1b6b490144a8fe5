// Writing, validating and reloading the nginx configuration. The only part of nginx-gen that
// touches the system.
#pragma once

#include <string>

#include "util/result.hpp"

namespace mfserv::nginx {

// The nginx binary: $MFSERV_NGINX, else `nginx` on PATH, else /usr/sbin/nginx.
Result<std::string> find_nginx();

// Runs `nginx -t -q -c CONF_PATH -e ERROR_LOG` ("" logs to stderr); on failure the Error
// quotes what nginx printed. nginx -t is not side-effect free: it needs the parent of the temp
// paths to exist and creates the temp paths themselves (owned by the worker user), opens the
// log files, and creates the pid file, empty, when it is missing.
Status validate(const std::string& nginx_binary, const std::string& conf_path,
                const std::string& error_log);

// Writes TEXT to a temporary file beside CONF_PATH, validates it, and only then renames it
// over CONF_PATH. On failure CONF_PATH is untouched.
Status write_validated(const std::string& nginx_binary, const std::string& conf_path,
                       const std::string& text, const std::string& error_log);

}  // namespace mfserv::nginx
