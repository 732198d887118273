#pragma once
// RAII wrappers for SQLite (the only file that calls sqlite3_* is sqlite.cpp). SQLite result
// codes become pass::Error here, with the database file and the statement in the message.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace pass::home::sqlite {

class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. Binding cannot fail for the sizes we bind (the
  // request body limit keeps every value far below SQLITE_MAX_LENGTH). Text and blobs are
  // bound without a copy: they must outlive the next step()/run().
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const std::string& text) {
    return bind(index, std::string_view(text));
  }
  Statement& bind(int index, const std::optional<std::int64_t>& value);
  Statement& bind(int index, const std::optional<std::string>& text);
  Statement& bindBlob(int index, ByteView blob);
  Statement& bindNull(int index);

  /// Advances: true when a row is available, false when done.
  Result<bool> step();
  /// Runs a statement that returns no rows to completion and resets it.
  Status run();
  /// Resets for re-use and clears the bindings.
  void reset();

  /// Runs a query to its end, handing each row to `onRow(const Statement&)`, then resets it
  /// (also when a step fails).
  template <typename OnRow>
  Status forEachRow(OnRow&& onRow) {
    while (true) {
      auto row = step();
      if (!row) {
        reset();
        return std::unexpected(row.error());
      }
      if (!*row) break;
      onRow(std::as_const(*this));
    }
    reset();
    return {};
  }
  /// Every row of a query, as `read(const Statement&)` makes it.
  template <typename Read>
  auto rows(Read&& read) -> Result<std::vector<std::invoke_result_t<Read&, const Statement&>>> {
    std::vector<std::invoke_result_t<Read&, const Statement&>> out;
    auto done = forEachRow([&](const Statement& s) { out.push_back(read(s)); });
    if (!done) return std::unexpected(done.error());
    return out;
  }
  /// The first row of a query as `read(const Statement&)` makes it, or nullopt when there is
  /// none; then resets it.
  template <typename Read>
  auto firstRow(Read&& read)
      -> Result<std::optional<std::invoke_result_t<Read&, const Statement&>>> {
    auto row = step();
    std::optional<std::invoke_result_t<Read&, const Statement&>> out;
    if (row && *row) out = read(std::as_const(*this));
    reset();
    if (!row) return std::unexpected(row.error());
    return out;
  }

  bool isNull(int column) const;
  std::int64_t columnInt(int column) const;
  std::optional<std::int64_t> columnOptInt(int column) const;
  std::string columnText(int column) const;
  std::optional<std::string> columnOptText(int column) const;
  Bytes columnBlob(int column) const;

 private:
  friend class Database;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  enum class Mode { kOpenExisting, kCreate };

  static Result<Database> open(const std::filesystem::path& file, Mode mode);

  Database() = default;
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  /// Runs one or more statements without results.
  Status exec(std::string_view sql);
  /// Prepares a statement meant to be kept and re-used.
  Result<Statement> prepare(std::string_view sql);
  /// Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t changes() const;
  /// The rowid of the last successful INSERT on this connection.
  std::int64_t lastInsertRowid() const;
  /// Result of a single-integer query such as "PRAGMA user_version".
  Result<std::int64_t> queryInt(std::string_view sql);

  const std::string& file() const { return file_; }

 private:
  sqlite3* db_ = nullptr;
  std::string file_;
};

/// Statements prepared on first use and kept for the connection's lifetime, keyed by their SQL
/// text's address (a string literal): for code with many statements, each run often.
class StatementCache {
 public:
  Result<Statement*> get(Database& db, const char* sql);

 private:
  std::unordered_map<const char*, Statement> statements_;
};

/// The statement in `slot`, prepared on first use and kept: for statements run so often that
/// preparing would cost more than running them.
Result<Statement*> prepareOnce(Database& db, std::optional<Statement>& slot, std::string_view sql);

/// Commits on commit(); rolls back when destroyed uncommitted.
class Transaction {
 public:
  /// BEGIN IMMEDIATE: takes the write lock at once so that commits never deadlock.
  static Result<Transaction> beginImmediate(Database& db);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();
  Status commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_ = nullptr;
};

}  // namespace pass::home::sqlite
