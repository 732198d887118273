// POST /v1/certificate: an agent's certificate request checked, a new certificate issued.

#include "pass/home/renewal.hpp"

#include <fmt/format.h>

#include "pass/envelope.hpp"

namespace pass::home {

CertificateRenewals::CertificateRenewals(StoreLocation database, AgentCertificateIssuer issuer,
                                         std::int64_t graceMs)
    : database_(std::move(database)), issuer_(std::move(issuer)), graceMs_(graceMs) {}

CertificateRenewals::~CertificateRenewals() = default;

CertificateRenewals::Outcome CertificateRenewals::renew(ByteView csrDer, X509* requester,
                                                        const PeerIdentity& peer,
                                                        std::int64_t nowMs) {
  Outcome out;
  out.agent = peer.commonName;
  auto refuse = [&out](unsigned status, std::string code, std::string detail) -> Outcome& {
    out.result = Refusal{status, std::move(code), std::move(detail)};
    return out;
  };
  auto id = parseUuid(peer.commonName);
  if (!id) {
    return refuse(
        403, "unknown_agent",
        fmt::format("the client certificate names '{}', not an agent id", peer.commonName));
  }
  const std::string agentId = formatUuid(*id);
  out.agent = agentId;

  std::lock_guard lock(mutex_);
  if (!store_) {
    auto opened = Store::open(database_, Store::Mode::kOpenExisting);
    if (!opened) {
      out.result = opened.error();
      return out;
    }
    store_ = std::make_unique<Store>(std::move(*opened));
  }
  auto storeFailed = [&](Error e) -> Outcome& {
    store_.reset();  // a connection that failed is not used again
    out.result = std::move(e);
    return out;
  };
  auto auth = store_->agentAuth(agentId);
  if (!auth) return storeFailed(auth.error());
  if (!*auth) {
    return refuse(403, "unknown_agent",
                  fmt::format("agent {} is not enrolled at this home", agentId));
  }
  const auto& row = **auth;
  if (row.revokedMs) {
    return refuse(403, "revoked",
                  fmt::format("agent {} was revoked; enroll the array again", agentId));
  }
  if (!acceptsCertificate(row.certSerial, row.previousCertSerial, row.previousCertUntilMs,
                          peer.serialHex, nowMs)) {
    return refuse(403, "certificate_mismatch",
                  fmt::format("the client certificate (serial {}) is not agent {}'s current "
                              "certificate, nor the one it replaced within the grace period",
                              peer.serialHex, agentId));
  }

  auto issued = issuer_.renew(csrDer, requester);
  if (!issued) {
    const auto& e = issued.error();
    if (e.code == "crypto") return storeFailed(e);
    return refuse(400, e.code, e.message);
  }
  auto recorded = store_->renewCertificate(CertificateRenewal{.agentId = agentId,
                                                              .requesterSerial = peer.serialHex,
                                                              .newSerial = issued->serialHex,
                                                              .expiresMs = issued->notAfterMs,
                                                              .nowMs = nowMs,
                                                              .graceMs = graceMs_});
  if (!recorded) {
    // Revoked or renewed by another request between the read and the write.
    if (recorded.error().code == "certificate_mismatch") {
      return refuse(403, "certificate_mismatch", recorded.error().message);
    }
    return storeFailed(recorded.error());
  }
  out.result = std::move(*issued);
  return out;
}

}  // namespace pass::home
