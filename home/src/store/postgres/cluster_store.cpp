// ClusterStore on PostgreSQL (docs/scale-out.md): the lease, taken, renewed and read on the
// database server's clock (clock_timestamp()), so that the homes' own clocks, which may differ,
// never decide who holds it; retention in one READ COMMITTED transaction per batch, rows in id
// (arrival) order. An envelope's (agent, seq) key is the UNIQUE constraint of its row: it goes
// with the row.

#include <fmt/format.h>

#include "store/cluster_store.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/rows.hpp"
#include "store/store_impl.hpp"

// The database server's clock in ms since the epoch.
#define PASS_PG_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

namespace pass::home::postgres {
namespace {

struct PruneSql {
  std::string_view table;
  std::string_view due;    // a row to prune; $2 is the cut
  std::string_view newer;  // a row after which nothing is due yet
};

PruneSql pruneSql(PruneTable table) {
  switch (table) {
    case PruneTable::kEnvelopes:
      return {"envelopes", "received_ms < $2 AND created_ms < $2", "received_ms >= $2"};
    case PruneTable::kHeartbeats:
      return {"heartbeats", "received_ms < $2", "received_ms >= $2"};
    case PruneTable::kEvents:
      // Events arrive out of their occurrence order: every batch is looked at.
      return {"events",
              "occurred_ms < $2 AND (coalesce(\"array\", ''), coalesce(code, '')) NOT IN "
              "(SELECT \"array\", code FROM tickets WHERE state <> 'resolved')",
              "$2::bigint IS NULL"};
  }
  return {};
}

class PostgresClusterStore final : public ClusterStore::Impl {
 public:
  explicit PostgresClusterStore(Connection connection) : db(std::move(connection)) {}

  Result<bool> takeLease(std::string_view name, std::string_view holder,
                         std::int64_t durationMs) override;
  Status releaseLease(std::string_view name, std::string_view holder) override;
  Result<std::optional<std::string>> leaseHolder(std::string_view name) override;
  Result<KeyFingerprints> recordKeys(const KeyFingerprints& mine) override;
  Status replaceKey(std::string_view name, std::string_view digest) override;
  Result<PruneBatch> pruneBatch(PruneTable table, std::int64_t afterId, std::int64_t cutMs,
                                int limit, bool dryRun) override;

 private:
  Connection db;
};

Result<bool> PostgresClusterStore::takeLease(std::string_view name, std::string_view holder,
                                             std::int64_t durationMs) {
  // Two homes racing: the second waits for the first's row lock, then evaluates the WHERE on
  // the row the first wrote, and finds it held.
  auto rows =
      db.exec("take the lease",
              "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, " PASS_PG_NOW_MS
              " + $3) ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, "
              "expires_ms = EXCLUDED.expires_ms WHERE leases.holder = EXCLUDED.holder "
              "OR leases.expires_ms < " PASS_PG_NOW_MS " RETURNING holder",
              {name, holder, durationMs});
  if (!rows) return propagate(rows);
  return rows->size() == 1;
}

Status PostgresClusterStore::releaseLease(std::string_view name, std::string_view holder) {
  auto rows = db.exec("release the lease", "DELETE FROM leases WHERE name = $1 AND holder = $2",
                      {name, holder});
  if (!rows) return std::unexpected(rows.error());
  return {};
}

Result<std::optional<std::string>> PostgresClusterStore::leaseHolder(std::string_view name) {
  return first(
      db.exec("read the lease",
              "SELECT holder FROM leases WHERE name = $1 AND expires_ms >= " PASS_PG_NOW_MS,
              {name}),
      [](const Rows& r, int i) { return r.text(i, 0); });
}

Result<KeyFingerprints> PostgresClusterStore::recordKeys(const KeyFingerprints& mine) {
  // One transaction, the names in one order: a second home inserting at the same time waits
  // for the first's rows, then inserts nothing and reads the first's.
  auto tx = Transaction::begin(db);
  if (!tx) return propagate(tx);
  for (const auto& [name, digest] : mine) {
    auto inserted = db.exec(
        "record a cluster key",
        "INSERT INTO cluster_keys (name, sha256, recorded_ms) VALUES ($1, $2, " PASS_PG_NOW_MS
        ") ON CONFLICT (name) DO NOTHING",
        {name, digest});
    if (!inserted) return propagate(inserted);
  }
  auto rows = db.exec("read the cluster keys", "SELECT name, sha256 FROM cluster_keys");
  if (!rows) return propagate(rows);
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  KeyFingerprints recorded;
  for (int i = 0; i < rows->size(); ++i) recorded.emplace(rows->text(i, 0), rows->text(i, 1));
  return recorded;
}

Status PostgresClusterStore::replaceKey(std::string_view name, std::string_view digest) {
  auto rows =
      db.exec("replace a cluster key",
              "INSERT INTO cluster_keys (name, sha256, recorded_ms) VALUES ($1, $2, " PASS_PG_NOW_MS
              ") ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, "
              "recorded_ms = EXCLUDED.recorded_ms",
              {name, digest});
  if (!rows) return std::unexpected(rows.error());
  return {};
}

Result<PruneBatch> PostgresClusterStore::pruneBatch(PruneTable table, std::int64_t afterId,
                                                    std::int64_t cutMs, int limit, bool dryRun) {
  const PruneSql sql = pruneSql(table);
  auto tx = Transaction::begin(db);
  if (!tx) return propagate(tx);
  auto span = db.exec("find the batch to prune",
                      fmt::format("SELECT max(id), count(*) FROM (SELECT id FROM {} WHERE id > $1 "
                                  "ORDER BY id LIMIT $2) AS batch",
                                  sql.table),
                      {afterId, std::int64_t{limit}});
  if (!span) return propagate(span);
  PruneBatch batch{.lastId = afterId};
  if (span->isNull(0, 0)) return batch;
  batch.lastId = span->integer(0, 0);
  const std::string rows =
      fmt::format("FROM {} WHERE id > $1 AND id <= $3 AND {}", sql.table, sql.due);
  auto pruned =
      db.exec(dryRun ? "count the rows to prune" : "prune",
              dryRun ? fmt::format("SELECT count(*) {}", rows) : fmt::format("DELETE {}", rows),
              {afterId, cutMs, batch.lastId});
  if (!pruned) return propagate(pruned);
  batch.rows = dryRun ? pruned->integer(0, 0) : pruned->affected();
  auto newer = db.exec("look for newer rows",
                       fmt::format("SELECT EXISTS (SELECT 1 FROM {} WHERE id > $1 AND id <= $3 "
                                   "AND {})",
                                   sql.table, sql.newer),
                       {afterId, cutMs, batch.lastId});
  if (!newer) return propagate(newer);
  batch.done = newer->boolean(0, 0) || span->integer(0, 1) < limit;
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  return batch;
}

}  // namespace

Result<std::unique_ptr<ClusterStore::Impl>> openClusterStore(
    std::string_view url, const std::filesystem::path& passwordFile) {
  auto db = Connection::connect(url, passwordFile);
  if (!db) return propagate(db);
  return std::make_unique<PostgresClusterStore>(std::move(*db));
}

}  // namespace pass::home::postgres

#undef PASS_PG_NOW_MS
