// ClusterStore over its backends; prune's batches, the same on both.

#include "store/cluster_store.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace pass::home {

ClusterStore::ClusterStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClusterStore::ClusterStore(ClusterStore&&) noexcept = default;
ClusterStore& ClusterStore::operator=(ClusterStore&&) noexcept = default;
ClusterStore::~ClusterStore() = default;

Result<ClusterStore> ClusterStore::open(const StoreLocation& where) {
  auto impl = where.postgresUrl.empty()
                  ? sqlite::openClusterStore(where.sqliteFile)
                  : postgres::openClusterStore(where.postgresUrl, where.passwordFile);
  if (!impl) return std::unexpected(impl.error());
  return ClusterStore(std::move(*impl));
}

Result<bool> ClusterStore::takeLease(std::string_view name, std::string_view holder,
                                     std::int64_t durationMs) {
  return impl_->takeLease(name, holder, durationMs);
}

Status ClusterStore::releaseLease(std::string_view name, std::string_view holder) {
  return impl_->releaseLease(name, holder);
}

Result<std::optional<std::string>> ClusterStore::leaseHolder(std::string_view name) {
  return impl_->leaseHolder(name);
}

Result<KeyFingerprints> ClusterStore::recordKeys(const KeyFingerprints& mine) {
  return impl_->recordKeys(mine);
}

Status ClusterStore::replaceKey(std::string_view name, std::string_view digest) {
  return impl_->replaceKey(name, digest);
}

Result<PruneReport> ClusterStore::prune(const Retention& retention, std::int64_t nowMs, bool dryRun,
                                        int batchRows, const std::function<bool()>& keepGoing) {
  PruneReport report;
  auto table = [&](PruneTable which, std::int64_t ageMs, std::int64_t& count) -> Status {
    if (ageMs <= 0) return {};
    std::int64_t after = 0;
    while (true) {
      if (keepGoing && !keepGoing()) {
        report.stopped = true;
        return {};
      }
      const auto started = std::chrono::steady_clock::now();
      auto batch = impl_->pruneBatch(which, after, nowMs - ageMs, batchRows, dryRun);
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
      if (!batch) return std::unexpected(batch.error());
      ++report.batches;
      report.longestBatchMs = std::max<std::int64_t>(report.longestBatchMs, took);
      count += batch->rows;
      if (batch->done) return {};
      after = batch->lastId;
      // The writer (ingest's group commit) takes the database between two batches.
      std::this_thread::yield();
    }
  };
  if (auto done = table(PruneTable::kEnvelopes, retention.envelopesMs, report.envelopes); !done) {
    return std::unexpected(done.error());
  }
  if (auto done = table(PruneTable::kHeartbeats, retention.envelopesMs, report.heartbeats); !done) {
    return std::unexpected(done.error());
  }
  if (auto done = table(PruneTable::kEvents, retention.eventsMs, report.events); !done) {
    return std::unexpected(done.error());
  }
  return report;
}

}  // namespace pass::home
