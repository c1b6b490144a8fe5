// Error values for every system-call path (the project's error model, see ARCHITECTURE.md).
// A failing call returns an Error carrying errno and a message; callers add context on the
// way up ("creating cgroup mfserv/foo/main: writing memory.max: Invalid argument") and only
// the CLI prints. Exceptions are confined to parsing boundaries and converted there.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace mfserv {

class Error {
 public:
  explicit Error(std::string message, int code = 0) : m_message(std::move(message)), m_code(code) {}

  // The current errno, with what was being done.
  static Error from_errno(std::string what) { return Error(std::move(what), errno); }

  // Prepends the caller's context: "starting app foo/main: " + inner message.
  Error with_context(const std::string& context) const {
    return Error(context + ": " + m_message, m_code);
  }

  int code() const { return m_code; }
  const std::string& message() const { return m_message; }
  // Message plus the errno text when there is one.
  std::string describe() const;

 private:
  std::string m_message;
  int m_code;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_value(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : m_value(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(m_value); }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(m_value); }
  const T& value() const { return std::get<T>(m_value); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<Error>(m_value); }

 private:
  std::variant<T, Error> m_value;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_failed(true) {}  // NOLINT

  bool ok() const { return !m_failed; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return m_error; }

 private:
  Error m_error{""};
  bool m_failed = false;
};

using Status = Result<void>;

}  // namespace mfserv
