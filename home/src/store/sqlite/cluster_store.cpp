// ClusterStore on SQLite (docs/scale-out.md): one home per database, so it always holds the
// lease; retention in one BEGIN IMMEDIATE transaction per batch, rows in rowid (arrival) order.

#include <fmt/format.h>

#include "store/cluster_store.hpp"
#include "store/sqlite.hpp"
#include "store/sqlite/envelope_keys.hpp"
#include "store/store_impl.hpp"

namespace pass::home::sqlite {
namespace {

struct PruneSql {
  std::string_view table;
  std::string_view due;    // a row to prune; ?2 is the cut
  std::string_view newer;  // a row after which nothing is due yet
};

PruneSql pruneSql(PruneTable table) {
  switch (table) {
    case PruneTable::kEnvelopes:
      // Only keys merged into envelope_keys: the writers' recent level (in their memory) stays
      // whole. Never the last envelope: SQLite gives a new row the highest id plus one, and ids
      // must not start again below envelope_keys_merged.upto.
      return {"envelopes",
              "received_ms < ?2 AND created_ms < ?2 "
              "AND rowid <= (SELECT upto FROM envelope_keys_merged) "
              "AND rowid < (SELECT max(rowid) FROM envelopes)",
              "received_ms >= ?2"};
    case PruneTable::kHeartbeats:
      return {"heartbeats", "received_ms < ?2", "received_ms >= ?2"};
    case PruneTable::kEvents:
      // Events arrive out of their occurrence order: every batch is looked at.
      return {"events",
              "occurred_ms < ?2 AND (coalesce(array, ''), coalesce(code, '')) NOT IN "
              "(SELECT array, code FROM tickets WHERE state <> 'resolved')",
              "0"};
  }
  return {};
}

class SqliteClusterStore final : public ClusterStore::Impl {
 public:
  explicit SqliteClusterStore(Database database) : db(std::move(database)) {}

  // The one home of an SQLite database is its leader: `serve` is the only process that asks.
  Result<bool> takeLease(std::string_view, std::string_view holder, std::int64_t) override {
    holder_ = holder;
    return true;
  }
  Status releaseLease(std::string_view, std::string_view holder) override {
    if (holder_ == holder) holder_.reset();
    return {};
  }
  Result<std::optional<std::string>> leaseHolder(std::string_view) override { return holder_; }
  // Nothing to share: the one home's keys are the keys.
  Result<KeyFingerprints> recordKeys(const KeyFingerprints& mine) override { return mine; }
  Status replaceKey(std::string_view, std::string_view) override { return {}; }

  Result<PruneBatch> pruneBatch(PruneTable table, std::int64_t afterId, std::int64_t cutMs,
                                int limit, bool dryRun) override;

 private:
  Database db;
  std::optional<std::string> holder_;
};

Result<PruneBatch> SqliteClusterStore::pruneBatch(PruneTable table, std::int64_t afterId,
                                                  std::int64_t cutMs, int limit, bool dryRun) {
  const PruneSql sql = pruneSql(table);
  if (table == PruneTable::kEnvelopes && afterId == 0) {
    // The recent level first, in its own short transaction, so that the envelopes of a quiet
    // home that never merged can go too; the writers notice the new upto and read their
    // recent level again.
    auto merge = Transaction::beginImmediate(db);
    if (!merge) return propagate(merge);
    if (auto done = db.exec(kMergeRecentKeys); !done) return std::unexpected(done.error());
    if (auto done = merge->commit(); !done) return std::unexpected(done.error());
  }
  auto tx = Transaction::beginImmediate(db);
  if (!tx) return propagate(tx);
  auto range = db.prepare(fmt::format(
      "SELECT max(rowid), count(*) FROM (SELECT rowid FROM {} WHERE rowid > ?1 ORDER BY rowid "
      "LIMIT ?2)",
      sql.table));
  if (!range) return propagate(range);
  range->bind(1, afterId).bind(2, std::int64_t{limit});
  auto span = range->firstRow(
      [](const Statement& r) { return std::pair(r.columnOptInt(0), r.columnInt(1)); });
  if (!span) return propagate(span);
  PruneBatch batch{.lastId = afterId};
  if (!*span || !(*span)->first) return batch;
  batch.lastId = *(*span)->first;
  const std::string rows =
      fmt::format("FROM {} WHERE rowid > ?1 AND rowid <= ?3 AND {}", sql.table, sql.due);
  if (table == PruneTable::kEnvelopes && !dryRun) {
    auto keys = db.prepare(fmt::format(
        "DELETE FROM envelope_keys WHERE (agent_id, seq) IN (SELECT agent_id, seq {})", rows));
    if (!keys) return propagate(keys);
    keys->bind(1, afterId).bind(2, cutMs).bind(3, batch.lastId);
    if (auto done = keys->run(); !done) return std::unexpected(done.error());
  }
  auto prune =
      db.prepare(dryRun ? fmt::format("SELECT count(*) {}", rows) : fmt::format("DELETE {}", rows));
  if (!prune) return propagate(prune);
  prune->bind(1, afterId).bind(2, cutMs).bind(3, batch.lastId);
  if (dryRun) {
    auto count = prune->firstRow([](const Statement& r) { return r.columnInt(0); });
    if (!count) return propagate(count);
    batch.rows = count->value_or(0);
  } else {
    if (auto done = prune->run(); !done) return std::unexpected(done.error());
    batch.rows = db.changes();
  }
  auto newer = db.prepare(
      fmt::format("SELECT EXISTS (SELECT 1 FROM {} WHERE rowid > ?1 AND rowid <= ?3 AND {})",
                  sql.table, sql.newer));
  if (!newer) return propagate(newer);
  newer->bind(1, afterId).bind(2, cutMs).bind(3, batch.lastId);
  auto found = newer->firstRow([](const Statement& r) { return r.columnInt(0) != 0; });
  if (!found) return propagate(found);
  batch.done = found->value_or(false) || (*span)->second < limit;
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  return batch;
}

}  // namespace

Result<std::unique_ptr<ClusterStore::Impl>> openClusterStore(const std::filesystem::path& file) {
  auto db = Database::open(file, Database::Mode::kOpenExisting);
  if (!db) return propagate(db);
  return std::make_unique<SqliteClusterStore>(std::move(*db));
}

}  // namespace pass::home::sqlite
