#pragma once
/// The agent's TLS client certificate and its renewal without a site visit (docs/agent.md,
/// docs/security.md): once a third of its lifetime is left, the agent makes a new key pair here
/// (the private key never leaves the machine), sends a PKCS#10 request to the home over its
/// current mutual-TLS channel (POST /v1/certificate, docs/protocol.md) and installs the
/// certificate it gets back, with its key, as ONE file in the state directory: one atomic
/// rename switches both, so no crash leaves a key and a certificate that do not belong
/// together. The bundle's agent-tls.key/.crt stay as they were: the fallback.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "pass/bytes.hpp"
#include "pass/config.hpp"
#include "pass/result.hpp"

namespace pass {

/// The renewed key and certificate (PEM, key first), relative to the state directory; 0600.
inline constexpr std::string_view kRenewedCertificateDir = "tls";
inline constexpr std::string_view kRenewedCertificateFile = "agent-tls.pem";

/// The key and certificate the agent connects with.
struct TlsIdentity {
  std::filesystem::path certFile;
  std::filesystem::path keyFile;  // the same file as certFile for a renewed identity
  std::string serialHex;          // lower case, as the home stores it; "" when unreadable
  std::int64_t notBeforeMs = 0;   // 0 when the certificate could not be read
  std::int64_t notAfterMs = 0;
  bool renewed = false;  // from the state directory, not the bundle
  /// Why a renewed file in the state directory was not used ("" when it was, or none exists).
  std::string ignoredRenewal;
};

/// The renewed file of `cfg`'s state directory.
std::filesystem::path renewedCertificatePath(const AgentConfig& cfg);

/// The renewed file when it holds a key and a certificate that belong together, name this
/// agent (CN = agent id) and do not expire before the bundle's certificate; otherwise the bundle's
/// agent-tls.crt and agent-tls.key (with ignoredRenewal saying why, if a renewed file exists).
/// Never fails: an unreadable bundle certificate is the TLS handshake's to report, and such an
/// identity is never due for renewal (notAfterMs 0).
TlsIdentity loadTlsIdentity(const AgentConfig& cfg);

/// True once less than a third of the certificate's lifetime (notBefore to notAfter) is left.
bool renewalDue(const TlsIdentity& identity, std::int64_t nowMs);

/// A new key pair and the PKCS#10 request for it (DER; CN = the agent id, signed by the key).
struct CertificateRequest {
  std::string privateKeyPem;  // PKCS#8; stays on this machine
  Bytes der;
};
Result<CertificateRequest> makeCertificateRequest(const AgentId& agent);

/// Checks the certificate the home issued for `request` (PEM): it certifies the request's key,
/// names this agent, chains to the bundle's home CA and is valid now, else "renewal.certificate".
/// Then writes the request's key and the certificate into renewedCertificatePath() atomically
/// and durably (temp file, fsync, rename, directory fsync; owner only) and returns the new
/// identity. A crash leaves the previous identity in place, whole.
Result<TlsIdentity> installRenewedCertificate(const AgentConfig& cfg,
                                              const CertificateRequest& request,
                                              std::string_view certificatePem);

}  // namespace pass
