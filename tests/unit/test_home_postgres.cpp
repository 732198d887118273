// The home's PostgreSQL groundwork against a real PostgreSQL 15 (test_postgres_support.hpp):
// the libpq wrapper (home/src/store/postgres/pg.cpp), the migration runner (migrate.cpp) and
// the schema's constraints (migrations/0001_schema.sql).

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <array>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "pass/crypto.hpp"
#include "pass/home/store.hpp"
#include "store/postgres/migrate.hpp"
#include "store/postgres/pg.hpp"
#include "test_postgres_support.hpp"

using namespace pass;
using namespace pass::home;
using namespace pass::home::postgres;
using pass::home::test::PgTestCluster;
using pass::home::test::TestDatabase;
using pass::test::errorText;
using pass::test::TempDir;

namespace {

Rows must(Result<Rows> rows) {
  REQUIRE_MESSAGE(rows.has_value(), errorText(rows));
  return std::move(*rows);
}

std::int64_t count(Connection& db, const std::string& sql) {
  return must(db.exec("count", sql)).integer(0, 0);
}

void migrated(Connection& db) {
  auto done = migrate(db);
  REQUIRE_MESSAGE(done.has_value(), errorText(done));
}

/// True when another session takes the migration lock at once (and lets it go again).
bool migrationLockFree(const TestDatabase& t) {
  auto other = t.connect();
  return must(other.exec("try the lock", "SELECT pg_try_advisory_lock($1)", {kMigrationLock}))
      .boolean(0, 0);
}

/// Polls `predicate` until it holds, failing after 20 s.
template <typename Predicate>
void waitFor(Predicate predicate, const char* what) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!predicate()) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    "timed out waiting for " << std::string(what));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

constexpr const char* kInsertEnvelope =
    "INSERT INTO envelopes (agent_id, seq, created_ms, received_ms, type, size, payload) "
    "VALUES ($1, $2, 1, 2, 'report', 10, '{}')";

constexpr const char* kInsertTicket =
    "INSERT INTO tickets (dedup_key, kind, customer, site, problem, title, urgent, state, "
    "first_seen_ms, last_seen_ms, opened_ms) "
    "VALUES ($1, 'alert', 'Acme', 'Berlin', 'p', 't', 0, $2, 1, 1, 1) RETURNING id";

}  // namespace

TEST_CASE("statements take parameters and give typed values, NULL as nullopt") {
  TestDatabase t;
  auto db = t.connect();
  REQUIRE(db.script("make a table", "CREATE TABLE t (i BIGINT, s TEXT, b BYTEA, f BOOLEAN)"));
  const Bytes blob = {0x00, 0x01, 0x5c, 0x27, 0xff, 0x80};  // NUL, backslash, quote, high bytes
  const std::string text = "it's \"quoted\" \\ ünïcode";
  auto inserted = must(db.exec("insert a row", "INSERT INTO t VALUES ($1, $2, $3, $4)",
                               {std::int64_t{-9'007'199'254'740'993}, text, blob, "true"}));
  CHECK(inserted.affected() == 1);
  CHECK(inserted.command() == "INSERT 0 1");
  std::optional<std::int64_t> noInt;
  std::optional<std::string> noText;
  must(db.exec("insert NULLs", "INSERT INTO t VALUES ($1, $2, $3, $4)",
               {noInt, noText, nullptr, nullptr}));

  auto rows = must(db.exec("read the rows", "SELECT i, s, b, f FROM t ORDER BY i NULLS LAST"));
  REQUIRE(rows.size() == 2);
  CHECK(rows.integer(0, 0) == -9'007'199'254'740'993);
  CHECK(rows.text(0, 1) == text);
  CHECK(rows.bytes(0, 2) == blob);
  CHECK(rows.boolean(0, 3));
  CHECK(rows.optInteger(0, 0) == -9'007'199'254'740'993);
  CHECK(rows.optText(0, 1) == text);
  CHECK(rows.optBytes(0, 2) == blob);
  CHECK(rows.isNull(1, 0));
  CHECK(rows.optInteger(1, 0) == std::nullopt);
  CHECK(rows.optText(1, 1) == std::nullopt);
  CHECK(rows.optBytes(1, 2) == std::nullopt);
  CHECK(rows.isNull(1, 3));

  auto updated = must(db.exec("update every row", "UPDATE t SET s = $1", {"x"}));
  CHECK(updated.affected() == 2);

  // A NUL cannot be stored in TEXT: refused, not cut short.
  using namespace std::string_view_literals;
  auto nul = db.exec("insert a NUL", "INSERT INTO t (s) VALUES ($1)", {"a\0b"sv});
  REQUIRE_FALSE(nul.has_value());
  CHECK(nul.error().message.find("insert a NUL: parameter $1 holds a NUL byte") !=
        std::string::npos);
}

TEST_CASE("a statement is prepared once per connection and re-used by its text") {
  TestDatabase t;
  auto db = t.connect();
  for (int i = 0; i < 3; ++i) must(db.exec("add one", "SELECT $1::bigint + 1", {i}));
  must(db.exec("something else", "SELECT 2"));
  CHECK(count(db, "SELECT count(*) FROM pg_prepared_statements") == 3);
}

TEST_CASE("an error names the server, the statement's purpose and the SQLSTATE") {
  TestDatabase t;
  auto db = t.connect();
  auto bad = db.exec("read the widgets", "SELECT * FROM widgets");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == "store");
  CHECK(bad.error().message.find(t.name()) != std::string::npos);
  CHECK(bad.error().message.find("127.0.0.1") != std::string::npos);
  CHECK(bad.error().message.find("read the widgets") != std::string::npos);
  CHECK(bad.error().message.find("SQLSTATE 42P01") != std::string::npos);
  CHECK(bad.error().message.find("\"widgets\" does not exist") != std::string::npos);
}

TEST_CASE("a transaction commits on commit() and rolls back when dropped") {
  TestDatabase t;
  auto db = t.connect();
  REQUIRE(db.script("make a table", "CREATE TABLE t (i BIGINT)"));
  {
    auto tx = Transaction::begin(db);
    REQUIRE(tx.has_value());
    must(db.exec("insert", "INSERT INTO t VALUES (1)"));
    REQUIRE(tx->commit().has_value());
  }
  {
    auto tx = Transaction::begin(db, Transaction::Isolation::kSerializable);
    REQUIRE(tx.has_value());
    must(db.exec("insert", "INSERT INTO t VALUES (2)"));
  }  // dropped: rolled back
  CHECK(count(db, "SELECT count(*) FROM t") == 1);
  CHECK(count(db, "SELECT sum(i) FROM t") == 1);

  SUBCASE("a transaction inside a transaction is refused") {
    auto outer = Transaction::begin(db);
    REQUIRE(outer.has_value());
    auto inner = Transaction::begin(db);
    REQUIRE_FALSE(inner.has_value());
    CHECK(inner.error().message.find("already open") != std::string::npos);
  }
  SUBCASE("committing a transaction a statement broke is a failure, not a silent rollback") {
    auto tx = Transaction::begin(db);
    REQUIRE(tx.has_value());
    must(db.exec("insert", "INSERT INTO t VALUES (3)"));
    CHECK_FALSE(db.exec("divide", "SELECT 1 / 0").has_value());
    auto committed = tx->commit();
    REQUIRE_FALSE(committed.has_value());
    CHECK(committed.error().message.find("rolled back") != std::string::npos);
    CHECK(count(db, "SELECT count(*) FROM t") == 1);
  }
}

TEST_CASE("a serialization failure asks for the transaction again (store.retry)") {
  TestDatabase t;
  auto one = t.connect();
  auto two = t.connect();
  REQUIRE(one.script("make a table", "CREATE TABLE t (k BIGINT)"));
  // Write skew: each reads what the other writes. SERIALIZABLE lets only one commit.
  auto txOne = Transaction::begin(one, Transaction::Isolation::kSerializable);
  auto txTwo = Transaction::begin(two, Transaction::Isolation::kSerializable);
  REQUIRE(txOne.has_value());
  REQUIRE(txTwo.has_value());
  must(one.exec("read", "SELECT count(*) FROM t WHERE k = 2"));
  must(two.exec("read", "SELECT count(*) FROM t WHERE k = 1"));
  must(one.exec("write", "INSERT INTO t VALUES (1)"));
  must(two.exec("write", "INSERT INTO t VALUES (2)"));
  REQUIRE(txOne->commit().has_value());
  auto lost = txTwo->commit();
  REQUIRE_FALSE(lost.has_value());
  CHECK(lost.error().code == kRetry);
  CHECK(lost.error().message.find("SQLSTATE 40001") != std::string::npos);
}

TEST_CASE("a connection the server dropped fails with store.unavailable") {
  TestDatabase t;
  auto db = t.connect();
  auto other = t.connect();
  auto pid = must(db.exec("my pid", "SELECT pg_backend_pid()")).integer(0, 0);
  must(other.exec("end it", "SELECT pg_terminate_backend($1)", {pid}));
  auto gone = db.exec("after the end", "SELECT 1");
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error().code == kUnavailable);
  CHECK(db.broken());
  auto again = db.exec("once more", "SELECT 1");
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().code == kUnavailable);
}

TEST_CASE("connecting: the password comes from a file and is never shown") {
  TestDatabase t;
  TempDir dir;
  auto wrong = dir / "wrong-password";
  const std::string secret = "not-the-password-4f1c9a";
  std::ofstream(wrong) << secret << "\n";
  auto db = Connection::connect(t.url(), wrong);
  REQUIRE_FALSE(db.has_value());
  CHECK(db.error().code == kConnect);
  const auto& message = db.error().message;
  INFO(message);
  CHECK(message.find("127.0.0.1:" + std::to_string(PgTestCluster::get().port())) !=
        std::string::npos);
  CHECK(message.find("/" + t.name()) != std::string::npos);
  CHECK(message.find("password authentication failed") != std::string::npos);
  CHECK(message.find(wrong.string()) != std::string::npos);
  CHECK(message.find(secret) == std::string::npos);

  SUBCASE("no password file, where the server asks for one") {
    auto none = Connection::connect(t.url(), {});
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().message.find("asks for a password") != std::string::npos);
  }
  SUBCASE("a password file that cannot be read is named") {
    auto missing = Connection::connect(t.url(), dir / "missing");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == "store.password_file");
    CHECK(missing.error().message.find((dir / "missing").string()) != std::string::npos);
  }
  SUBCASE("an empty password file is refused") {
    std::ofstream(dir / "empty") << "\n";
    auto empty = Connection::connect(t.url(), dir / "empty");
    REQUIRE_FALSE(empty.has_value());
    CHECK(empty.error().code == "store.password_file");
  }
  SUBCASE("a URL carrying a password is refused without showing it") {
    auto url = fmt::format("postgresql://pass:{}@127.0.0.1:{}/{}", secret,
                           PgTestCluster::get().port(), t.name());
    auto refused = Connection::connect(url, wrong);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == "store.url");
    CHECK(refused.error().message.find("password file") != std::string::npos);
    CHECK(refused.error().message.find(secret) == std::string::npos);
  }
  SUBCASE("only postgresql:// URLs") {
    auto refused = Connection::connect("host=127.0.0.1 password=" + secret, wrong);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == "store.url");
    CHECK(refused.error().message.find(secret) == std::string::npos);
  }
}

TEST_CASE("the migrations run from version 1 without a gap") {
  auto all = migrations();
  REQUIRE_FALSE(all.empty());
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].number == static_cast<int>(i + 1));
    CHECK_FALSE(all[i].sql.empty());
  }
  CHECK(all.front().file == "0001_schema.sql");
  CHECK(latestSchemaVersion() == all.back().number);
}

TEST_CASE("a shipped migration is never edited: each keeps the SHA-256 it shipped with") {
  // Databases out there ran each of these as it is (tests/unit/test_home_migrations.cpp says
  // the same of SQLite's). A new migration goes in a new file; add its hash here.
  constexpr std::array<std::string_view, 2> kShipped = {
      "96eda139328814c24a21be5f911c849fc5b5b96fcc14c39dda648ff80cbcefa9",  // 0001_schema
      "393a16a257a87b52cbae50718e0fc62dd898c25612dc10fd6645610a12e25714",  // 0002_cluster_keys
  };
  auto all = migrations();
  REQUIRE(all.size() >= kShipped.size());
  for (std::size_t i = 0; i < kShipped.size(); ++i) {
    CAPTURE(all[i].file);
    CHECK(pass::toHex(pass::sha256(pass::asBytes(all[i].sql))) == kShipped[i]);
  }
}

TEST_CASE("migrating an empty database makes the whole schema, and again nothing") {
  TestDatabase t;
  auto db = t.connect();
  CHECK(schemaVersion(db).value() == 0);
  migrated(db);
  CHECK(schemaVersion(db).value() == latestSchemaVersion());
  for (const char* table :
       {"agents", "envelopes", "heartbeats", "events", "tickets", "ticket_log", "outbox",
        "silences", "storms", "expected_arrays", "leases", "cluster_keys", "schema_version"}) {
    CAPTURE(table);
    CHECK(count(db, fmt::format("SELECT count(*) FROM information_schema.tables WHERE "
                                "table_schema = 'public' AND table_name = '{}'",
                                table)) == 1);
  }
  // SQLite's envelope key tables are not needed here (the schema's comment says why).
  CHECK(count(db,
              "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE "
              "'envelope_keys%'") == 0);
  auto applied = must(db.exec("read", "SELECT version, applied_ms FROM schema_version"));
  REQUIRE(applied.size() == static_cast<int>(migrations().size()));
  auto appliedMs = applied.integer(0, 1);
  CHECK(appliedMs > 1'700'000'000'000);

  migrated(db);
  auto again = must(db.exec("read", "SELECT version, applied_ms FROM schema_version"));
  REQUIRE(again.size() == static_cast<int>(migrations().size()));
  CHECK(again.integer(0, 1) == appliedMs);
  CHECK(migrationLockFree(t));
}

TEST_CASE("two homes migrating at once migrate once") {
  TestDatabase t;
  // A third session holds the migration lock until both runners wait for it, so that they
  // really start together.
  auto holder = t.connect();
  must(holder.exec("hold the lock", "SELECT pg_advisory_lock($1)", {kMigrationLock}));
  Status first, second;
  auto run = [&t](Status& outcome) {
    auto db = Connection::connect(t.url(), PgTestCluster::get().passwordFile());
    outcome = db ? migrate(*db) : Status(std::unexpected(db.error()));
  };
  std::jthread a(run, std::ref(first));
  std::jthread b(run, std::ref(second));
  // Released before the threads are joined, also when a check below fails.
  struct Release {
    Connection& holder;
    ~Release() { (void)holder.exec("release the lock", "SELECT pg_advisory_unlock_all()"); }
  } release{holder};
  waitFor(
      [&] {
        return count(holder,
                     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                     "NOT granted") == 2;
      },
      "both runners to wait for the migration lock");
  must(holder.exec("release the lock", "SELECT pg_advisory_unlock($1)", {kMigrationLock}));
  a.join();
  b.join();
  CHECK_MESSAGE(first.has_value(), errorText(first));
  CHECK_MESSAGE(second.has_value(), errorText(second));
  CHECK(count(holder, "SELECT count(*) FROM schema_version") ==
        static_cast<std::int64_t>(migrations().size()));
}

TEST_CASE("the schema has SQLite's tables and columns, but for each backend's own") {
  using Columns = std::map<std::string, std::set<std::string>>;  // table -> columns
  TempDir dir;
  REQUIRE(Store::open(dir / "home.db", Store::Mode::kCreate).has_value());
  Columns sqlite;
  {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open((dir / "home.db").string().c_str(), &raw) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw,
                               "SELECT m.name, c.name FROM sqlite_schema m, "
                               "pragma_table_info(m.name) c WHERE m.type = 'table'",
                               -1, &stmt, nullptr) == SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      sqlite[reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))].insert(
          reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(raw);
  }
  TestDatabase t;
  auto db = t.connect();
  migrated(db);
  Columns postgres;
  auto rows = must(db.exec("list the columns",
                           "SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = 'public'"));
  for (int r = 0; r < rows.size(); ++r) postgres[rows.text(r, 0)].insert(rows.text(r, 1));

  // SQLite only: the two-level envelope key (the schema's comment says why).
  for (const char* table : {"envelope_keys", "envelope_keys_merged"}) {
    CHECK(sqlite.erase(table) == 1);
  }
  // PostgreSQL only: the cluster's leases and shared keys' fingerprints, the schema's version
  // (SQLite's is a pragma), and SQLite's implicit rowid made a column.
  for (const char* table : {"leases", "cluster_keys", "schema_version"}) {
    CHECK(postgres.erase(table) == 1);
  }
  for (const char* table : {"events", "heartbeats"}) CHECK(postgres[table].erase("id") == 1);
  std::string differences;
  auto only = [&](const Columns& in, const Columns& other, std::string_view where) {
    for (const auto& [table, columns] : in) {
      auto found = other.find(table);
      for (const auto& column : columns) {
        if (found == other.end() || !found->second.contains(column)) {
          differences += fmt::format("{}.{} only in {}; ", table, column, where);
        }
      }
    }
  };
  only(sqlite, postgres, "SQLite");
  only(postgres, sqlite, "PostgreSQL");
  CHECK_MESSAGE(differences.empty(), differences);
}

TEST_CASE("a migration that fails leaves nothing behind and says which it was") {
  TestDatabase t;
  auto db = t.connect();
  REQUIRE(db.script("a table in the way", "CREATE TABLE agents (x BIGINT)"));
  auto failed = migrate(db);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().message.find("migration 0001_schema") != std::string::npos);
  CHECK(failed.error().message.find("SQLSTATE 42P07") != std::string::npos);
  CHECK(schemaVersion(db).value() == 0);
  CHECK(count(db,
              "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
              "'public'") == 1);
}

TEST_CASE("a database a newer pass-home wrote is refused with store.version") {
  TestDatabase t;
  auto db = t.connect();
  migrated(db);
  must(db.exec("pretend a newer pass-home",
               "INSERT INTO schema_version (version, name, applied_ms) VALUES ($1, 'future', 0)",
               {latestSchemaVersion() + 1}));
  auto refused = migrate(db);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "store.version");
  CHECK(refused.error().message.find(t.name()) != std::string::npos);
  CHECK(refused.error().message.find(fmt::format("schema version {} is newer",
                                                 latestSchemaVersion() + 1)) != std::string::npos);
  CHECK(migrationLockFree(t));  // refused without leaving the lock behind
}

TEST_CASE("the schema refuses a second envelope (agent, seq) and a second live ticket") {
  TestDatabase t;
  auto db = t.connect();
  migrated(db);

  must(db.exec("insert an envelope", kInsertEnvelope, {"agent-1", 7}));
  must(db.exec("the same seq, another agent", kInsertEnvelope, {"agent-2", 7}));
  auto twice = db.exec("insert the envelope again", kInsertEnvelope, {"agent-1", 7});
  REQUIRE_FALSE(twice.has_value());
  CHECK(twice.error().code == kUniqueViolation);
  CHECK(twice.error().message.find("insert the envelope again") != std::string::npos);
  CHECK(twice.error().message.find("SQLSTATE 23505") != std::string::npos);
  CHECK(twice.error().message.find("(agent_id, seq)=(agent-1, 7)") != std::string::npos);

  auto live = must(db.exec("open a ticket", kInsertTicket, {"disk/1", "open"})).integer(0, 0);
  auto second = db.exec("open a second ticket", kInsertTicket, {"disk/1", "acknowledged"});
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().code == kUniqueViolation);
  CHECK(second.error().message.find("SQLSTATE 23505") != std::string::npos);
  CHECK(second.error().message.find("tickets_one_live") != std::string::npos);
  // Resolved tickets of the same problem may be many; once resolved, a new one may open.
  must(db.exec("an old resolved ticket", kInsertTicket, {"disk/1", "resolved"}));
  must(db.exec("resolve", "UPDATE tickets SET state = 'resolved' WHERE id = $1", {live}));
  must(db.exec("open again", kInsertTicket, {"disk/1", "open"}));
  CHECK(count(db, "SELECT count(*) FROM tickets WHERE dedup_key = 'disk/1'") == 3);

  // A repeated event with a collector id is dropped, as INSERT OR IGNORE drops it in SQLite.
  constexpr const char* kInsertEvent =
      "INSERT INTO events (agent_id, seq, idx, \"array\", payload, family, event_id) "
      "VALUES ('agent-1', $1, 0, '470849', '{}', 'hitachi-svp', $2) ON CONFLICT DO NOTHING";
  CHECK(must(db.exec("insert an event", kInsertEvent, {1, "e-1"})).affected() == 1);
  CHECK(must(db.exec("repeat the event", kInsertEvent, {2, "e-1"})).affected() == 0);
  CHECK(must(db.exec("an event without id", kInsertEvent, {3, std::optional<std::string>()}))
            .affected() == 1);
  CHECK(must(db.exec("again without id", kInsertEvent, {4, std::optional<std::string>()}))
            .affected() == 1);
}

TEST_CASE("ticket_log is append-only") {
  TestDatabase t;
  auto db = t.connect();
  migrated(db);
  auto ticket = must(db.exec("open a ticket", kInsertTicket, {"disk/1", "open"})).integer(0, 0);
  must(db.exec("log",
               "INSERT INTO ticket_log (ticket_id, at_ms, who, action) "
               "VALUES ($1, 1, 'home', 'opened')",
               {ticket}));
  for (const char* sql : {"UPDATE ticket_log SET who = 'someone else'", "DELETE FROM ticket_log",
                          "TRUNCATE ticket_log"}) {
    CAPTURE(sql);
    auto refused = db.exec("rewrite the log", sql);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.find("ticket_log is append-only") != std::string::npos);
    CHECK(refused.error().message.find("SQLSTATE P0001") != std::string::npos);
  }
  CHECK(count(db, "SELECT count(*) FROM ticket_log WHERE who = 'home'") == 1);
}
