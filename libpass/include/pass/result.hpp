#pragma once
/// Error handling for libpass: every fallible function returns pass::Result<T>.

#include <expected>
#include <string>
#include <utility>

namespace pass {

/// An error a field engineer can act on: a stable machine code (e.g. "bad_signature",
/// "config.unknown_key") and one sentence saying what was wrong and where.
struct Error {
  std::string code;
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

/// Result of an operation that yields nothing but can fail.
using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(std::string code, std::string message) {
  return std::unexpected<Error>(Error{std::move(code), std::move(message)});
}

}  // namespace pass
