// PruneLoop: Store::prune on an interval, on the leading home only.

#include "server/prune_loop.hpp"

#include "pass/home/log.hpp"
#include "pass/home/outbox_worker.hpp"

namespace pass::home {

PruneLoop::PruneLoop(StoreLocation where, Retention retention, Logger& log,
                     std::function<bool()> leading)
    : where_(std::move(where)), retention_(retention), log_(log), leading_(std::move(leading)) {}

PruneLoop::~PruneLoop() { stop(); }

Status PruneLoop::start() {
  auto store = ClusterStore::open(where_);
  if (!store) return std::unexpected(store.error());
  store_ = std::make_unique<ClusterStore>(std::move(*store));
  thread_.start([this] { run(); });
  return {};
}

void PruneLoop::wake() { thread_.wake(); }

void PruneLoop::stop() { thread_.stop(); }

void PruneLoop::run() {
  while (true) {
    if (!store_) {
      // The server dropped the last connection (a restart, a fail-over): connect again.
      auto store = ClusterStore::open(where_);
      if (store) store_ = std::make_unique<ClusterStore>(std::move(*store));
    }
    if (store_ && leading_()) {
      auto pruned = store_->prune(retention_, wallClockMs(), false, 1000,
                                  [this] { return leading_() && !thread_.stopping(); });
      if (!pruned) {
        log_.error("prune_error", {{"message", pruned.error().message}});
        if (pruned.error().code == "store.unavailable") store_.reset();
      } else if (pruned->envelopes + pruned->heartbeats + pruned->events > 0 || pruned->stopped) {
        log_.info("pruned", {{"envelopes", pruned->envelopes},
                             {"heartbeats", pruned->heartbeats},
                             {"events", pruned->events},
                             {"batches", pruned->batches},
                             {"longest_batch_ms", pruned->longestBatchMs},
                             {"stopped", pruned->stopped}});
      }
    }
    if (!thread_.sleep(std::chrono::milliseconds(retention_.intervalMs))) return;
  }
}

}  // namespace pass::home
