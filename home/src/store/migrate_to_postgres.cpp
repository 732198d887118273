// `pass-home migrate --to postgresql://…`: an SQLite home's store copied into an empty
// PostgreSQL database in one transaction, then recorded as the state's store
// (pass/home/state_store.hpp, docs/scale-out.md "Moving an SQLite home to PostgreSQL").

#include <algorithm>
#include <array>
#include <deque>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pass/home/state_store.hpp"
#include "platform/lock.hpp"
#include "store/postgres/migrate.hpp"
#include "store/postgres/pg.hpp"
#include "store/sqlite.hpp"

namespace pass::home {

namespace {

namespace fs = std::filesystem;

/// The tables copied, parents before the tables that reference them. PostgreSQL's columns
/// (information_schema) say what is copied and as which type; the SQLite table must have the
/// same columns, except `id` where SQLite keeps its implicit rowid (events, heartbeats).
constexpr std::array<std::string_view, 10> kTables = {
    "agents",     "envelopes", "heartbeats", "events", "tickets",
    "ticket_log", "outbox",    "silences",   "storms", "expected_arrays"};
/// PostgreSQL's own tables, not copied: the schema's version (its migrations wrote it; first,
/// the one table a new database has rows in), the cluster's leases (none held by an SQLite
/// home) and its keys (recorded by the first home that serves from it).
constexpr std::array<std::string_view, 3> kPostgresOnly = {"schema_version", "leases",
                                                           "cluster_keys"};
/// SQLite's own tables: the (agent, seq) key kept apart from envelopes (PostgreSQL's is a
/// UNIQUE constraint of envelopes), and SQLite's bookkeeping.
constexpr std::array<std::string_view, 3> kSqliteOnly = {"envelope_keys", "envelope_keys_merged",
                                                         "sqlite_sequence"};
/// Rows per INSERT (PostgreSQL takes at most 65535 parameters per statement).
constexpr std::size_t kRowsPerInsert = 200;

enum class Kind { kInteger, kText, kBytes };

struct Column {
  std::string name;
  Kind kind = Kind::kText;
};

struct Table {
  std::string_view name;
  std::vector<Column> columns;  // PostgreSQL's, in its order
  bool rowidIsId = false;       // SQLite has no `id` column: its rowid is it
  bool hasSerialId = false;     // PostgreSQL's id is a BIGSERIAL to move past the copied ids
};

std::string sqlName(std::string_view name) { return fmt::format("\"{}\"", name); }

bool contains(std::span<const std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

/// The refusals a person can act on exit with 2 ("migrate." codes, admin.cpp's exitCodeFor).
std::unexpected<Error> refuse(std::string_view what, std::string message) {
  return fail(fmt::format("migrate.{}", what), std::move(message));
}

Result<std::vector<Table>> describeTables(postgres::Connection& pg, sqlite::Database& lite) {
  auto pgTables = pg.exec("list the tables",
                          "SELECT table_name FROM information_schema.tables "
                          "WHERE table_schema = current_schema() ORDER BY table_name");
  if (!pgTables) return std::unexpected(pgTables.error());
  for (int r = 0; r < pgTables->size(); ++r) {
    auto name = pgTables->text(r, 0);
    if (!contains(kTables, name) && !contains(kPostgresOnly, name)) {
      return fail("migrate.schema", fmt::format("{}: table {} is not known to the copy; this "
                                                "pass-home cannot migrate to that database",
                                                pg.where(), name));
    }
  }
  auto liteTables = lite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'");
  if (!liteTables) return std::unexpected(liteTables.error());
  auto liteNames = liteTables->rows([](const sqlite::Statement& s) { return s.columnText(0); });
  if (!liteNames) return std::unexpected(liteNames.error());
  for (const auto& name : *liteNames) {
    if (!contains(kTables, name) && !contains(kSqliteOnly, name)) {
      return fail("migrate.schema",
                  fmt::format("{}: table {} is not known to the copy", lite.file(), name));
    }
  }

  std::vector<Table> tables;
  for (std::string_view name : kTables) {
    Table table{.name = name, .columns = {}};
    auto cols = pg.exec("read the table's columns",
                        "SELECT column_name, data_type, coalesce(column_default, '') "
                        "FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = $1 "
                        "ORDER BY ordinal_position",
                        {name});
    if (!cols) return std::unexpected(cols.error());
    for (int r = 0; r < cols->size(); ++r) {
      auto type = cols->text(r, 1);
      Column c{.name = cols->text(r, 0)};
      if (type == "bigint") {
        c.kind = Kind::kInteger;
      } else if (type == "text") {
        c.kind = Kind::kText;
      } else if (type == "bytea") {
        c.kind = Kind::kBytes;
      } else {
        return fail("migrate.schema", fmt::format("{}: {}.{} has the type {}, which the copy "
                                                  "does not know",
                                                  pg.where(), name, c.name, type));
      }
      if (c.name == "id" && cols->text(r, 2).starts_with("nextval(")) table.hasSerialId = true;
      table.columns.push_back(std::move(c));
    }
    auto info = lite.prepare(fmt::format("SELECT name FROM pragma_table_info('{}')", name));
    if (!info) return std::unexpected(info.error());
    auto liteCols = info->rows([](const sqlite::Statement& s) { return s.columnText(0); });
    if (!liteCols) return std::unexpected(liteCols.error());
    std::set<std::string> want;
    for (const auto& c : table.columns) want.insert(c.name);
    std::set<std::string> have(liteCols->begin(), liteCols->end());
    if (!have.contains("id") && want.contains("id")) {
      table.rowidIsId = true;
      have.insert("id");
    }
    if (have != want) {
      return fail("migrate.schema", fmt::format("table {} has the columns {} in {} but {} in {}",
                                                name, have, lite.file(), want, pg.where()));
    }
    tables.push_back(std::move(table));
  }
  return tables;
}

/// The values of up to kRowsPerInsert rows, kept alive while their INSERT runs.
struct Batch {
  std::deque<std::string> texts;
  std::deque<Bytes> bytes;
  std::vector<postgres::Param> params;
  std::size_t rows = 0;
  void clear() {
    texts.clear();
    bytes.clear();
    params.clear();
    rows = 0;
  }
};

std::string insertSql(const Table& table, std::size_t rows) {
  std::vector<std::string> names;
  for (const auto& c : table.columns) names.push_back(sqlName(c.name));
  std::string sql =
      fmt::format("INSERT INTO {} ({}) VALUES ", sqlName(table.name), fmt::join(names, ", "));
  std::size_t n = 1;
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<std::string> marks;
    for (std::size_t c = 0; c < table.columns.size(); ++c) marks.push_back(fmt::format("${}", n++));
    sql += fmt::format("{}({})", r ? ", " : "", fmt::join(marks, ", "));
  }
  return sql;
}

/// tickets.parent_id is set once every ticket is there (a parent may come after its child).
bool isParentColumn(const Table& table, const Column& c) {
  return table.name == "tickets" && c.name == "parent_id";
}

Result<std::int64_t> copyTable(const Table& table, sqlite::Database& lite,
                               postgres::Connection& pg) {
  std::vector<std::string> select;
  for (const auto& c : table.columns) {
    select.push_back(c.name == "id" && table.rowidIsId ? std::string("rowid") : sqlName(c.name));
  }
  // In the order of the first column: the id where there is one, so rows keep their order.
  auto query = lite.prepare(
      fmt::format("SELECT {} FROM {} ORDER BY 1", fmt::join(select, ", "), sqlName(table.name)));
  if (!query) return std::unexpected(query.error());
  Batch batch;
  std::int64_t copied = 0;
  auto flush = [&]() -> Status {
    if (batch.rows == 0) return {};
    auto done = pg.exec(fmt::format("copy {} rows of {}", batch.rows, table.name),
                        insertSql(table, batch.rows), batch.params);
    if (!done) return std::unexpected(done.error());
    copied += static_cast<std::int64_t>(batch.rows);
    batch.clear();
    return {};
  };
  std::optional<Error> failed;
  auto read = query->forEachRow([&](const sqlite::Statement& s) {
    if (failed) return;
    for (int i = 0; i < static_cast<int>(table.columns.size()); ++i) {
      const auto& c = table.columns[static_cast<std::size_t>(i)];
      if (s.isNull(i) || isParentColumn(table, c)) {
        batch.params.emplace_back(nullptr);
      } else if (c.kind == Kind::kInteger) {
        batch.params.emplace_back(s.columnInt(i));
      } else if (c.kind == Kind::kText) {
        batch.params.emplace_back(std::string_view(batch.texts.emplace_back(s.columnText(i))));
      } else {
        batch.params.emplace_back(ByteView(batch.bytes.emplace_back(s.columnBlob(i))));
      }
    }
    if (++batch.rows == kRowsPerInsert) {
      if (auto done = flush(); !done) failed = done.error();
    }
  });
  if (!read) return std::unexpected(read.error());
  if (failed) return std::unexpected(*failed);
  if (auto done = flush(); !done) return std::unexpected(done.error());
  if (table.name == "tickets") {
    // The parents, now that every ticket is there.
    auto parents = lite.prepare("SELECT id, parent_id FROM tickets WHERE parent_id IS NOT NULL");
    if (!parents) return std::unexpected(parents.error());
    auto pairs = parents->rows([](const sqlite::Statement& s) {
      return std::pair{s.columnInt(0), s.columnInt(1)};
    });
    if (!pairs) return std::unexpected(pairs.error());
    for (auto [id, parent] : *pairs) {
      auto set = pg.exec("set a ticket's parent", "UPDATE tickets SET parent_id = $2 WHERE id = $1",
                         {id, parent});
      if (!set) return std::unexpected(set.error());
    }
  }
  return copied;
}

Result<std::int64_t> countPostgres(postgres::Connection& pg, std::string_view table) {
  auto rows = pg.exec(fmt::format("count {}", table),
                      fmt::format("SELECT count(*) FROM {}", sqlName(table)));
  if (!rows) return std::unexpected(rows.error());
  return rows->integer(0, 0);
}

}  // namespace

Result<std::vector<MigratedTable>> migrateToPostgres(const StatePaths& paths,
                                                     const StoreLocation& target) {
  if (target.postgresUrl.empty()) return refuse("usage", "--to names no PostgreSQL database");
  std::error_code ec;
  if (fs::exists(paths.databaseConfig(), ec)) {
    return refuse("already", fmt::format("{}: this home's store is PostgreSQL already",
                                         paths.databaseConfig().string()));
  }
  // No serve on this state while copying, and none starting until the state names the new
  // store (serve holds the lock shared; pass/home/state_store.hpp).
  auto lock = platform::FileLock::tryAcquire(serveLockFile(paths));
  if (!lock) {
    if (lock.error().code == "locked") {
      return refuse("serving", fmt::format("{}: a pass-home serve is running on this state; stop "
                                           "every one first (the lock {} is held)",
                                           paths.dir.string(), serveLockFile(paths).string()));
    }
    return std::unexpected(lock.error());
  }
  // Brings the SQLite file to this pass-home's schema first, as every command does.
  if (auto store = Store::open(paths.sqliteDatabase(), Store::Mode::kOpenExisting); !store) {
    return std::unexpected(store.error());
  }
  auto lite = sqlite::Database::open(paths.sqliteDatabase(), sqlite::Database::Mode::kOpenExisting);
  if (!lite) return std::unexpected(lite.error());
  auto pg = postgres::Connection::connect(target.postgresUrl, target.passwordFile);
  if (!pg) return std::unexpected(pg.error());
  if (auto migrated = postgres::migrate(*pg); !migrated) return std::unexpected(migrated.error());

  auto tables = describeTables(*pg, *lite);
  if (!tables) return std::unexpected(tables.error());
  // One snapshot of the SQLite file, one transaction on PostgreSQL.
  if (auto begun = lite->exec("BEGIN"); !begun) return std::unexpected(begun.error());
  auto tx = postgres::Transaction::begin(*pg);
  if (!tx) return std::unexpected(tx.error());
  std::vector<std::string> all;
  for (const auto& t : *tables) all.push_back(sqlName(t.name));
  if (auto locked = pg->exec("lock the tables",
                             fmt::format("LOCK TABLE {} IN EXCLUSIVE MODE", fmt::join(all, ", ")));
      !locked) {
    return std::unexpected(locked.error());
  }
  std::vector<std::string_view> everyTable(kTables.begin(), kTables.end());
  everyTable.insert(everyTable.end(), kPostgresOnly.begin() + 1, kPostgresOnly.end());
  for (std::string_view name : everyTable) {
    auto n = countPostgres(*pg, name);
    if (!n) return std::unexpected(n.error());
    if (*n > 0) {
      return refuse("target_not_empty",
                    fmt::format("{}: the database is not empty (table {} holds {} rows); migrate "
                                "copies only into an empty database",
                                pg->where(), name, *n));
    }
  }

  std::vector<MigratedTable> report;
  for (const auto& table : *tables) {
    auto copied = copyTable(table, *lite, *pg);
    if (!copied) return std::unexpected(copied.error());
    auto inSqlite = lite->queryInt(fmt::format("SELECT count(*) FROM {}", sqlName(table.name)));
    if (!inSqlite) return std::unexpected(inSqlite.error());
    auto inPostgres = countPostgres(*pg, table.name);
    if (!inPostgres) return std::unexpected(inPostgres.error());
    if (*inSqlite != *copied || *inPostgres != *copied) {
      return fail(
          "migrate.count",
          fmt::format("table {}: {} rows in {}, {} copied, {} in {}; nothing was kept", table.name,
                      *inSqlite, lite->file(), *copied, *inPostgres, pg->where()));
    }
    if (table.hasSerialId) {
      // The next id after the copied ones (1 when none was copied).
      auto moved = pg->exec(fmt::format("move {}'s id sequence", table.name),
                            fmt::format("SELECT setval(pg_get_serial_sequence('{0}', 'id'), "
                                        "coalesce(max(id), 1), max(id) IS NOT NULL) FROM {1}",
                                        table.name, sqlName(table.name)));
      if (!moved) return std::unexpected(moved.error());
    }
    report.push_back({std::string(table.name), *copied});
  }
  if (auto committed = tx->commit(); !committed) return std::unexpected(committed.error());
  (void)lite->exec("COMMIT");
  if (auto recorded = recordPostgresStore(paths, target); !recorded) {
    return fail(recorded.error().code,
                fmt::format("{} (the copy in {} is committed; the state still names the SQLite "
                            "store: fix this and record the database by hand, "
                            "docs/scale-out.md)",
                            recorded.error().message, pg->where()));
  }
  return report;
}

}  // namespace pass::home
