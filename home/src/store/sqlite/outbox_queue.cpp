// The outbox queue on SQLite: a claim is one UPDATE … RETURNING, so two workers (two homes on
// one database) never both take a row.

#include "store/sqlite/outbox_queue.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pass::home::sqlite {
namespace {

#define PASS_OUTBOX_COLUMNS                                                               \
  "id, ticket_id, created_ms, channel, target, recipient, notice, state, not_before_ms, " \
  "attempts, sent_ms, last_error "

/// The row of PASS_OUTBOX_COLUMNS, which come first in the statement.
OutboxRow readOutbox(const Statement& s) {
  OutboxRow o;
  o.id = s.columnInt(0);
  o.ticketId = s.columnOptInt(1);
  o.createdMs = s.columnInt(2);
  o.channel = s.columnText(3);
  o.target = s.columnText(4);
  o.recipient = s.columnText(5);
  o.notice = s.columnText(6);
  o.state = s.columnText(7);
  o.notBeforeMs = s.columnInt(8);
  o.attempts = s.columnInt(9);
  o.sentMs = s.columnOptInt(10);
  o.lastError = s.columnText(11);
  return o;
}
constexpr int kOutboxColumns = 12;

}  // namespace

Result<std::int64_t> OutboxQueue::enqueueTest(const Recipient& to, std::string_view detail,
                                              std::int64_t nowMs) {
  auto s = db_.prepare(
      "INSERT INTO outbox (created_ms, channel, target, recipient, notice, state, not_before_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?1)");
  if (!s) return std::unexpected(s.error());
  std::string body = testNoticeJson(detail, nowMs);
  s->bind(1, nowMs).bind(2, to.channel).bind(3, to.target).bind(4, to.name).bind(5, body);
  if (auto done = s->run(); !done) return std::unexpected(done.error());
  ++enqueued_;
  return db_.lastInsertRowid();
}

Result<std::optional<OutboxClaim>> OutboxQueue::claim(std::string_view worker, std::int64_t nowMs,
                                                      std::int64_t leaseMs) {
  // One statement: the row is claimed atomically, so two workers (two homes on one database)
  // never both take it.
  auto s = prepareOnce(
      db_, claim_,
      "UPDATE outbox SET claimed_by = ?1, claim_until_ms = ?2 + ?3, attempts = attempts + 1 "
      "WHERE id = (SELECT id FROM outbox WHERE state = 'pending' AND not_before_ms <= ?2 AND "
      "(claim_until_ms IS NULL OR claim_until_ms < ?2) ORDER BY not_before_ms, id LIMIT 1) "
      "RETURNING " PASS_OUTBOX_COLUMNS ", claimed_by, claim_until_ms");
  if (!s) return std::unexpected(s.error());
  auto& st = **s;
  st.bind(1, worker).bind(2, nowMs).bind(3, leaseMs);
  auto row = st.step();
  std::optional<OutboxClaim> out;
  if (row && *row) {
    out = OutboxClaim{readOutbox(st), st.columnText(kOutboxColumns),
                      st.columnInt(kOutboxColumns + 1)};
  }
  // Stepping to the end completes the UPDATE (and its implicit transaction).
  while (row && *row) row = st.step();
  st.reset();
  if (!row) return std::unexpected(row.error());
  return out;
}

Status OutboxQueue::finish(std::int64_t id, std::string_view worker, notify::Outcome outcome,
                           std::string_view detail, std::int64_t nowMs, std::int64_t retryAtMs) {
  const char* sql = nullptr;
  switch (outcome) {
    case notify::Outcome::kSent:
      sql =
          "UPDATE outbox SET state = 'sent', sent_ms = ?3, claimed_by = NULL, "
          "claim_until_ms = NULL, last_error = '' WHERE id = ?1 AND claimed_by = ?2";
      break;
    case notify::Outcome::kPermanent:
      sql =
          "UPDATE outbox SET state = 'failed', claimed_by = NULL, claim_until_ms = NULL, "
          "last_error = ?4 WHERE id = ?1 AND claimed_by = ?2";
      break;
    case notify::Outcome::kRetry:
      sql =
          "UPDATE outbox SET not_before_ms = ?5, claimed_by = NULL, claim_until_ms = NULL, "
          "last_error = ?4 WHERE id = ?1 AND claimed_by = ?2";
      break;
  }
  auto tx = Transaction::beginImmediate(db_);
  if (!tx) return std::unexpected(tx.error());
  auto s = db_.prepare(sql);
  if (!s) return std::unexpected(s.error());
  s->bind(1, id).bind(2, worker).bind(3, nowMs).bind(4, detail).bind(5, retryAtMs);
  if (auto done = s->run(); !done) return done;
  if (db_.changes() == 0) {
    return fail(
        "outbox.claim",
        fmt::format("outbox #{} is no longer claimed by {} (its lease ran out)", id, worker));
  }
  // What happened to a ticket's message is part of the ticket's history.
  auto ticket = db_.prepare("SELECT ticket_id, channel, target FROM outbox WHERE id = ?1");
  if (!ticket) return std::unexpected(ticket.error());
  ticket->bind(1, id);
  auto row = ticket->step();
  if (!row) return std::unexpected(row.error());
  if (*row && !ticket->isNull(0) && outcome != notify::Outcome::kRetry) {
    auto log = db_.prepare(
        "INSERT INTO ticket_log (ticket_id, at_ms, who, action, detail) VALUES (?1, ?2, "
        "'outbox', ?3, ?4)");
    if (!log) return std::unexpected(log.error());
    std::string what =
        fmt::format("{} to {}: {}", ticket->columnText(1), ticket->columnText(2), detail);
    log->bind(1, ticket->columnInt(0)).bind(2, nowMs);
    log->bind(3,
              std::string_view(outcome == notify::Outcome::kSent ? "notified" : "notify_failed"));
    log->bind(4, what);
    if (auto done = log->run(); !done) return done;
  }
  ticket->reset();
  return tx->commit();
}

Result<std::optional<std::int64_t>> OutboxQueue::nextDue() {
  auto s =
      prepareOnce(db_, nextDue_, "SELECT min(not_before_ms) FROM outbox WHERE state = 'pending'");
  if (!s) return std::unexpected(s.error());
  auto row = (*s)->step();
  std::optional<std::int64_t> out;
  if (row && *row) out = (*s)->columnOptInt(0);
  (*s)->reset();
  if (!row) return std::unexpected(row.error());
  return out;
}

Result<std::vector<OutboxRow>> OutboxQueue::rows(std::optional<std::int64_t> ticketId) {
  auto s = db_.prepare("SELECT " PASS_OUTBOX_COLUMNS
                       "FROM outbox WHERE ?1 IS NULL OR ticket_id = ?1 ORDER BY id");
  if (!s) return std::unexpected(s.error());
  s->bind(1, ticketId);
  std::vector<OutboxRow> out;
  while (true) {
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(readOutbox(*s));
  }
  return out;
}

}  // namespace pass::home::sqlite
