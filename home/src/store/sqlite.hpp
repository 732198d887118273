#pragma once
// RAII wrappers for SQLite (the only file that calls sqlite3_* is sqlite.cpp). SQLite result
// codes become pass::Error here, with the database file and the statement in the message.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

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
