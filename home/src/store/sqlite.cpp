// A thin RAII wrapper of SQLite: the connection, prepared statements, transactions.

#include "store/sqlite.hpp"

#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

namespace pass::home::sqlite {
namespace {

std::unexpected<Error> sqliteError(sqlite3* db, std::string_view what) {
  const char* file = db ? sqlite3_db_filename(db, "main") : nullptr;
  return fail("store", fmt::format("{}: {}: {}", file && *file ? file : "database", what,
                                   db ? sqlite3_errmsg(db) : "out of memory"));
}

std::string_view statementText(sqlite3_stmt* stmt) {
  const char* sql = sqlite3_sql(stmt);
  return sql ? std::string_view(sql) : std::string_view("statement");
}

}  // namespace

Statement::Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
  return *this;
}

Statement& Statement::bind(int index, const std::optional<std::int64_t>& value) {
  return value ? bind(index, *value) : bindNull(index);
}

Statement& Statement::bind(int index, const std::optional<std::string>& text) {
  return text ? bind(index, std::string_view(*text)) : bindNull(index);
}

Statement& Statement::bindBlob(int index, ByteView blob) {
  sqlite3_bind_blob64(stmt_, index, blob.data(), blob.size(), SQLITE_STATIC);
  return *this;
}

Statement& Statement::bindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  auto error = sqliteError(sqlite3_db_handle(stmt_), statementText(stmt_));
  sqlite3_reset(stmt_);
  return error;
}

Status Statement::run() {
  auto stepped = step();
  reset();
  if (!stepped) return std::unexpected(stepped.error());
  return {};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::isNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t Statement::columnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

std::optional<std::int64_t> Statement::columnOptInt(int column) const {
  if (isNull(column)) return std::nullopt;
  return columnInt(column);
}

std::string Statement::columnText(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (!text) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::optional<std::string> Statement::columnOptText(int column) const {
  if (isNull(column)) return std::nullopt;
  return columnText(column);
}

Bytes Statement::columnBlob(int column) const {
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  if (!data) return {};
  return Bytes(data, data + sqlite3_column_bytes(stmt_, column));
}

Result<Database> Database::open(const std::filesystem::path& file, Mode mode) {
  if (mode == Mode::kOpenExisting && !std::filesystem::exists(file)) {
    return fail("not_initialized",
                fmt::format("{}: no such database; run 'pass-home init' first", file.string()));
  }
  Database db;
  db.file_ = file.string();
  // NOMUTEX: each connection is used by one thread at a time, so SQLite's own locking of the
  // connection is pure overhead on the ingest path.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (mode == Mode::kCreate) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(db.file_.c_str(), &db.db_, flags, nullptr);
  if (rc != SQLITE_OK) return sqliteError(db.db_, "open");
  sqlite3_extended_result_codes(db.db_, 1);
  return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), file_(std::move(other.file_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    file_ = std::move(other.file_);
  }
  return *this;
}

Database::~Database() { sqlite3_close_v2(db_); }

Status Database::exec(std::string_view sql) {
  std::string text(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  std::string reason = message ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return fail("store", fmt::format("{}: {}: {}", file_, text.substr(0, 60), reason));
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return sqliteError(db_, sql);
  return Statement(stmt);
}

std::int64_t Database::changes() const { return sqlite3_changes64(db_); }

std::int64_t Database::lastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }

Result<std::int64_t> Database::queryInt(std::string_view sql) {
  auto stmt = prepare(sql);
  if (!stmt) return std::unexpected(stmt.error());
  auto row = stmt->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail("store", fmt::format("{}: {}: no result", file_, sql));
  return stmt->columnInt(0);
}

Result<Statement*> StatementCache::get(Database& db, const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    auto prepared = db.prepare(sql);
    if (!prepared) return std::unexpected(prepared.error());
    it = statements_.emplace(sql, std::move(*prepared)).first;
  }
  return &it->second;
}

Result<Statement*> prepareOnce(Database& db, std::optional<Statement>& slot, std::string_view sql) {
  if (!slot) {
    auto prepared = db.prepare(sql);
    if (!prepared) return std::unexpected(prepared.error());
    slot = std::move(*prepared);
  }
  return &*slot;
}

Result<Transaction> Transaction::beginImmediate(Database& db) {
  if (auto begun = db.exec("BEGIN IMMEDIATE"); !begun) return std::unexpected(begun.error());
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  if (db_) (void)db_->exec("ROLLBACK");
}

Status Transaction::commit() {
  auto committed = db_->exec("COMMIT");
  // After a failed COMMIT the transaction may still be open; the destructor rolls it back.
  if (committed) db_ = nullptr;
  return committed;
}

}  // namespace pass::home::sqlite
