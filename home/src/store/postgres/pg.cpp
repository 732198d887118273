// A thin RAII wrapper of libpq: the connection (URL and password file), statements prepared
// once per connection, rows with typed getters, transactions.

#include "store/postgres/pg.hpp"

#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <libpq-fe.h>

namespace pass::home::postgres {
namespace {

constexpr Oid kByteaOid = 17;  // pg_type.oid of BYTEA (src/include/catalog/pg_type.dat)

std::string trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

std::string_view codeOf(std::string_view sqlstate) {
  if (sqlstate == "23505") return kUniqueViolation;
  if (sqlstate == "40001" || sqlstate == "40P01") return kRetry;
  if (sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03") {
    return kUnavailable;
  }
  return "store";
}

std::unexpected<Error> resultError(pg_conn* conn, const std::string& where,
                                   std::string_view purpose, const PGresult* result) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (!state) {
    // No answer from the server: the connection is gone (libpq says why).
    return fail(std::string(kUnavailable),
                fmt::format("{}: {}: {}", where, purpose, trimmed(PQerrorMessage(conn))));
  }
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL);
  return fail(std::string(codeOf(state)),
              fmt::format("{}: {}: SQLSTATE {}: {}{}{}{}", where, purpose, state,
                          primary ? primary : "error", detail ? " (" : "", detail ? detail : "",
                          detail ? ")" : ""));
}

/// "postgresql://user@host:port/database", from the URL's parts (never its password).
std::string describe(const PQconninfoOption* options) {
  auto value = [&](std::string_view keyword) -> std::string {
    for (auto* o = options; o->keyword; ++o) {
      if (keyword == o->keyword && o->val && *o->val) return o->val;
    }
    return {};
  };
  auto user = value("user");
  auto host = value("host");
  auto port = value("port");
  return fmt::format("postgresql://{}{}{}{}{}/{}", user, user.empty() ? "" : "@",
                     host.empty() ? "localhost" : host, port.empty() ? "" : ":", port,
                     value("dbname"));
}

}  // namespace

Result<std::string> readPassword(const std::filesystem::path& file, const std::string& where) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return fail("store.password_file", fmt::format("{}: cannot read the password for {}: {}",
                                                   file.string(), where, std::strerror(errno)));
  }
  std::string line;
  std::getline(in, line);
  line = trimmed(line);
  if (line.empty()) {
    return fail("store.password_file",
                fmt::format("{}: the password for {} is empty (the file's first line is the "
                            "password)",
                            file.string(), where));
  }
  return line;
}

void ArrayLiteral::separate() {
  if (closed_) {
    text_.pop_back();  // add() after text(): the literal is open again
    closed_ = false;
  }
  if (text_.size() > 1) text_ += ',';
}

void ArrayLiteral::add(std::string_view text) {
  separate();
  text_ += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void ArrayLiteral::add(std::int64_t value) {
  separate();
  fmt::format_to(std::back_inserter(text_), "{}", value);
}

void ArrayLiteral::add(const std::optional<std::string>& text) {
  if (text) {
    add(std::string_view(*text));
  } else {
    addNull();
  }
}

void ArrayLiteral::add(const std::optional<std::int64_t>& value) {
  if (value) {
    add(*value);
  } else {
    addNull();
  }
}

void ArrayLiteral::addNull() {
  separate();
  text_ += "NULL";
}

const std::string& ArrayLiteral::text() {
  if (!closed_) {
    text_ += '}';
    closed_ = true;
  }
  return text_;
}

Rows::Rows(Rows&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}

Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

Rows::~Rows() { PQclear(result_); }

int Rows::size() const { return result_ ? PQntuples(result_) : 0; }

std::int64_t Rows::affected() const {
  const char* n = result_ ? PQcmdTuples(result_) : "";
  std::int64_t value = 0;
  std::from_chars(n, n + std::strlen(n), value);
  return value;
}

std::string_view Rows::command() const { return result_ ? PQcmdStatus(result_) : ""; }

bool Rows::isNull(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }

std::int64_t Rows::integer(int row, int column) const {
  const char* text = PQgetvalue(result_, row, column);
  std::int64_t value = 0;
  std::from_chars(text, text + PQgetlength(result_, row, column), value);
  return value;
}

std::optional<std::int64_t> Rows::optInteger(int row, int column) const {
  if (isNull(row, column)) return std::nullopt;
  return integer(row, column);
}

std::string Rows::text(int row, int column) const {
  return std::string(PQgetvalue(result_, row, column),
                     static_cast<std::size_t>(PQgetlength(result_, row, column)));
}

std::optional<std::string> Rows::optText(int row, int column) const {
  if (isNull(row, column)) return std::nullopt;
  return text(row, column);
}

Bytes Rows::bytes(int row, int column) const {
  std::size_t size = 0;
  auto* raw = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, column)), &size);
  if (!raw) return {};
  Bytes out(raw, raw + size);
  PQfreemem(raw);
  return out;
}

std::optional<Bytes> Rows::optBytes(int row, int column) const {
  if (isNull(row, column)) return std::nullopt;
  return bytes(row, column);
}

bool Rows::boolean(int row, int column) const { return PQgetvalue(result_, row, column)[0] == 't'; }

Result<Connection> Connection::connect(std::string_view url,
                                       const std::filesystem::path& passwordFile) {
  if (!url.starts_with("postgresql://") && !url.starts_with("postgres://")) {
    return fail("store.url",
                "the database must be a URL postgresql://user@host:port/database (the password "
                "comes from a file)");
  }
  std::string urlText(url);
  char* parseError = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(urlText.c_str(), &parseError), &PQconninfoFree);
  if (!options) {
    std::string reason = parseError ? trimmed(parseError) : "out of memory";
    PQfreemem(parseError);
    return fail("store.url", fmt::format("the database URL is not valid: {}", reason));
  }
  Connection db;
  db.where_ = describe(options.get());
  for (auto* o = options.get(); o->keyword; ++o) {
    if (std::string_view(o->keyword) == "password" && o->val) {
      return fail("store.url",
                  fmt::format("{}: the URL carries a password; put it in a password file "
                              "instead (a command line is visible to every user)",
                              db.where_));
    }
  }
  std::string password;
  if (!passwordFile.empty()) {
    auto read = readPassword(passwordFile, db.where_);
    if (!read) return std::unexpected(read.error());
    password = std::move(*read);
  }
  // Keywords are applied in order: the URL (dbname, expanded) may override the timeout and
  // the application name; nothing overrides the password from the file.
  const char* keywords[] = {"connect_timeout", "fallback_application_name", "dbname",
                            passwordFile.empty() ? nullptr : "password", nullptr};
  const char* values[] = {"10", "pass-home", urlText.c_str(), password.c_str(), nullptr};
  db.conn_ = PQconnectdbParams(keywords, values, 1);
  if (!db.conn_) return fail(std::string(kConnect), db.where_ + ": out of memory");
  if (PQstatus(db.conn_) != CONNECTION_OK) {
    std::string hint;
    if (PQconnectionNeedsPassword(db.conn_)) {
      hint = "; the server asks for a password: give a password file";
    } else if (PQconnectionUsedPassword(db.conn_)) {
      hint = fmt::format(" (password from {})", passwordFile.string());
    }
    return fail(std::string(kConnect), fmt::format("{}: cannot connect: {}{}", db.where_,
                                                   trimmed(PQerrorMessage(db.conn_)), hint));
  }
  // Notices ("…already exists, skipping") would go to stderr, which is the home's JSON log.
  PQsetNoticeProcessor(
      db.conn_, [](void*, const char*) {}, nullptr);
  return db;
}

Connection::Connection(Connection&& other) noexcept
    : conn_(std::exchange(other.conn_, nullptr)),
      where_(std::move(other.where_)),
      prepared_(std::move(other.prepared_)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    PQfinish(conn_);
    conn_ = std::exchange(other.conn_, nullptr);
    where_ = std::move(other.where_);
    prepared_ = std::move(other.prepared_);
  }
  return *this;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return !conn_ || PQstatus(conn_) == CONNECTION_BAD; }

Result<Rows> Connection::exec(std::string_view purpose, std::string_view sql,
                              std::initializer_list<Param> params) {
  return exec(purpose, sql, std::span<const Param>(params.begin(), params.size()));
}

Result<Rows> Connection::exec(std::string_view purpose, std::string_view sql,
                              std::span<const Param> params) {
  if (broken()) {
    return fail(std::string(kUnavailable),
                fmt::format("{}: {}: the connection is closed", where_, purpose));
  }
  // Text parameters must be NUL-terminated; bytes go in binary, with their length.
  const auto n = params.size();
  std::vector<std::string> texts(n);
  std::vector<const char*> values(n, nullptr);
  std::vector<int> lengths(n, 0);
  std::vector<int> formats(n, 0);
  std::vector<Oid> types(n, 0);
  std::size_t i = 0;
  for (const Param& p : params) {
    if (auto* v = std::get_if<std::int64_t>(&p.value_)) {
      texts[i] = fmt::format("{}", *v);
      values[i] = texts[i].c_str();
    } else if (auto* t = std::get_if<std::string_view>(&p.value_)) {
      // Sent as a C string, a NUL would cut the text short; PostgreSQL's TEXT cannot hold one.
      if (t->find('\0') != std::string_view::npos) {
        return fail("store", fmt::format("{}: {}: parameter ${} holds a NUL byte, which "
                                         "PostgreSQL's text cannot store",
                                         where_, purpose, i + 1));
      }
      texts[i] = std::string(*t);
      values[i] = texts[i].c_str();
    } else if (auto* b = std::get_if<ByteView>(&p.value_)) {
      values[i] = reinterpret_cast<const char*>(b->data());
      lengths[i] = static_cast<int>(b->size());
      formats[i] = 1;
      types[i] = kByteaOid;
    }
    ++i;
  }
  std::string text(sql);
  auto found = prepared_.find(text);
  if (found == prepared_.end()) {
    auto name = fmt::format("pass_{}", prepared_.size() + 1);
    auto prepared = take(
        purpose, PQprepare(conn_, name.c_str(), text.c_str(), static_cast<int>(n), types.data()));
    if (!prepared) return prepared;
    found = prepared_.emplace(std::move(text), std::move(name)).first;
  }
  return take(purpose, PQexecPrepared(conn_, found->second.c_str(), static_cast<int>(n),
                                      values.data(), lengths.data(), formats.data(), 0));
}

Result<Rows> Connection::take(std::string_view purpose, pg_result* result) {
  auto status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Rows(result);
  auto error = resultError(conn_, where_, purpose, result);
  PQclear(result);
  return error;
}

Result<Rows> Connection::simple(std::string_view purpose, std::string_view sql) {
  if (broken()) {
    return fail(std::string(kUnavailable),
                fmt::format("{}: {}: the connection is closed", where_, purpose));
  }
  std::string text(sql);
  return take(purpose, PQexec(conn_, text.c_str()));
}

Status Connection::script(std::string_view purpose, std::string_view sql) {
  auto done = simple(purpose, sql);
  if (!done) return std::unexpected(done.error());
  return {};
}

Result<Transaction> Transaction::begin(Connection& db, Isolation isolation) {
  std::string_view sql =
      isolation == Isolation::kSerializable     ? "BEGIN ISOLATION LEVEL SERIALIZABLE"
      : isolation == Isolation::kRepeatableRead ? "BEGIN ISOLATION LEVEL REPEATABLE READ"
                                                : "BEGIN ISOLATION LEVEL READ COMMITTED";
  // PostgreSQL only warns of a BEGIN inside a transaction; the inner commit() would then end
  // the outer one.
  if (db.conn_ && PQtransactionStatus(db.conn_) != PQTRANS_IDLE) {
    return fail("store", fmt::format("{}: begin a transaction: one is already open on this "
                                     "connection",
                                     db.where()));
  }
  auto begun = db.simple("begin a transaction", sql);
  if (!begun) return std::unexpected(begun.error());
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  if (db_) (void)rollback();
}

Status Transaction::commit() {
  Connection* db = std::exchange(db_, nullptr);
  auto committed = db->simple("commit", "COMMIT");
  if (!committed) return std::unexpected(committed.error());
  // COMMIT of a transaction an error already aborted succeeds as a ROLLBACK: that is a failure.
  if (committed->command() == "ROLLBACK") {
    return fail("store", fmt::format("{}: commit: the transaction had failed and was rolled "
                                     "back",
                                     db->where()));
  }
  return {};
}

Status Transaction::rollback() {
  Connection* db = std::exchange(db_, nullptr);
  if (!db || db->broken()) return {};  // the server rolls back a lost connection's transaction
  auto done = db->simple("roll back", "ROLLBACK");
  if (!done) return std::unexpected(done.error());
  return {};
}

}  // namespace pass::home::postgres
