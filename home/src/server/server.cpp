// pass-home serve: the ingest listener (Beast over Asio), its sessions, timers and signals.

#include "pass/home/server.hpp"

#include <atomic>
#include <csignal>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <variant>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include "pass/crypto.hpp"
#include "pass/home/connection_limits.hpp"
#include "pass/home/group_commit.hpp"
#include "pass/home/hpke_keys.hpp"
#include "pass/home/log.hpp"
#include "pass/home/outbox_worker.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/revoked_agents.hpp"
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

constexpr std::string_view kEnvelopePath = "/v1/envelopes";
// Certificate renewal (docs/protocol.md): a DER PKCS#10 request in, the certificate out.
constexpr std::string_view kCertificatePath = "/v1/certificate";
constexpr std::string_view kCertificateRequestType = "application/pkcs10";
constexpr std::size_t kMaxCertificateRequest = 16 * 1024;
constexpr std::size_t kFirstRead = 4096;
// A buffer that grew for a large envelope is given back after the request, so that hundreds
// of idle keep-alive connections stay small.
constexpr std::size_t kKeepBufferBytes = 64 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// How often the server reads the revoked agents from the store: `pass-home revoke` closes a
// revoked agent's open connections within this, plus the time to read.
constexpr std::chrono::milliseconds kRevocationPoll{250};

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT": every answer carries the
/// home's clock, so that an agent whose envelopes are refused as `stale` or `future` can say
/// how far its own clock is off.
std::string httpDate(std::int64_t ms) {
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} GMT",
                     fmt::gmtime(static_cast<std::time_t>(ms / 1000)));
}

std::string dumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
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

class Session;

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

// Everything the sessions share. One event loop per I/O thread, each run by exactly one
// thread: a connection lives on one loop, so its handlers never need a strand, and a handler
// posted by the loop's own thread never wakes another one. Loop 0 also owns the acceptor,
// the timers and the signals.
//
// The counters and the session registry are declared before the loops: sessions destroyed
// together with a loop deregister themselves here.
//
// A connection first holds a handshake slot (handshakes, per source address, with the short
// handshake deadline); once its certificate is verified it holds one of the agents'
// maxConnections slots instead (agentConnections). See docs/home.md.
struct ServerCore {
  ServerCore(const ServerOptions& o, Logger& l)
      : options(o), log(l), handshakes(o.maxHandshakes, o.maxHandshakesPerAddress) {
    auto n = std::max(1u, options.threads);
    for (unsigned i = 0; i < n; ++i) {
      // Concurrency hint 1: each loop is run by a single thread.
      loops.push_back(std::make_unique<Loop>(1));
      guards.emplace_back(loops.back()->get_executor());
    }
    acceptor.emplace(*loops[0]);
    statsTimer.emplace(*loops[0]);
    forceTimer.emplace(*loops[0]);
    acceptRetry.emplace(*loops[0]);
    revocationTimer.emplace(*loops[0]);
    refusalTimer.emplace(*loops[0]);
    signals.emplace(*loops[0]);
  }

  Loop& control() { return *loops[0]; }

  ServerOptions options;
  Logger& log;
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> storeErrors{0};
  std::atomic<std::uint64_t> open{0};  // every accepted connection, handshaking or not
  std::atomic<std::uint64_t> agentConnections{0};
  std::atomic<std::uint64_t> rejected{0};
  RefusalTally refusals;
  std::mutex handshakesMutex;
  HandshakeSlots handshakes;  // guarded by handshakesMutex
  std::unordered_map<HandshakeSlots::Id, std::weak_ptr<Session>> handshaking;  // the same
  HandshakeSlots::Id lastHandshakeId = 0;                                      // loop 0 only
  std::atomic<bool> stopping{false};
  std::atomic<bool> loopsDone{false};
  std::mutex sessionsMutex;
  struct Registered {
    std::weak_ptr<Session> session;
    std::string agent;  // the certificate's agent id, once the handshake is done
  };
  std::unordered_map<Session*, Registered> sessions;
  std::unique_ptr<RevokedAgents> revoked;
  LogBudget revokedRefusals;
  bool revocationPollFailing = false;  // loop 0 only
  std::unique_ptr<AgentDirectory> directory;
  std::shared_ptr<HpkeKeyRing> homeKeys;
  std::unique_ptr<Ingest> ingest;
  std::unique_ptr<CertificateRenewals> renewals;
  std::unique_ptr<GroupCommitter> committer;
  std::unique_ptr<OutboxWorker> outbox;
  std::unique_ptr<WatchdogLoop> watchdog;
  std::uint16_t port = 0;
  std::size_t nextLoop = 0;

  ssl::context tls{ssl::context::tls_server};
  std::vector<std::unique_ptr<Loop>> loops;
  std::vector<WorkGuard> guards;  // keep idle loops running until stop
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> statsTimer;
  std::optional<net::steady_timer> forceTimer;
  std::optional<net::steady_timer> acceptRetry;
  std::optional<net::steady_timer> revocationTimer;
  std::optional<net::steady_timer> refusalTimer;
  std::optional<net::signal_set> signals;

  void accept();
  void onAccept(beast::error_code ec, tcp::socket socket);
  std::shared_ptr<Session> admit(tcp::socket& socket, const std::string& peer,
                                 const std::string& key);
  void refuseConnection(ConnectionRefusal reason, const std::string& key);
  bool logRefusals();
  void scheduleRefusalLog();
  void handshakeEnded(HandshakeSlots::Id id);
  bool takeAgentSlot();
  void scheduleStats();
  void logStats(std::string_view event);
  void logKeyNotes();
  void beginStop();
  void registerSession(const std::shared_ptr<Session>& session);
  bool admitAgent(Session* session, const std::string& agent);
  void scheduleRevocationPoll();
  void closeRevokedSessions();
  void sessionClosed(Session* session);
  void runLoop(Loop& loop);
  void stopLoops() {
    for (auto& loop : loops) loop->stop();
  }
  void destroyHandlers() {
    // Destroying the I/O objects before the loops keeps the order Asio expects.
    signals.reset();
    revocationTimer.reset();
    refusalTimer.reset();
    acceptRetry.reset();
    forceTimer.reset();
    statsTimer.reset();
    acceptor.reset();
    guards.clear();
  }
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& core, tcp::socket&& socket, std::string peer, std::string addressKey,
          HandshakeSlots::Id id)
      : core_(core),
        stream_(std::move(socket), core.tls),
        peerAddress_(std::move(peer)),
        addressKey_(std::move(addressKey)),
        id_(id) {}

  ~Session() { core_.sessionClosed(this); }

  void start() {
    net::post(stream_.get_executor(),
              beast::bind_front_handler(&Session::onStart, shared_from_this()));
  }

  /// Posted to the session's loop when the server stops: ends a connection that is only
  /// waiting; one inside a request is answered first.
  void onServerStop() {
    if (cancellable_) lowest().cancel();
  }

  /// Posted to the session's loop when its agent was revoked: the connection ends at once,
  /// also in the middle of a request (the agent's envelope is then unanswered and refused
  /// when sent again).
  void onAgentRevoked() { lowest().close(); }

  /// Posted to the session's loop when its handshake slot went to another connection.
  void onEvicted() {
    if (slot_ == Slot::kHandshake && cancellable_) lowest().cancel();
  }

  net::any_io_executor executor() { return stream_.get_executor(); }
  HandshakeSlots::Id id() const { return id_; }
  bool holdsAgentSlot() const { return slot_ == Slot::kAgent; }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void onStart() {
    core_.registerSession(shared_from_this());
    cancellable_ = true;
    lowest().expires_after(core_.options.handshakeTimeout);
    stream_.set_verify_callback([this](bool preverified, ssl::verify_context& ctx) {
      return verifyNotRevoked(preverified, ctx.native_handle(), [this](const PeerIdentity& peer) {
        if (!core_.revoked->contains(peer.commonName)) return false;
        refusedAgent_ = peer.commonName;
        return true;
      });
    });
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&Session::onHandshake, shared_from_this()));
  }

  void onHandshake(beast::error_code ec) {
    cancellable_ = false;
    core_.handshakeEnded(id_);
    slot_ = Slot::kNone;
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      if (!refusedAgent_.empty()) return logRevokedRefusal(refusedAgent_);
      if (ec == beast::error::timeout) {
        return core_.refuseConnection(ConnectionRefusal::kHandshakeTimeout, addressKey_);
      }
      if (closedByPeer(ec)) {
        // Not a refusal: an agent stopped or timed out mid-connect, a port check, a scanner.
        core_.log.info("tls_closed", {{"peer", peerAddress_},
                                      {"reason",
                                       "the peer closed the connection during the "
                                       "TLS handshake"},
                                      {"error", ec.message()}});
      } else {
        core_.log.warning("tls_refused", {{"peer", peerAddress_}, {"reason", ec.message()}});
      }
      return;
    }
    auto peer = peerIdentity(stream_.native_handle());
    if (!peer) {
      core_.log.warning("tls_refused", {{"peer", peerAddress_}, {"reason", peer.error().message}});
      return;
    }
    if (!core_.takeAgentSlot()) {
      return core_.refuseConnection(ConnectionRefusal::kConnectionLimit, addressKey_);
    }
    slot_ = Slot::kAgent;
    peer_ = std::move(*peer);
    // Revoked after the certificate was checked and before this session was listed under
    // its agent: closeRevokedSessions did not see it.
    if (!core_.admitAgent(this, peer_.commonName)) return logRevokedRefusal(peer_.commonName);
    waitForRequest();
  }

  void logRevokedRefusal(const std::string& agent) {
    auto count = core_.revokedRefusals.take(nowMs());
    if (!count) return;
    core_.log.warning("tls_refused", {{"peer", peerAddress_},
                                      {"agent", agent},
                                      {"reason", "revoked"},
                                      {"refused_since_last_line", *count}});
  }

  void waitForRequest() {
    if (core_.stopping.load()) return;
    parser_.emplace();
    parser_->body_limit(core_.options.maxBody);
    parser_->eager(true);
    headerChecked_ = false;
    if (buffer_.size() > 0) {
      lowest().expires_after(core_.options.readTimeout);
      return parseBuffered();
    }
    // Idle keep-alive: wait for the first bytes with the idle timeout; the request itself then
    // has the read timeout.
    cancellable_ = true;
    lowest().expires_after(core_.options.idleTimeout);
    stream_.async_read_some(buffer_.prepare(kFirstRead),
                            beast::bind_front_handler(&Session::onFirstBytes, shared_from_this()));
  }

  void onFirstBytes(beast::error_code ec, std::size_t n) {
    cancellable_ = false;
    if (ec) {
      if (ec == beast::error::timeout) core_.log.debug("idle_timeout", {{"peer", peerAddress_}});
      return;
    }
    buffer_.commit(n);
    lowest().expires_after(core_.options.readTimeout);
    parseBuffered();
  }

  // Parses what is already buffered without another asynchronous read: a small envelope
  // usually arrives whole with its first bytes, and every extra asynchronous step costs a trip
  // through the event loop.
  void parseBuffered() {
    beast::error_code ec;
    while (buffer_.size() > 0 && !parser_->is_done()) {
      auto used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || used == 0) break;
    }
    if (handleReadError(ec)) return;
    if (!parser_->is_header_done()) {
      http::async_read_header(stream_, buffer_, *parser_,
                              beast::bind_front_handler(&Session::onHeader, shared_from_this()));
      return;
    }
    onHeader({}, 0);
  }

  // True when the error ended the exchange; answers what deserves an answer.
  bool handleReadError(beast::error_code ec) {
    if (!ec) return false;
    if (ec == http::error::body_limit) {
      refuse(413, "too_large",
             fmt::format("the request body is larger than the limit of {} bytes",
                         core_.options.maxBody),
             {}, true);
      return true;
    }
    if (ec == beast::error::timeout) {
      core_.log.warning("read_timeout", {{"peer", peerAddress_}, {"agent", peer_.commonName}});
      return true;
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return true;
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      refuse(400, "bad_request", fmt::format("malformed HTTP request: {}", ec.message()), {}, true);
      return true;
    }
    core_.log.debug("connection_error", {{"peer", peerAddress_}, {"reason", ec.message()}});
    return true;
  }

  void onHeader(beast::error_code ec, std::size_t) {
    if (handleReadError(ec)) return;
    if (!headerChecked_) {
      headerChecked_ = true;
      if (!checkHeader()) return;
    }
    if (parser_->is_done()) return onBody({}, 0);
    readBody();
  }

  // The checks that need only the header. False when the request was answered.
  bool checkHeader() {
    auto& req = parser_->get();
    version_ = req.version();
    keepAlive_ = req.keep_alive();
    // A refusal before the body was read ends the connection: the unread body is in the way.
    bool bodyPending = !parser_->is_done();
    const std::string_view target = req.target();
    certificateRequest_ = target == kCertificatePath;
    if (target != kEnvelopePath && !certificateRequest_) {
      refuse(404, "not_found",
             fmt::format("no such resource '{}'; envelopes go to POST {}, certificate requests "
                         "to POST {}",
                         target, kEnvelopePath, kCertificatePath),
             {}, bodyPending);
      return false;
    }
    if (req.method() != http::verb::post) {
      refuse(405, "method_not_allowed",
             fmt::format("{} is not allowed on {}; use POST", std::string_view(req.method_string()),
                         target),
             {}, bodyPending);
      return false;
    }
    const auto mediaType = certificateRequest_ ? kCertificateRequestType : kEnvelopeContentType;
    if (!hasMediaType(req[http::field::content_type], mediaType)) {
      refuse(415, "unsupported_media_type",
             fmt::format("Content-Type '{}' is not {}",
                         std::string_view(req[http::field::content_type]), mediaType),
             {}, bodyPending);
      return false;
    }
    if (certificateRequest_ && bodyPending) parser_->body_limit(kMaxCertificateRequest);
    if (bodyPending && beast::iequals(req[http::field::expect], "100-continue")) {
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       beast::bind_front_handler(&Session::onContinue, shared_from_this()));
      return false;
    }
    return true;
  }

  void onContinue(beast::error_code ec, std::size_t) {
    if (ec) return;
    readBody();
  }

  void readBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::onBody, shared_from_this()));
  }

  void onBody(beast::error_code ec, std::size_t) {
    if (handleReadError(ec)) return;
    if (certificateRequest_) return onCertificateRequest();
    auto outcome = core_.ingest->check(asBytes(parser_->get().body()), peer_, auth_, nowMs());
    context_ = std::move(outcome.context);
    if (auto* refusal = std::get_if<Refusal>(&outcome.result)) {
      return refuse(refusal->status, refusal->code, refusal->detail, context_, false);
    }
    if (auto* error = std::get_if<Error>(&outcome.result)) {
      core_.log.error("store_error", {{"agent", context_.agent}, {"message", error->message}});
      return storeFailed(*error);
    }
    auto& checked = std::get<Checked>(outcome.result);
    if (checked.aheadMs) {
      core_.log.warning("clock_skew", {{"agent", context_.agent},
                                       {"seq", checked.record.seq},
                                       {"ahead_ms", *checked.aheadMs},
                                       {"peer", peerAddress_}});
    }
    type_ = checked.record.type;
    events_ = checked.record.events.size();
    sealedTo_ = checked.sealedTo;
    newHomeKey_ = std::move(checked.newHomeKey);
    parser_.reset();  // the record owns what is needed; free the body while we wait
    lowest().expires_never();
    // The work guard keeps the loop running until the answer is posted back.
    auto work = net::make_work_guard(stream_.get_executor());
    core_.committer->submit(
        CommitJob{std::move(checked.record),
                  [self = shared_from_this(), work = std::move(work)](Result<CommitResult> result) {
                    auto ex = self->stream_.get_executor();
                    net::post(ex, [self, result = std::move(result)]() mutable {
                      self->onCommitted(std::move(result));
                    });
                  }});
  }

  void onCommitted(Result<CommitResult> result) {
    if (!result) return storeFailed(result.error());
    bool duplicate = *result == CommitResult::kDuplicate;
    (duplicate ? core_.duplicates : core_.accepted).fetch_add(1, std::memory_order_relaxed);
    if (core_.log.enabled(LogLevel::kDebug)) {
      core_.log.debug(duplicate ? "duplicate" : "accepted", {{"agent", context_.agent},
                                                             {"seq", *context_.seq},
                                                             {"type", type_},
                                                             {"events", events_},
                                                             {"key_id", toHex(sealedTo_)},
                                                             {"peer", peerAddress_}});
    }
    // The agent id is formatUuid() output and the key hex, nothing to escape: no JSON object.
    std::string homeKey;
    if (newHomeKey_) {
      homeKey = fmt::format(R"(,"home_key":{{"key_id":"{}","public":"{}"}})",
                            toHex(newHomeKey_->id), toHex(newHomeKey_->key.rawPublic()));
    }
    respondText(
        http::status::ok,
        fmt::format(R"({{"status":"{}","agent":"{}","seq":{}{}}})",
                    duplicate ? "duplicate" : "accepted", context_.agent, *context_.seq, homeKey),
        false);
  }

  // Rare (once per agent every few years) and quick: answered on the I/O thread.
  void onCertificateRequest() {
    auto outcome =
        core_.renewals->renew(asBytes(parser_->get().body()),
                              SSL_get0_peer_certificate(stream_.native_handle()), peer_, nowMs());
    context_ = {outcome.agent, std::nullopt};
    if (auto* refusal = std::get_if<Refusal>(&outcome.result)) {
      return refuse(refusal->status, refusal->code, refusal->detail, context_, false);
    }
    if (auto* error = std::get_if<Error>(&outcome.result)) {
      core_.log.error("store_error", {{"agent", context_.agent}, {"message", error->message}});
      return storeFailed(*error);
    }
    auto& issued = std::get<IssuedCertificate>(outcome.result);
    core_.log.info("certificate_renewed", {{"agent", context_.agent},
                                           {"old_serial", peer_.serialHex},
                                           {"serial", issued.serialHex},
                                           {"not_after_ms", issued.notAfterMs},
                                           {"peer", peerAddress_}});
    respond(http::status::ok,
            Json{{"status", "issued"},
                 {"agent", context_.agent},
                 {"serial", issued.serialHex},
                 {"not_after_ms", issued.notAfterMs},
                 {"certificate", issued.pem}},
            false);
  }

  // 503: the agent keeps the envelope and retries. A failed batch is logged by the writer.
  void storeFailed(const Error& error) {
    core_.storeErrors.fetch_add(1, std::memory_order_relaxed);
    respond(http::status::service_unavailable,
            Json{{"error", error.code == "stopping" ? "stopping" : "store"},
                 {"detail", error.message + "; retry later"}},
            false);
  }

  void refuse(unsigned status, const std::string& code, const std::string& detail,
              const RefusalContext& context, bool close) {
    core_.refused.fetch_add(1, std::memory_order_relaxed);
    Json fields = {{"agent", context.agent.empty() ? peer_.commonName : context.agent}};
    fields["seq"] = context.seq ? Json(*context.seq) : Json(nullptr);
    fields["code"] = code;
    fields["status"] = status;
    fields["detail"] = detail;
    fields["peer"] = peerAddress_;
    core_.log.warning("refused", fields);
    respond(static_cast<http::status>(status), Json{{"error", code}, {"detail", detail}}, close);
  }

  void respond(http::status status, const Json& body, bool close) {
    respondText(status, dumpJson(body), close);
  }

  void respondText(http::status status, std::string body, bool close) {
    response_ = {};
    response_.version(version_ ? version_ : 11);
    response_.result(status);
    response_.set(http::field::content_type, "application/json");
    response_.set(http::field::date, httpDate(nowMs()));
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, "POST");
    response_.keep_alive(keepAlive_ && !close && !core_.stopping.load());
    response_.body() = std::move(body);
    response_.prepare_payload();
    lowest().expires_after(core_.options.readTimeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::onWrite, shared_from_this()));
  }

  void onWrite(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (!response_.keep_alive()) return shutdown();
    parser_.reset();
    response_ = {};
    context_ = {};
    if (buffer_.size() == 0 && buffer_.capacity() > kKeepBufferBytes) buffer_.shrink_to_fit();
    waitForRequest();
  }

  void shutdown() {
    lowest().expires_after(
        std::min<std::chrono::milliseconds>(core_.options.readTimeout, std::chrono::seconds(5)));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

  // Which of the server's slots this connection holds: a handshake slot from accept until
  // the handshake ends, then an agent's slot if it showed a valid certificate.
  enum class Slot { kNone, kHandshake, kAgent };

  ServerCore& core_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  std::string peerAddress_;
  std::string addressKey_;
  HandshakeSlots::Id id_;
  Slot slot_ = Slot::kHandshake;
  PeerIdentity peer_;
  std::string refusedAgent_;  // set by the verify callback when it refused a revoked agent
  ConnectionAuth auth_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  unsigned version_ = 11;
  bool keepAlive_ = true;
  bool cancellable_ = false;
  bool headerChecked_ = false;
  bool certificateRequest_ = false;  // POST /v1/certificate rather than an envelope
  RefusalContext context_;
  std::string type_;
  std::size_t events_ = 0;
  KeyId sealedTo_{};
  std::optional<HpkeKey> newHomeKey_;
};

void ServerCore::accept() {
  // Connections are spread over the loops in turn; the accept itself runs on loop 0.
  auto& loop = *loops[nextLoop++ % loops.size()];
  acceptor->async_accept(
      loop, [this](beast::error_code ec, tcp::socket socket) { onAccept(ec, std::move(socket)); });
}

void ServerCore::onAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping.load() || !acceptor->is_open()) return;
  if (ec) {
    // Typically EMFILE: back off briefly instead of spinning on the error.
    log.error("accept_failed", {{"reason", ec.message()}});
    acceptRetry->expires_after(std::chrono::milliseconds(100));
    acceptRetry->async_wait([this](beast::error_code waitEc) {
      if (!waitEc && !stopping.load()) accept();
    });
    return;
  }
  beast::error_code peerEc;
  auto remote = socket.remote_endpoint(peerEc);
  std::string peer = peerEc ? std::string("unknown")
                            : fmt::format("{}:{}", remote.address().to_string(), remote.port());
  std::string key = peerEc ? std::string("unknown") : addressKey(remote.address());
  // Cheap refusal before any TLS work: a connection could not get an agent's slot anyway.
  if (agentConnections.load() >= options.maxConnections) {
    refuseConnection(ConnectionRefusal::kConnectionLimit, key);
    beast::error_code ignored;
    socket.close(ignored);
    return accept();
  }
  // Small request/answer exchanges on kept-alive connections: Nagle would add delay.
  socket.set_option(tcp::no_delay(true), peerEc);
  if (auto session = admit(socket, peer, key)) session->start();
  accept();
}

// Runs on loop 0. Null when the connection was refused (and closed).
std::shared_ptr<Session> ServerCore::admit(tcp::socket& socket, const std::string& peer,
                                           const std::string& key) {
  auto id = ++lastHandshakeId;
  std::shared_ptr<Session> session;
  std::shared_ptr<Session> evicted;
  std::optional<HandshakeSlots::Eviction> eviction;
  {
    std::lock_guard lock(handshakesMutex);
    auto admission = handshakes.admit(id, key);
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
    open.fetch_add(1);
    session = std::make_shared<Session>(*this, std::move(socket), peer, key, id);
    handshaking.emplace(id, session);
  }
  if (eviction) {
    refuseConnection(ConnectionRefusal::kEvicted, eviction->key);
    if (evicted) net::post(evicted->executor(), [evicted] { evicted->onEvicted(); });
  }
  return session;
}

void ServerCore::handshakeEnded(HandshakeSlots::Id id) {
  std::lock_guard lock(handshakesMutex);
  handshakes.release(id);
  handshaking.erase(id);
}

bool ServerCore::takeAgentSlot() {
  auto held = agentConnections.load();
  while (held < options.maxConnections) {
    if (agentConnections.compare_exchange_weak(held, held + 1)) return true;
  }
  return false;
}

// Any thread, before the connection is closed. The first refusal after a quiet interval is
// logged at once, the rest as one summary at the end of each interval (RefusalTally).
void ServerCore::refuseConnection(ConnectionRefusal reason, const std::string& key) {
  rejected.fetch_add(1, std::memory_order_relaxed);
  if (!refusals.add(reason, key)) return;
  logRefusals();
  net::post(control(), [this] { scheduleRefusalLog(); });
}

bool ServerCore::logRefusals() {
  auto summary = refusals.take();
  if (!summary) return false;
  (*summary)["max_connections"] = options.maxConnections;
  (*summary)["max_handshakes"] = options.maxHandshakes;
  (*summary)["max_handshakes_per_address"] = options.maxHandshakesPerAddress;
  (*summary)["interval_ms"] = options.refusalLogInterval.count();
  log.warning("connections_refused", *summary);
  return true;
}

// Runs on loop 0.
void ServerCore::scheduleRefusalLog() {
  if (stopping.load() || !refusalTimer) return;
  refusalTimer->expires_after(options.refusalLogInterval);
  refusalTimer->async_wait([this](beast::error_code ec) {
    if (ec) return;
    if (logRefusals()) scheduleRefusalLog();
  });
}

void ServerCore::scheduleStats() {
  statsTimer->expires_after(options.statsInterval);
  statsTimer->async_wait([this](beast::error_code ec) {
    if (ec || stopping.load()) return;
    logStats("stats");
    logKeyNotes();
    scheduleStats();
  });
}

void ServerCore::logStats(std::string_view event) {
  log.info(event, {{"accepted", accepted.load()},
                   {"duplicates", duplicates.load()},
                   {"refused", refused.load()},
                   {"store_errors", storeErrors.load()},
                   {"open_connections", open.load()},
                   {"agent_connections", agentConnections.load()},
                   {"rejected_connections", rejected.load()},
                   {"batches", committer->batches()}});
}

// What the key ring did since the last call: a rotation by another process, a retired key
// destroyed.
void ServerCore::logKeyNotes() {
  for (const auto& note : homeKeys->takeNotes()) log.info("hpke_keys", {{"change", note}});
}

// Runs on loop 0.
void ServerCore::beginStop() {
  if (stopping.exchange(true)) return;
  log.info("stopping", {{"open_connections", open.load()}});
  beast::error_code ignored;
  acceptor->close(ignored);
  statsTimer->cancel();
  revocationTimer->cancel();
  acceptRetry->cancel();
  refusalTimer->cancel();
  signals->cancel();
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(sessionsMutex);
    for (auto& [ptr, entry] : sessions) {
      if (auto s = entry.session.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) net::post(s->executor(), [s] { s->onServerStop(); });
  // Loops now end when their last connection does.
  for (auto& guard : guards) guard.reset();
  if (open.load() == 0) return;
  forceTimer->expires_after(options.drainTimeout);
  forceTimer->async_wait([this](beast::error_code ec) {
    if (ec) return;
    log.warning("drain_timeout", {{"open_connections", open.load()}});
    stopLoops();
  });
}

void ServerCore::registerSession(const std::shared_ptr<Session>& session) {
  std::lock_guard lock(sessionsMutex);
  sessions.emplace(session.get(), Registered{session, {}});
}

bool ServerCore::admitAgent(Session* session, const std::string& agent) {
  {
    std::lock_guard lock(sessionsMutex);
    sessions.at(session).agent = agent;
  }
  // After the listing: a poll that missed it has updated `revoked` already.
  return !revoked->contains(agent);
}

void ServerCore::scheduleRevocationPoll() {
  revocationTimer->expires_after(kRevocationPoll);
  revocationTimer->async_wait([this](beast::error_code ec) {
    if (ec || stopping.load()) return;
    closeRevokedSessions();
    scheduleRevocationPoll();
  });
}

// Runs on loop 0.
void ServerCore::closeRevokedSessions() {
  auto added = revoked->refresh();
  if (!added) {
    // Logged when it starts and when it ends, not every poll. Envelopes are still checked
    // against the agent's row, and new handshakes against the last set read.
    if (!revocationPollFailing) {
      log.error("revocation_poll_failed", {{"message", added.error().message}});
    }
    revocationPollFailing = true;
    return;
  }
  if (revocationPollFailing) log.info("revocation_poll_recovered", {});
  revocationPollFailing = false;
  if (added->empty()) return;
  std::map<std::string, std::vector<std::shared_ptr<Session>>> byAgent;
  for (auto& agent : *added) byAgent[agent];
  {
    std::lock_guard lock(sessionsMutex);
    for (auto& [ptr, entry] : sessions) {
      if (entry.agent.empty() || !revoked->contains(entry.agent)) continue;
      if (auto s = entry.session.lock()) byAgent[entry.agent].push_back(std::move(s));
    }
  }
  for (auto& [agent, live] : byAgent) {
    log.warning("revoked_sessions_closed", {{"agent", agent}, {"sessions", live.size()}});
    for (auto& s : live) net::post(s->executor(), [s] { s->onAgentRevoked(); });
  }
}

void ServerCore::sessionClosed(Session* session) {
  {
    std::lock_guard lock(sessionsMutex);
    sessions.erase(session);
  }
  handshakeEnded(session->id());  // nothing when the handshake ended before
  if (session->holdsAgentSlot()) agentConnections.fetch_sub(1);
  auto left = open.fetch_sub(1) - 1;
  if (left == 0 && stopping.load() && !loopsDone.load()) {
    net::post(control(), [this] {
      if (forceTimer) forceTimer->cancel();
    });
  }
}

void ServerCore::runLoop(Loop& loop) {
  while (true) {
    try {
      loop.run();
      return;
    } catch (const std::exception& e) {
      // A handler threw (e.g. bad_alloc): that connection is lost, the server goes on.
      log.error("handler_exception", {{"what", e.what()}});
    }
  }
}

}  // namespace

Status parseListen(std::string_view text, ServerOptions& options) {
  auto bad = [&](std::string_view why) {
    return fail("usage.listen", fmt::format("--listen '{}': {} (expected HOST:PORT, e.g. "
                                            "0.0.0.0:9455 or [::1]:9455)",
                                            text, why));
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  auto host = text.substr(0, colon);
  auto portText = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return bad("no host");
  beast::error_code ec;
  net::ip::make_address(std::string(host), ec);
  if (ec) return bad("the host is not an IP address");
  unsigned port = 0;
  if (portText.empty() || portText.size() > 5) return bad("bad port");
  for (char c : portText) {
    if (c < '0' || c > '9') return bad("bad port");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return bad("port above 65535");
  options.host = std::string(host);
  options.port = static_cast<std::uint16_t>(port);
  return {};
}

struct Server::Impl : ServerCore {
  using ServerCore::ServerCore;
  ~Impl() {
    // Stop producing completions before the loops and the sessions go away.
    stopLoops();
    loopsDone.store(true);
    if (committer) committer->stop();
    if (watchdog) watchdog->stop();
    if (outbox) outbox->stop();
    destroyHandlers();
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(const ServerOptions& options, Logger& log) {
  StatePaths paths(options.state);
  auto impl = std::make_unique<Impl>(options, log);
  auto writer = Store::open(paths.database(), Store::Mode::kOpenExisting);
  if (!writer) return std::unexpected(writer.error());
  auto homeKeys = HpkeKeyRing::open(
      paths, retiredKeyKeepMs(options.window.maxAgeMs, options.window.maxAheadMs), nowMs());
  if (!homeKeys) return std::unexpected(homeKeys.error());
  if (auto done = configureServerTls(impl->tls.native_handle(), paths); !done) {
    return std::unexpected(done.error());
  }
  impl->directory = std::make_unique<AgentDirectory>(paths.database());
  impl->revoked = std::make_unique<RevokedAgents>(paths.database());
  if (auto read = impl->revoked->refresh(); !read) return std::unexpected(read.error());
  impl->homeKeys = std::move(*homeKeys);
  impl->ingest = std::make_unique<Ingest>(*impl->directory, impl->homeKeys, options.window);
  auto keySet = impl->homeKeys->get(nowMs());
  log.info("hpke_keys", {{"current", toHex(keySet->current().id)}, {"held", keySet->keys.size()}});
  impl->logKeyNotes();
  auto issuer = AgentCertificateIssuer::load(paths);
  if (!issuer) return std::unexpected(issuer.error());
  impl->renewals = std::make_unique<CertificateRenewals>(paths.database(), std::move(*issuer),
                                                         options.certificateGraceMs);

  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec) {
    return fail("usage.listen", fmt::format("--listen: '{}' is not an IP address", options.host));
  }
  tcp::endpoint endpoint(address, options.port);
  auto where = fmt::format("{}:{}", options.host, options.port);
  auto& acceptor = *impl->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec)
    return fail("listen", fmt::format("cannot listen on {}: {}", where, ec.message()));
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (acceptor.bind(endpoint, ec); ec)
    return fail("listen", fmt::format("cannot listen on {}: {}", where, ec.message()));
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec)
    return fail("listen", fmt::format("cannot listen on {}: {}", where, ec.message()));
  impl->port = acceptor.local_endpoint(ec).port();

  std::function<void()> enqueued;
  if (options.policy) {
    writer->setPolicy(options.policy);
    // Names this process in outbox claims: host plus a random tag, as several homes may
    // share one database.
    beast::error_code hostError;
    auto id = fmt::format("{}:{}", net::ip::host_name(hostError), toHex(randomBytes(4)));
    impl->outbox = std::make_unique<OutboxWorker>(paths.database(), options.policy, log, id);
    impl->watchdog = std::make_unique<WatchdogLoop>(
        paths.database(), options.policy, log, [outbox = impl->outbox.get()] { outbox->wake(); });
    enqueued = [outbox = impl->outbox.get()] { outbox->wake(); };
  }
  impl->committer = std::make_unique<GroupCommitter>(std::move(*writer), options.maxBatch, log,
                                                     options.commitLinger, std::move(enqueued));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->port; }

Status Server::run(bool handleSignals) {
  auto& core = *impl_;
  if (!core.options.portFile.empty()) {
    auto written = platform::writeFileAtomic(core.options.portFile, fmt::format("{}\n", core.port));
    if (!written) return written;
  }
  core.log.info("listening", {{"address", core.options.host},
                              {"port", core.port},
                              {"threads", core.loops.size()},
                              {"max_connections", core.options.maxConnections},
                              {"max_handshakes", core.options.maxHandshakes},
                              {"max_handshakes_per_address", core.options.maxHandshakesPerAddress},
                              {"handshake_timeout_ms", core.options.handshakeTimeout.count()},
                              {"max_body", core.options.maxBody}});
  net::post(core.control(), [&core, handleSignals] {
    if (core.stopping.load()) return;
    if (handleSignals) {
      beast::error_code ignored;
      core.signals->add(SIGINT, ignored);
      core.signals->add(SIGTERM, ignored);
      core.signals->async_wait([&core](beast::error_code ec, int signal) {
        if (ec) return;
        core.log.info("signal", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
        core.beginStop();
      });
    }
    core.accept();
    core.scheduleStats();
    core.scheduleRevocationPoll();
  });
  if (core.outbox) {
    if (auto started = core.outbox->start(); !started) return started;
  }
  if (core.watchdog) {
    if (auto started = core.watchdog->start(); !started) return started;
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < core.loops.size(); ++i) {
    threads.emplace_back([&core, i] { core.runLoop(*core.loops[i]); });
  }
  core.runLoop(core.control());
  for (auto& t : threads) t.join();
  core.loopsDone.store(true);
  core.committer->stop();
  if (core.watchdog) core.watchdog->stop();
  if (core.outbox) core.outbox->stop();
  core.logRefusals();
  core.logStats("stopped");
  return {};
}

void Server::stop() {
  net::post(impl_->control(), [core = impl_.get()] { core->beginStop(); });
}

ServerStats Server::stats() const {
  const auto& c = *impl_;
  std::uint64_t handshaking = 0;
  {
    std::lock_guard lock(impl_->handshakesMutex);
    handshaking = impl_->handshakes.size();
  }
  return ServerStats{.accepted = c.accepted.load(),
                     .duplicates = c.duplicates.load(),
                     .refused = c.refused.load(),
                     .storeErrors = c.storeErrors.load(),
                     .openConnections = c.open.load(),
                     .rejectedConnections = c.rejected.load(),
                     .handshaking = handshaking,
                     .batches = c.committer->batches()};
}

}  // namespace pass::home
