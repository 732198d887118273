#pragma once
/// The home's PKI and enrollment: the home CA, the server certificate, the HPKE key pair and
/// agent bundles. Certificates are built with the OpenSSL 3 API in home/src/keys/pki.cpp, the only
/// file of pass-home that handles X509 objects.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/config.hpp"
#include "pass/envelope.hpp"
#include "pass/home/store.hpp"
#include "pass/result.hpp"

typedef struct ssl_st SSL;                        // NOLINT: OpenSSL's own forward declarations
typedef struct ssl_ctx_st SSL_CTX;                // NOLINT
typedef struct x509_store_ctx_st X509_STORE_CTX;  // NOLINT
typedef struct x509_st X509;                      // NOLINT

namespace pass::home {

/// File names inside the state directory.
struct StatePaths {
  explicit StatePaths(std::filesystem::path stateDir) : dir(std::move(stateDir)) {}
  std::filesystem::path dir;
  std::filesystem::path caKey() const { return dir / "ca.key"; }
  std::filesystem::path caCert() const { return dir / "ca.crt"; }
  std::filesystem::path serverKey() const { return dir / "server.key"; }
  std::filesystem::path serverCert() const { return dir / "server.crt"; }
  std::filesystem::path hpkeKey() const { return dir / "home-hpke.key"; }
  std::filesystem::path hpkePub() const { return dir / "home-hpke.pub"; }
  /// The HPKE key ring once rotated (pass/home/hpke_keys.hpp); it replaces hpkeKey().
  std::filesystem::path hpkeKeys() const { return dir / "hpke-keys.json"; }
  /// The admin API's bearer token (pass/home/admin_api.hpp).
  std::filesystem::path adminToken() const { return dir / "admin.token"; }
  /// The key of the acknowledgement links (pass/home/tickets.hpp).
  std::filesystem::path ackKey() const { return dir / "ack.key"; }
  /// The SQLite store, used unless databaseConfig() names another (pass/home/state_store.hpp).
  std::filesystem::path sqliteDatabase() const { return dir / "home.db"; }
  /// Names the PostgreSQL store, when the home keeps it there.
  std::filesystem::path databaseConfig() const { return dir / "database.xml"; }
  /// The PostgreSQL password, copied by init and migrate (0600).
  std::filesystem::path databasePassword() const { return dir / "database-password"; }

  /// The files every home of a cluster holds alike, as `init --join` copies them: the CA, the
  /// server key and certificate, the HPKE keys, the admin and acknowledgement secrets, and the
  /// database's name and password. Some exist only sometimes (hpkeKey() before the first
  /// rotation, hpkeKeys() after it, databasePassword() with a password).
  std::vector<std::filesystem::path> clusterFiles() const {
    return {caKey(),    caCert(),     serverKey(), serverCert(),     hpkeKey(),         hpkePub(),
            hpkeKeys(), adminToken(), ackKey(),    databaseConfig(), databasePassword()};
  }
};

/// Fails with "already_initialized" when any of paths.clusterFiles() or the SQLite store
/// exists: the folder holds a home.
Status checkHoldsNoHome(const StatePaths& paths);

/// The DER encoding of the PEM certificate in `file`, and of its public key
/// (SubjectPublicKeyInfo). Errors ("io") name the file.
struct CertificateDer {
  Bytes certificate;
  Bytes publicKey;
};
Result<CertificateDer> readCertificateDer(const std::filesystem::path& file);

/// Default names of the server certificate.
inline const std::vector<std::string> kDefaultServerNames = {"localhost", "127.0.0.1"};

struct InitOptions {
  std::filesystem::path state;
  /// Subject alternative names of the server certificate: an IP address becomes IP:, anything
  /// else DNS:; explicit "DNS:" / "IP:" prefixes are accepted. Empty = kDefaultServerNames.
  std::vector<std::string> names;
  /// The PostgreSQL database (postgresUrl, passwordFile) to keep the store in; postgresUrl
  /// empty: SQLite in STATE/home.db.
  StoreLocation database{};
};

/// Creates the state directory: CA (ECDSA P-256, 10 years), server key and certificate, HPKE
/// key pair, admin.token and ack.key, and an empty database (SQLite, or `database` recorded in
/// STATE/database.xml with the password copied to STATE/database-password,
/// pass/home/state_store.hpp); private keys 0600. A PostgreSQL database is connected to and
/// migrated before anything is written. Fails with "already_initialized" when the directory
/// holds a home already, "usage.name" for a bad --name, "store.*" when the database cannot be
/// used, "io" otherwise.
Status initState(const InitOptions& options);

/// The bundle an agent is installed with, file by file.
inline constexpr const char* kBundleFiles[] = {"agent.xml",     "agent-sign.key", "agent-tls.key",
                                               "agent-tls.crt", "home-ca.crt",    "home-hpke.pub"};

/// The default endpoint written into agent.xml when none is given.
inline constexpr std::string_view kDefaultEndpoint = "https://localhost:9455";

struct EnrollOptions {
  std::string customer;
  std::string site;
  std::string name;
  std::filesystem::path out;
  /// In order of preference; empty = {kDefaultEndpoint}.
  std::vector<std::string> endpoints;
  /// The arrays written into agent.xml (settings as agent.xml's attributes).
  std::vector<ArrayConfig> arrays{};
  /// For tests only (`pass-home enroll --test-cert-seconds`): the agent certificate is valid
  /// for this many seconds (after the usual 5 minutes back-dating) instead of kAgentCertDays,
  /// so that renewal and the certificate_expiring ticket can be reached without faking clocks.
  std::optional<long> testCertSeconds{};
};

/// How long agent certificates are valid, from enrollment and from each renewal (5 years).
inline constexpr int kAgentCertDays = 5 * 365;

/// "usage.endpoint" unless `url` is an https:// URL without white space.
Status checkEndpoint(const std::string& url);

struct EnrolledAgent {
  AgentId id{};
  std::string uuid;        // formatUuid(id)
  std::string certSerial;  // lower-case hex, as stored in agents.cert_serial
  std::int64_t certExpiresMs = 0;
  std::filesystem::path out;
};

/// Enrolls a new agent: new UUID, Ed25519 sign key, TLS key and certificate (CN = UUID,
/// O = customer, OU = site, clientAuth, kAgentCertDays) signed by the home CA, the six bundle files
/// in `options.out` (created; must be empty), and its row in home.db. Fails with
/// "not_initialized", "usage.*" for bad options, "out_not_empty", "io" or "store".
Result<EnrolledAgent> enrollAgent(const std::filesystem::path& state, const EnrollOptions& options);

/// A certificate the home CA issued to an agent on renewal.
struct IssuedCertificate {
  std::string pem;
  std::string serialHex;  // lower-case hex, as stored in agents.cert_serial
  std::int64_t notAfterMs = 0;
};

/// The home CA as `serve` holds it to renew agent certificates (POST /v1/certificate,
/// docs/protocol.md). Loaded once; renew() is safe from several threads.
class AgentCertificateIssuer {
 public:
  /// Loads ca.key and ca.crt and checks that they belong together; errors name the file.
  static Result<AgentCertificateIssuer> load(const StatePaths& paths);

  /// Checks a certificate request (PKCS#10, DER) that came with the verified client
  /// certificate `requester` and issues its key a certificate with the enrollment profile: the
  /// requesting certificate's subject (O = customer, OU = site, CN = agent id; whatever the request
  /// names is ignored), clientAuth, kAgentCertDays. Errors, each a 400 refusal's code: "bad_csr"
  /// (not exactly one DER PKCS#10 request), "bad_csr_signature" (not signed by its own key),
  /// "key_type" (not an ECDSA P-256 key, the type enrollment issues), "key_reused" (the requesting
  /// certificate's key: a renewal must bring a new key); "crypto" when issuing fails.
  Result<IssuedCertificate> renew(ByteView csrDer, X509* requester) const;

 private:
  struct Ca;
  explicit AgentCertificateIssuer(std::shared_ptr<const Ca> ca) : ca_(std::move(ca)) {}
  std::shared_ptr<const Ca> ca_;
};

/// Who is on the other end of a verified TLS connection.
struct PeerIdentity {
  std::string commonName;  // the agent UUID for agent certificates
  std::string serialHex;   // lower-case hex, comparable with agents.cert_serial
};

/// Reads the verified client certificate of `ssl`. Fails with "no_client_certificate".
Result<PeerIdentity> peerIdentity(SSL* ssl);

/// A verify callback's step for one connection: once OpenSSL has verified the client's chain
/// (`preverified`), `isRevoked` is asked about the client's own certificate; when it says yes,
/// the handshake fails with X509_V_ERR_CERT_REVOKED and the client gets a certificate_revoked
/// alert. Returns what the callback returns to OpenSSL.
bool verifyNotRevoked(bool preverified, X509_STORE_CTX* ctx,
                      const std::function<bool(const PeerIdentity&)>& isRevoked);

/// The protocol rules of every listener of the home (pass/tls_policy.hpp): TLS 1.2 or newer,
/// no renegotiation, on TLS 1.2 only ECDHE with AES-GCM or ChaCha20-Poly1305, the server's order.
Status restrictServerTls(SSL_CTX* ctx);

/// Configures the ingest listener's context from the state directory: restrictServerTls, the
/// server key and certificate, client certificates required and verified against ca.crt only.
/// Errors name the file.
Status configureServerTls(SSL_CTX* ctx, const StatePaths& paths);

}  // namespace pass::home
