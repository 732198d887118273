// The ingest server in-process on 127.0.0.1:0 with a real TLS client (Beast): answers,
// keep-alive, limits, mutual TLS and shutdown.

#include <doctest/doctest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <mutex>
#include <thread>

#include "pass/envelope.hpp"
#include "pass/home/admin.hpp"
#include "pass/home/log.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/runtime.hpp"
#include "platform/fs.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::nowMs;
using pass::home::test::TempDir;
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Response = http::response<http::string_body>;

namespace {

class Home {
 public:
  explicit Home(ServerOptions options = {}) {
    REQUIRE(initState(InitOptions{dir_ / "state", {}}).has_value());
    auto enrolled = enrollAgent(dir_ / "state", EnrollOptions{.customer = "Acme",
                                                              .site = "Berlin",
                                                              .name = "vsp",
                                                              .out = dir_ / "bundle",
                                                              .endpoints = {}});
    REQUIRE(enrolled.has_value());
    agent_ = *enrolled;
    sign_ = std::make_unique<Ed25519Key>(
        Ed25519Key::loadPem((bundle() / "agent-sign.key").string()).value());
    homePub_ = std::make_unique<X25519Key>(
        X25519Key::loadPem((bundle() / "home-hpke.pub").string()).value());

    options.state = dir_ / "state";
    options.host = "127.0.0.1";
    options.port = 0;
    options.portFile = dir_ / "port";
    // Ingest alone: no admin API, no tickets.
    server_ =
        Runtime::create(RuntimeOptions{.ingest = options, .admin = {}, .tickets = false}, log_)
            .value();
    thread_ = std::thread([this] { ran_ = server_->run(false); });
  }

  ~Home() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
  }

  const fs::path& dir() const { return dir_.path(); }
  fs::path bundle() const { return dir_ / "bundle"; }
  fs::path state() const { return dir_ / "state"; }
  std::uint16_t port() const { return server_->ingestPort(); }
  const EnrolledAgent& agent() const { return agent_; }
  Runtime& server() { return *server_; }
  const Status& ran() const { return ran_; }

  Bytes seal(std::uint64_t seq, std::string payload = "") {
    if (payload.empty()) {
      payload = R"({"schema":1,"type":"report","events":[{"array":"410123","code":"307080"}]})";
    }
    EnvelopeHeader h;
    h.agentId = agent_.id;
    h.seq = seq;
    h.createdMs = static_cast<std::uint64_t>(nowMs());
    h.keyId = hpkeKeyId(*homePub_);
    return sealEnvelope(h, payload, *homePub_, *sign_).value();
  }

  std::vector<std::string> logLines() {
    std::lock_guard lock(logMutex_);
    return lines_;
  }
  /// Whether a log line holds needle, waiting up to 10 s for it: the server may log after
  /// the client already saw the effect (a refusal is logged after the socket is closed).
  bool logged(std::string_view needle) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      auto lines = logLines();
      if (std::any_of(lines.begin(), lines.end(),
                      [&](const std::string& l) { return l.find(needle) != std::string::npos; })) {
        return true;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  TempDir dir_;
  EnrolledAgent agent_;
  std::unique_ptr<Ed25519Key> sign_;
  std::unique_ptr<X25519Key> homePub_;
  std::mutex logMutex_;
  std::vector<std::string> lines_;
  Logger log_{LogLevel::kDebug, [this](std::string_view line) {
                std::lock_guard lock(logMutex_);
                lines_.emplace_back(line);
              }};
  std::unique_ptr<Runtime> server_;
  Status ran_;
  std::thread thread_;
};

class Client {
 public:
  Client(const Home& home, bool withCertificate = true) : ctx_(ssl::context::tls_client) {
    ctx_.set_verify_mode(ssl::verify_peer);
    ctx_.load_verify_file((home.bundle() / "home-ca.crt").string());
    ctx_.set_verify_callback(ssl::host_name_verification("localhost"));
    if (withCertificate) {
      ctx_.use_certificate_chain_file((home.bundle() / "agent-tls.crt").string());
      ctx_.use_private_key_file((home.bundle() / "agent-tls.key").string(), ssl::context::pem);
    }
    stream_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, ctx_);
    beast::get_lowest_layer(*stream_).connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), home.port()));
    stream_->handshake(ssl::stream_base::client);
  }

  Response post(const Bytes& body, std::string_view target = "/v1/envelopes",
                http::verb method = http::verb::post,
                std::string_view contentType = kEnvelopeContentType) {
    http::request<http::vector_body<std::uint8_t>> req{method, target, 11};
    req.set(http::field::host, "localhost");
    req.set(http::field::content_type, contentType);
    req.body() = body;
    req.prepare_payload();
    http::write(*stream_, req);
    return read();
  }

  Response read() {
    Response res;
    http::read(*stream_, buffer_, res);
    return res;
  }

  beast::ssl_stream<beast::tcp_stream>& stream() { return *stream_; }

  /// True when the server closed the connection (read ends with an error, not data).
  bool closedByServer() {
    beast::error_code ec;
    char byte;
    stream_->read_some(net::buffer(&byte, 1), ec);
    return static_cast<bool>(ec);
  }

 private:
  net::io_context io_;
  ssl::context ctx_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
};

nlohmann::json bodyOf(const Response& res) { return nlohmann::json::parse(res.body()); }

}  // namespace

TEST_CASE("accepted, duplicate and refused answers on one keep-alive connection") {
  Home home;
  // run() writes the port file once listening; poll for it with a deadline.
  Result<std::string> portText = fail("not_found", "no port file yet");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!portText && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    portText = platform::readFile(home.dir() / "port");
  }
  REQUIRE(portText.has_value());
  CHECK(std::stoi(*portText) == home.port());

  Client client(home);
  auto first = client.post(home.seal(1));
  REQUIRE(first.result() == http::status::ok);
  CHECK(bodyOf(first) ==
        nlohmann::json{{"status", "accepted"}, {"agent", home.agent().uuid}, {"seq", 1}});
  CHECK(first[http::field::content_type] == "application/json");
  CHECK(first.keep_alive());

  auto again = client.post(home.seal(1));
  REQUIRE(again.result() == http::status::ok);
  CHECK(bodyOf(again)["status"] == "duplicate");

  auto get = client.post({}, "/v1/envelopes", http::verb::get);
  CHECK(get.result() == http::status::method_not_allowed);
  CHECK(get[http::field::allow] == "POST");
  CHECK(bodyOf(get)["error"] == "method_not_allowed");

  auto badPayload = client.post(home.seal(2, R"({"schema":1,"type":"nope"})"));
  CHECK(badPayload.result() == http::status::unprocessable_entity);
  CHECK(bodyOf(badPayload)["error"] == "bad_payload");
  CHECK_FALSE(bodyOf(badPayload)["detail"].get<std::string>().empty());

  // A new connection reads the agent's row at once (an open one within authRecheckMs, which
  // the ingest tests cover).
  REQUIRE(revokeAgent(home.state(), home.agent().uuid).has_value());
  Client afterRevoke(home);
  auto revoked = afterRevoke.post(home.seal(3));
  CHECK(revoked.result() == http::status::forbidden);
  CHECK(bodyOf(revoked)["error"] == "revoked");

  auto messages = nlohmann::json::parse(listMessages(home.state(), std::nullopt, true).value());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0]["seq"] == 1);
  CHECK(messages[0]["payload"]["type"] == "report");
  auto agents = nlohmann::json::parse(listAgents(home.state(), true).value());
  REQUIRE(agents.size() == 1);
  CHECK(agents[0]["last_seq"] == 1);
  CHECK(agents[0]["revoked"] == true);
  CHECK(agents[0]["envelopes"] == 1);

  home.stop();
  REQUIRE(home.ran().has_value());
  auto stats = home.server().stats();
  CHECK(stats.accepted == 1);
  CHECK(stats.duplicates == 1);
  CHECK(stats.refused == 3);
  CHECK(home.logged(R"("event":"listening")"));
  CHECK(home.logged(R"("code":"revoked")"));
  CHECK(home.logged(R"("event":"accepted")"));  // debug level
}

TEST_CASE("a request refused on its header alone ends the connection if its body is unread") {
  Home home;
  auto headerOnly = [&](Client& client, std::string_view target, std::string_view type) {
    http::request<http::vector_body<std::uint8_t>> req{http::verb::post, target, 11};
    req.set(http::field::host, "localhost");
    req.set(http::field::content_type, type);
    req.body() = home.seal(1);
    req.prepare_payload();
    http::request_serializer<http::vector_body<std::uint8_t>> sr{req};
    http::write_header(client.stream(), sr);
    return client.read();
  };
  {
    Client client(home);
    auto res = headerOnly(client, "/v2/other", kEnvelopeContentType);
    CHECK(res.result() == http::status::not_found);
    CHECK(bodyOf(res)["error"] == "not_found");
    CHECK_FALSE(res.keep_alive());
    CHECK(client.closedByServer());
  }
  {
    Client client(home);
    auto res = headerOnly(client, "/v1/envelopes", "text/plain");
    CHECK(res.result() == http::status::unsupported_media_type);
    CHECK(bodyOf(res)["error"] == "unsupported_media_type");
    CHECK_FALSE(res.keep_alive());
  }
  {
    // A whole request that is refused leaves the connection usable.
    Client client(home);
    auto res = client.post(home.seal(1), "/v2/other");
    CHECK(res.result() == http::status::not_found);
    CHECK(res.keep_alive());
    CHECK(client.post(home.seal(1)).result() == http::status::ok);
  }
  {
    // Parameters and case of the media type do not matter.
    Client client(home);
    auto res = client.post(home.seal(2), "/v1/envelopes", http::verb::post,
                           "Application/VND.pass.envelope.v1; charset=binary");
    CHECK(res.result() == http::status::ok);
  }
}

TEST_CASE("a body above --max-body is answered 413") {
  ServerOptions options;
  options.maxBody = 512;
  Home home(options);
  Client client(home);
  auto res = client.post(home.seal(
      1, fmt::format(R"({{"schema":1,"type":"test","pad":"{}"}})", std::string(1000, 'x'))));
  CHECK(res.result() == http::status::payload_too_large);
  CHECK(bodyOf(res)["error"] == "too_large");
  CHECK(client.closedByServer());
}

TEST_CASE("Expect: 100-continue gets an interim answer, then the real one") {
  Home home;
  Client client(home);
  http::request<http::vector_body<std::uint8_t>> req{http::verb::post, "/v1/envelopes", 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::content_type, kEnvelopeContentType);
  req.set(http::field::expect, "100-continue");
  req.body() = home.seal(1);
  req.prepare_payload();
  http::request_serializer<http::vector_body<std::uint8_t>> sr{req};
  http::write_header(client.stream(), sr);
  CHECK(client.read().result() == http::status::continue_);
  http::write(client.stream(), sr);
  auto res = client.read();
  CHECK(res.result() == http::status::ok);
  CHECK(bodyOf(res)["status"] == "accepted");
}

TEST_CASE("mutual TLS: a client without a certificate gets no answer") {
  Home home;
  CHECK_THROWS([&] {
    Client client(home, false);
    // With TLS 1.3 the client's handshake completes before the server has checked it; the
    // refusal arrives with the first read.
    client.post(home.seal(1));
  }());
  CHECK(home.logged(R"("event":"tls_refused")"));
}

TEST_CASE("connections beyond --max-connections are closed at once") {
  ServerOptions options;
  options.maxConnections = 1;
  Home home(options);
  Client first(home);
  CHECK(first.post(home.seal(1)).result() == http::status::ok);
  CHECK_THROWS([&] {
    Client second(home);
    second.post(home.seal(2));
  }());
  CHECK(home.logged(R"("event":"connections_refused","refused":1,"connection_limit":1,)"));
  CHECK(first.post(home.seal(3)).result() == http::status::ok);
}

TEST_CASE("a connection without a handshake holds no agent's slot and ends at its deadline") {
  ServerOptions options;
  options.maxConnections = 1;
  options.handshakeTimeout = std::chrono::seconds(2);  // the agent handshakes too, under load
  Home home(options);
  net::io_context io;
  tcp::socket silent(io);
  silent.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), home.port()));
  // A TLS record header and nothing more: the handshake never completes.
  const std::uint8_t header[] = {0x16, 0x03, 0x01, 0x02, 0x00};
  net::write(silent, net::buffer(header));
  // The one agent's slot is still free.
  Client agent(home);
  CHECK(agent.post(home.seal(1)).result() == http::status::ok);
  auto start = std::chrono::steady_clock::now();
  beast::error_code ec;
  char byte;
  silent.read_some(net::buffer(&byte, 1), ec);
  CHECK(ec);  // closed by the home
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
  CHECK(home.logged(R"("event":"connections_refused","refused":1,"connection_limit":0,)"
                    R"("handshake_limit":0,"address_limit":0,"evicted":0,"handshake_timeout":1,)"
                    R"("addresses":1,"top_addresses":[{"address":"127.0.0.1","refused":1}])"));
  CHECK(home.server().stats().handshaking == 0);
}

TEST_CASE("handshakes beyond --max-handshakes-per-address are closed at once") {
  ServerOptions options;
  options.maxHandshakesPerAddress = 2;
  Home home(options);
  net::io_context io;
  std::vector<tcp::socket> silent;
  for (int i = 0; i < 3; ++i) {
    silent.emplace_back(io).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), home.port()));
  }
  beast::error_code ec;
  char byte;
  silent.back().read_some(net::buffer(&byte, 1), ec);
  CHECK(ec);
  CHECK(home.logged(R"("address_limit":1,)"));
}

TEST_CASE("an idle keep-alive connection is closed after --idle-timeout") {
  ServerOptions options;
  options.idleTimeout = std::chrono::milliseconds(200);
  Home home(options);
  Client client(home);
  CHECK(client.post(home.seal(1)).result() == http::status::ok);
  auto start = std::chrono::steady_clock::now();
  CHECK(client.closedByServer());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
}

TEST_CASE("stop() ends idle connections and returns") {
  Home home;
  Client idle(home);
  CHECK(idle.post(home.seal(1)).result() == http::status::ok);
  home.stop();
  REQUIRE(home.ran().has_value());
  CHECK(idle.closedByServer());
  CHECK(home.logged(R"("event":"stopped")"));
}
