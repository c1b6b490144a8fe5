#include "runtime/process.hpp"

namespace mfserv::runtime {

const char* to_string(ProcessState state) {
  switch (state) {
    case ProcessState::Starting:
      return "starting";
    case ProcessState::Running:
      return "running";
    case ProcessState::Stopping:
      return "stopping";
    case ProcessState::Backoff:
      return "backoff";
    case ProcessState::Stopped:
      return "stopped";
    case ProcessState::Failed:
      return "failed";
  }
  return "unknown";
}

}  // namespace mfserv::runtime
