#pragma once
// The PostgreSQL schema's migrations (migrations/*.sql, embedded at build time) and their
// runner.

#include <cstdint>
#include <span>
#include <string_view>

#include "pass/result.hpp"
#include "store/embedded_sql.hpp"
#include "store/postgres/pg.hpp"

namespace pass::home {

/// home/src/store/postgres/migrations/NNNN_<name>.sql, embedded at build time.
extern const std::span<const EmbeddedSql> kPostgresMigrations;

}  // namespace pass::home

namespace pass::home::postgres {

/// pg_advisory_lock's key for migrating: "pass-mig" in ASCII, unlikely to be another
/// application's on the same database.
inline constexpr std::int64_t kMigrationLock = 0x706173732d6d6967;

/// Every migration, in version order from 1 without a gap: migrations/NNNN_name.sql brings
/// the schema from version NNNN - 1 to NNNN (embedded by pass_embed_sql, home/CMakeLists.txt).
std::span<const EmbeddedSql> migrations();

/// The schema version this pass-home writes: the last migration's.
std::int64_t latestSchemaVersion();

/// The database's schema version: the highest in schema_version, 0 for an empty database.
Result<std::int64_t> schemaVersion(Connection& db);

/// Brings the database to latestSchemaVersion(), each missing migration in a transaction of its
/// own, under a session advisory lock so that homes starting together migrate once. Refuses
/// ("store.version") a database a newer pass-home has written.
Status migrate(Connection& db);

}  // namespace pass::home::postgres
