// home::Runtime: builds, starts, runs and stops every long-running part of `pass-home serve`.

#include "pass/home/runtime.hpp"

#include <atomic>
#include <csignal>
#include <set>

#include <fmt/format.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>

#include "pass/crypto.hpp"
#include "pass/home/cluster_keys.hpp"
#include "pass/home/group_commit.hpp"
#include "pass/home/hpke_keys.hpp"
#include "pass/home/https_listener.hpp"
#include "pass/home/log.hpp"
#include "pass/home/outbox_worker.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/revoked_agents.hpp"
#include "pass/home/state_store.hpp"
#include "pass/home/ticket_admin.hpp"
#include "platform/lock.hpp"
#include "server/ingest_routes.hpp"
#include "server/leader_lease.hpp"
#include "server/prune_loop.hpp"

namespace pass::home {
namespace {

namespace net = boost::asio;

// How often the revoked agents are read from the store: `pass-home revoke` closes a revoked
// agent's open connections within this, plus the time to read.
constexpr std::chrono::milliseconds kRevocationPoll{250};

// The lease on the time-driven work (the watchdog with its escalations, retention): held by
// one home of a cluster at a time (docs/scale-out.md).
constexpr std::string_view kTimeDrivenLease = "time-driven";

}  // namespace

// Declared in the order they are built; destroyed in reverse, after the destructor stopped
// the listeners and the threads.
struct Runtime::Parts {
  Parts(RuntimeOptions o, Logger& l) : options(std::move(o)), log(l) {}
  ~Parts() {
    if (listener) {
      listener->stop();
      listener->wait();
    }
    if (committer) committer->stop();
    if (admin) {
      admin->stop();
      admin->wait();
    }
    if (watchdog) watchdog->stop();
    if (prune) prune->stop();
    if (lease) lease->stop();
    if (outbox) outbox->stop();
  }

  Status build();
  void beginStop();
  void closeRevokedConnections();
  void logStats(std::string_view event);
  void logKeyNotes();

  RuntimeOptions options;
  Logger& log;
  std::optional<platform::FileLock> serving;  // serveLockFile, shared with other serves
  std::shared_ptr<HpkeKeyRing> keys;
  std::unique_ptr<AgentDirectory> directory;
  std::unique_ptr<RevokedAgents> revoked;
  bool revocationPollFailing = false;  // the listener's first loop only
  std::unique_ptr<Ingest> ingest;
  std::unique_ptr<CertificateRenewals> renewals;
  std::unique_ptr<OutboxWorker> outbox;
  std::unique_ptr<WatchdogLoop> watchdog;
  std::unique_ptr<PruneLoop> prune;  // with <retention> in home.xml only
  std::unique_ptr<LeaderLease> lease;
  std::unique_ptr<GroupCommitter> committer;
  std::unique_ptr<IngestRoutes> routes;
  std::unique_ptr<HttpsListener> listener;
  std::unique_ptr<HttpsListener> admin;
  // run()'s own loop: the signals and stop().
  net::io_context control{1};
  net::executor_work_guard<net::io_context::executor_type> guard{control.get_executor()};
  net::signal_set signals{control};
  bool stopping = false;  // control's thread only
};

Status Runtime::Parts::build() {
  auto& o = options.ingest;
  StatePaths paths(o.state);
  auto lock = platform::FileLock::tryAcquireShared(serveLockFile(paths));
  if (!lock && lock.error().code == "locked") {
    return fail("migrating", fmt::format("{}: pass-home migrate is copying this home's store; "
                                         "serve again when it is done",
                                         paths.dir.string()));
  }
  if (!lock) return std::unexpected(lock.error());
  serving.emplace(std::move(*lock));
  if (!o.policy && options.tickets) {
    auto policy = loadPolicy(o.state);
    if (!policy) return std::unexpected(policy.error());
    o.policy = std::move(*policy);
  }
  auto location = stateStoreLocation(paths);
  if (!location) return std::unexpected(location.error());
  auto writer = Store::open(*location, Store::Mode::kOpenExisting);
  if (!writer) return std::unexpected(writer.error());
  // Every home of a cluster opens the same sealed envelopes, verifies the same agents and
  // signs the same links: one with other keys serves nobody right (docs/scale-out.md).
  if (auto same = checkClusterKeys(paths); !same) return same;
  auto ring = HpkeKeyRing::open(paths, retiredKeyKeepMs(o.window.maxAgeMs, o.window.maxAheadMs),
                                wallClockMs());
  if (!ring) return std::unexpected(ring.error());
  auto tls = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  if (auto done = configureServerTls(tls->native_handle(), paths); !done) return done;
  directory = std::make_unique<AgentDirectory>(*location);
  revoked = std::make_unique<RevokedAgents>(*location);
  if (auto read = revoked->refresh(); !read) return std::unexpected(read.error());
  keys = std::move(*ring);
  ingest = std::make_unique<Ingest>(*directory, keys, o.window);
  auto keySet = keys->get(wallClockMs());
  log.info("hpke_keys", {{"current", toHex(keySet->current().id)}, {"held", keySet->keys.size()}});
  logKeyNotes();
  auto issuer = AgentCertificateIssuer::load(paths);
  if (!issuer) return std::unexpected(issuer.error());
  renewals =
      std::make_unique<CertificateRenewals>(*location, std::move(*issuer), o.certificateGraceMs);

  std::function<void()> enqueued;
  if (o.policy) {
    writer->setPolicy(o.policy);
    const std::string holder = homeHolderId();
    outbox = std::make_unique<OutboxWorker>(*location, o.policy, log, holder);
    watchdog = std::make_unique<WatchdogLoop>(*location, o.policy, log,
                                              [worker = outbox.get()] { worker->wake(); });
    const StoreLocation& where = *location;
    auto retention = loadRetention(o.state);
    if (!retention) return std::unexpected(retention.error());
    auto leading = [this] { return lease->leading(); };
    if (retention->any()) prune = std::make_unique<PruneLoop>(where, *retention, log, leading);
    lease =
        std::make_unique<LeaderLease>(where, std::string(kTimeDrivenLease), holder, log, [this] {
          watchdog->wake();
          if (prune) prune->wake();
        });
    watchdog->leadOnlyWhen(leading);
    enqueued = [worker = outbox.get()] { worker->wake(); };
  }
  committer = std::make_unique<GroupCommitter>(std::move(*writer), o.maxBatch, log, o.commitLinger,
                                               std::move(enqueued));
  routes = std::make_unique<IngestRoutes>(*ingest, *committer, *renewals, log);

  HttpsListenerOptions lo;
  lo.host = o.host;
  lo.port = o.port;
  lo.portFile = o.portFile;
  lo.threads = std::max(1u, o.threads);
  lo.maxBody = o.maxBody;
  lo.maxConnections = o.maxConnections;
  lo.readTimeout = o.readTimeout;
  lo.idleTimeout = o.idleTimeout;
  lo.drainTimeout = o.drainTimeout;
  lo.tls = std::move(tls);
  lo.clientCertificates = true;
  lo.revoked = [agents = revoked.get()](const std::string& agent) {
    return agents->contains(agent);
  };
  lo.handshakes = HttpsListenerOptions::HandshakeLimits{o.maxHandshakes, o.maxHandshakesPerAddress,
                                                        o.handshakeTimeout};
  lo.refusalLogInterval = o.refusalLogInterval;
  lo.listeningFields = {{"threads", lo.threads},
                        {"max_connections", o.maxConnections},
                        {"max_handshakes", o.maxHandshakes},
                        {"max_handshakes_per_address", o.maxHandshakesPerAddress},
                        {"handshake_timeout_ms", o.handshakeTimeout.count()},
                        {"max_body", o.maxBody}};
  auto bound = HttpsListener::create(std::move(lo), routes->table(), log);
  if (!bound) return std::unexpected(bound.error());
  listener = std::move(*bound);
  listener->every(o.statsInterval, [this] {
    logStats("stats");
    logKeyNotes();
  });
  listener->every(kRevocationPoll, [this] { closeRevokedConnections(); });

  if (options.admin) {
    options.admin->state = o.state;
    options.admin->policy = o.policy;
    // A home without its admin API would be a silent surprise, and whoever holds the port
    // would receive the operators' tokens: the listener binds or serve stops. Several homes on
    // one machine (tests, benchmarks) give port 0; `--admin-listen off` is the only way out.
    auto api = createAdminListener(*options.admin, log);
    if (!api) return std::unexpected(api.error());
    admin = std::move(*api);
  }
  return {};
}

// On the listener's first loop.
void Runtime::Parts::closeRevokedConnections() {
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
  for (const auto& [agent, closed] : listener->closePeers({added->begin(), added->end()})) {
    log.warning("revoked_sessions_closed", {{"agent", agent}, {"sessions", closed}});
  }
}

void Runtime::Parts::logStats(std::string_view event) {
  auto s = listener->stats();
  log.info(event, {{"accepted", routes->accepted.load()},
                   {"duplicates", routes->duplicates.load()},
                   {"refused", routes->refused.load()},
                   {"store_errors", routes->storeErrors.load()},
                   {"open_connections", s.open},
                   {"agent_connections", s.peers},
                   {"rejected_connections", s.rejected},
                   {"batches", committer->batches()}});
}

// What the key ring did since the last call: a rotation by another process, a retired key
// destroyed.
void Runtime::Parts::logKeyNotes() {
  for (const auto& note : keys->takeNotes()) log.info("hpke_keys", {{"change", note}});
}

// On run()'s thread: the listeners drain on their own threads; run() then goes on.
void Runtime::Parts::beginStop() {
  if (stopping) return;
  stopping = true;
  boost::system::error_code ignored;
  signals.cancel(ignored);
  listener->stop();
  if (admin) admin->stop();
  guard.reset();
}

Runtime::Runtime(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Runtime::~Runtime() = default;

Result<std::unique_ptr<Runtime>> Runtime::create(RuntimeOptions options, Logger& log) {
  auto parts = std::make_unique<Parts>(std::move(options), log);
  if (auto built = parts->build(); !built) {
    log.error("startup_failed", {{"code", built.error().code}, {"message", built.error().message}});
    return std::unexpected(built.error());
  }
  return std::unique_ptr<Runtime>(new Runtime(std::move(parts)));
}

std::uint16_t Runtime::ingestPort() const { return parts_->listener->port(); }

std::uint16_t Runtime::adminPort() const { return parts_->admin ? parts_->admin->port() : 0; }

// Start: the outbox worker (it only waits for work), the admin API, ingest, then the
// lease on the time-driven work and the watchdog (its hold counts from when the home listens).
// Stop: no new connections on either listener; ingest drains (answers wait for their commit), then
// the committer finishes its last batch, the admin API ends, the watchdog finishes its pass, the
// lease is released (another home takes the work over at once), and the outbox worker finishes
// the send in progress.
Status Runtime::run(bool handleSignals) {
  auto& p = *parts_;
  if (p.outbox) {
    if (auto started = p.outbox->start(); !started) return started;
  }
  if (p.admin) {
    if (auto started = p.admin->start(); !started) return started;
  }
  if (auto started = p.listener->start(); !started) return started;
  // Once ingest listens: the watchdog's hold counts from when the home can receive.
  if (p.watchdog) {
    auto started = p.lease->start();
    if (started) started = p.watchdog->start();
    if (started && p.prune) started = p.prune->start();
    if (!started) {
      p.beginStop();
      p.listener->wait();
      return started;
    }
  }
  if (handleSignals) {
    boost::system::error_code ignored;
    p.signals.add(SIGINT, ignored);
    p.signals.add(SIGTERM, ignored);
    p.signals.async_wait([&p](boost::system::error_code ec, int signal) {
      if (ec) return;
      p.log.info("signal", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
      p.beginStop();
    });
  }
  p.control.run();
  p.listener->wait();
  p.committer->stop();
  if (p.admin) p.admin->wait();
  if (p.watchdog) p.watchdog->stop();
  if (p.prune) p.prune->stop();
  if (p.lease) p.lease->stop();
  if (p.outbox) p.outbox->stop();
  p.listener->logRefusals();
  p.logStats("stopped");
  return {};
}

void Runtime::stop() {
  net::post(parts_->control, [parts = parts_.get()] { parts->beginStop(); });
}

ServerStats Runtime::stats() const {
  const auto& p = *parts_;
  auto s = p.listener->stats();
  return ServerStats{.accepted = p.routes->accepted.load(),
                     .duplicates = p.routes->duplicates.load(),
                     .refused = p.routes->refused.load(),
                     .storeErrors = p.routes->storeErrors.load(),
                     .openConnections = s.open,
                     .rejectedConnections = s.rejected,
                     .handshaking = s.handshaking,
                     .batches = p.committer->batches()};
}

}  // namespace pass::home
