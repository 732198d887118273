#pragma once
/// POST /v1/certificate without the network code: an agent renews its TLS client certificate
/// over the mutual-TLS connection it already has (docs/protocol.md, docs/security.md). The
/// server calls CertificateRenewals::renew on its I/O threads; renewals are rare (once per
/// agent every few years), so they share one store connection under a mutex.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <variant>

#include "pass/bytes.hpp"
#include "pass/home/ingest.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/store.hpp"

namespace pass::home {

/// How long a certificate replaced by a renewal is still accepted: connections and runs that
/// started with it finish, and an agent whose renewal answer was lost can ask again.
inline constexpr std::int64_t kCertificateGraceMs = 7LL * 24 * 3600 * 1000;

class CertificateRenewals {
 public:
  CertificateRenewals(StoreLocation database, AgentCertificateIssuer issuer,
                      std::int64_t graceMs = kCertificateGraceMs);
  ~CertificateRenewals();
  CertificateRenewals(const CertificateRenewals&) = delete;
  CertificateRenewals& operator=(const CertificateRenewals&) = delete;

  struct Outcome {
    /// IssuedCertificate: answer 200 with it; Refusal: 4xx; Error: the store failed (503).
    std::variant<IssuedCertificate, Refusal, Error> result;
    std::string agent;  // the agent id the requesting certificate names
  };

  /// The requesting certificate (`requester`, verified by the TLS handshake; `peer` is what it
  /// says) must name an enrolled agent that
  /// is not revoked and be its current certificate or the one the last renewal replaced,
  /// within the grace period (403 unknown_agent, revoked, certificate_mismatch); the request
  /// must pass AgentCertificateIssuer::renew (400). The new certificate becomes the agent's
  /// current one (Store::renewCertificate) before it is returned.
  Outcome renew(ByteView csrDer, X509* requester, const PeerIdentity& peer, std::int64_t nowMs);

 private:
  StoreLocation database_;
  AgentCertificateIssuer issuer_;
  std::int64_t graceMs_;
  std::mutex mutex_;
  std::unique_ptr<Store> store_;  // opened on first use; dropped after an error
};

}  // namespace pass::home
