// pass-home init and enroll: state files, agent bundles, certificates that chain to the CA.

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <string_view>

#include "pass/config.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/store.hpp"
#include "platform/fs.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::permissionsOf;
using pass::home::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr auto kOwnerOnly = fs::perms::owner_read | fs::perms::owner_write;

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using CertPtr = std::unique_ptr<X509, X509Deleter>;

CertPtr readCert(const fs::path& file) {
  auto text = platform::readFile(file);
  REQUIRE(text.has_value());
  BIO* bio = BIO_new_mem_buf(text->data(), static_cast<int>(text->size()));
  CertPtr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  REQUIRE(cert);
  return cert;
}

std::string subjectField(X509* cert, int nid) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), nid, buf, sizeof buf);
  return buf;
}

// X509_verify_cert against `ca` alone, for `purpose` (X509_PURPOSE_SSL_CLIENT / _SERVER).
bool chainsTo(X509* leaf, X509* ca, int purpose) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok;
}

std::vector<std::string> filesIn(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void init(const fs::path& state, std::vector<std::string> names = {}) {
  auto done = initState(InitOptions{state, std::move(names)});
  REQUIRE_MESSAGE(done.has_value(), (done ? "" : done.error().message));
}

EnrollOptions sampleEnroll(const fs::path& out) {
  return EnrollOptions{.customer = "Acme Storage",
                       .site = "Berlin DC2",
                       .name = "vsp-410123",
                       .out = out,
                       .endpoints = {"https://home-a:9455", "https://home-b:9455"}};
}

}  // namespace

TEST_CASE("init writes the CA, the server certificate, the HPKE pair and an empty database") {
  TempDir dir;
  auto state = dir / "state";
  init(state);
  StatePaths paths(state);
  for (const auto& key : {paths.caKey(), paths.serverKey(), paths.hpkeKey()}) {
    CAPTURE(key);
    CHECK(permissionsOf(key) == kOwnerOnly);
  }
  for (const auto& file : {paths.caCert(), paths.serverCert(), paths.hpkePub(), paths.sqliteDatabase()})
    CHECK(fs::exists(file));

  auto ca = readCert(paths.caCert());
  auto server = readCert(paths.serverCert());
  CHECK(X509_check_ca(ca.get()) >= 1);
  CHECK(chainsTo(server.get(), ca.get(), X509_PURPOSE_SSL_SERVER));
  CHECK_FALSE(chainsTo(server.get(), ca.get(), X509_PURPOSE_SSL_CLIENT));
  CHECK(X509_check_host(server.get(), "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(server.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_host(server.get(), "example.org", 0, 0, nullptr) != 1);

  auto hpke = X25519Key::loadPem(paths.hpkeKey().string());
  REQUIRE(hpke.has_value());
  auto pub = X25519Key::loadPem(paths.hpkePub().string());
  REQUIRE(pub.has_value());
  CHECK(hpke->rawPublic() == pub->rawPublic());
  CHECK(Store::open(paths.sqliteDatabase()).value().agents().value().empty());
}

TEST_CASE("init refuses a directory that is already initialized") {
  TempDir dir;
  init(dir / "state");
  auto caBefore = platform::readFile(dir / "state" / "ca.key").value();
  auto again = initState(InitOptions{dir / "state", {}});
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().code == "already_initialized");
  CHECK(platform::readFile(dir / "state" / "ca.key").value() == caBefore);
}

TEST_CASE("init takes the server certificate's names from --name") {
  TempDir dir;
  init(dir / "state", {"home.example.org", "10.1.2.3", "DNS:ingest.example.org", "IP:::1"});
  auto server = readCert(StatePaths(dir / "state").serverCert());
  CHECK(X509_check_host(server.get(), "home.example.org", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(server.get(), "ingest.example.org", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(server.get(), "10.1.2.3", 0) == 1);
  CHECK(X509_check_ip_asc(server.get(), "::1", 0) == 1);
  CHECK(X509_check_host(server.get(), "localhost", 0, 0, nullptr) != 1);

  auto bad = initState(InitOptions{dir / "other", {"not a name"}});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == "usage.name");
  CHECK_FALSE(fs::exists(dir / "other"));
}

TEST_CASE("enroll writes exactly the six bundle files and the agent row") {
  TempDir dir;
  auto state = dir / "state";
  init(state);
  auto out = dir / "bundle";
  auto agent = enrollAgent(state, sampleEnroll(out));
  REQUIRE_MESSAGE(agent.has_value(), (agent ? "" : agent.error().message));
  CHECK(agent->uuid == formatUuid(agent->id));

  CHECK(filesIn(out) == std::vector<std::string>{"agent-sign.key", "agent-tls.crt", "agent-tls.key",
                                                 "agent.xml", "home-ca.crt", "home-hpke.pub"});
  CHECK(permissionsOf(out / "agent-sign.key") == kOwnerOnly);
  CHECK(permissionsOf(out / "agent-tls.key") == kOwnerOnly);
  CHECK(platform::readFile(out / "home-ca.crt").value() ==
        platform::readFile(state / "ca.crt").value());
  CHECK(platform::readFile(out / "home-hpke.pub").value() ==
        platform::readFile(state / "home-hpke.pub").value());

  auto cert = readCert(out / "agent-tls.crt");
  auto ca = readCert(state / "ca.crt");
  CHECK(chainsTo(cert.get(), ca.get(), X509_PURPOSE_SSL_CLIENT));
  CHECK_FALSE(chainsTo(cert.get(), ca.get(), X509_PURPOSE_SSL_SERVER));
  CHECK(subjectField(cert.get(), NID_commonName) == agent->uuid);
  CHECK(subjectField(cert.get(), NID_organizationName) == "Acme Storage");
  CHECK(subjectField(cert.get(), NID_organizationalUnitName) == "Berlin DC2");

  auto sign = Ed25519Key::loadPem((out / "agent-sign.key").string());
  REQUIRE(sign.has_value());
  CHECK(sign->hasPrivate());
  auto text = platform::readFile(out / "agent-sign.key").value();
  CHECK(text.starts_with("-----BEGIN PRIVATE KEY-----"));  // PKCS#8

  auto cfg = loadAgentConfig(out / "agent.xml");
  REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
  CHECK(cfg->agentId == agent->id);
  CHECK(cfg->customer == "Acme Storage");
  CHECK(cfg->site == "Berlin DC2");
  CHECK(cfg->name == "vsp-410123");
  CHECK(cfg->endpoints == std::vector<std::string>{"https://home-a:9455", "https://home-b:9455"});
  CHECK(cfg->tlsCert == out / "agent-tls.crt");

  auto store = Store::open(state / "home.db").value();
  auto auth = store.agentAuth(agent->uuid).value();
  REQUIRE(auth.has_value());
  CHECK(auth->signKey == sign->rawPublic());
  CHECK(auth->certSerial == agent->certSerial);
  CHECK(auth->certSerial.size() == 32);  // 128-bit serial, lower-case hex
  CHECK(auth->certSerial.find_first_not_of("0123456789abcdef") == std::string::npos);
  auto rows = store.agents().value();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].customer == "Acme Storage");
}

TEST_CASE("enroll defaults the endpoint and gives every agent its own identity") {
  TempDir dir;
  init(dir / "state");
  auto options = sampleEnroll(dir / "a");
  options.endpoints.clear();
  auto a = enrollAgent(dir / "state", options).value();
  options.out = dir / "b";
  auto b = enrollAgent(dir / "state", options).value();
  CHECK(a.uuid != b.uuid);
  CHECK(a.certSerial != b.certSerial);
  auto cfg = loadAgentConfig(dir / "a" / "agent.xml").value();
  CHECK(cfg.endpoints == std::vector<std::string>{std::string(kDefaultEndpoint)});
  CHECK(Store::open(dir / "state" / "home.db").value().agents().value().size() == 2);
}

TEST_CASE("enroll refuses bad input before writing anything") {
  TempDir dir;
  auto state = dir / "state";

  auto before = enrollAgent(state, sampleEnroll(dir / "x"));
  REQUIRE_FALSE(before.has_value());
  CHECK(before.error().code == "not_initialized");
  CHECK_FALSE(fs::exists(dir / "x"));

  init(state);
  fs::create_directories(dir / "full");
  REQUIRE(platform::writeFileAtomic(dir / "full" / "other.txt", "keep me").has_value());
  auto full = enrollAgent(state, sampleEnroll(dir / "full"));
  REQUIRE_FALSE(full.has_value());
  CHECK(full.error().code == "out_not_empty");
  CHECK(filesIn(dir / "full") == std::vector<std::string>{"other.txt"});

  auto badUrl = sampleEnroll(dir / "y");
  badUrl.endpoints = {"http://plain:9455"};
  auto refused = enrollAgent(state, badUrl);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "usage.endpoint");

  auto noCustomer = sampleEnroll(dir / "z");
  noCustomer.customer.clear();
  auto empty = enrollAgent(state, noCustomer);
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().code == "usage.customer");

  CHECK(Store::open(state / "home.db").value().agents().value().empty());
}

TEST_CASE("every listener of the home offers TLS 1.2 only with ECDHE and an AEAD cipher") {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()),
                                                        &SSL_CTX_free);
  REQUIRE(ctx);
  REQUIRE(restrictServerTls(ctx.get()));
  CHECK(SSL_CTX_get_min_proto_version(ctx.get()) == TLS1_2_VERSION);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  REQUIRE(ssl);
  STACK_OF(SSL_CIPHER)* ciphers = SSL_get_ciphers(ssl.get());
  int tls12 = 0;
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
    const std::string name = SSL_CIPHER_get_name(c);
    CAPTURE(name);
    if (std::string_view(SSL_CIPHER_get_version(c)) == "TLSv1.3") continue;  // all AEAD
    ++tls12;
    CHECK(SSL_CIPHER_get_kx_nid(c) == NID_kx_ecdhe);
    CHECK(SSL_CIPHER_is_aead(c) == 1);
    CHECK(name.find("CBC") == std::string::npos);
  }
  CHECK(tls12 == 6);
}
