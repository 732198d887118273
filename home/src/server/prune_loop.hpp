#pragma once
// PruneLoop: retention while the home leads the cluster's time-driven work (home.xml
// <retention>, docs/scale-out.md "Retention").

#include <functional>
#include <memory>

#include "pass/home/worker_thread.hpp"
#include "store/cluster_store.hpp"

namespace pass::home {

class Logger;

class PruneLoop {
 public:
  /// Prunes as `retention` says every retention.intervalMs, only while `leading()`.
  PruneLoop(StoreLocation where, Retention retention, Logger& log, std::function<bool()> leading);
  ~PruneLoop();
  PruneLoop(const PruneLoop&) = delete;
  PruneLoop& operator=(const PruneLoop&) = delete;

  /// Opens its store connection and starts the thread; the first run is at once.
  Status start();
  /// Thread-safe: prune now (this home just became the leader).
  void wake();
  /// Ends the batch in progress, then joins. Idempotent.
  void stop();

 private:
  void run();

  StoreLocation where_;
  Retention retention_;
  Logger& log_;
  std::function<bool()> leading_;
  std::unique_ptr<ClusterStore> store_;
  WorkerThread thread_;
};

}  // namespace pass::home
