#pragma once
// ClusterStore: the statements of the work that one home of a cluster does at a time, on a
// database connection of its own: the lease that elects that home, retention, and the keys
// every home must share (docs/scale-out.md). store/sqlite/cluster_store.cpp and
// store/postgres/cluster_store.cpp hold each backend's SQL.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/retention.hpp"
#include "pass/home/store.hpp"

namespace pass::home {

/// Key name -> the SHA-256 (hex) of what identifies it (pass/home/cluster_keys.hpp).
using KeyFingerprints = std::map<std::string, std::string, std::less<>>;

/// What ClusterStore::prune removed (with dryRun: would remove), per table.
struct PruneReport {
  std::int64_t envelopes = 0;  // with their (agent, seq) keys
  std::int64_t heartbeats = 0;
  std::int64_t events = 0;
  std::int64_t batches = 0;         // transactions, one a batch
  std::int64_t longestBatchMs = 0;  // the longest of them, on this machine's steady clock
  bool stopped = false;             // keepGoing said stop before the end
};

/// The tables ClusterStore::prune works on, one batch at a time.
enum class PruneTable { kEnvelopes, kHeartbeats, kEvents };

/// One batch of ClusterStore::prune: the rows with ids in (afterId, lastId].
struct PruneBatch {
  std::int64_t lastId = 0;
  std::int64_t rows = 0;  // pruned (dry: prunable) in the batch
  bool done = true;       // no row after lastId can be due
};

class ClusterStore {
 public:
  /// Connects to the database `where` names, whose schema Store::open made.
  static Result<ClusterStore> open(const StoreLocation& where);

  ClusterStore(ClusterStore&&) noexcept;
  ClusterStore& operator=(ClusterStore&&) noexcept;
  ~ClusterStore();

  /// Takes the lease `name` for `holder` until `durationMs` from now on the database's clock,
  /// in one statement: when nobody holds it, its holder's time has passed, or `holder` holds it
  /// already (a renewal). True when `holder` holds it now; false when another home does. On
  /// SQLite, whose one database serves one home, always true.
  Result<bool> takeLease(std::string_view name, std::string_view holder, std::int64_t durationMs);
  /// Gives the lease up at once when `holder` holds it (a clean stop); otherwise nothing.
  Status releaseLease(std::string_view name, std::string_view holder);
  /// Who holds the lease now (its time has not passed on the database's clock), if anyone.
  Result<std::optional<std::string>> leaseHolder(std::string_view name);

  /// Records `mine` where the database records no fingerprint of that name yet (the first
  /// home; two homes at once agree on one set), then returns every recorded one. On SQLite,
  /// whose one database serves one home, `mine` as it is.
  Result<KeyFingerprints> recordKeys(const KeyFingerprints& mine);
  /// Records `digest` as the fingerprint `name` (replacing any). On SQLite nothing.
  Status replaceKey(std::string_view name, std::string_view digest);

  /// The rows older than `retention` says at `nowMs`, in batches of at most `batchRows` rows,
  /// each batch its own short write transaction; between batches the writer is free, so ingest
  /// waits for at most one batch. `keepGoing`, asked before each batch, may stop it (this home
  /// lost the lead, or is stopping). Tickets, their log and the outbox are never pruned; nor
  /// are events of an array and code with a live ticket.
  Result<PruneReport> prune(const Retention& retention, std::int64_t nowMs, bool dryRun,
                            int batchRows = 1000, const std::function<bool()>& keepGoing = {});

  /// A backend.
  struct Impl {
    virtual ~Impl() = default;
    virtual Result<bool> takeLease(std::string_view name, std::string_view holder,
                                   std::int64_t durationMs) = 0;
    virtual Status releaseLease(std::string_view name, std::string_view holder) = 0;
    virtual Result<std::optional<std::string>> leaseHolder(std::string_view name) = 0;
    virtual Result<KeyFingerprints> recordKeys(const KeyFingerprints& mine) = 0;
    virtual Status replaceKey(std::string_view name, std::string_view digest) = 0;
    /// One batch of prune on `table`: among the `limit` rows after `afterId` (in id order),
    /// those older than `cutMs`, deleted (dry: counted) in one write transaction.
    virtual Result<PruneBatch> pruneBatch(PruneTable table, std::int64_t afterId,
                                          std::int64_t cutMs, int limit, bool dryRun) = 0;
  };

 private:
  explicit ClusterStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace sqlite {
Result<std::unique_ptr<ClusterStore::Impl>> openClusterStore(const std::filesystem::path& file);
}  // namespace sqlite
namespace postgres {
Result<std::unique_ptr<ClusterStore::Impl>> openClusterStore(
    std::string_view url, const std::filesystem::path& passwordFile);
}  // namespace postgres

}  // namespace pass::home
