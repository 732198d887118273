// The outbox queue on PostgreSQL: a claim locks the oldest due row with FOR UPDATE SKIP LOCKED
// and sets its lease in the same statement, so that homes claiming at once each take another
// row instead of waiting for each other; finish() changes the row only for the lease's holder.

#include "store/postgres/outbox_queue.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/postgres/rows.hpp"

namespace pass::home::postgres {
namespace {

#define PASS_PG_OUTBOX_COLUMNS                                                            \
  "id, ticket_id, created_ms, channel, target, recipient, notice, state, not_before_ms, " \
  "attempts, sent_ms, last_error "

/// The row of PASS_PG_OUTBOX_COLUMNS, which come first in the statement.
OutboxRow readOutbox(const Rows& r, int i) {
  OutboxRow o;
  o.id = r.integer(i, 0);
  o.ticketId = r.optInteger(i, 1);
  o.createdMs = r.integer(i, 2);
  o.channel = r.text(i, 3);
  o.target = r.text(i, 4);
  o.recipient = r.text(i, 5);
  o.notice = r.text(i, 6);
  o.state = r.text(i, 7);
  o.notBeforeMs = r.integer(i, 8);
  o.attempts = r.integer(i, 9);
  o.sentMs = r.optInteger(i, 10);
  o.lastError = r.text(i, 11);
  return o;
}
constexpr int kOutboxColumns = 12;

}  // namespace

Result<std::int64_t> OutboxQueue::enqueueTest(const Recipient& to, std::string_view detail,
                                              std::int64_t nowMs) {
  std::string body = testNoticeJson(detail, nowMs);
  auto id = single(db_.exec("queue a test message",
                            "INSERT INTO outbox (created_ms, channel, target, recipient, notice, "
                            "state, not_before_ms) VALUES ($1, $2, $3, $4, $5, 'pending', $1) "
                            "RETURNING id",
                            {nowMs, to.channel, to.target, to.name, body}));
  if (id) ++enqueued_;
  return id;
}

Result<std::optional<OutboxClaim>> OutboxQueue::claim(std::string_view worker, std::int64_t nowMs,
                                                      std::int64_t leaseMs) {
  // One statement, its own transaction: the subquery locks the row it picks and skips rows
  // another home's claim has locked, so two homes never take the same row; a lease that ran
  // out (claim_until_ms < now) makes the row due again for anyone.
  return first(
      db_.exec("claim an outbox row",
               "UPDATE outbox SET claimed_by = $1, claim_until_ms = $2::bigint + $3::bigint, "
               "attempts = attempts + 1 WHERE id = (SELECT id FROM outbox WHERE state = 'pending' "
               "AND not_before_ms <= $2 AND (claim_until_ms IS NULL OR claim_until_ms < $2) "
               "ORDER BY not_before_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
               "RETURNING " PASS_PG_OUTBOX_COLUMNS ", claimed_by, claim_until_ms",
               {worker, nowMs, leaseMs}),
      [](const Rows& r, int i) {
        return OutboxClaim{readOutbox(r, i), r.text(i, kOutboxColumns),
                           r.integer(i, kOutboxColumns + 1)};
      });
}

Status OutboxQueue::finish(std::int64_t id, std::string_view worker, notify::Outcome outcome,
                           std::string_view detail, std::int64_t nowMs, std::int64_t retryAtMs) {
  const char* sql = nullptr;
  switch (outcome) {
    case notify::Outcome::kSent:
      sql =
          "UPDATE outbox SET state = 'sent', sent_ms = $3, claimed_by = NULL, "
          "claim_until_ms = NULL, last_error = '' WHERE id = $1 AND claimed_by = $2 "
          "RETURNING ticket_id, channel, target";
      break;
    case notify::Outcome::kPermanent:
      sql =
          "UPDATE outbox SET state = 'failed', claimed_by = NULL, claim_until_ms = NULL, "
          "last_error = $3 WHERE id = $1 AND claimed_by = $2 RETURNING ticket_id, channel, "
          "target";
      break;
    case notify::Outcome::kRetry:
      sql =
          "UPDATE outbox SET not_before_ms = $3, claimed_by = NULL, claim_until_ms = NULL, "
          "last_error = $4 WHERE id = $1 AND claimed_by = $2 RETURNING ticket_id, channel, "
          "target";
      break;
  }
  auto tx = Transaction::begin(db_);
  if (!tx) return std::unexpected(tx.error());
  auto row = outcome == notify::Outcome::kSent
                 ? db_.exec("finish an outbox row", sql, {id, worker, nowMs})
             : outcome == notify::Outcome::kPermanent
                 ? db_.exec("finish an outbox row", sql, {id, worker, detail})
                 : db_.exec("finish an outbox row", sql, {id, worker, retryAtMs, detail});
  if (!row) return std::unexpected(row.error());
  if (row->size() == 0) {
    return fail(
        "outbox.claim",
        fmt::format("outbox #{} is no longer claimed by {} (its lease ran out)", id, worker));
  }
  // What happened to a ticket's message is part of the ticket's history.
  if (!row->isNull(0, 0) && outcome != notify::Outcome::kRetry) {
    std::string what = fmt::format("{} to {}: {}", row->text(0, 1), row->text(0, 2), detail);
    std::string_view action = outcome == notify::Outcome::kSent ? "notified" : "notify_failed";
    if (auto logged = done(db_.exec("log a ticket's message",
                                    "INSERT INTO ticket_log (ticket_id, at_ms, who, action, "
                                    "detail) VALUES ($1, $2, 'outbox', $3, $4)",
                                    {row->integer(0, 0), nowMs, action, what}));
        !logged) {
      return logged;
    }
  }
  return tx->commit();
}

Result<std::optional<std::int64_t>> OutboxQueue::nextDue() {
  auto rows = db_.exec("read when the next message is due",
                       "SELECT min(not_before_ms) FROM outbox WHERE state = 'pending'");
  if (!rows) return std::unexpected(rows.error());
  return rows->optInteger(0, 0);
}

Result<std::vector<OutboxRow>> OutboxQueue::rows(std::optional<std::int64_t> ticketId) {
  return all(db_.exec("list the outbox",
                      "SELECT " PASS_PG_OUTBOX_COLUMNS
                      "FROM outbox WHERE $1::bigint IS NULL OR ticket_id = $1 ORDER BY id",
                      {ticketId}),
             readOutbox);
}

}  // namespace pass::home::postgres
