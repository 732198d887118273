// ArrayHttps against a real TLS server: a Python http.server child with a self-signed key made
// by the openssl command, which also computes the expected pins independently of the code. The
// server writes each request it receives ("METHOD PATH") to a log, before it answers.

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>  // setenv, unsetenv
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "array_https.hpp"
#include "pass/collector.hpp"
#include "test_child_server.hpp"
#include "test_support.hpp"

extern char** environ;

namespace {

using nlohmann::json;
using pass::test::errorText;
using pass::test::TempDir;
using namespace std::chrono_literals;

constexpr std::string_view kServerPy = R"py(
import http.server, json, os, ssl, sys, time

cert, key, port_file, mode = sys.argv[1:5]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        with open(port_file + ".log", "a") as log:
            log.write(f"{self.command} {self.path}\n")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.startswith("/slow"):
            time.sleep(5)
        if self.path.startswith("/big"):
            out = b"x" * 100000
        else:
            out = json.dumps({"method": self.command, "path": self.path, "body": body,
                              "content_type": self.headers.get("Content-Type"),
                              "x_test": self.headers.get("X-Test"),
                              "peer_port": self.client_address[1]}).encode()
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Reply", "  spaced value ")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_DELETE = do_PUT = answer

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out or give up on purpose

server = Server(("127.0.0.1", 0), Handler)
if mode == "tls":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
)py";

std::string readText(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void shell(const std::string& command) {
  int rc = std::system(command.c_str());
  REQUIRE_MESSAGE(rc == 0, command);
}

/// A self-signed key pair and its curl pin, computed with the openssl command.
struct KeyPair {
  std::filesystem::path cert;
  std::filesystem::path key;
  std::string pin;

  KeyPair(const TempDir& dir, const std::string& name) {
    cert = dir / (name + ".crt");
    key = dir / (name + ".key");
    shell(fmt::format(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=array -keyout '{}' -out '{}' 2>/dev/null",
        key.string(), cert.string()));
    auto pinFile = dir / (name + ".pin");
    shell(fmt::format(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst "
        "-sha256 -binary | openssl enc -base64 -A > '{}'",
        cert.string(), pinFile.string()));
    pin = "sha256//" + readText(pinFile);
  }
};

/// The Python server as a child process; killed and reaped when it goes.
class Server {
 public:
  Server(const TempDir& dir, const KeyPair& keys, const std::string& mode = "tls")
      : portFile_(nextPortFile(dir)),
        child_({"python3", script(dir).string(), keys.cert.string(), keys.key.string(),
                portFile_.string(), mode},
               portFile_) {}
  void stop() { child_.stop(); }
  std::uint16_t port() const { return child_.port(); }
  /// The requests the server has received so far, "METHOD PATH" each.
  std::vector<std::string> requests() const {
    std::vector<std::string> lines;
    std::istringstream log(readText(portFile_.string() + ".log"));
    for (std::string line; std::getline(log, line);) lines.push_back(line);
    return lines;
  }

 private:
  static std::filesystem::path nextPortFile(const TempDir& dir) {
    static int counter = 0;
    return dir / fmt::format("port-{}", ++counter);
  }
  static std::filesystem::path script(const TempDir& dir) {
    auto path = dir / "server.py";
    if (!std::filesystem::exists(path)) std::ofstream(path) << kServerPy;
    return path;
  }
  std::filesystem::path portFile_;  // before child_: the child is started with it
  pass::test::ChildServer child_;
};

/// A port on 127.0.0.1 where nothing listens: bound, read back, closed.
std::uint16_t closedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

pass::ArrayConfig arrayConfig() {
  pass::ArrayConfig a;
  a.family = "nimble";
  a.serial = "AF-123456";
  a.where = "agent.xml:7";
  return a;
}

pass::ArrayHttpsOptions optionsFor(std::uint16_t port) {
  pass::ArrayHttpsOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.connectTimeout = 5000ms;
  o.totalTimeout = 10000ms;
  o.pinName = "rest";
  return o;
}

pass::HttpsRequest get(std::string target) {
  pass::HttpsRequest r;
  r.target = std::move(target);
  return r;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

class FailingPins final : public pass::PinStore {
 public:
  std::optional<std::string> find(std::string_view) const override { return std::nullopt; }
  pass::Status remember(std::string_view, std::string_view) override {
    return pass::fail("io_error", "state/pins/nimble-AF-123456.json: disk full");
  }
};

/// Pins in memory that note what the server had received when a pin was stored.
class WatchedPins final : public pass::PinStore {
 public:
  explicit WatchedPins(const Server& server) : server_(server) {}
  std::optional<std::string> find(std::string_view name) const override { return pins_.find(name); }
  pass::Status remember(std::string_view name, std::string_view value) override {
    requestsBefore.push_back(server_.requests());
    return pins_.remember(name, value);
  }
  std::vector<std::vector<std::string>> requestsBefore;  // one entry per remember()

 private:
  const Server& server_;
  pass::MemoryPinStore pins_;
};

pass::HttpsRequest login() {
  pass::HttpsRequest r;
  r.method = "POST";
  r.target = "/v1/tokens";
  r.body = R"({"data":{"username":"admin","password":"secret"}})";
  return r;
}

}  // namespace

TEST_CASE("ArrayHttps: the first contact learns the key, later requests reuse the connection") {
  TempDir dir;
  KeyPair keys(dir, "a");
  Server server(dir, keys);
  pass::MemoryPinStore pins;
  auto array = arrayConfig();
  pass::ArrayHttps client(optionsFor(server.port()), pins, array);

  auto first = client.send(get("/v1/events?startRow=0&endRow=10"));
  REQUIRE_MESSAGE(first.has_value(), errorText(first));
  CHECK(first->status == 200);
  auto body = json::parse(first->body);
  CHECK(body["method"] == "GET");
  CHECK(body["path"] == "/v1/events?startRow=0&endRow=10");
  CHECK(first->header("content-type") == "application/json");
  CHECK(first->header("X-REPLY") == "spaced value");
  CHECK_FALSE(first->header("X-Absent").has_value());
  REQUIRE(pins.find("rest").has_value());
  CHECK(*pins.find("rest") == keys.pin);

  auto second = client.send(get("/two"));
  auto third = client.send(get("/three"));
  REQUIRE_MESSAGE(second.has_value(), errorText(second));
  REQUIRE_MESSAGE(third.has_value(), errorText(third));
  CHECK(json::parse(second->body)["peer_port"] == json::parse(third->body)["peer_port"]);
}

TEST_CASE("ArrayHttps: methods, headers and bodies reach the server, HTTP errors are answers") {
  TempDir dir;
  KeyPair keys(dir, "a");
  Server server(dir, keys);
  pass::MemoryPinStore pins;
  auto array = arrayConfig();
  pass::ArrayHttps client(optionsFor(server.port()), pins, array);

  pass::HttpsRequest post;
  post.method = "POST";
  post.target = "/v1/tokens";
  post.headers = {{"X-Test", "one"}};
  post.body = R"({"data":{"username":"admin"}})";
  auto r = client.send(post);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  auto body = json::parse(r->body);
  CHECK(body["method"] == "POST");
  CHECK(body["body"] == post.body);
  CHECK(body["content_type"] == "application/json");
  CHECK(body["x_test"] == "one");

  pass::HttpsRequest del;
  del.method = "DELETE";
  del.target = "/v1/tokens/42";
  r = client.send(del);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  body = json::parse(r->body);
  CHECK(body["method"] == "DELETE");
  CHECK(body["body"] == "");
  CHECK(body["x_test"] == nullptr);  // headers do not leak into the next request

  r = client.send(get("/missing"));
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->status == 404);
  CHECK(json::parse(r->body)["method"] == "GET");
}

TEST_CASE("ArrayHttps: the pinned key is accepted again, another key is refused with both") {
  TempDir dir;
  KeyPair keysA(dir, "a");
  KeyPair keysB(dir, "b");
  REQUIRE(keysA.pin != keysB.pin);
  Server a(dir, keysA);
  Server b(dir, keysB);
  pass::MemoryPinStore pins;
  REQUIRE(pins.remember("rest", keysA.pin));
  auto array = arrayConfig();

  pass::ArrayHttps same(optionsFor(a.port()), pins, array);
  auto ok = same.send(get("/"));
  CHECK_MESSAGE(ok.has_value(), errorText(ok));

  pass::ArrayHttps other(optionsFor(b.port()), pins, array);
  auto refused = other.send(login());
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "collector.pin_mismatch");
  const auto& message = refused.error().message;
  CHECK_MESSAGE(contains(message, fmt::format("TLS key on 127.0.0.1:{}", b.port())), message);
  CHECK_MESSAGE(contains(message, keysA.pin), message);
  CHECK_MESSAGE(contains(message, keysB.pin), message);
  CHECK_MESSAGE(contains(message, "nimble AF-123456"), message);
  CHECK_MESSAGE(contains(message, "forget-pin"), message);
  CHECK(pins.find("rest") == keysA.pin);
  CHECK(b.requests().empty());  // the password never reached the other key
}

TEST_CASE("ArrayHttps: on first contact the key is pinned before the first request leaves") {
  TempDir dir;
  KeyPair keys(dir, "a");
  Server server(dir, keys);
  WatchedPins pins(server);
  auto array = arrayConfig();
  pass::ArrayHttps client(optionsFor(server.port()), pins, array);
  auto r = client.send(login());
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  REQUIRE(pins.requestsBefore.size() == 1);
  CHECK(pins.requestsBefore[0].empty());  // the login came after the pin
  CHECK(pins.find("rest") == keys.pin);
  CHECK(server.requests() == std::vector<std::string>{"POST /v1/tokens"});
}

TEST_CASE("ArrayHttps: a pin that cannot be stored fails the request and sends nothing") {
  TempDir dir;
  KeyPair keys(dir, "a");
  Server server(dir, keys);
  FailingPins pins;
  auto array = arrayConfig();
  pass::ArrayHttps client(optionsFor(server.port()), pins, array);
  auto r = client.send(login());
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "io_error");
  CHECK(contains(r.error().message, "disk full"));
  CHECK(server.requests().empty());
}

TEST_CASE("ArrayHttps: refused connections and plain HTTP servers are unreachable") {
  pass::MemoryPinStore pins;
  auto array = arrayConfig();
  auto port = closedPort();
  pass::ArrayHttps refused(optionsFor(port), pins, array);
  auto r = refused.send(get("/v1/tokens"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "collector.unreachable");
  CHECK_MESSAGE(contains(r.error().message, fmt::format("https://127.0.0.1:{}/v1/tokens", port)),
                r.error().message);
  CHECK(contains(r.error().message, "nimble AF-123456"));

  TempDir dir;
  KeyPair keys(dir, "a");
  Server plain(dir, keys, "plain");
  pass::ArrayHttps noTls(optionsFor(plain.port()), pins, array);
  r = noTls.send(get("/"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "collector.unreachable");
  CHECK_FALSE(pins.find("rest").has_value());
}

TEST_CASE("ArrayHttps: a slow server is a timeout, a long answer is bad output") {
  TempDir dir;
  KeyPair keys(dir, "a");
  Server server(dir, keys);
  pass::MemoryPinStore pins;
  auto array = arrayConfig();
  auto options = optionsFor(server.port());
  options.totalTimeout = 500ms;
  options.maxBody = 1000;
  pass::ArrayHttps client(options, pins, array);

  auto started = std::chrono::steady_clock::now();
  auto slow = client.send(get("/slow"));
  REQUIRE_FALSE(slow.has_value());
  CHECK(slow.error().code == "collector.timeout");
  CHECK(std::chrono::steady_clock::now() - started < 4s);

  auto big = client.send(get("/big"));
  REQUIRE_FALSE(big.has_value());
  CHECK(big.error().code == "collector.bad_output");
  CHECK_MESSAGE(contains(big.error().message, "1000 bytes"), big.error().message);

  auto fine = client.send(get("/after"));
  CHECK_MESSAGE(fine.has_value(), errorText(fine));
}

TEST_CASE("ArrayHttps: proxy environment variables are ignored") {
  TempDir dir;
  KeyPair keys(dir, "a");
  Server server(dir, keys);
  const std::string deadProxy = fmt::format("http://127.0.0.1:{}", closedPort());
  const char* names[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "http_proxy"};
  for (const char* name : names) setenv(name, deadProxy.c_str(), 1);
  unsetenv("no_proxy");
  unsetenv("NO_PROXY");
  pass::MemoryPinStore pins;
  auto array = arrayConfig();
  pass::ArrayHttps client(optionsFor(server.port()), pins, array);
  auto r = client.send(get("/through"));
  for (const char* name : names) unsetenv(name);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(json::parse(r->body)["path"] == "/through");
}
