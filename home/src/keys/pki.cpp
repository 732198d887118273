// The home CA: server and agent certificates, and the TLS settings that check them.

#include "pass/home/pki.hpp"

#include "pass/tls_policy.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <memory>
#include <system_error>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pass/config.hpp"
#include "pass/crypto.hpp"
#include "pass/home/cluster_keys.hpp"
#include "pass/home/state_store.hpp"
#include "pass/home/store.hpp"
#include "platform/fs.hpp"
#include "x509_util.hpp"

namespace pass::home {
namespace {

namespace fs = std::filesystem;

using x509::BioPtr;
using x509::BnPtr;
using x509::Deleter;
using x509::KeyPtr;
using x509::nameEntry;
using x509::opensslReason;
using x509::ReqPtr;
using x509::serialHex;
using x509::X509Ptr;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using OctetPtr =
    std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>>;

constexpr int kCaDays = 3650;
// The server certificate's lifetime; agents' is kAgentCertDays (pki.hpp).
constexpr int kLeafDays = 5 * 365;
// A PKCS#10 request for a P-256 key is about 250 bytes; anything near this is not ours.
constexpr std::size_t kMaxCsrBytes = 16 * 1024;
// X.520 upper bound for O, OU and CN; OpenSSL refuses longer values.
constexpr std::size_t kMaxNameLength = 64;

std::unexpected<Error> opensslFail(std::string code, std::string_view what) {
  return fail(std::move(code), fmt::format("{}: {}", what, opensslReason()));
}

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<KeyPtr> generateP256() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return opensslFail("crypto", "generating an ECDSA P-256 key");
  return key;
}

Result<std::string> bioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || !data) return fail("crypto", "empty PEM output");
  return std::string(data, static_cast<std::size_t>(len));
}

Result<std::string> privateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY").
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return opensslFail("crypto", "writing a private key");
  return bioText(bio.get());
}

Result<std::string> certificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return opensslFail("crypto", "writing a certificate");
  return bioText(bio.get());
}

Result<X509Ptr> loadCertificate(const fs::path& file) {
  auto text = platform::readFile(file);
  if (!text) return std::unexpected(text.error());
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return opensslFail("io", fmt::format("{}: not a PEM certificate", file.string()));
  return cert;
}

Result<KeyPtr> loadPrivateKey(const fs::path& file) {
  auto text = platform::readFile(file);
  if (!text) return std::unexpected(text.error());
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return opensslFail("io", fmt::format("{}: not a PEM private key", file.string()));
  return key;
}

/// The notAfter of `cert` in Unix ms (0 if it cannot be read).
std::int64_t notAfterMs(const X509* cert) { return x509::unixMs(X509_get0_notAfter(cert)); }

struct CertSpec {
  std::vector<std::pair<const char*, std::string>> subject;  // ("CN", value), ...
  bool ca = false;
  int days = kLeafDays;
  long seconds = 0;                        // added to days
  const char* extendedKeyUsage = nullptr;  // "serverAuth" / "clientAuth"
  std::string subjectAltName;              // "DNS:localhost,IP:127.0.0.1"
};

Status addExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return opensslFail("crypto",
                       fmt::format("certificate extension {}={}", OBJ_nid2sn(nid), value));
  return {};
}

/// Issues a certificate for `key`; self-signed when `issuer` is null.
Result<X509Ptr> issue(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuerKey) {
  X509Ptr cert(X509_new());
  if (!cert) return opensslFail("crypto", "X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return opensslFail("crypto", "certificate version");

  // A random positive 128-bit serial: unique without keeping a counter.
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return opensslFail("crypto", "random serial");
  raw[0] = static_cast<unsigned char>((raw[0] & 0x7f) | 0x40);
  BnPtr bn(BN_bin2bn(raw, sizeof raw, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())))
    return opensslFail("crypto", "certificate serial");

  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : spec.subject) {
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0) != 1)
      return opensslFail("crypto", fmt::format("certificate subject {}={}", field, value));
  }
  X509_NAME* issuerName = issuer ? X509_get_subject_name(issuer) : name;
  if (X509_set_issuer_name(cert.get(), issuerName) != 1)
    return opensslFail("crypto", "certificate issuer");

  // Five minutes back so that a peer whose clock lags a little accepts a fresh certificate.
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.days, spec.seconds, nullptr))
    return opensslFail("crypto", "certificate validity");
  if (X509_set_pubkey(cert.get(), key) != 1) return opensslFail("crypto", "certificate key");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  std::vector<std::pair<int, std::string>> exts;
  if (spec.ca) {
    exts = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
            {NID_key_usage, "critical,keyCertSign,cRLSign"},
            {NID_subject_key_identifier, "hash"}};
  } else {
    exts = {{NID_basic_constraints, "critical,CA:FALSE"},
            {NID_key_usage, "critical,digitalSignature"},
            {NID_ext_key_usage, spec.extendedKeyUsage},
            {NID_subject_key_identifier, "hash"},
            {NID_authority_key_identifier, "keyid:always"}};
    if (!spec.subjectAltName.empty()) exts.emplace_back(NID_subject_alt_name, spec.subjectAltName);
  }
  for (const auto& [nid, value] : exts) {
    if (auto added = addExtension(cert.get(), &ctx, nid, value); !added)
      return std::unexpected(added.error());
  }
  if (X509_sign(cert.get(), issuerKey, EVP_sha256()) <= 0)
    return opensslFail("crypto", "signing the certificate");
  return cert;
}

/// The profile of every agent certificate, at enrollment and renewal.
CertSpec agentCertSpec(const std::string& customer, const std::string& site,
                       const std::string& agentId) {
  return CertSpec{.subject = {{"O", customer}, {"OU", site}, {"CN", agentId}},
                  .ca = false,
                  .days = kAgentCertDays,
                  .seconds = 0,
                  .extendedKeyUsage = "clientAuth",
                  .subjectAltName = {}};
}

bool isIpAddress(const std::string& text) {
  OctetPtr ip(a2i_IPADDRESS(text.c_str()));
  ERR_clear_error();
  return ip != nullptr;
}

bool isDnsName(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  return std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '*';
  });
}

Result<std::string> subjectAltNames(const std::vector<std::string>& names) {
  std::string san;
  for (const auto& name : names.empty() ? kDefaultServerNames : names) {
    std::string entry;
    if (name.starts_with("IP:") && isIpAddress(name.substr(3))) {
      entry = name;
    } else if (name.starts_with("DNS:") && isDnsName(std::string_view(name).substr(4))) {
      entry = name;
    } else if (isIpAddress(name)) {
      entry = "IP:" + name;
    } else if (isDnsName(name)) {
      entry = "DNS:" + name;
    } else {
      return fail("usage.name",
                  fmt::format("--name '{}' is neither a DNS name nor an IP address", name));
    }
    if (!san.empty()) san += ',';
    san += entry;
  }
  return san;
}

struct FileToWrite {
  fs::path path;
  std::string data;
  bool privateFile = false;
};

Status writeAll(const std::vector<FileToWrite>& files) {
  for (const auto& f : files) {
    if (auto done = platform::writeFileAtomic(f.path, f.data, f.privateFile); !done) return done;
  }
  return {};
}

// `flag` is "--customer" etc.; the error code becomes "usage.customer".
Status checkNameField(std::string_view flag, const std::string& value, std::size_t maxLength) {
  auto code = "usage." + std::string(flag.substr(2));
  if (value.empty()) return fail(code, fmt::format("{} is empty", flag));
  if (value.size() > maxLength) {
    return fail(code, fmt::format("{} '{}' is longer than {} bytes", flag, value, maxLength));
  }
  return {};
}

Status checkOutDir(const fs::path& out) {
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::create_directories(out, ec);
    if (ec) return fail("io", fmt::format("{}: cannot create: {}", out.string(), ec.message()));
    return {};
  }
  if (!fs::is_directory(out, ec)) {
    return fail("usage.out", fmt::format("--out {}: exists and is not a directory", out.string()));
  }
  if (!fs::is_empty(out, ec)) {
    return fail("out_not_empty",
                fmt::format("--out {}: directory is not empty; give a new or empty directory so "
                            "that no bundle is mixed with another",
                            out.string()));
  }
  return {};
}

}  // namespace

Status checkEndpoint(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (url.starts_with(kScheme) && url.size() > kScheme.size() &&
      url.find_first_of(" \t\r\n") == std::string::npos)
    return {};
  return fail("usage.endpoint",
              fmt::format("--endpoint '{}' is not an https:// URL (e.g. https://home:9455)", url));
}

Status checkHoldsNoHome(const StatePaths& paths) {
  std::vector<fs::path> files = paths.clusterFiles();
  files.push_back(paths.sqliteDatabase());
  std::error_code ec;
  if (std::none_of(files.begin(), files.end(),
                   [&](const fs::path& p) { return fs::exists(p, ec); })) {
    return {};
  }
  return fail("already_initialized",
              fmt::format("{}: already holds a pass-home state (ca.key, home.db, ...); "
                          "refusing to overwrite it",
                          paths.dir.string()));
}

Result<CertificateDer> readCertificateDer(const fs::path& file) {
  auto cert = loadCertificate(file);
  if (!cert) return std::unexpected(cert.error());
  auto der = [&](int length, auto&& encode) -> Result<Bytes> {
    if (length <= 0) return opensslFail("io", fmt::format("{}: cannot encode", file.string()));
    Bytes out(static_cast<std::size_t>(length));
    unsigned char* p = out.data();
    encode(&p);
    return out;
  };
  auto certificate =
      der(i2d_X509(cert->get(), nullptr), [&](unsigned char** p) { i2d_X509(cert->get(), p); });
  if (!certificate) return std::unexpected(certificate.error());
  EVP_PKEY* key = X509_get0_pubkey(cert->get());
  if (!key) return opensslFail("io", fmt::format("{}: holds no public key", file.string()));
  auto publicKey = der(i2d_PUBKEY(key, nullptr), [&](unsigned char** p) { i2d_PUBKEY(key, p); });
  if (!publicKey) return std::unexpected(publicKey.error());
  return CertificateDer{std::move(*certificate), std::move(*publicKey)};
}

Status initState(const InitOptions& options) {
  StatePaths paths(options.state);
  auto san = subjectAltNames(options.names);
  if (!san) return std::unexpected(san.error());
  if (auto empty = checkHoldsNoHome(paths); !empty) return empty;
  std::error_code ec;
  fs::create_directories(paths.dir, ec);
  if (ec) return fail("io", fmt::format("{}: cannot create: {}", paths.dir.string(), ec.message()));
  // The state holds the CA key: keep others out of the directory too.
  fs::permissions(paths.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  const bool postgres = !options.database.postgresUrl.empty();
  if (postgres) {
    // A database that cannot be used fails before any key is written.
    if (auto store = Store::open(options.database, Store::Mode::kCreate); !store) {
      return std::unexpected(store.error());
    }
  }

  auto caKey = generateP256();
  if (!caKey) return std::unexpected(caKey.error());
  CertSpec caSpec{.subject = {{"O", "PASS"}, {"CN", "PASS home CA"}},
                  .ca = true,
                  .days = kCaDays,
                  .seconds = 0,
                  .extendedKeyUsage = nullptr,
                  .subjectAltName = {}};
  auto caCert = issue(caSpec, caKey->get(), nullptr, caKey->get());
  if (!caCert) return std::unexpected(caCert.error());

  auto serverKey = generateP256();
  if (!serverKey) return std::unexpected(serverKey.error());
  CertSpec serverSpec{.subject = {{"O", "PASS"}, {"CN", "pass-home"}},
                      .ca = false,
                      .days = kLeafDays,
                      .seconds = 0,
                      .extendedKeyUsage = "serverAuth",
                      .subjectAltName = *san};
  auto serverCert = issue(serverSpec, serverKey->get(), caCert->get(), caKey->get());
  if (!serverCert) return std::unexpected(serverCert.error());

  auto hpke = X25519Key::generate();
  auto caKeyPem = privateKeyPem(caKey->get());
  auto caCertPem = certificatePem(caCert->get());
  auto serverKeyPem = privateKeyPem(serverKey->get());
  auto serverCertPem = certificatePem(serverCert->get());
  for (const auto* pem : {&caKeyPem, &caCertPem, &serverKeyPem, &serverCertPem}) {
    if (!*pem) return std::unexpected(pem->error());
  }
  auto written = writeAll({{paths.caKey(), *caKeyPem, true},
                           {paths.caCert(), *caCertPem, false},
                           {paths.serverKey(), *serverKeyPem, true},
                           {paths.serverCert(), *serverCertPem, false},
                           {paths.hpkeKey(), hpke.privatePem(), true},
                           {paths.hpkePub(), hpke.publicPem(), false}});
  if (!written) return written;
  if (auto created = createSharedSecrets(paths); !created) return created;
  if (postgres) {
    if (auto recorded = recordPostgresStore(paths, options.database); !recorded) return recorded;
  }
  auto store = openStateStore(paths, Store::Mode::kCreate);
  if (!store) return std::unexpected(store.error());
  return {};
}

Result<EnrolledAgent> enrollAgent(const fs::path& state, const EnrollOptions& options) {
  StatePaths paths(state);
  for (auto [flag, value] :
       {std::pair{"--customer", &options.customer}, std::pair{"--site", &options.site}}) {
    if (auto ok = checkNameField(flag, *value, kMaxNameLength); !ok)
      return std::unexpected(ok.error());
  }
  if (auto ok = checkNameField("--agent", options.name, 200); !ok)
    return std::unexpected(ok.error());
  std::vector<std::string> endpoints = options.endpoints;
  if (endpoints.empty()) endpoints.emplace_back(kDefaultEndpoint);
  for (const auto& url : endpoints) {
    if (auto ok = checkEndpoint(url); !ok) return std::unexpected(ok.error());
  }
  for (const auto& file : {paths.caKey(), paths.caCert(), paths.hpkePub()}) {
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      return fail("not_initialized",
                  fmt::format("{}: missing; is --state a directory made by 'pass-home init'?",
                              file.string()));
    }
  }
  // Open the database first: a store problem should fail before any file is written.
  auto store = openStateStore(paths);
  if (!store) return std::unexpected(store.error());
  auto caKey = loadPrivateKey(paths.caKey());
  if (!caKey) return std::unexpected(caKey.error());
  auto caCert = loadCertificate(paths.caCert());
  if (!caCert) return std::unexpected(caCert.error());
  auto caCertText = platform::readFile(paths.caCert());
  if (!caCertText) return std::unexpected(caCertText.error());
  auto hpkePubText = platform::readFile(paths.hpkePub());
  if (!hpkePubText) return std::unexpected(hpkePubText.error());
  if (auto ok = X509_check_private_key(caCert->get(), caKey->get()); ok != 1) {
    return opensslFail("io", fmt::format("{} does not belong to {}", paths.caKey().string(),
                                         paths.caCert().string()));
  }

  EnrolledAgent agent;
  agent.id = randomUuid();
  agent.uuid = formatUuid(agent.id);
  agent.out = options.out;

  auto signKey = Ed25519Key::generate();
  auto tlsKey = generateP256();
  if (!tlsKey) return std::unexpected(tlsKey.error());
  if (options.testCertSeconds && *options.testCertSeconds <= 0) {
    return fail("usage.test_cert_seconds", "--test-cert-seconds must be positive");
  }
  auto spec = agentCertSpec(options.customer, options.site, agent.uuid);
  if (options.testCertSeconds) {
    spec.days = 0;
    spec.seconds = *options.testCertSeconds;
  }
  auto tlsCert = issue(spec, tlsKey->get(), caCert->get(), caKey->get());
  if (!tlsCert) return std::unexpected(tlsCert.error());
  agent.certSerial = serialHex(tlsCert->get());
  agent.certExpiresMs = notAfterMs(tlsCert->get());
  auto tlsKeyPem = privateKeyPem(tlsKey->get());
  if (!tlsKeyPem) return std::unexpected(tlsKeyPem.error());
  auto tlsCertPem = certificatePem(tlsCert->get());
  if (!tlsCertPem) return std::unexpected(tlsCertPem.error());

  AgentConfig cfg;
  cfg.agentId = agent.id;
  cfg.customer = options.customer;
  cfg.site = options.site;
  cfg.name = options.name;
  cfg.endpoints = endpoints;
  cfg.signKey = "agent-sign.key";
  cfg.tlsKey = "agent-tls.key";
  cfg.tlsCert = "agent-tls.crt";
  cfg.homeCa = "home-ca.crt";
  cfg.homeHpke = "home-hpke.pub";
  cfg.arrays = options.arrays;

  if (auto ok = checkOutDir(options.out); !ok) return std::unexpected(ok.error());
  const fs::path& out = options.out;
  auto written = writeAll({{out / "agent.xml", renderAgentConfig(cfg), false},
                           {out / "agent-sign.key", signKey.privatePem(), true},
                           {out / "agent-tls.key", *tlsKeyPem, true},
                           {out / "agent-tls.crt", *tlsCertPem, false},
                           {out / "home-ca.crt", *caCertText, false},
                           {out / "home-hpke.pub", *hpkePubText, false}});
  auto added = written ? store->addAgent(NewAgent{.id = agent.uuid,
                                                  .customer = options.customer,
                                                  .site = options.site,
                                                  .name = options.name,
                                                  .signKey = signKey.rawPublic(),
                                                  .certSerial = agent.certSerial,
                                                  .enrolledMs = nowMs(),
                                                  .certExpiresMs = agent.certExpiresMs})
                       : written;
  if (!added) {
    // A bundle without its agent row (or half a bundle) would only fail later, confusingly.
    for (const char* name : kBundleFiles) {
      std::error_code ec;
      fs::remove(out / name, ec);
    }
    return std::unexpected(added.error());
  }
  return agent;
}

namespace {

PeerIdentity identityOf(X509* cert) {
  PeerIdentity id;
  id.serialHex = serialHex(cert);
  id.commonName = nameEntry(X509_get_subject_name(cert), NID_commonName);
  return id;
}

}  // namespace

Result<PeerIdentity> peerIdentity(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return fail("no_client_certificate", "the client sent no certificate");
  return identityOf(cert);
}

bool verifyNotRevoked(bool preverified, X509_STORE_CTX* ctx,
                      const std::function<bool(const PeerIdentity&)>& isRevoked) {
  // Depth 0 is the client's own certificate, asked last, once its chain up to ca.crt held.
  if (!preverified || X509_STORE_CTX_get_error_depth(ctx) != 0) return preverified;
  X509* leaf = X509_STORE_CTX_get_current_cert(ctx);
  if (!leaf || !isRevoked(identityOf(leaf))) return true;
  // OpenSSL answers this error with a certificate_revoked alert.
  X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_REVOKED);
  return false;
}

struct AgentCertificateIssuer::Ca {
  X509Ptr cert;
  KeyPtr key;
};

Result<AgentCertificateIssuer> AgentCertificateIssuer::load(const StatePaths& paths) {
  auto key = loadPrivateKey(paths.caKey());
  if (!key) return std::unexpected(key.error());
  auto cert = loadCertificate(paths.caCert());
  if (!cert) return std::unexpected(cert.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return opensslFail("io", fmt::format("{} does not belong to {}", paths.caKey().string(),
                                         paths.caCert().string()));
  }
  auto ca = std::make_shared<Ca>();
  ca->cert = std::move(*cert);
  ca->key = std::move(*key);
  return AgentCertificateIssuer(std::move(ca));
}

Result<IssuedCertificate> AgentCertificateIssuer::renew(ByteView csrDer, X509* requester) const {
  if (csrDer.empty() || csrDer.size() > kMaxCsrBytes) {
    return fail("bad_csr", fmt::format("the request body must be one DER PKCS#10 certificate "
                                       "request of at most {} bytes; it has {} bytes",
                                       kMaxCsrBytes, csrDer.size()));
  }
  const unsigned char* p = csrDer.data();
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(csrDer.size())));
  if (!req || p != csrDer.data() + csrDer.size()) {
    ERR_clear_error();
    return fail("bad_csr", req ? "bytes follow the PKCS#10 certificate request"
                               : "the request body is not a DER PKCS#10 certificate request");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (!key) return opensslFail("bad_csr", "the certificate request holds no usable public key");
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return fail("bad_csr_signature",
                "the certificate request is not signed by the key it asks a certificate for");
  }
  char group[64] = {};
  std::size_t groupLength = 0;
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &groupLength) != 1 ||
      std::string_view(group, groupLength) != "prime256v1") {
    ERR_clear_error();
    return fail("key_type", "the certificate request's key must be an ECDSA P-256 key");
  }
  if (EVP_PKEY_eq(key, X509_get0_pubkey(requester)) == 1) {
    return fail("key_reused",
                "the certificate request has the key of the certificate it came with; a renewal "
                "needs a new key pair");
  }
  X509_NAME* subject = X509_get_subject_name(requester);
  auto spec = agentCertSpec(nameEntry(subject, NID_organizationName),
                            nameEntry(subject, NID_organizationalUnitName),
                            nameEntry(subject, NID_commonName));
  auto cert = issue(spec, key, ca_->cert.get(), ca_->key.get());
  if (!cert) return std::unexpected(cert.error());
  auto pem = certificatePem(cert->get());
  if (!pem) return std::unexpected(pem.error());
  return IssuedCertificate{std::move(*pem), serialHex(cert->get()), notAfterMs(cert->get())};
}

Status restrictServerTls(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return opensslFail("tls", "setting TLS 1.2 as the minimum");
  SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1)
    return opensslFail("tls", "setting the TLS 1.2 cipher list");
  return {};
}

Status configureServerTls(SSL_CTX* ctx, const StatePaths& paths) {
  const auto cert = paths.serverCert().string();
  const auto key = paths.serverKey().string();
  const auto ca = paths.caCert().string();
  if (auto restricted = restrictServerTls(ctx); !restricted) return restricted;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
    return opensslFail("tls", fmt::format("{}: cannot load the server certificate", cert));
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
    return opensslFail("tls", fmt::format("{}: cannot load the server key", key));
  if (SSL_CTX_check_private_key(ctx) != 1)
    return opensslFail("tls", fmt::format("{} does not match {}", key, cert));
  // Only the home CA: the system trust store must never vouch for an agent.
  if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
    return opensslFail("tls", fmt::format("{}: cannot load the CA certificate", ca));
  STACK_OF(X509_NAME)* caNames = SSL_load_client_CA_file(ca.c_str());
  if (!caNames) return opensslFail("tls", fmt::format("{}: cannot read the CA name", ca));
  SSL_CTX_set_client_CA_list(ctx, caNames);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // Required for session resumption when client certificates are verified.
  static constexpr unsigned char kSessionContext[] = "pass-home";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  // Idle keep-alive connections give back their 34 KB of record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return {};
}

}  // namespace pass::home
