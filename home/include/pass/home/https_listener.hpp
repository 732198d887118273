#pragma once
/// The home's one HTTP(S) listener (Beast over Asio, C++20 coroutines), under both the ingest
/// API and the admin API: accept, optional TLS (client certificate required or not), the
/// handshake slots and per-address limits and deadline (connection_limits.hpp), read and idle
/// timeouts, the body limit, the connection limit, the refusal summary line, drain on stop, and
/// dispatch of each request to a route table (method + path -> handler). A handler answers
/// through a callback, at once or later from any thread (ingest answers after group commit).

#include <any>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include "pass/home/pki.hpp"
#include "pass/result.hpp"

namespace pass::home {

class Logger;

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

/// A handler's answer. The listener adds the status line, Content-Type, Content-Length and
/// Connection; everything else (Date, Allow, Cache-Control, ...) is the route table's.
struct HttpAnswer {
  unsigned status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers{};
  /// End the connection after this answer.
  bool close = false;
};

/// The connection a request came on.
struct HttpPeer {
  std::string address;  // "IP:PORT"
  /// With client certificates: the verified certificate's subject and serial.
  PeerIdentity identity;
  /// The TLS connection; null on plain HTTP.
  SSL* ssl = nullptr;
  /// What the route table keeps per connection (ingest: the agent's row, checked once).
  std::any state;
};

/// Called exactly once per request, from any thread.
using Respond = std::function<void(HttpAnswer)>;
/// Runs on the connection's thread; may keep what it needs and call `respond` later.
using RouteHandler = std::function<void(HttpRequest& request, HttpPeer& peer, Respond respond)>;

struct Route {
  /// "POST", "GET", ...; empty: any method.
  std::string method;
  /// The request target exactly, a segment "*" standing for any one segment
  /// ("/v1/tickets/*/ack"), or with `prefix` every target that starts with it.
  std::string path;
  bool prefix = false;
  /// When set, a request of another Content-Type (parameters aside) is refused before its body.
  std::string mediaType;
  /// Largest body; 0: the listener's maxBody.
  std::size_t maxBody = 0;
  RouteHandler handler;
  /// The target may go on with "?query" after the path (the handler reads it); otherwise a
  /// query makes it another target.
  bool query = false;
};

/// Why a request reached no handler.
struct RouteRefusal {
  enum class Kind {
    kNotFound,              // no route has the path
    kMethodNotAllowed,      // routes have the path, none the method; `allow` lists theirs
    kUnsupportedMediaType,  // the route wants `mediaType`, the request sent `contentType`
    kTooLarge,              // the body is over `limit`
    kMalformed,             // not HTTP/1.1 as Beast reads it; `error` says why
  };
  Kind kind = Kind::kNotFound;
  std::string method;
  std::string target;
  std::string allow;
  std::string mediaType;
  std::string contentType;
  std::size_t limit = 0;
  std::string error;
};

struct RouteTable {
  std::vector<Route> routes;
  /// The answer to a refused request; nullopt closes the connection without one. A refusal
  /// before the body was read (or of a body over the limit) always ends the connection: the
  /// unread body is in the way.
  std::function<std::optional<HttpAnswer>(const RouteRefusal&, const HttpPeer&)> refuse;
};

/// How the route table treats one request: the route, or why none. Socket-free (tests).
struct RouteMatch {
  const Route* route = nullptr;
  std::optional<RouteRefusal> refusal;
};
RouteMatch matchRoute(const RouteTable& table, std::string_view method, std::string_view target,
                      std::string_view contentType);

/// Where a listener binds, as a `--listen`-style flag gives it: "HOST:PORT" ("[::1]:9455" for
/// IPv6; HOST an IP address, PORT 0 to 65535).
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};
/// Fails with `code`, naming `flag`, what is wrong and `examples` (e.g. "0.0.0.0:9455 or
/// [::1]:9455").
Result<ListenAddress> parseListenAddress(std::string_view text, std::string_view flag,
                                         std::string_view code, std::string_view examples);

struct HttpsListenerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = ephemeral
  /// Written atomically with the bound port once listening (tests poll for it).
  std::filesystem::path portFile;
  /// Event loops, one thread each; a connection lives on one.
  unsigned threads = 1;
  std::size_t maxBody = 1024 * 1024;
  std::size_t maxConnections = 512;
  /// Budget for one request's header and body, and for an answer.
  std::chrono::milliseconds readTimeout{std::chrono::seconds(30)};
  /// How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idleTimeout{std::chrono::seconds(60)};
  /// After stop(), how long open connections may take to finish.
  std::chrono::milliseconds drainTimeout{std::chrono::seconds(10)};
  /// TLS; null: plain HTTP. A context that requires client certificates makes every
  /// connection show one before it takes one of maxConnections.
  std::shared_ptr<boost::asio::ssl::context> tls;
  bool clientCertificates = false;
  /// With client certificates: asked about each one during the handshake and before the first
  /// request; yes refuses it (certificate_revoked alert, `tls_refused` with reason "revoked").
  std::function<bool(const std::string& commonName)> revoked;
  /// With TLS: slots for handshakes in progress and their deadline (docs/home.md). Without,
  /// a connection takes one of maxConnections at accept and has readTimeout to shake hands.
  struct HandshakeLimits {
    std::size_t total = 256;
    std::size_t perAddress = 64;
    std::chrono::milliseconds timeout{std::chrono::seconds(5)};
  };
  std::optional<HandshakeLimits> handshakes;
  /// Refused connections are logged as one `connections_refused` line per interval at most.
  std::chrono::milliseconds refusalLogInterval{std::chrono::seconds(10)};
  /// Put before each event name this listener logs ("admin_" -> "admin_listening").
  std::string eventPrefix;
  /// Put before the message of a failure to bind ("admin API: ").
  std::string errorPrefix;
  /// The command-line flag that gave `host`, named when it is not an IP address; the error's
  /// code is "usage." and its name ("--admin-listen": "usage.admin_listen").
  std::string flag = "--listen";
  /// More fields for the `listening` line.
  nlohmann::ordered_json listeningFields = nlohmann::ordered_json::object();
};

struct HttpsListenerStats {
  std::uint64_t open = 0;   // every accepted connection, handshaking or not
  std::uint64_t peers = 0;  // connections holding one of maxConnections
  std::uint64_t rejected = 0;
  std::uint64_t handshaking = 0;
};

class HttpsListener {
 public:
  /// Binds; fails with "listen" naming the address, after `errorPrefix` ("admin API: "), or
  /// with "usage.<flag>" when the host is not an IP address.
  static Result<std::unique_ptr<HttpsListener>> create(HttpsListenerOptions options,
                                                       RouteTable routes, Logger& log);
  ~HttpsListener();  // stop() and wait()
  HttpsListener(const HttpsListener&) = delete;
  HttpsListener& operator=(const HttpsListener&) = delete;

  std::uint16_t port() const;
  bool tls() const;

  /// Writes the port file, logs `listening` and starts accepting on the listener's threads.
  Status start();
  /// Thread-safe, idempotent: no new connections; waiting ones end, requests in progress are
  /// answered (for at most drainTimeout); then the threads end.
  void stop();
  /// Joins the threads (after stop(), or a stop from elsewhere).
  void wait();

  /// Runs `task` on the listener's first loop every `interval` from start() until stop().
  void every(std::chrono::milliseconds interval, std::function<void()> task);
  /// Closes the open connections of these certificate subjects at once, also in the middle of
  /// a request; returns how many each had (every name listed, 0 included).
  std::vector<std::pair<std::string, std::size_t>> closePeers(const std::set<std::string>& names);

  HttpsListenerStats stats() const;
  /// Logs the refusals counted since the last summary line now (at the end of a run).
  void logRefusals();

  struct Core;

 private:
  explicit HttpsListener(std::unique_ptr<Core> core);
  std::unique_ptr<Core> core_;
};

}  // namespace pass::home
