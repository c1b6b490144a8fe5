#include "runtime/logger.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

namespace mfserv::runtime {

void Logger::open(const std::string& path) {
  m_fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
}

void Logger::write(const char* level, const std::string& message) {
  struct timespec now {};
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm {};
  gmtime_r(&now.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line =
      fmt::format("{}.{:03d}Z {} {}\n", stamp, now.tv_nsec / 1000000, level, message);
  if (m_fd) {
    (void)!::write(m_fd.get(), line.data(), line.size());
  }
  if (m_sink) {
    m_sink(line);
  }
}

}  // namespace mfserv::runtime
