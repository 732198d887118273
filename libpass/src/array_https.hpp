#pragma once
// HTTPS to an array's management interface (3PAR WSAPI, Nimble REST). Arrays almost always
// present self-signed certificates, so instead of a CA the server's public key is pinned on
// first contact (PinStore) and a different key afterwards is refused (pinMismatch). Proxies,
// including proxy environment variables, are never used: the array is on the customer's LAN.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pass/collector.hpp"
#include "pass/result.hpp"

namespace pass {

struct HttpsRequest {
  std::string method = "GET";
  std::string target;  // path and query: "/v1/events?startRow=0&endRow=100"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent as application/json when not empty
};

struct HttpsResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// A header's value, the name matched without regard to case.
  std::optional<std::string> header(std::string_view name) const;
};

struct ArrayHttpsOptions {
  std::string host;  // name or address, IPv6 without brackets
  std::uint16_t port = 443;
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds totalTimeout{60000};  // per request
  std::size_t maxBody = 64u << 20;                // a longer answer is "bad_output"
  /// The PinStore name of this interface's key ("wsapi", "rest").
  std::string pinName;
};

/// One connection's worth of requests to one array (keep-alive between them). Not thread-safe.
class ArrayHttps {
 public:
  /// `pins` and `array` must outlive the client; `array` names the array in messages.
  ArrayHttps(ArrayHttpsOptions options, PinStore& pins, const ArrayConfig& array);
  ~ArrayHttps();
  ArrayHttps(const ArrayHttps&) = delete;
  ArrayHttps& operator=(const ArrayHttps&) = delete;

  /// Sends one request, only to the pinned key. An array that has no pin yet is pinned first:
  /// a handshake that sends nothing learns the server's key ("sha256//<base64 of the SHA-256
  /// of its SubjectPublicKeyInfo>", curl's pin format) and remembers it, and only then is the
  /// request (often a login with the password) sent, under that pin; a pin that cannot be
  /// stored sends nothing. Errors (codes as statusState() reads them):
  /// "collector.unreachable" (resolve, connect, TLS), "collector.timeout",
  /// "collector.pin_mismatch", "collector.bad_output" (answer too long). Any HTTP status is
  /// a response, not an error: the caller reads it.
  Result<HttpsResponse> send(const HttpsRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pass
