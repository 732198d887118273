#pragma once
/// HTTPS delivery of envelopes to the home (libcurl, wrapped in libpass/src/transport.cpp).
/// Mutual TLS with the agent's certificate; the server must chain to the bundle's home CA
/// (the system trust store is never used); TLS >= 1.2; proxies (including the *_proxy
/// environment variables) are ignored unless an HTTPS CONNECT proxy is configured explicitly.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/envelope.hpp"
#include "pass/result.hpp"

namespace pass {

struct TransportSettings {
  /// Home endpoints in order of preference, e.g. "https://home.example:9455".
  std::vector<std::string> endpoints;
  /// Explicit HTTP CONNECT proxy ("http://host:port"); empty means direct.
  std::string proxy;
  std::string caFile;    // home-ca.crt
  std::string certFile;  // agent-tls.crt
  std::string keyFile;   // agent-tls.key
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds totalTimeout{60000};
};

/// The home's current HPKE public key, which a 200 answer carries when the envelope was sealed
/// to another key (docs/protocol.md, "home_key"). Checked: key_id = hpkeKeyId(public).
struct HomeKeyAnnouncement {
  KeyId keyId{};
  Bytes publicKey;  // raw 32-byte X25519
};

/// How the home answered one envelope.
enum class Delivery {
  kAccepted,   // 200, stored durably: drop it from the spool
  kDuplicate,  // 200, already stored: drop it from the spool
  kRefused,    // 4xx: permanent; quarantine the envelope and report it
  kRetry,      // 5xx, network or TLS failure: keep it and try later
};
std::string_view toString(Delivery d);

struct DeliveryResult {
  Delivery delivery = Delivery::kRetry;
  long httpStatus = 0;    // 0 when no HTTP answer arrived
  std::string endpoint;   // the endpoint that gave this answer (last one tried on kRetry)
  std::string body;       // the answer body as received
  std::string errorCode;  // "error" of a 4xx JSON body, or a transport code like "tls"
  std::string detail;     // human-readable: the "detail" of the answer or curl's message
  /// The home's clock from the answer's Date header (Unix ms, whole seconds); none without one.
  std::optional<std::int64_t> homeClockMs;
  /// A 200 answer's "home_key": the key to seal to from now on.
  std::optional<HomeKeyAnnouncement> homeKey;
  /// Why a 200 answer's "home_key" was not taken (malformed, or key_id not its key's id).
  std::string homeKeyError;
};

/// A refusal about time (422 `stale` or `future`): the agent's clock disagrees with the home's,
/// the envelope itself is fine.
bool isClockRefusal(const DeliveryResult& r);

/// Classifies an HTTP answer (pure; exposed for tests).
DeliveryResult classifyAnswer(long httpStatus, std::string body);
/// Classifies the answer to a certificate request: kAccepted for 200 {"status":"issued",
/// "certificate":PEM,...}, otherwise as classifyAnswer (a 200 without them is kRetry).
DeliveryResult classifyCertificateAnswer(long httpStatus, std::string body);

class Transport {
 public:
  /// Fails with "transport.*" when settings are unusable (no endpoint, unreadable files).
  static Result<Transport> create(TransportSettings settings);
  Transport(Transport&&) noexcept;
  Transport& operator=(Transport&&) noexcept;
  ~Transport();

  /// POSTs one envelope to /v1/envelopes, trying endpoints in order until one gives an answer
  /// that is not kRetry. Connections are reused between calls.
  DeliveryResult post(ByteView envelope);

  /// POSTs a PKCS#10 certificate request (DER) to /v1/certificate the same way; kAccepted
  /// means the body holds the issued certificate (docs/protocol.md).
  DeliveryResult requestCertificate(ByteView csrDer);

 private:
  struct Impl;
  explicit Transport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pass
