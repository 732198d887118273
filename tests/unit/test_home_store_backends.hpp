#pragma once
// The two backends a Store runs on, for TEST_CASE_TEMPLATE: each makes a fresh, empty database
// (an SQLite file in a temp folder, or a PostgreSQL database of the test cluster,
// test_postgres_support.hpp) and says where it is.

#include <doctest/doctest.h>

#include "pass/home/store.hpp"
#include "test_home_support.hpp"
#include "test_postgres_support.hpp"

namespace pass::home::test {

struct SqliteStoreBackend {
  TempDir dir;
  StoreLocation location() const { return {.sqliteFile = dir.path() / "home.db"}; }
};

struct PostgresStoreBackend {
  TestDatabase database;
  StoreLocation location() const {
    return {.postgresUrl = database.url(), .passwordFile = PgTestCluster::get().passwordFile()};
  }
};

/// A Store on `backend`'s database, created when new; REQUIREs that it opens.
template <typename Backend>
Store openStore(const Backend& backend) {
  auto store = Store::open(backend.location(), Store::Mode::kCreate);
  REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message));
  return std::move(*store);
}

}  // namespace pass::home::test

TYPE_TO_STRING(pass::home::test::SqliteStoreBackend);
TYPE_TO_STRING(pass::home::test::PostgresStoreBackend);

#define PASS_STORE_BACKENDS \
  pass::home::test::SqliteStoreBackend, pass::home::test::PostgresStoreBackend
