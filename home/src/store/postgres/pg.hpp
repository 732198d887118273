#pragma once
// RAII wrappers for libpq (the only file that calls PQ* is pg.cpp): the connection, a result's
// rows, transactions. Errors become pass::Error naming the server (never the password), the
// statement's purpose and the SQLSTATE.

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "pass/bytes.hpp"
#include "pass/result.hpp"

struct pg_conn;
struct pg_result;

namespace pass::home::postgres {

// Error codes callers act on; everything else is "store" (the SQLSTATE is in the message).
/// SQLSTATE 23505: a unique constraint refused the row.
inline constexpr std::string_view kUniqueViolation = "store.unique";
/// SQLSTATE 40001 or 40P01 (serialization failure, deadlock): run the transaction again.
inline constexpr std::string_view kRetry = "store.retry";
/// The server went away (no answer, SQLSTATE 08…, 57P01 to 57P03).
inline constexpr std::string_view kUnavailable = "store.unavailable";
/// connect() failed, a wrong password included.
inline constexpr std::string_view kConnect = "store.connect";

/// The password in `file` (its first line, trimmed), for the server `where`
/// (postgresql://user@host:port/db). Fails with "store.password_file" when the file cannot be
/// read or its first line is empty.
Result<std::string> readPassword(const std::filesystem::path& file, const std::string& where);

/// One statement parameter, sent in text format except bytes (binary, for BYTEA). Text and
/// bytes are not copied: they must outlive the exec() they are passed to.
class Param {
 public:
  Param(std::nullptr_t) {}
  Param(std::int64_t value) : value_(value) {}
  Param(int value) : value_(std::int64_t{value}) {}
  Param(std::string_view text) : value_(text) {}
  Param(const std::string& text) : value_(std::string_view(text)) {}
  Param(const char* text) : value_(std::string_view(text)) {}
  Param(ByteView bytes) : value_(bytes) {}
  Param(const Bytes& bytes) : value_(ByteView(bytes)) {}
  Param(const std::optional<std::int64_t>& value) {
    if (value) value_ = *value;
  }
  Param(const std::optional<std::string>& text) {
    if (text) value_ = std::string_view(*text);
  }

 private:
  friend class Connection;
  std::variant<std::monostate, std::int64_t, std::string_view, ByteView> value_;
};

/// A PostgreSQL array literal ({"a","b",NULL}), the text of one parameter of a set-based
/// statement (INSERT … SELECT FROM unnest($1::text[], $2::bigint[], …)): one statement for a
/// whole batch instead of one per row. Elements are quoted with `"` and `\` escaped; nullopt
/// is NULL.
class ArrayLiteral {
 public:
  void add(std::string_view text);
  void add(const std::string& text) { add(std::string_view(text)); }
  void add(std::int64_t value);
  void add(const std::optional<std::string>& text);
  void add(const std::optional<std::int64_t>& value);
  void addNull();
  /// The literal, closed: pass it as the statement's parameter.
  const std::string& text();

 private:
  void separate();
  std::string text_ = "{";
  bool closed_ = false;
};

/// The rows of one statement (all in memory; PostgreSQL's text format). Getters take a
/// 0-based row and column and expect the column's SQL type: integer() an int2/int4/int8,
/// text() any, bytes() a BYTEA, boolean() a BOOLEAN. NULL reads as std::nullopt from the opt
/// getters and as 0, "" or empty from the others.
class Rows {
 public:
  Rows() = default;
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  ~Rows();

  int size() const;
  /// Rows an INSERT, UPDATE or DELETE changed (0 for other statements).
  std::int64_t affected() const;
  /// The command tag: "INSERT 0 1", "COMMIT", "ROLLBACK"…
  std::string_view command() const;

  bool isNull(int row, int column) const;
  std::int64_t integer(int row, int column) const;
  std::optional<std::int64_t> optInteger(int row, int column) const;
  std::string text(int row, int column) const;
  std::optional<std::string> optText(int row, int column) const;
  Bytes bytes(int row, int column) const;
  std::optional<Bytes> optBytes(int row, int column) const;
  bool boolean(int row, int column) const;

 private:
  friend class Connection;
  explicit Rows(pg_result* result) : result_(result) {}
  pg_result* result_ = nullptr;
};

class Connection {
 public:
  /// Connects to a libpq URL (postgresql://user@host:port/database?options). The password is
  /// read from `passwordFile` (its first line), never from the URL, which must not carry one;
  /// an empty path sends none (peer or trust authentication, or libpq's ~/.pgpass).
  static Result<Connection> connect(std::string_view url,
                                    const std::filesystem::path& passwordFile);

  Connection() = default;
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  /// One statement with $1, $2… parameters, prepared on its first use on this connection and
  /// re-used by its text afterwards. `purpose` says what it does, for the error.
  Result<Rows> exec(std::string_view purpose, std::string_view sql,
                    std::initializer_list<Param> params = {});
  /// exec() with a number of parameters known only at run time.
  Result<Rows> exec(std::string_view purpose, std::string_view sql, std::span<const Param> params);
  /// One or more statements without parameters (a migration script), in one round trip.
  Status script(std::string_view purpose, std::string_view sql);

  /// "postgresql://user@host:port/database", for messages: never the password.
  const std::string& where() const { return where_; }
  /// True once the server is gone; every call then fails with kUnavailable (connect anew).
  bool broken() const;

 private:
  friend class Transaction;
  /// Through the simple query protocol: several statements, none prepared.
  Result<Rows> simple(std::string_view purpose, std::string_view sql);
  /// The result's rows, or the error it carries (consumed either way).
  Result<Rows> take(std::string_view purpose, pg_result* result);

  pg_conn* conn_ = nullptr;
  std::string where_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
};

/// BEGIN on creation; commit() commits, destruction without commit() rolls back.
class Transaction {
 public:
  enum class Isolation { kReadCommitted, kRepeatableRead, kSerializable };

  static Result<Transaction> begin(Connection& db, Isolation isolation = Isolation::kReadCommitted);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();
  Status commit();
  Status rollback();

 private:
  explicit Transaction(Connection* db) : db_(db) {}
  Connection* db_ = nullptr;
};

}  // namespace pass::home::postgres
