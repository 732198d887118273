#pragma once
/// Where a home's store is, as its state directory records it: the one place that decides
/// between SQLite and PostgreSQL (docs/scale-out.md, "The state's database"). Without
/// STATE/database.xml the store is SQLite in STATE/home.db; with it, the PostgreSQL database it
/// names, with the password in the file it names (STATE/database-password, 0600, as init and
/// migrate write it).

#include <filesystem>
#include <string>

#include "pass/config.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/store.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// database.xml's declaration (docs/scale-out.md shows the file).
const config::Schema& databaseSchema();

/// The store the state names: database.xml's PostgreSQL database, or else STATE/home.db.
/// A bad database.xml fails with "config.*" naming file, line and field.
Result<StoreLocation> stateStoreLocation(const StatePaths& paths);

/// Store::open at stateStoreLocation(paths): what every part of the home opens.
Result<Store> openStateStore(const StatePaths& paths,
                             Store::Mode mode = Store::Mode::kOpenExisting);

/// Records `target` (its postgresUrl and passwordFile) as the state's store: copies the password's
/// first line into STATE/database-password (0600), then writes STATE/database.xml naming the URL
/// and that file (each written atomically). Fails with "store.password_file" when the password
/// cannot be read.
Status recordPostgresStore(const StatePaths& paths, const StoreLocation& target);

}  // namespace pass::home
