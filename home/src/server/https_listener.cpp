// The one HTTP(S) listener of the home: accept, TLS, connection limits, sessions as coroutines,
// route tables, drain on stop (https_listener.hpp).

#include "pass/home/https_listener.hpp"

#include <algorithm>
#include <atomic>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "pass/home/connection_limits.hpp"
#include "pass/home/log.hpp"
#include "platform/fs.hpp"

namespace pass::home {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Json = nlohmann::ordered_json;
using Loop = net::io_context;
using WorkGuard = net::executor_work_guard<Loop::executor_type>;

constexpr auto kUse = net::as_tuple(net::use_awaitable);
constexpr std::size_t kFirstRead = 4096;
// A buffer that grew for a large request is given back after it, so that hundreds of idle
// keep-alive connections stay small.
constexpr std::size_t kKeepBufferBytes = 64 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The media type without parameters, compared case-insensitively (RFC 9110 8.3.1).
bool hasMediaType(std::string_view value, std::string_view expected) {
  auto semicolon = value.find(';');
  if (semicolon != std::string_view::npos) value = value.substr(0, semicolon);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  return beast::iequals(value, expected);
}

/// Whether a failed TLS handshake ended because the peer closed or reset the connection,
/// before or in the middle of its handshake messages, rather than because one side refused.
bool closedByPeer(const beast::error_code& ec) {
  return ec == net::error::eof || ec == ssl::error::stream_truncated ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe;
}

// At most one line a second for a refusal that a client can repeat at will; the line counts
// the ones left out since the last.
class LogBudget {
 public:
  /// The count to report with a line now, or nullopt when this one is left out.
  std::optional<std::uint64_t> take(std::int64_t nowMs) {
    unlogged_.fetch_add(1);
    auto last = lastMs_.load();
    if (nowMs - last < 1000 || !lastMs_.compare_exchange_strong(last, nowMs)) return std::nullopt;
    return unlogged_.exchange(0);
  }

 private:
  std::atomic<std::int64_t> lastMs_{0};
  std::atomic<std::uint64_t> unlogged_{0};
};

// Which of the listener's slots a connection holds: a handshake slot from accept until its
// handshake ends (with handshake limits), then one of maxConnections.
enum class Slot { kNone, kHandshake, kPeer };

// What the listener does to a connection from outside its coroutine: posted to its loop.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  virtual ~Connection() = default;
  virtual net::any_io_executor executor() = 0;
  virtual void start() = 0;
  /// The listener stops: ends a connection that is only waiting; one inside a request is
  /// answered first.
  virtual void onStop() = 0;
  /// Its peer was revoked: ends at once, also in the middle of a request.
  virtual void onRevoked() = 0;
  /// Its handshake slot went to another connection.
  virtual void onEvicted() = 0;

  HandshakeSlots::Id id = 0;
  Slot slot = Slot::kNone;
};

// A route's path against a request's, segment by segment: "*" stands for any one segment
// (without a query in it).
bool pathMatches(std::string_view pattern, std::string_view path) {
  while (true) {
    auto p = pattern.find('/');
    auto q = path.find('/');
    auto want = pattern.substr(0, p);
    auto have = path.substr(0, q);
    if (want == "*" ? have.find('?') != std::string_view::npos : want != have) return false;
    if (p == std::string_view::npos || q == std::string_view::npos) return p == q;
    pattern.remove_prefix(p + 1);
    path.remove_prefix(q + 1);
  }
}

}  // namespace

RouteMatch matchRoute(const RouteTable& table, std::string_view method, std::string_view target,
                      std::string_view contentType) {
  RouteRefusal refusal;
  refusal.method = std::string(method);
  refusal.target = std::string(target);
  bool pathFound = false;
  for (const auto& route : table.routes) {
    auto path = route.query ? target.substr(0, target.find('?')) : target;
    if (route.prefix ? !path.starts_with(route.path) : !pathMatches(route.path, path)) continue;
    pathFound = true;
    if (!route.method.empty() && route.method != method) {
      if (!refusal.allow.empty()) refusal.allow += ", ";
      refusal.allow += route.method;
      continue;
    }
    if (!route.mediaType.empty() && !hasMediaType(contentType, route.mediaType)) {
      refusal.kind = RouteRefusal::Kind::kUnsupportedMediaType;
      refusal.mediaType = route.mediaType;
      refusal.contentType = std::string(contentType);
      return {nullptr, std::move(refusal)};
    }
    return {&route, std::nullopt};
  }
  refusal.kind = pathFound ? RouteRefusal::Kind::kMethodNotAllowed : RouteRefusal::Kind::kNotFound;
  return {nullptr, std::move(refusal)};
}

// Everything the connections share. One event loop per thread: a connection lives on one
// loop, so its steps never need a strand. Loop 0 also owns the acceptor and the timers.
//
// The counters and the registry are declared before the loops: connections destroyed
// together with a loop deregister themselves here.
struct HttpsListener::Core {
  Core(HttpsListenerOptions o, RouteTable r, Logger& l)
      : options(std::move(o)), routes(std::move(r)), log(l) {
    if (options.handshakes)
      handshakes.emplace(options.handshakes->total, options.handshakes->perAddress);
    auto n = std::max(1u, options.threads);
    for (unsigned i = 0; i < n; ++i) {
      // Concurrency hint 1: each loop is run by a single thread.
      loops.push_back(std::make_unique<Loop>(1));
      guards.emplace_back(loops.back()->get_executor());
    }
    acceptor.emplace(*loops[0]);
    drainTimer.emplace(*loops[0]);
    refusalTimer.emplace(*loops[0]);
  }

  Loop& control() { return *loops[0]; }
  std::string event(std::string_view name) const { return options.eventPrefix + std::string(name); }

  HttpsListenerOptions options;
  RouteTable routes;
  Logger& log;
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> peers{0};
  std::atomic<std::uint64_t> rejected{0};
  RefusalTally refusals;
  std::mutex handshakesMutex;
  std::optional<HandshakeSlots> handshakes;  // guarded by handshakesMutex
  std::unordered_map<HandshakeSlots::Id, std::weak_ptr<Connection>> handshaking;  // the same
  HandshakeSlots::Id lastId = 0;                                                  // loop 0 only
  std::atomic<bool> stopping{false};
  std::atomic<bool> loopsDone{false};
  std::mutex connectionsMutex;
  struct Registered {
    std::weak_ptr<Connection> connection;
    std::string peer;  // the client certificate's subject, once the handshake is done
  };
  std::unordered_map<Connection*, Registered> connections;
  LogBudget revokedRefusals;
  std::uint16_t port = 0;
  std::size_t nextLoop = 0;
  std::vector<std::pair<std::chrono::milliseconds, std::function<void()>>> tasks;
  std::vector<std::thread> threads;

  std::vector<std::unique_ptr<Loop>> loops;
  std::vector<WorkGuard> guards;  // keep idle loops running until stop
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> drainTimer;
  std::optional<net::steady_timer> refusalTimer;
  std::list<net::steady_timer> taskTimers;  // loop 0 only

  net::awaitable<void> acceptLoop();
  void onAccept(tcp::socket socket);
  std::shared_ptr<Connection> makeConnection(tcp::socket&& socket, std::string address,
                                             std::string key, HandshakeSlots::Id id, Slot slot);
  std::shared_ptr<Connection> admitHandshake(tcp::socket& socket, const std::string& address,
                                             const std::string& key);
  net::awaitable<void> runTask(std::chrono::milliseconds interval, std::function<void()> task);
  void refuseConnection(ConnectionRefusal reason, const std::string& key);
  bool logRefusals();
  void scheduleRefusalLog();
  void handshakeEnded(HandshakeSlots::Id id);
  bool takePeerSlot();
  void beginStop();
  void registerConnection(const std::shared_ptr<Connection>& connection);
  bool admitPeer(Connection* connection, const std::string& peer);
  void connectionClosed(Connection* connection);
  void logRevokedRefusal(const std::string& address, const std::string& peer);
  void runLoop(Loop& loop);
  void stopLoops() {
    for (auto& loop : loops) loop->stop();
  }
};

namespace {

using Core = HttpsListener::Core;

template <class Stream>
class Session final : public Connection {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(Core& core, Stream&& stream, std::string address, std::string key)
      : core_(core), stream_(std::move(stream)), key_(std::move(key)) {
    peer_.address = std::move(address);
  }

  ~Session() override { core_.connectionClosed(this); }

  net::any_io_executor executor() override { return stream_.get_executor(); }

  void start() override {
    auto self = std::static_pointer_cast<Session>(shared_from_this());
    net::co_spawn(
        executor(), run(self), [&core = core_, address = peer_.address](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& x) {
            // A request failed (e.g. bad_alloc): that connection is lost, the listener goes on.
            core.log.error(core.event("session_failed"), {{"peer", address}, {"what", x.what()}});
          }
        });
  }

  void onStop() override {
    if (waiting_) lowest().cancel();
  }
  void onRevoked() override { lowest().close(); }
  void onEvicted() override {
    if (slot == Slot::kHandshake && waiting_) lowest().cancel();
  }

 private:
  enum class Next { kRequest, kShutdown, kDrop };

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  static net::awaitable<void> run(std::shared_ptr<Session> self) {
    self->core_.registerConnection(self);
    if constexpr (kTls) {
      if (!co_await self->handshake()) co_return;
    }
    auto next = Next::kRequest;
    while (next == Next::kRequest) next = co_await self->exchange();
    if (next == Next::kShutdown) co_await self->shutdown();
  }

  net::awaitable<bool> handshake() {
    const auto& o = core_.options;
    lowest().expires_after(o.handshakes ? o.handshakes->timeout : o.readTimeout);
    if (o.clientCertificates && o.revoked) {
      stream_.set_verify_callback([this](bool preverified, ssl::verify_context& ctx) {
        return verifyNotRevoked(preverified, ctx.native_handle(), [this](const PeerIdentity& peer) {
          if (!core_.options.revoked(peer.commonName)) return false;
          refusedPeer_ = peer.commonName;
          return true;
        });
      });
    }
    waiting_ = true;
    auto [ec] = co_await stream_.async_handshake(ssl::stream_base::server, kUse);
    waiting_ = false;
    bool slotAfterHandshake = slot == Slot::kHandshake;
    if (slotAfterHandshake) {
      core_.handshakeEnded(id);
      slot = Slot::kNone;
    }
    if (ec) {
      if (ec == net::error::operation_aborted) co_return false;
      if (!refusedPeer_.empty()) {
        core_.logRevokedRefusal(peer_.address, refusedPeer_);
        co_return false;
      }
      if (ec == beast::error::timeout) {
        core_.refuseConnection(ConnectionRefusal::kHandshakeTimeout, key_);
        co_return false;
      }
      if (closedByPeer(ec)) {
        // Not a refusal: a client stopped or timed out mid-connect, a port check, a scanner.
        core_.log.info(core_.event("tls_closed"),
                       {{"peer", peer_.address},
                        {"reason", "the peer closed the connection during the TLS handshake"},
                        {"error", ec.message()}});
      } else {
        core_.log.warning(core_.event("tls_refused"),
                          {{"peer", peer_.address}, {"reason", ec.message()}});
      }
      co_return false;
    }
    if (o.clientCertificates) {
      auto identity = peerIdentity(stream_.native_handle());
      if (!identity) {
        core_.log.warning(core_.event("tls_refused"),
                          {{"peer", peer_.address}, {"reason", identity.error().message}});
        co_return false;
      }
      peer_.identity = std::move(*identity);
    }
    if (slotAfterHandshake) {
      if (!core_.takePeerSlot()) {
        core_.refuseConnection(ConnectionRefusal::kConnectionLimit, key_);
        co_return false;
      }
      slot = Slot::kPeer;
    }
    peer_.ssl = stream_.native_handle();
    // Revoked after the certificate was checked and before this connection was listed under
    // its subject: closePeers did not see it.
    if (o.clientCertificates && !core_.admitPeer(this, peer_.identity.commonName)) {
      core_.logRevokedRefusal(peer_.address, peer_.identity.commonName);
      co_return false;
    }
    co_return true;
  }

  // One request and its answer.
  net::awaitable<Next> exchange() {
    if (core_.stopping.load()) co_return Next::kDrop;
    const auto& o = core_.options;
    http::request_parser<http::string_body> parser;
    parser.body_limit(o.maxBody);
    parser.eager(true);
    version_ = 11;
    keepAlive_ = true;
    if (buffer_.size() == 0) {
      // Idle keep-alive: wait for the first bytes with the idle timeout; the request itself
      // then has the read timeout.
      waiting_ = true;
      lowest().expires_after(o.idleTimeout);
      auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kFirstRead), kUse);
      waiting_ = false;
      if (ec) {
        if (ec == beast::error::timeout) {
          core_.log.debug(core_.event("idle_timeout"), {{"peer", peer_.address}});
        }
        co_return Next::kDrop;
      }
      buffer_.commit(n);
    }
    lowest().expires_after(o.readTimeout);
    // The header first, from what is already buffered if it is there: the route's checks
    // and its body limit come before the body.
    parser.eager(false);
    auto ec = parseBuffered(parser);
    if (!ec && !parser.is_header_done()) {
      std::tie(ec, std::ignore) = co_await http::async_read_header(stream_, buffer_, parser, kUse);
    }
    if (ec) co_return co_await readFailed(ec, parser);

    auto& request = parser.get();
    version_ = request.version();
    keepAlive_ = request.keep_alive();
    auto match = matchRoute(core_.routes, request.method_string(), request.target(),
                            request[http::field::content_type]);
    if (match.route && match.route->maxBody) {
      // The parser checked a Content-Length against the listener's limit with the header;
      // the route's applies to it here, and to a chunked body as it is read.
      parser.body_limit(match.route->maxBody);
      if (auto length = parser.content_length(); length && *length > match.route->maxBody) {
        co_return co_await tooLarge(match.route->maxBody, request);
      }
    }
    // Then the body as far as it is buffered, without another asynchronous read: a small
    // request usually arrives whole with its first bytes.
    parser.eager(true);
    ec = parseBuffered(parser);
    if (ec && !match.refusal) co_return co_await readFailed(ec, parser);
    const bool bodyPending = !parser.is_done();
    // A refusal before the body was read ends the connection: the unread body is in the way.
    if (match.refusal) co_return co_await refuse(*match.refusal, bodyPending || ec);
    if (bodyPending) {
      if (beast::iequals(request[http::field::expect], "100-continue")) {
        auto [wec, n] = co_await net::async_write(
            stream_, net::buffer(kContinue.data(), kContinue.size()), kUse);
        if (wec) co_return Next::kDrop;
      }
      std::tie(ec, std::ignore) = co_await http::async_read(stream_, buffer_, parser, kUse);
      if (ec) co_return co_await readFailed(ec, parser);
    }
    lowest().expires_never();
    auto answer = co_await dispatch(*match.route, parser.get());
    co_return co_await respond(std::move(answer));
  }

  // Feeds the parser what is buffered, until it needs more or is done (a header only, unless
  // eager). An error ends the request.
  beast::error_code parseBuffered(http::request_parser<http::string_body>& parser) {
    beast::error_code ec;
    while (buffer_.size() > 0 && !parser.is_done()) {
      auto used = parser.put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) return {};
      if (ec || used == 0) break;
      if (!parser.eager() && parser.is_header_done()) break;
    }
    return ec;
  }

  // Runs the route's handler; its answer comes back to this connection's loop.
  net::awaitable<HttpAnswer> dispatch(const Route& route, HttpRequest& request) {
    co_return co_await net::async_initiate<decltype(net::use_awaitable), void(HttpAnswer)>(
        [&](auto handler) {
          // Tracked: the loop keeps running until the answer is posted back; the first call
          // of the handler's `respond` takes both out, so that copies of it kept longer
          // (a queue's) hold up neither the loop nor this connection.
          struct Waiting {
            std::mutex mutex;
            std::optional<decltype(handler)> resume;
            net::any_io_executor loop;
          };
          auto waiting = std::make_shared<Waiting>();
          waiting->resume.emplace(std::move(handler));
          waiting->loop = net::prefer(executor(), net::execution::outstanding_work.tracked);
          route.handler(request, peer_, [waiting](HttpAnswer answer) {
            std::unique_lock lock(waiting->mutex);
            if (!waiting->resume) return;  // answered before
            auto resume = std::move(*waiting->resume);
            auto loop = std::move(waiting->loop);
            waiting->resume.reset();
            waiting->loop = {};
            lock.unlock();
            net::post(loop, [resume = std::move(resume), answer = std::move(answer)]() mutable {
              resume(std::move(answer));
            });
          });
        },
        net::use_awaitable);
  }

  net::awaitable<Next> readFailed(beast::error_code ec,
                                  const http::request_parser<http::string_body>& parser) {
    RouteRefusal refusal;
    if (ec == http::error::body_limit) {
      if (!parser.is_header_done()) co_return co_await tooLarge(core_.options.maxBody, {});
      const auto& request = parser.get();
      auto match = matchRoute(core_.routes, request.method_string(), request.target(),
                              request[http::field::content_type]);
      auto limit =
          match.route && match.route->maxBody ? match.route->maxBody : core_.options.maxBody;
      co_return co_await tooLarge(limit, request);
    }
    if (ec == beast::error::timeout) {
      core_.log.warning(core_.event("read_timeout"),
                        {{"peer", peer_.address}, {"agent", peer_.identity.commonName}});
      co_return Next::kDrop;
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
      co_return Next::kDrop;
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      refusal.kind = RouteRefusal::Kind::kMalformed;
      refusal.error = ec.message();
      co_return co_await refuse(refusal, true);
    }
    core_.log.debug(core_.event("connection_error"),
                    {{"peer", peer_.address}, {"reason", ec.message()}});
    co_return Next::kDrop;
  }

  net::awaitable<Next> tooLarge(std::size_t limit, const HttpRequest& request) {
    RouteRefusal refusal;
    refusal.kind = RouteRefusal::Kind::kTooLarge;
    refusal.limit = limit;
    refusal.method = std::string(request.method_string());
    refusal.target = std::string(request.target());
    co_return co_await refuse(refusal, true);
  }

  net::awaitable<Next> refuse(const RouteRefusal& refusal, bool close) {
    auto answer = core_.routes.refuse ? core_.routes.refuse(refusal, peer_) : std::nullopt;
    if (!answer) co_return Next::kDrop;
    answer->close = answer->close || close;
    co_return co_await respond(std::move(*answer));
  }

  net::awaitable<Next> respond(HttpAnswer answer) {
    http::response<http::string_body> response;
    response.version(version_ ? version_ : 11);
    response.result(answer.status);
    response.set(http::field::content_type, answer.contentType);
    for (const auto& [name, value] : answer.headers) response.set(name, value);
    response.keep_alive(keepAlive_ && !answer.close && !core_.stopping.load());
    response.body() = std::move(answer.body);
    response.prepare_payload();
    lowest().expires_after(core_.options.readTimeout);
    auto [ec, n] = co_await http::async_write(stream_, response, kUse);
    if (ec) co_return Next::kDrop;
    if (!response.keep_alive()) co_return Next::kShutdown;
    if (buffer_.size() == 0 && buffer_.capacity() > kKeepBufferBytes) buffer_.shrink_to_fit();
    co_return Next::kRequest;
  }

  net::awaitable<void> shutdown() {
    lowest().expires_after(
        std::min<std::chrono::milliseconds>(core_.options.readTimeout, std::chrono::seconds(5)));
    if constexpr (kTls) {
      co_await stream_.async_shutdown(kUse);
    } else {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Core& core_;
  Stream stream_;
  std::string key_;
  HttpPeer peer_;
  std::string refusedPeer_;  // set by the verify callback when it refused a revoked peer
  beast::flat_buffer buffer_;
  unsigned version_ = 11;
  bool keepAlive_ = true;
  bool waiting_ = false;  // for a handshake or a request: onStop may end it
};

}  // namespace

std::shared_ptr<Connection> Core::makeConnection(tcp::socket&& socket, std::string address,
                                                 std::string key, HandshakeSlots::Id id,
                                                 Slot slot) {
  std::shared_ptr<Connection> connection;
  beast::tcp_stream plain(std::move(socket));
  if (options.tls) {
    connection = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
        *this, beast::ssl_stream<beast::tcp_stream>(std::move(plain), *options.tls),
        std::move(address), std::move(key));
  } else {
    connection = std::make_shared<Session<beast::tcp_stream>>(*this, std::move(plain),
                                                              std::move(address), std::move(key));
  }
  connection->id = id;
  connection->slot = slot;
  open.fetch_add(1);
  return connection;
}

net::awaitable<void> Core::acceptLoop() {
  net::steady_timer backoff(control());
  while (!stopping.load() && acceptor->is_open()) {
    // Connections are spread over the loops in turn; the accept itself runs on loop 0.
    auto& loop = *loops[nextLoop++ % loops.size()];
    auto [ec, socket] = co_await acceptor->async_accept(loop, kUse);
    if (stopping.load() || !acceptor->is_open()) co_return;
    if (ec) {
      // Typically EMFILE: back off briefly instead of spinning on the error.
      log.error(event("accept_failed"), {{"reason", ec.message()}});
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kUse);
      continue;
    }
    onAccept(std::move(socket));
  }
}

// Runs on loop 0.
void Core::onAccept(tcp::socket socket) {
  beast::error_code peerEc;
  auto remote = socket.remote_endpoint(peerEc);
  std::string address = peerEc ? std::string("unknown")
                               : fmt::format("{}:{}", remote.address().to_string(), remote.port());
  std::string key = peerEc ? std::string("unknown") : addressKey(remote.address());
  beast::error_code ignored;
  if (!handshakes) {
    if (!takePeerSlot()) {
      refuseConnection(ConnectionRefusal::kConnectionLimit, key);
      socket.close(ignored);
      return;
    }
    socket.set_option(tcp::no_delay(true), ignored);
    makeConnection(std::move(socket), std::move(address), std::move(key), 0, Slot::kPeer)->start();
    return;
  }
  // Cheap refusal before any TLS work: a connection could not get a peer's slot anyway.
  if (peers.load() >= options.maxConnections) {
    refuseConnection(ConnectionRefusal::kConnectionLimit, key);
    socket.close(ignored);
    return;
  }
  // Small request/answer exchanges on kept-alive connections: Nagle would add delay.
  socket.set_option(tcp::no_delay(true), ignored);
  if (auto connection = admitHandshake(socket, address, key)) connection->start();
}

// Runs on loop 0. Null when the connection was refused (and closed).
std::shared_ptr<Connection> Core::admitHandshake(tcp::socket& socket, const std::string& address,
                                                 const std::string& key) {
  auto id = ++lastId;
  std::shared_ptr<Connection> connection;
  std::shared_ptr<Connection> evicted;
  std::optional<HandshakeSlots::Eviction> eviction;
  {
    std::lock_guard lock(handshakesMutex);
    auto admission = handshakes->admit(id, key);
    if (admission.outcome != HandshakeSlots::Outcome::kAdmitted) {
      refuseConnection(admission.outcome == HandshakeSlots::Outcome::kAddressFull
                           ? ConnectionRefusal::kAddressLimit
                           : ConnectionRefusal::kHandshakeLimit,
                       key);
      beast::error_code ignored;
      socket.close(ignored);
      return nullptr;
    }
    if (admission.evicted) {
      eviction = std::move(admission.evicted);
      if (auto found = handshaking.find(eviction->id); found != handshaking.end()) {
        evicted = found->second.lock();
        handshaking.erase(found);
      }
    }
    connection = makeConnection(std::move(socket), address, key, id, Slot::kHandshake);
    handshaking.emplace(id, connection);
  }
  if (eviction) {
    refuseConnection(ConnectionRefusal::kEvicted, eviction->key);
    if (evicted) net::post(evicted->executor(), [evicted] { evicted->onEvicted(); });
  }
  return connection;
}

void Core::handshakeEnded(HandshakeSlots::Id id) {
  if (!handshakes) return;
  std::lock_guard lock(handshakesMutex);
  handshakes->release(id);
  handshaking.erase(id);
}

bool Core::takePeerSlot() {
  auto held = peers.load();
  while (held < options.maxConnections) {
    if (peers.compare_exchange_weak(held, held + 1)) return true;
  }
  return false;
}

// Any thread, before the connection is closed. The first refusal after a quiet interval is
// logged at once, the rest as one summary at the end of each interval (RefusalTally).
void Core::refuseConnection(ConnectionRefusal reason, const std::string& key) {
  rejected.fetch_add(1, std::memory_order_relaxed);
  if (!refusals.add(reason, key)) return;
  logRefusals();
  net::post(control(), [this] { scheduleRefusalLog(); });
}

bool Core::logRefusals() {
  auto summary = refusals.take();
  if (!summary) return false;
  (*summary)["max_connections"] = options.maxConnections;
  if (options.handshakes) {
    (*summary)["max_handshakes"] = options.handshakes->total;
    (*summary)["max_handshakes_per_address"] = options.handshakes->perAddress;
  }
  (*summary)["interval_ms"] = options.refusalLogInterval.count();
  log.warning(event("connections_refused"), *summary);
  return true;
}

// Runs on loop 0.
void Core::scheduleRefusalLog() {
  if (stopping.load() || !refusalTimer) return;
  refusalTimer->expires_after(options.refusalLogInterval);
  refusalTimer->async_wait([this](beast::error_code ec) {
    if (ec) return;
    if (logRefusals()) scheduleRefusalLog();
  });
}

void Core::logRevokedRefusal(const std::string& address, const std::string& peer) {
  auto count = revokedRefusals.take(nowMs());
  if (!count) return;
  log.warning(event("tls_refused"), {{"peer", address},
                                     {"agent", peer},
                                     {"reason", "revoked"},
                                     {"refused_since_last_line", *count}});
}

net::awaitable<void> Core::runTask(std::chrono::milliseconds interval, std::function<void()> task) {
  auto& timer = taskTimers.emplace_back(control());
  while (!stopping.load()) {
    timer.expires_after(interval);
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec || stopping.load()) co_return;
    task();
  }
}

// Runs on loop 0.
void Core::beginStop() {
  if (stopping.exchange(true)) return;
  log.info(event("stopping"), {{"open_connections", open.load()}});
  beast::error_code ignored;
  acceptor->close(ignored);
  refusalTimer->cancel();
  for (auto& timer : taskTimers) timer.cancel();
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(connectionsMutex);
    for (auto& [ptr, entry] : connections) {
      if (auto c = entry.connection.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) net::post(c->executor(), [c] { c->onStop(); });
  // Loops now end when their last connection does.
  for (auto& guard : guards) guard.reset();
  if (open.load() == 0) return;
  drainTimer->expires_after(options.drainTimeout);
  drainTimer->async_wait([this](beast::error_code ec) {
    if (ec) return;
    log.warning(event("drain_timeout"), {{"open_connections", open.load()}});
    stopLoops();
  });
}

void Core::registerConnection(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(connectionsMutex);
  connections.emplace(connection.get(), Registered{connection, {}});
}

bool Core::admitPeer(Connection* connection, const std::string& peer) {
  {
    std::lock_guard lock(connectionsMutex);
    connections.at(connection).peer = peer;
  }
  // After the listing: a poll that missed it has updated what `revoked` answers already.
  return !options.revoked || !options.revoked(peer);
}

void Core::connectionClosed(Connection* connection) {
  {
    std::lock_guard lock(connectionsMutex);
    connections.erase(connection);
  }
  if (connection->slot == Slot::kHandshake) handshakeEnded(connection->id);
  if (connection->slot == Slot::kPeer) peers.fetch_sub(1);
  auto left = open.fetch_sub(1) - 1;
  if (left == 0 && stopping.load() && !loopsDone.load()) {
    net::post(control(), [this] {
      if (drainTimer) drainTimer->cancel();
    });
  }
}

void Core::runLoop(Loop& loop) {
  while (true) {
    try {
      loop.run();
      return;
    } catch (const std::exception& e) {
      // A handler threw (e.g. bad_alloc): that connection is lost, the listener goes on.
      log.error(event("handler_exception"), {{"what", e.what()}});
    }
  }
}

HttpsListener::HttpsListener(std::unique_ptr<Core> core) : core_(std::move(core)) {}

HttpsListener::~HttpsListener() {
  stop();
  wait();
  auto& c = *core_;
  // Stop producing completions, then destroy the I/O objects before the loops, in the order
  // Asio expects.
  c.stopLoops();
  c.loopsDone.store(true);
  c.taskTimers.clear();
  c.refusalTimer.reset();
  c.drainTimer.reset();
  c.acceptor.reset();
  c.guards.clear();
}

Result<std::unique_ptr<HttpsListener>> HttpsListener::create(HttpsListenerOptions options,
                                                             RouteTable routes, Logger& log) {
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  auto where = fmt::format("{}:{}", options.host, options.port);
  if (ec) {
    auto name = options.flag.substr(options.flag.find_first_not_of('-'));
    std::replace(name.begin(), name.end(), '-', '_');
    return fail("usage." + name,
                fmt::format("{}: '{}' is not an IP address", options.flag, options.host));
  }
  auto core = std::make_unique<Core>(std::move(options), std::move(routes), log);
  auto listenFailed = [&] {
    return fail("listen", fmt::format("{}cannot listen on {}: {}", core->options.errorPrefix, where,
                                      ec.message()));
  };
  tcp::endpoint endpoint(address, core->options.port);
  auto& acceptor = *core->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) return listenFailed();
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (acceptor.bind(endpoint, ec); ec) return listenFailed();
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec) return listenFailed();
  core->port = acceptor.local_endpoint(ec).port();
  return std::unique_ptr<HttpsListener>(new HttpsListener(std::move(core)));
}

std::uint16_t HttpsListener::port() const { return core_->port; }

bool HttpsListener::tls() const { return core_->options.tls != nullptr; }

Status HttpsListener::start() {
  auto& c = *core_;
  if (!c.threads.empty()) return {};
  if (!c.options.portFile.empty()) {
    auto written = platform::writeFileAtomic(c.options.portFile, fmt::format("{}\n", c.port));
    if (!written) return written;
  }
  Json fields = {{"address", c.options.host}, {"port", c.port}};
  for (const auto& [key, value] : c.options.listeningFields.items()) fields[key] = value;
  c.log.info(c.event("listening"), fields);
  net::post(c.control(), [&c] {
    if (c.stopping.load()) return;
    net::co_spawn(c.control(), c.acceptLoop(), net::detached);
    for (auto& [interval, task] : c.tasks) {
      net::co_spawn(c.control(), c.runTask(interval, task), net::detached);
    }
  });
  for (auto& loop : c.loops) {
    c.threads.emplace_back([&c, &loop = *loop] { c.runLoop(loop); });
  }
  return {};
}

void HttpsListener::stop() {
  net::post(core_->control(), [core = core_.get()] { core->beginStop(); });
}

void HttpsListener::wait() {
  for (auto& t : core_->threads) {
    if (t.joinable()) t.join();
  }
}

void HttpsListener::every(std::chrono::milliseconds interval, std::function<void()> task) {
  core_->tasks.emplace_back(interval, std::move(task));
}

std::vector<std::pair<std::string, std::size_t>> HttpsListener::closePeers(
    const std::set<std::string>& names) {
  std::map<std::string, std::vector<std::shared_ptr<Connection>>> byPeer;
  for (const auto& name : names) byPeer[name];
  {
    std::lock_guard lock(core_->connectionsMutex);
    for (auto& [ptr, entry] : core_->connections) {
      if (entry.peer.empty() || !names.contains(entry.peer)) continue;
      if (auto c = entry.connection.lock()) byPeer[entry.peer].push_back(std::move(c));
    }
  }
  std::vector<std::pair<std::string, std::size_t>> closed;
  for (auto& [name, live] : byPeer) {
    for (auto& c : live) net::post(c->executor(), [c] { c->onRevoked(); });
    closed.emplace_back(name, live.size());
  }
  return closed;
}

HttpsListenerStats HttpsListener::stats() const {
  std::uint64_t handshaking = 0;
  if (core_->handshakes) {
    std::lock_guard lock(core_->handshakesMutex);
    handshaking = core_->handshakes->size();
  }
  return {core_->open.load(), core_->peers.load(), core_->rejected.load(), handshaking};
}

void HttpsListener::logRefusals() { core_->logRefusals(); }

Result<ListenAddress> parseListenAddress(std::string_view text, std::string_view flag,
                                         std::string_view code, std::string_view examples) {
  auto bad = [&](std::string_view why) {
    return fail(std::string(code), fmt::format("{} '{}': {} (expected HOST:PORT, e.g. {})", flag,
                                               text, why, examples));
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  auto host = text.substr(0, colon);
  auto portText = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return bad("no host");
  boost::system::error_code ec;
  net::ip::make_address(std::string(host), ec);
  if (ec) return bad("the host is not an IP address");
  unsigned port = 0;
  if (portText.empty() || portText.size() > 5) return bad("bad port");
  for (char c : portText) {
    if (c < '0' || c > '9') return bad("bad port");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return bad("port above 65535");
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

}  // namespace pass::home
