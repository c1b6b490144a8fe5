// Owner of one sd-event source: disabled and released on destruction, so a timer or child
// watch never outlives the object it calls back into.
#pragma once

#include <systemd/sd-event.h>

#include <utility>

namespace mfserv::runtime {

class EventSource {
 public:
  EventSource() = default;
  explicit EventSource(sd_event_source* source) : m_source(source) {}
  EventSource(const EventSource&) = delete;
  EventSource& operator=(const EventSource&) = delete;
  EventSource(EventSource&& other) noexcept : m_source(std::exchange(other.m_source, nullptr)) {}
  EventSource& operator=(EventSource&& other) noexcept {
    if (this != &other) {
      reset();
      m_source = std::exchange(other.m_source, nullptr);
    }
    return *this;
  }
  ~EventSource() { reset(); }

  void reset() {
    if (m_source) {
      sd_event_source_disable_unref(m_source);
      m_source = nullptr;
    }
  }
  bool active() const { return m_source != nullptr; }
  sd_event_source* get() const { return m_source; }

 private:
  sd_event_source* m_source = nullptr;
};

}  // namespace mfserv::runtime
