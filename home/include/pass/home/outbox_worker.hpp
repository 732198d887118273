#pragma once
/// The home's background work besides ingest: the outbox worker, which sends queued
/// notifications with retry and backoff, and the watchdog loop (missing heartbeats, silent
/// sites, escalation, storm summaries). Both use their own Store connection, so several homes
/// on one database share the work: a row is claimed by one worker at a time.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "pass/home/notify.hpp"
#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "pass/home/worker_thread.hpp"

namespace pass::home {

class Logger;

using NowMs = std::function<std::int64_t()>;
std::int64_t wallClockMs();

/// How long a claimed outbox row belongs to the worker (or home) that claimed it: twice the
/// longest a send may take (each channel's total timeout is 30 s), so that only a dead
/// worker's rows are taken over, and a dead home's notification goes out a minute later.
inline constexpr std::int64_t kOutboxLeaseMs = 60'000;

/// Sends one outbox row on its channel with the channels of `config`.
notify::SendResult sendOutboxRow(const HomeConfig& config, const OutboxRow& row);

/// When a row that failed `attempts` times (at least 1) is tried next.
std::int64_t retryAt(const HomeConfig& config, std::int64_t attempts, std::int64_t nowMs);

class OutboxWorker {
 public:
  /// `database` is home.db; `id` names this worker in claims (host, process).
  OutboxWorker(StoreLocation database, std::shared_ptr<const Policy> policy, Logger& log,
               std::string id, NowMs now = wallClockMs);
  ~OutboxWorker();
  OutboxWorker(const OutboxWorker&) = delete;
  OutboxWorker& operator=(const OutboxWorker&) = delete;

  /// Opens its store connection and starts the thread.
  Status start();
  /// Thread-safe: a commit queued rows; look now instead of at the next timer.
  void wake();
  /// Finishes the send in progress, then joins. Idempotent.
  void stop();

  /// Sends every row that is due now, one at a time, on the caller's thread (tests and
  /// `pass-home notify --once`). Returns how many rows it handled.
  Result<int> drainOnce();

 private:
  void run();
  Result<bool> sendOne();

  StoreLocation database_;
  std::shared_ptr<const Policy> policy_;
  Logger& log_;
  std::string id_;
  NowMs now_;
  std::unique_ptr<Store> store_;
  WorkerThread thread_;
};

/// Whether the wall clock jumped during the watchdog's wait of `periodMs` that began at
/// `waitedFromMs` and ended at `nowMs` (both wall clock): it moved away from the period by more
/// than the period, and by more than a minute, forward or backward. A jump forward is also
/// what a process or machine that was stopped sees.
bool clockJumped(std::int64_t waitedFromMs, std::int64_t nowMs, std::int64_t periodMs);

class WatchdogLoop {
 public:
  /// Runs Store::watchdog every interval of the policy; calls `enqueued` when a pass queued
  /// notifications. The loop starts once the server listens: from then on, and again after
  /// each clock jump, it holds the missing-heartbeat rule for one grace (tickets.md) and logs
  /// `watchdog_hold` with the time the hold ends.
  WatchdogLoop(StoreLocation database, std::shared_ptr<const Policy> policy, Logger& log,
               std::function<void()> enqueued, NowMs now = wallClockMs);
  ~WatchdogLoop();
  WatchdogLoop(const WatchdogLoop&) = delete;
  WatchdogLoop& operator=(const WatchdogLoop&) = delete;
  /// Before start(): a pass runs only while `leading()` says this home leads the cluster's
  /// time-driven work (LeaderLease); without it, always.
  void leadOnlyWhen(std::function<bool()> leading) { leading_ = std::move(leading); }
  Status start();
  /// Thread-safe: run a pass now (this home just became the leader).
  void wake();
  void stop();

 private:
  void run();

  StoreLocation database_;
  std::shared_ptr<const Policy> policy_;
  Logger& log_;
  std::function<void()> enqueued_;
  NowMs now_;
  std::function<bool()> leading_;
  std::unique_ptr<Store> store_;
  WorkerThread thread_;
};

}  // namespace pass::home
