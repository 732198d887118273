// Certificate renewal without a site visit: the home's checks of a request (pki.cpp), the
// agent's current and previous certificate in the store (renewal.cpp), and the agent's side
// (agent_certificate.cpp): the request, the install, the choice at start-up, and a kill at any
// point of an install (POSIX only: fork, SIGKILL).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "pass/agent_certificate.hpp"
#include "pass/config.hpp"
#include "pass/envelope.hpp"
#include "pass/home/ingest.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/renewal.hpp"
#include "pass/home/store.hpp"
#include "platform/fs.hpp"
#include "test_home_support.hpp"
#include "test_pipe.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::nowMs;
using pass::home::test::permissionsOf;
using pass::home::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kDayMs = 86'400'000;

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using CertPtr = std::unique_ptr<X509, X509Deleter>;

CertPtr parseCert(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  CertPtr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  REQUIRE(cert);
  return cert;
}

CertPtr readCert(const fs::path& file) {
  auto text = platform::readFile(file);
  REQUIRE(text.has_value());
  return parseCert(*text);
}

std::string subjectField(X509* cert, int nid) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), nid, buf, sizeof buf);
  return buf;
}

// A DER PKCS#10 request for `key` (signed by it), as any client could make one.
Bytes requestFor(EVP_PKEY* key, const EVP_MD* md = EVP_sha256()) {
  X509_REQ* req = X509_REQ_new();
  X509_REQ_set_pubkey(req, key);
  REQUIRE(X509_REQ_sign(req, key, md) > 0);
  int len = i2d_X509_REQ(req, nullptr);
  Bytes der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  i2d_X509_REQ(req, &p);
  X509_REQ_free(req);
  return der;
}

EVP_PKEY* readKey(const fs::path& file) {
  auto text = platform::readFile(file);
  REQUIRE(text.has_value());
  BIO* bio = BIO_new_mem_buf(text->data(), static_cast<int>(text->size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  REQUIRE(key);
  return key;
}

// A home with one enrolled agent.
struct Home {
  TempDir dir;
  fs::path state = dir.path() / "state";
  fs::path bundle = dir.path() / "bundle";
  EnrolledAgent agent;
  AgentConfig cfg;

  explicit Home(std::optional<long> certSeconds = std::nullopt) {
    REQUIRE(initState(InitOptions{state, {}}).has_value());
    EnrollOptions options{.customer = "Acme",
                          .site = "Berlin",
                          .name = "vsp-1",
                          .out = bundle,
                          .endpoints = {},
                          .arrays = {},
                          .testCertSeconds = certSeconds};
    auto enrolled = enrollAgent(state, options);
    REQUIRE_MESSAGE(enrolled.has_value(), enrolled.error().message);
    agent = *enrolled;
    auto loaded = loadAgentConfig(bundle / "agent.xml");
    REQUIRE_MESSAGE(loaded.has_value(), loaded.error().message);
    cfg = *loaded;
  }

  AgentCertificateIssuer issuer() const {
    auto loaded = AgentCertificateIssuer::load(StatePaths(state));
    REQUIRE_MESSAGE(loaded.has_value(), loaded.error().message);
    return *loaded;
  }

  Store store() const {
    auto opened = Store::open(StatePaths(state).sqliteDatabase());
    REQUIRE(opened.has_value());
    return std::move(*opened);
  }
};

PeerIdentity identityOf(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string serial(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  for (auto& c : serial) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return PeerIdentity{buf, serial};
}

std::string refusalCode(const CertificateRenewals::Outcome& outcome) {
  if (const auto* refusal = std::get_if<Refusal>(&outcome.result)) return refusal->code;
  if (const auto* error = std::get_if<Error>(&outcome.result)) return "error: " + error->message;
  return "issued";
}

}  // namespace

TEST_CASE("renewal: the home issues the request's key a certificate with the enrollment profile") {
  Home home;
  auto requester = readCert(home.bundle / "agent-tls.crt");
  auto request = makeCertificateRequest(home.agent.id);
  REQUIRE(request.has_value());
  auto issued = home.issuer().renew(request->der, requester.get());
  REQUIRE_MESSAGE(issued.has_value(), issued.error().message);

  auto cert = parseCert(issued->pem);
  CHECK(subjectField(cert.get(), NID_commonName) == home.agent.uuid);
  CHECK(subjectField(cert.get(), NID_organizationName) == "Acme");
  CHECK(subjectField(cert.get(), NID_organizationalUnitName) == "Berlin");
  CHECK(issued->serialHex != home.agent.certSerial);
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
  // The request's key, not the requester's.
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), X509_get0_pubkey(requester.get())) != 1);
  const auto years5 = nowMs() + kAgentCertDays * kDayMs;
  CHECK(issued->notAfterMs > years5 - kDayMs);
  CHECK(issued->notAfterMs < years5 + kDayMs);
}

TEST_CASE("renewal: the home refuses a request that is not a new P-256 key signed by itself") {
  Home home;
  auto requester = readCert(home.bundle / "agent-tls.crt");
  auto issuer = home.issuer();
  auto codeOf = [&](ByteView der) {
    auto issued = issuer.renew(der, requester.get());
    return issued ? std::string("issued") : issued.error().code;
  };

  CHECK(codeOf(asBytes(std::string_view("not a certificate request"))) == "bad_csr");
  CHECK(codeOf({}) == "bad_csr");

  // The key of the certificate it came with.
  EVP_PKEY* oldKey = readKey(home.bundle / "agent-tls.key");
  CHECK(codeOf(requestFor(oldKey)) == "key_reused");
  EVP_PKEY_free(oldKey);

  // Another key type than enrollment issues.
  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  CHECK(codeOf(requestFor(ed, nullptr)) == "key_type");
  EVP_PKEY_free(ed);
  EVP_PKEY* p384 = EVP_EC_gen("P-384");
  CHECK(codeOf(requestFor(p384)) == "key_type");
  EVP_PKEY_free(p384);

  // Signed by another key than the one it names: the last bytes are the signature.
  auto request = makeCertificateRequest(home.agent.id);
  REQUIRE(request.has_value());
  auto forged = request->der;
  forged[forged.size() - 3] ^= 0x01;
  auto code = codeOf(forged);
  CHECK((code == "bad_csr_signature" || code == "bad_csr"));

  // Trailing bytes after the request.
  auto padded = request->der;
  padded.push_back(0);
  CHECK(codeOf(padded) == "bad_csr");
}

TEST_CASE("renewal: the new certificate is current, the replaced one accepted for the grace") {
  Home home;
  auto first = readCert(home.bundle / "agent-tls.crt");
  const auto firstPeer = identityOf(first.get());
  CertificateRenewals renewals(StoreLocation{.sqliteFile = StatePaths(home.state).sqliteDatabase()},
                               home.issuer(), 7 * kDayMs);
  const auto t0 = nowMs();

  auto request = makeCertificateRequest(home.agent.id);
  REQUIRE(request.has_value());
  auto outcome = renewals.renew(request->der, first.get(), firstPeer, t0);
  REQUIRE(refusalCode(outcome) == "issued");
  const auto& issued = std::get<IssuedCertificate>(outcome.result);

  auto store = home.store();
  auto auth = store.agentAuth(home.agent.uuid);
  REQUIRE(auth.has_value());
  REQUIRE(auth->has_value());
  CHECK((*auth)->certSerial == issued.serialHex);
  CHECK((*auth)->previousCertSerial == home.agent.certSerial);
  CHECK(acceptsCertificate((*auth)->certSerial, (*auth)->previousCertSerial,
                           (*auth)->previousCertUntilMs, home.agent.certSerial,
                           t0 + 7 * kDayMs - 1));
  CHECK_FALSE(acceptsCertificate((*auth)->certSerial, (*auth)->previousCertSerial,
                                 (*auth)->previousCertUntilMs, home.agent.certSerial,
                                 t0 + 7 * kDayMs));
  auto agents = store.agents();
  REQUIRE(agents.has_value());
  CHECK(agents->at(0).certExpiresMs == issued.notAfterMs);
  CHECK(agents->at(0).certRenewedMs == t0);

  SUBCASE("an agent whose answer was lost asks again with the old certificate") {
    auto again = makeCertificateRequest(home.agent.id);
    REQUIRE(again.has_value());
    auto retried = renewals.renew(again->der, first.get(), firstPeer, t0 + 1000);
    REQUIRE(refusalCode(retried) == "issued");
    const auto& second = std::get<IssuedCertificate>(retried.result);
    auto after = home.store().agentAuth(home.agent.uuid);
    REQUIRE(after.has_value());
    CHECK((*after)->certSerial == second.serialHex);
    // The old one stays the previous: the lost certificate is accepted nowhere.
    CHECK((*after)->previousCertSerial == home.agent.certSerial);
    auto lost = parseCert(issued.pem);
    auto third = makeCertificateRequest(home.agent.id);
    REQUIRE(third.has_value());
    CHECK(refusalCode(renewals.renew(third->der, lost.get(), identityOf(lost.get()), t0 + 2000)) ==
          "certificate_mismatch");
  }
  SUBCASE("after the grace period the replaced certificate can renew no more") {
    auto late = makeCertificateRequest(home.agent.id);
    REQUIRE(late.has_value());
    CHECK(refusalCode(renewals.renew(late->der, first.get(), firstPeer, t0 + 7 * kDayMs)) ==
          "certificate_mismatch");
  }
  SUBCASE("a revoked agent renews nothing") {
    REQUIRE(home.store().revokeAgent(home.agent.uuid, t0 + 1).has_value());
    auto current = parseCert(issued.pem);
    auto next = makeCertificateRequest(home.agent.id);
    REQUIRE(next.has_value());
    CHECK(refusalCode(renewals.renew(next->der, current.get(), identityOf(current.get()),
                                     t0 + 2)) == "revoked");
  }
}

TEST_CASE("renewal: ingest accepts the previous certificate only within the grace period") {
  AgentDirectory::Entry entry{Ed25519Key::generate(), "new", false, "old", 1000};
  CHECK(entry.acceptsCertificate("new", 5000));
  CHECK(entry.acceptsCertificate("old", 999));
  CHECK_FALSE(entry.acceptsCertificate("old", 1000));
  CHECK_FALSE(entry.acceptsCertificate("other", 0));
  AgentDirectory::Entry never{Ed25519Key::generate(), "new", false, "", std::nullopt};
  CHECK_FALSE(never.acceptsCertificate("", 0));
}

TEST_CASE("renewal: the agent renews once a third of the lifetime is left") {
  TlsIdentity id;
  id.notBeforeMs = 0;
  id.notAfterMs = 3000;
  CHECK_FALSE(renewalDue(id, 0));
  CHECK_FALSE(renewalDue(id, 2000));
  CHECK(renewalDue(id, 2001));
  CHECK(renewalDue(id, 5000));
  CHECK_FALSE(renewalDue(TlsIdentity{}, 5000));  // an unreadable certificate
}

TEST_CASE("renewal: the agent installs key and certificate as one private file and uses it") {
  Home home;
  auto before = loadTlsIdentity(home.cfg);
  CHECK_FALSE(before.renewed);
  CHECK(before.serialHex == home.agent.certSerial);
  CHECK(before.ignoredRenewal.empty());

  auto requester = readCert(home.bundle / "agent-tls.crt");
  auto request = makeCertificateRequest(home.agent.id);
  REQUIRE(request.has_value());
  auto issued = home.issuer().renew(request->der, requester.get());
  REQUIRE(issued.has_value());

  SUBCASE("a certificate for another key is refused and nothing is written") {
    auto other = makeCertificateRequest(home.agent.id);
    REQUIRE(other.has_value());
    auto installed = installRenewedCertificate(home.cfg, *other, issued->pem);
    REQUIRE_FALSE(installed.has_value());
    CHECK(installed.error().code == "renewal.certificate");
    CHECK_FALSE(fs::exists(renewedCertificatePath(home.cfg)));
  }
  SUBCASE("a certificate another CA issued is refused") {
    Home other;
    auto foreign =
        other.issuer().renew(request->der, readCert(other.bundle / "agent-tls.crt").get());
    REQUIRE(foreign.has_value());
    auto installed = installRenewedCertificate(home.cfg, *request, foreign->pem);
    REQUIRE_FALSE(installed.has_value());
    CHECK(installed.error().code == "renewal.certificate");
  }
  SUBCASE("installed, it is the identity from then on") {
    auto installed = installRenewedCertificate(home.cfg, *request, issued->pem);
    REQUIRE_MESSAGE(installed.has_value(), installed.error().message);
    CHECK(installed->renewed);
    CHECK(installed->serialHex == issued->serialHex);
    const auto file = renewedCertificatePath(home.cfg);
    CHECK(permissionsOf(file) == (fs::perms::owner_read | fs::perms::owner_write));
    auto now = loadTlsIdentity(home.cfg);
    CHECK(now.renewed);
    CHECK(now.certFile == file);
    CHECK(now.keyFile == file);
    CHECK(now.serialHex == issued->serialHex);
    CHECK(now.notAfterMs == issued->notAfterMs);

    // A damaged file is not used: the bundle is, and the agent says why.
    REQUIRE(platform::writeFileAtomic(file, "garbage", true).has_value());
    auto fallback = loadTlsIdentity(home.cfg);
    CHECK_FALSE(fallback.renewed);
    CHECK(fallback.serialHex == home.agent.certSerial);
    CHECK(fallback.ignoredRenewal.find("no PEM certificate") != std::string::npos);
  }
}

TEST_CASE("renewal: a kill at any point of an install leaves a key and certificate that match") {
  Home home;
  auto requester = readCert(home.bundle / "agent-tls.crt");
  auto issuer = home.issuer();
  // Two renewals to switch between, so that every install changes the file.
  std::vector<std::pair<CertificateRequest, IssuedCertificate>> pairs;
  for (int i = 0; i < 2; ++i) {
    auto request = makeCertificateRequest(home.agent.id);
    REQUIRE(request.has_value());
    auto issued = issuer.renew(request->der, requester.get());
    REQUIRE(issued.has_value());
    pairs.emplace_back(std::move(*request), std::move(*issued));
  }
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int> delayUs(0, 4000);
  int renewedSeen = 0;
  for (int round = 0; round < 60; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      for (std::size_t i = 0;; ++i) {
        const auto& [request, issued] = pairs[i % 2];
        if (!installRenewedCertificate(home.cfg, request, issued.pem)) ::_exit(3);
        if (i == 0) {
          const unsigned char ready = 'r';
          (void)pass::test::writeAll(fds[1], &ready, 1);
        }
      }
    }
    ::close(fds[1]);
    if (round % 2 == 0) {
      unsigned char ready = 0;  // one install done: the kill lands in a later one
      REQUIRE(pass::test::readAll(fds[0], &ready, 1));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delayUs(rng)));
    pass::test::killAndReap(pid);
    ::close(fds[0]);

    // What the next start of the agent would do.
    REQUIRE(platform::removeTempFiles(renewedCertificatePath(home.cfg).parent_path()).has_value());
    auto id = loadTlsIdentity(home.cfg);
    CHECK_MESSAGE(id.ignoredRenewal.empty(), id.ignoredRenewal);
    if (id.renewed) {
      ++renewedSeen;
      CHECK(
          (id.serialHex == pairs[0].second.serialHex || id.serialHex == pairs[1].second.serialHex));
    } else {
      CHECK(id.serialHex == home.agent.certSerial);
    }
  }
  CHECK(renewedSeen >= 30);
}
