// The PostgreSQL migration runner: one advisory lock, one transaction per migration.

#include "store/postgres/migrate.hpp"

#include <fmt/format.h>

namespace pass::home::postgres {
namespace {

/// Holds the migration lock from lock() to destruction (or the connection's end).
class MigrationLock {
 public:
  explicit MigrationLock(Connection& db) : db_(db) {}
  MigrationLock(const MigrationLock&) = delete;
  MigrationLock& operator=(const MigrationLock&) = delete;
  ~MigrationLock() {
    if (held_) {
      (void)db_.exec("release the migration lock", "SELECT pg_advisory_unlock($1)",
                     {kMigrationLock});
    }
  }
  Status lock() {
    auto locked =
        db_.exec("take the migration lock", "SELECT pg_advisory_lock($1)", {kMigrationLock});
    if (!locked) return std::unexpected(locked.error());
    held_ = true;
    return {};
  }

 private:
  Connection& db_;
  bool held_ = false;
};

}  // namespace

std::span<const EmbeddedSql> migrations() { return kPostgresMigrations; }

std::int64_t latestSchemaVersion() { return migrations().back().number; }

Result<std::int64_t> schemaVersion(Connection& db) {
  auto table = db.exec("look for the schema_version table",
                       "SELECT to_regclass('schema_version') IS NOT NULL");
  if (!table) return std::unexpected(table.error());
  if (!table->boolean(0, 0)) return 0;
  auto version =
      db.exec("read the schema version", "SELECT coalesce(max(version), 0) FROM schema_version");
  if (!version) return std::unexpected(version.error());
  return version->integer(0, 0);
}

Status migrate(Connection& db) {
  MigrationLock lock(db);
  if (auto locked = lock.lock(); !locked) return locked;
  // Read under the lock: a home that held it before us may have migrated meanwhile.
  auto current = schemaVersion(db);
  if (!current) return std::unexpected(current.error());
  if (*current > latestSchemaVersion()) {
    return fail("store.version",
                fmt::format("{}: schema version {} is newer than this pass-home knows ({}); "
                            "run a newer pass-home",
                            db.where(), *current, latestSchemaVersion()));
  }
  for (const EmbeddedSql& m : migrations()) {
    if (m.number <= *current) continue;
    auto tx = Transaction::begin(db);
    if (!tx) return std::unexpected(tx.error());
    if (auto done = db.script(fmt::format("migration {}", m.file), m.sql); !done) return done;
    auto recorded = db.exec("record the migration",
                            "INSERT INTO schema_version (version, name, applied_ms) "
                            "VALUES ($1, $2, floor(extract(epoch FROM now()) * 1000))",
                            {m.number, m.file});
    if (!recorded) return std::unexpected(recorded.error());
    if (auto done = tx->commit(); !done) return done;
  }
  return {};
}

}  // namespace pass::home::postgres
