// X509 handling of the agent: its client certificate, the renewal request and the install.

#include "pass/agent_certificate.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <system_error>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "platform/fs.hpp"
#include "x509_util.hpp"

namespace pass {
namespace {

namespace fs = std::filesystem;

using x509::BioPtr;
using x509::Deleter;
using x509::KeyPtr;
using x509::opensslReason;
using x509::ReqPtr;
using x509::serialHex;
using x509::unixMs;
using x509::X509Ptr;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

BioPtr memoryBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

X509Ptr readCertificate(std::string_view pem) {
  auto bio = memoryBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

KeyPtr readPrivateKey(std::string_view pem) {
  auto bio = memoryBio(pem);
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return key;
}

std::string commonName(X509* cert) {
  return x509::nameEntry(X509_get_subject_name(cert), NID_commonName);
}

TlsIdentity describe(X509* cert, fs::path certFile, fs::path keyFile, bool renewed) {
  TlsIdentity id;
  id.certFile = std::move(certFile);
  id.keyFile = std::move(keyFile);
  id.renewed = renewed;
  if (!cert) return id;
  id.serialHex = serialHex(cert);
  id.notBeforeMs = unixMs(X509_get0_notBefore(cert));
  id.notAfterMs = unixMs(X509_get0_notAfter(cert));
  return id;
}

/// What is wrong with `cert` as this agent's certificate for `key` ("" when nothing).
std::string mismatch(X509* cert, EVP_PKEY* key, const AgentId& agent) {
  if (!cert) return "it holds no PEM certificate";
  if (!key) return "it holds no PEM private key";
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return "its certificate is not for its key";
  }
  auto cn = commonName(cert);
  if (cn != formatUuid(agent)) {
    return fmt::format("its certificate names '{}', not this agent ({})", cn, formatUuid(agent));
  }
  return {};
}

}  // namespace

fs::path renewedCertificatePath(const AgentConfig& cfg) {
  return cfg.stateDir / kRenewedCertificateDir / kRenewedCertificateFile;
}

TlsIdentity loadTlsIdentity(const AgentConfig& cfg) {
  auto bundleText = platform::readFile(cfg.tlsCert);
  X509Ptr bundleCert = bundleText ? readCertificate(*bundleText) : nullptr;
  auto bundle = describe(bundleCert.get(), cfg.tlsCert, cfg.tlsKey, false);

  const auto file = renewedCertificatePath(cfg);
  auto text = platform::readFile(file);
  if (!text) {
    if (text.error().code != "not_found") bundle.ignoredRenewal = text.error().message;
    return bundle;
  }
  auto cert = readCertificate(*text);
  auto key = readPrivateKey(*text);
  auto why = mismatch(cert.get(), key.get(), cfg.agentId);
  auto renewed = describe(cert.get(), file, file, true);
  if (why.empty() && renewed.notAfterMs < bundle.notAfterMs) {
    why =
        "its certificate expires before the bundle's agent-tls.crt (was the agent enrolled "
        "again?)";
  }
  if (!why.empty()) {
    bundle.ignoredRenewal = fmt::format("{}: not used, {}; using {}", platform::displayPath(file),
                                        why, platform::displayPath(cfg.tlsCert));
    return bundle;
  }
  return renewed;
}

bool renewalDue(const TlsIdentity& identity, std::int64_t nowMs) {
  if (identity.notAfterMs <= identity.notBeforeMs) return false;
  return (identity.notAfterMs - nowMs) * 3 < identity.notAfterMs - identity.notBeforeMs;
}

Result<CertificateRequest> makeCertificateRequest(const AgentId& agent) {
  auto failed = [](std::string_view what) {
    return fail("renewal.request", fmt::format("{}: {}", what, opensslReason()));
  };
  // The same key type as enrollment gives (home/src/keys/pki.cpp).
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return failed("generating an ECDSA P-256 key");
  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) return failed("X509_REQ_new");
  const auto cn = formatUuid(agent);
  if (X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return failed("certificate request subject and key");
  }
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return failed("signing the certificate request");
  }
  CertificateRequest out;
  int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) return failed("encoding the certificate request");
  out.der.resize(static_cast<std::size_t>(len));
  unsigned char* p = out.der.data();
  if (i2d_X509_REQ(req.get(), &p) != len) return failed("encoding the certificate request");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return failed("writing the new private key");
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  if (size <= 0 || !data) return failed("writing the new private key");
  out.privateKeyPem.assign(data, static_cast<std::size_t>(size));
  return out;
}

Result<TlsIdentity> installRenewedCertificate(const AgentConfig& cfg,
                                              const CertificateRequest& request,
                                              std::string_view certificatePem) {
  auto refuse = [](std::string why) {
    return fail("renewal.certificate",
                fmt::format("the certificate the home returned is not usable: {}", why));
  };
  auto cert = readCertificate(certificatePem);
  auto key = readPrivateKey(request.privateKeyPem);
  if (auto why = mismatch(cert.get(), key.get(), cfg.agentId); !why.empty()) return refuse(why);

  // Chains to the bundle's home CA, for a client, now.
  auto caText = platform::readFile(cfg.homeCa);
  if (!caText) return std::unexpected(caText.error());
  auto ca = readCertificate(*caText);
  if (!ca) return refuse(fmt::format("{} holds no PEM certificate", cfg.homeCa.string()));
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1 ||
      X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT) != 1) {
    return refuse(opensslReason());
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    auto reason = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return refuse(fmt::format("it does not verify against {}: {}", cfg.homeCa.string(), reason));
  }

  const auto file = renewedCertificatePath(cfg);
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) {
    return fail("state.io", fmt::format("cannot create {}: {}",
                                        platform::displayPath(file.parent_path()), ec.message()));
  }
  if (auto done = platform::makePrivateDirectory(file.parent_path()); !done) {
    return std::unexpected(done.error());
  }
  std::string both = request.privateKeyPem;
  if (!both.ends_with('\n')) both += '\n';
  both += certificatePem;
  auto written = platform::writeFileAtomic(file, both, /*privateFile=*/true);
  secureZero(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(both.data()), both.size()));
  if (!written) return std::unexpected(written.error());
  return describe(cert.get(), file, file, true);
}

}  // namespace pass
