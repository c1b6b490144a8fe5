// The supervisor's log: timestamped lines to log/mfserv.log and, when the CLI asks for it
// (foreground `run`), to a second sink. The runtime never writes to the terminal itself.
#pragma once

#include <functional>
#include <string>

#include "util/unique_fd.hpp"

namespace mfserv::runtime {

class Logger {
 public:
  using Sink = std::function<void(const std::string& line)>;

  void open(const std::string& path);
  void set_sink(Sink sink) { m_sink = std::move(sink); }
  void info(const std::string& message) { write("info", message); }
  void warn(const std::string& message) { write("warning", message); }
  void error(const std::string& message) { write("error", message); }

 private:
  void write(const char* level, const std::string& message);

  UniqueFd m_fd;
  Sink m_sink;
};

}  // namespace mfserv::runtime
