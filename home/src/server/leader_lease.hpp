#pragma once
// LeaderLease: which home of a cluster runs the time-driven work (the watchdog, escalations,
// retention) now, elected through the store's `leases` table (docs/scale-out.md).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/cluster_store.hpp"

namespace pass::home {

class Logger;

/// How long a lease lasts on the database's clock, and how often its holder renews it (and
/// another home tries to take it). A dead leader's lease is taken over within
/// length + renewEvery; a leader that could not renew stops leading `margin` before its lease
/// could have expired.
struct LeaseTiming {
  std::chrono::milliseconds length{6000};
  std::chrono::milliseconds renewEvery{2000};
  std::chrono::milliseconds margin{1000};
};

/// This process's name in leases and outbox claims: host, pid and a random part.
std::string homeHolderId();

class LeaderLease {
 public:
  /// `name`: the lease (e.g. "time-driven"); `holder`: homeHolderId(). `tookOver` is called on
  /// the lease's thread each time this home becomes the leader.
  LeaderLease(StoreLocation where, std::string name, std::string holder, Logger& log,
              std::function<void()> tookOver = {}, LeaseTiming timing = {});
  ~LeaderLease();
  LeaderLease(const LeaderLease&) = delete;
  LeaderLease& operator=(const LeaderLease&) = delete;

  /// Opens its store connection, tries the lease once, and starts the thread that renews it.
  Status start();
  /// Ends the thread and releases the lease at once if held. Idempotent.
  void stop();

  /// Whether this home leads now: it renewed the lease less than length - margin ago (on this
  /// machine's steady clock, counted from before the statement was sent, so never later than
  /// the database's expiry).
  bool leading() const;
  const std::string& holder() const { return holder_; }

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  /// One attempt to take or renew the lease (connecting again first when the server dropped
  /// the connection); logs take-over and loss once each.
  void attempt();

  StoreLocation where_;
  std::string name_;
  std::string holder_;
  Logger& log_;
  std::function<void()> tookOver_;
  LeaseTiming timing_;
  std::unique_ptr<ClusterStore> store_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  Clock::time_point leadingUntil_{};  // guarded by mutex_
  bool led_ = false;                  // the thread's: whether it led after the last attempt
  bool failing_ = false;              // the thread's: the last attempt failed with an error
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace pass::home
