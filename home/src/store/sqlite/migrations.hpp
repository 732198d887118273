#pragma once
// The SQLite schema migrations: home/src/store/sqlite/migrations/NNNN_<name>.sql, embedded at
// build time. Migration N brings PRAGMA user_version from N-1 to N (Store::Impl::migrate).

#include <span>

#include "store/embedded_sql.hpp"

namespace pass::home {

/// kSqliteMigrations[i].number == i + 1; the last one's number is kSchemaVersion.
extern const std::span<const EmbeddedSql> kSqliteMigrations;

}  // namespace pass::home
