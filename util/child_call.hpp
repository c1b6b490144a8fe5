// Library calls whose side effects must not stay in a long-lived process run in a forked
// child, and only their answer crosses a pipe: libcgroup's mount tables (~800 KiB it fills and
// keeps) and NSS modules (glibc never unloads one; nss_systemd alone is ~320 KiB).
#pragma once

#include <functional>
#include <string>

#include "util/result.hpp"

namespace mfserv {

// Runs FN in a fork of the (single-threaded) caller and returns its answer or its error; FN
// ends with the child (_exit: no atexit handler, no stdio flush).
Result<std::string> call_in_child(const std::function<Result<std::string>()>& fn);

}  // namespace mfserv
