#include "util/result.hpp"

#include <cstring>

namespace mfserv {

std::string Error::describe() const {
  if (m_code == 0) {
    return m_message;
  }
  return m_message + ": " + std::strerror(m_code);
}

}  // namespace mfserv
