#include <doctest/doctest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <boost/asio.hpp>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/transport.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace pass;

namespace {

using pass::test::TempDir;

struct PemPair {
  std::string cert;
  std::string key;
};

/// A self-signed P-256 certificate, made once: curl loads the client certificate before it
/// sends its ClientHello, so the TLS tests need real PEM files (content is otherwise unused).
const PemPair& selfSigned() {
  static const PemPair kPair = [] {
    auto fail = [](const char* what) {
      FAIL("OpenSSL: ", what);
      return PemPair{};
    };
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
    if (!key || !cert) return fail("key or certificate allocation");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("pass-test"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return fail("X509_sign");
    auto toPem = [](auto write) {
      std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
      write(bio.get());
      char* data = nullptr;
      long size = BIO_get_mem_data(bio.get(), &data);
      return std::string(data, static_cast<std::size_t>(size));
    };
    PemPair pair;
    pair.cert = toPem([&](BIO* bio) { PEM_write_bio_X509(bio, cert.get()); });
    pair.key = toPem([&](BIO* bio) {
      PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    return pair;
  }();
  return kPair;
}

/// Settings with readable PEM files; the self-signed certificate is both CA and client cert.
TransportSettings settingsIn(const TempDir& dir, std::vector<std::string> endpoints) {
  TransportSettings s;
  s.endpoints = std::move(endpoints);
  s.caFile = (dir.path() / "home-ca.crt").string();
  s.certFile = (dir.path() / "agent-tls.crt").string();
  s.keyFile = (dir.path() / "agent-tls.key").string();
  std::ofstream(s.caFile) << selfSigned().cert;
  std::ofstream(s.certFile) << selfSigned().cert;
  std::ofstream(s.keyFile) << selfSigned().key;
  s.connectTimeout = std::chrono::milliseconds(5000);
  s.totalTimeout = std::chrono::milliseconds(10000);
  return s;
}

/// A loopback port on which nobody listens: bound by the kernel's choice, then released.
unsigned short closedPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  unsigned short port = acceptor.local_endpoint().port();
  acceptor.close();
  return port;
}

std::string localUrl(unsigned short port) { return fmt::format("https://127.0.0.1:{}", port); }

// doctest would pick pass::toString (a string_view) by ADL and fail to print it.
std::string name(Delivery d) { return std::string(toString(d)); }

const Bytes kEnvelope{'P', 'A', 'S', 'S', 1, 1, 0, 0};

/// Accepts one connection, reads what the client sends first, answers `reply` in plain text
/// and closes. Stands in for a server that does not speak TLS or a refusing proxy.
class OneShotServer {
 public:
  explicit OneShotServer(std::string reply)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        reply_(std::move(reply)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] {
      boost::system::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      std::array<char, 4096> buffer{};
      std::size_t n = socket.read_some(asio::buffer(buffer), ec);
      received_.assign(buffer.data(), ec ? 0 : n);
      asio::write(socket, asio::buffer(reply_), ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    });
  }
  ~OneShotServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    if (thread_.joinable()) thread_.join();
  }
  OneShotServer(const OneShotServer&) = delete;
  OneShotServer& operator=(const OneShotServer&) = delete;

  unsigned short port() const { return port_; }
  /// What the client sent first; valid after the client call returned and join().
  const std::string& received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::string reply_;
  unsigned short port_ = 0;
  std::string received_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("classifyAnswer: 200 accepted and duplicate drop the envelope") {
  auto accepted = classifyAnswer(200, R"({"status":"accepted","seq":5})");
  CHECK(name(accepted.delivery) == "accepted");
  CHECK(accepted.httpStatus == 200);
  CHECK(accepted.body == R"({"status":"accepted","seq":5})");
  CHECK(accepted.errorCode.empty());

  auto duplicate = classifyAnswer(200, R"({"status":"duplicate"})");
  CHECK(name(duplicate.delivery) == "duplicate");
}

TEST_CASE("classifyAnswer: a home_key is taken only when its key_id is its key's") {
  auto key = X25519Key::generate();
  auto keyId = hpkeKeyId(key);
  auto answer = [](const std::string& homeKey) {
    return classifyAnswer(200, R"({"status":"accepted","seq":5,"home_key":)" + homeKey + "}");
  };
  auto good = answer(
      fmt::format(R"({{"key_id":"{}","public":"{}"}})", toHex(keyId), toHex(key.rawPublic())));
  CHECK(name(good.delivery) == "accepted");
  REQUIRE(good.homeKey.has_value());
  CHECK(good.homeKey->keyId == keyId);
  CHECK(good.homeKey->publicKey == key.rawPublic());
  CHECK(good.homeKeyError.empty());

  auto other = X25519Key::generate();
  auto mismatched = answer(
      fmt::format(R"({{"key_id":"{}","public":"{}"}})", toHex(keyId), toHex(other.rawPublic())));
  CHECK(name(mismatched.delivery) == "accepted");  // the envelope is stored all the same
  CHECK_FALSE(mismatched.homeKey.has_value());
  CHECK_MESSAGE(mismatched.homeKeyError.find("not taken") != std::string::npos,
                mismatched.homeKeyError);

  for (const std::string bad :
       {R"("text")", R"({"key_id":"00"})", R"({"key_id":"zz","public":"00"})"}) {
    auto refused = answer(bad);
    CHECK(name(refused.delivery) == "accepted");
    CHECK_FALSE(refused.homeKey.has_value());
    CHECK_MESSAGE(refused.homeKeyError.find("hex digits") != std::string::npos,
                  refused.homeKeyError);
  }
}

TEST_CASE("classifyAnswer: a 200 the agent does not understand is retried") {
  for (const char* body :
       {R"({"status":"queued"})", "not json", "", R"(["accepted"])", R"({"status":1})"}) {
    CAPTURE(body);
    auto r = classifyAnswer(200, body);
    CHECK(name(r.delivery) == "retry");
    CHECK(r.errorCode == "bad_answer");
    CHECK(r.detail.find("HTTP 200") != std::string::npos);
  }
}

TEST_CASE("classifyAnswer: 4xx is a refusal with the home's error code") {
  auto r = classifyAnswer(403, R"({"error":"bad_signature","detail":"signature does not verify"})");
  CHECK(name(r.delivery) == "refused");
  CHECK(r.httpStatus == 403);
  CHECK(r.errorCode == "bad_signature");
  CHECK(r.detail == "signature does not verify");

  auto plain = classifyAnswer(404, "<html>Not Found</html>");
  CHECK(name(plain.delivery) == "refused");
  CHECK(plain.errorCode == "http_404");
  CHECK(plain.detail.find("Not Found") != std::string::npos);

  auto noError = classifyAnswer(400, R"({"detail":"what"})");
  CHECK(noError.errorCode == "http_400");
  CHECK(noError.detail == "what");
  CHECK(name(noError.delivery) == "refused");
}

TEST_CASE("isClockRefusal: only 422 stale and future are about time") {
  CHECK(pass::isClockRefusal(classifyAnswer(422, R"({"error":"future","detail":"ahead"})")));
  CHECK(pass::isClockRefusal(classifyAnswer(422, R"({"error":"stale","detail":"old"})")));
  CHECK_FALSE(pass::isClockRefusal(classifyAnswer(422, R"({"error":"bad_payload"})")));
  CHECK_FALSE(pass::isClockRefusal(classifyAnswer(400, R"({"error":"future"})")));
  CHECK_FALSE(pass::isClockRefusal(classifyAnswer(503, R"({"error":"future"})")));
}

TEST_CASE("classifyAnswer: 5xx and other statuses are retried") {
  for (long status : {500L, 502L, 503L, 301L, 204L, 100L}) {
    CAPTURE(status);
    auto r = classifyAnswer(status, R"({"error":"busy","detail":"try later"})");
    CHECK(name(r.delivery) == "retry");
    CHECK(r.errorCode == fmt::format("http_{}", status));
    CHECK(r.detail.find("try later") != std::string::npos);
  }
  CHECK(name(Delivery::kRetry) == "retry");
  CHECK(name(Delivery::kAccepted) == "accepted");
}

TEST_CASE("Transport::create refuses unusable settings, naming what is wrong") {
  TempDir dir;
  auto good = settingsIn(dir, {"https://127.0.0.1:9455"});
  REQUIRE(Transport::create(good).has_value());

  SUBCASE("no endpoint") {
    auto s = good;
    s.endpoints.clear();
    auto t = Transport::create(s);
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().code == "transport.settings");
    CHECK(t.error().message.find("endpoint") != std::string::npos);
  }
  SUBCASE("plain http endpoint") {
    auto s = good;
    s.endpoints.push_back("http://home.example:9455");
    auto t = Transport::create(s);
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().code == "transport.settings");
    CHECK(t.error().message.find("http://home.example:9455") != std::string::npos);
  }
  SUBCASE("unreadable files are named") {
    std::string missing = (dir.path() / "missing.pem").string();
    for (auto member :
         {&TransportSettings::caFile, &TransportSettings::certFile, &TransportSettings::keyFile}) {
      auto s = good;
      s.*member = missing;
      auto t = Transport::create(s);
      REQUIRE_FALSE(t.has_value());
      CHECK(t.error().code == "transport.settings");
      CHECK(t.error().message.find(missing) != std::string::npos);
    }
  }
  SUBCASE("no CA file") {
    auto s = good;
    s.caFile.clear();
    auto t = Transport::create(s);
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().code == "transport.settings");
    CHECK(t.error().message.find("home CA") != std::string::npos);
  }
}

TEST_CASE("post to a port nobody listens on is a connect failure naming the endpoint") {
  TempDir dir;
  std::string endpoint = localUrl(closedPort());
  auto transport = Transport::create(settingsIn(dir, {endpoint}));
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK(name(r.delivery) == "retry");
  CHECK(r.httpStatus == 0);
  CHECK(r.errorCode == "connect");
  CHECK(r.endpoint == endpoint);
  CHECK_MESSAGE(r.detail.find(endpoint + "/v1/envelopes") != std::string::npos, r.detail);

  // The handle is reused; a second post on it behaves the same.
  auto again = transport->post(kEnvelope);
  CHECK(again.errorCode == "connect");
}

TEST_CASE("with two unreachable endpoints both are tried and the last one is reported") {
  TempDir dir;
  std::string first = localUrl(closedPort()) + "/";
  std::string second = localUrl(closedPort());
  auto transport = Transport::create(settingsIn(dir, {first, second}));
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK(name(r.delivery) == "retry");
  CHECK(r.errorCode == "connect");
  CHECK(r.endpoint == second);
  CHECK_MESSAGE(r.detail.find(second + "/v1/envelopes") != std::string::npos, r.detail);
}

TEST_CASE("a server that does not speak TLS is a tls failure") {
  TempDir dir;
  OneShotServer plain("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::string endpoint = localUrl(plain.port());
  auto transport = Transport::create(settingsIn(dir, {endpoint}));
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK(name(r.delivery) == "retry");
  CHECK_MESSAGE(r.errorCode == "tls", r.detail);
  CHECK(r.endpoint == endpoint);
  CHECK(r.httpStatus == 0);
  // The server saw a TLS handshake record (type 22), never a plain-text request.
  REQUIRE_FALSE(plain.received().empty());
  CHECK(static_cast<unsigned char>(plain.received()[0]) == 0x16);
}

TEST_CASE("after a tls failure the next endpoint is tried") {
  TempDir dir;
  OneShotServer plain("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::string second = localUrl(closedPort());
  auto transport = Transport::create(settingsIn(dir, {localUrl(plain.port()), second}));
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK_FALSE(plain.received().empty());  // the first endpoint was tried
  CHECK(name(r.delivery) == "retry");
  CHECK(r.errorCode == "connect");
  CHECK(r.endpoint == second);
}

TEST_CASE("a server that never answers is a timeout") {
  TempDir dir;
  // A listening socket that never accepts: the kernel completes the TCP handshake, so curl
  // waits for the TLS answer until the total timeout.
  asio::io_context io;
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto settings = settingsIn(dir, {localUrl(silent.local_endpoint().port())});
  settings.totalTimeout = std::chrono::milliseconds(300);
  auto transport = Transport::create(settings);
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK(name(r.delivery) == "retry");
  CHECK_MESSAGE(r.errorCode == "timeout", r.detail);
}

TEST_CASE("proxies from the environment are ignored") {
  TempDir dir;
  // If curl honoured these, it would connect to the silent proxy and time out instead of
  // failing to connect to the endpoint itself.
  asio::io_context io;
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  static std::string proxyVars[3];
  const char* names[] = {"https_proxy", "HTTPS_PROXY", "all_proxy"};
  for (int i = 0; i < 3; ++i) {
    proxyVars[i] = fmt::format("{}=http://127.0.0.1:{}", names[i], silent.local_endpoint().port());
    putenv(proxyVars[i].data());
  }
  std::string endpoint = localUrl(closedPort());
  auto settings = settingsIn(dir, {endpoint});
  settings.totalTimeout = std::chrono::milliseconds(2000);
  auto transport = Transport::create(settings);
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  for (int i = 0; i < 3; ++i) {
    proxyVars[i] = names[i];  // "NAME" without "=" removes the variable (glibc, msvcrt)
    putenv(proxyVars[i].data());
  }
  CHECK_MESSAGE(r.errorCode == "connect", r.detail);
  CHECK(r.endpoint == endpoint);
}

TEST_CASE("an explicit proxy is asked to CONNECT to the endpoint") {
  TempDir dir;
  OneShotServer proxy("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  unsigned short target = closedPort();
  auto settings = settingsIn(dir, {localUrl(target)});
  settings.proxy = fmt::format("http://127.0.0.1:{}", proxy.port());
  auto transport = Transport::create(settings);
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK(name(r.delivery) == "retry");
  CHECK_MESSAGE(r.errorCode == "proxy", r.detail);
  CHECK(proxy.received().starts_with(fmt::format("CONNECT 127.0.0.1:{} HTTP/1.1\r\n", target)));
}

TEST_CASE("an explicit proxy that cannot be reached is a proxy failure") {
  TempDir dir;
  auto settings = settingsIn(dir, {localUrl(closedPort())});
  settings.proxy = fmt::format("http://127.0.0.1:{}", closedPort());
  auto transport = Transport::create(settings);
  REQUIRE(transport.has_value());
  auto r = transport->post(kEnvelope);
  CHECK(name(r.delivery) == "retry");
  CHECK_MESSAGE(r.errorCode == "proxy", r.detail);
}
