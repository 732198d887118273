// The SQLite store's ticket calls (docs/tickets.md): TicketEngine and Watchdog (the rules,
// tickets/ticket_engine.cpp and tickets/watchdog.cpp) over SqliteTicketStorage in a write
// transaction, and the ticket, log and silence listings.

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/sqlite/store.hpp"
#include "store/sqlite/ticket_storage.hpp"
#include "tickets/ticket_engine.hpp"
#include "tickets/watchdog.hpp"

namespace pass::home::sqlite {

Status SqliteStore::onNewEvents(const EnvelopeRecord& r,
                                std::span<const EventRecord* const> events) {
  SqliteTicketStorage storage(db, statements);
  TicketEngine engine(storage, *policy);
  auto done = engine.onNewEvents(r, events);
  if (done) done = engine.flush();
  enqueued += engine.queued();
  return done;
}

Status SqliteStore::onHeartbeat(const EnvelopeRecord& r) {
  SqliteTicketStorage storage(db, statements);
  TicketEngine engine(storage, *policy);
  auto done = engine.onHeartbeat(r);
  enqueued += engine.queued();
  return done;
}

// --- tickets --------------------------------------------------------------------------

Result<std::vector<TicketRow>> SqliteStore::tickets(const TicketFilter& filter) {
  auto s = db.prepare(
      "SELECT " PASS_TICKET_COLUMNS
      "FROM tickets WHERE (?1 = 0 OR state <> 'resolved') AND (?2 IS NULL OR customer = ?2) "
      "AND (?3 IS NULL OR array = ?3) ORDER BY id");
  if (!s) return propagate(s);
  s->bind(1, std::int64_t{filter.liveOnly ? 1 : 0}).bind(2, filter.customer).bind(3, filter.array);
  return s->rows(readTicket);
}

Result<std::optional<TicketRow>> SqliteStore::ticket(std::int64_t id) {
  auto s = db.prepare("SELECT " PASS_TICKET_COLUMNS "FROM tickets WHERE id = ?1");
  if (!s) return propagate(s);
  s->bind(1, id);
  return s->firstRow(readTicket);
}

Result<std::vector<TicketLogRow>> SqliteStore::ticketLog(std::int64_t id) {
  auto s = db.prepare(
      "SELECT id, ticket_id, at_ms, who, action, detail FROM ticket_log WHERE ticket_id = ?1 "
      "ORDER BY id");
  if (!s) return propagate(s);
  s->bind(1, id);
  return s->rows([](const Statement& r) {
    return TicketLogRow{r.columnInt(0),  r.columnInt(1),  r.columnInt(2),
                        r.columnText(3), r.columnText(4), r.columnText(5)};
  });
}

Result<TicketRow> SqliteStore::changeTicket(std::int64_t id, TicketAction action,
                                            std::string_view who, std::string_view note,
                                            std::int64_t nowMs) {
  auto tx = Transaction::beginImmediate(db);
  if (!tx) return propagate(tx);
  SqliteTicketStorage storage(db, statements);
  TicketEngine engine(storage, *policy);
  auto changed = engine.change(id, action, who, note, nowMs);
  enqueued += engine.queued();
  if (!changed) return changed;
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  return changed;
}

Result<WatchdogReport> SqliteStore::watchdog(std::int64_t nowMs,
                                             std::optional<std::int64_t> receivingSinceMs) {
  auto tx = Transaction::beginImmediate(db);
  if (!tx) return propagate(tx);
  SqliteTicketStorage storage(db, statements);
  Watchdog watchdog(storage, *policy, nowMs, receivingSinceMs);
  auto report = watchdog.run();
  enqueued += watchdog.queued();
  if (!report) return report;
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  return report;
}

// --- silences -------------------------------------------------------------------------

Result<std::int64_t> SqliteStore::addSilence(const SilenceRow& x) {
  auto s = db.prepare(
      "INSERT INTO silences (customer, site, array, code, starts_ms, ends_ms, author, reason, "
      "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  if (!s) return propagate(s);
  s->bind(1, x.customer).bind(2, x.site).bind(3, x.array).bind(4, x.code).bind(5, x.startsMs);
  s->bind(6, x.endsMs).bind(7, x.author).bind(8, x.reason).bind(9, x.createdMs);
  if (auto done = s->run(); !done) return std::unexpected(done.error());
  return db.queryInt("SELECT last_insert_rowid()");
}

Result<std::vector<SilenceRow>> SqliteStore::silences(std::int64_t nowMs, bool all) {
  auto s = db.prepare(
      "SELECT id, customer, site, array, code, starts_ms, ends_ms, author, reason, created_ms, "
      "removed_ms, removed_by FROM silences WHERE ?2 = 1 OR (removed_ms IS NULL AND "
      "ends_ms > ?1) ORDER BY id");
  if (!s) return propagate(s);
  s->bind(1, nowMs).bind(2, std::int64_t{all ? 1 : 0});
  return s->rows([](const Statement& r) {
    SilenceRow x;
    x.id = r.columnInt(0);
    x.customer = r.columnText(1);
    x.site = r.columnText(2);
    x.array = r.columnText(3);
    x.code = r.columnText(4);
    x.startsMs = r.columnInt(5);
    x.endsMs = r.columnInt(6);
    x.author = r.columnText(7);
    x.reason = r.columnText(8);
    x.createdMs = r.columnInt(9);
    x.removedMs = r.columnOptInt(10);
    x.removedBy = r.columnText(11);
    return x;
  });
}

Status SqliteStore::removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs) {
  auto s = db.prepare(
      "UPDATE silences SET removed_ms = ?2, removed_by = ?3 WHERE id = ?1 AND removed_ms IS NULL");
  if (!s) return propagate(s);
  s->bind(1, id).bind(2, nowMs).bind(3, who);
  if (auto done = s->run(); !done) return done;
  if (db.changes() == 0) {
    return fail("silence.unknown", fmt::format("no active silence #{}", id));
  }
  return {};
}

}  // namespace pass::home::sqlite
