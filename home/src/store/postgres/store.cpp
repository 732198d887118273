// The home's store on PostgreSQL: agents, envelopes, events, heartbeats, tickets, silences. The
// SQL follows store/sqlite/store.cpp's statement for statement where the dialects allow. What
// differs: (agent, seq) is one UNIQUE key that every home shares (no two-level key), a
// duplicate is found by INSERT … ON CONFLICT DO NOTHING RETURNING (a failed statement would
// abort the whole transaction), transactions run at READ COMMITTED, and a batch that lost a
// race to another home is run again (docs/scale-out.md).

#include "store/postgres/store.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "pass/home/log.hpp"
#include "store/postgres/migrate.hpp"
#include "store/postgres/rows.hpp"
#include "store/postgres/ticket_storage.hpp"
#include "tickets/ticket_engine.hpp"
#include "tickets/watchdog.hpp"

namespace pass::home::postgres {

Result<std::unique_ptr<Store::Impl>> openPostgresStore(std::string_view url,
                                                       const std::filesystem::path& passwordFile,
                                                       Store::Mode) {
  auto db = Connection::connect(url, passwordFile);
  if (!db) return propagate(db);
  if (auto done = migrate(*db); !done) return std::unexpected(done.error());
  return std::make_unique<PostgresStore>(std::move(*db));
}

Result<std::int64_t> PostgresStore::schemaVersion() { return postgres::schemaVersion(db); }

// --- agents ---------------------------------------------------------------------------------

Status PostgresStore::addAgent(const NewAgent& agent) {
  auto added = db.exec("enroll an agent",
                       "INSERT INTO agents (id, customer, site, name, sign_key, cert_serial, "
                       "enrolled_ms, cert_expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                       "nullif($8::bigint, 0)) ON CONFLICT (id) DO NOTHING",
                       {agent.id, agent.customer, agent.site, agent.name, agent.signKey,
                        agent.certSerial, agent.enrolledMs, agent.certExpiresMs});
  if (!added) return std::unexpected(added.error());
  if (added->affected() == 0) {
    return fail("agent_exists",
                fmt::format("{}: agent {} is already enrolled", db.where(), agent.id));
  }
  return {};
}

Result<std::optional<AgentAuth>> PostgresStore::agentAuth(std::string_view agentId) {
  // Its own transaction: sees the latest commit of every home.
  return first(db.exec("read an agent's keys",
                       "SELECT sign_key, cert_serial, revoked_ms, coalesce(previous_cert_serial, "
                       "''), previous_cert_until_ms FROM agents WHERE id = $1",
                       {agentId}),
               [](const Rows& r, int i) {
                 return AgentAuth{r.bytes(i, 0), r.text(i, 1), r.optInteger(i, 2), r.text(i, 3),
                                  r.optInteger(i, 4)};
               });
}

Status PostgresStore::revokeAgent(std::string_view agentId, std::int64_t nowMs) {
  auto revoked = db.exec("revoke an agent",
                         "UPDATE agents SET revoked_ms = coalesce(revoked_ms, $1) WHERE id = $2",
                         {nowMs, agentId});
  if (!revoked) return std::unexpected(revoked.error());
  if (revoked->affected() == 0) {
    return fail("unknown_agent", fmt::format("{}: no enrolled agent {}", db.where(), agentId));
  }
  return {};
}

Result<std::vector<std::string>> PostgresStore::revokedAgents() {
  return all(db.exec("list the revoked agents",
                     "SELECT id FROM agents WHERE revoked_ms IS NOT NULL ORDER BY id"),
             [](const Rows& r, int i) { return r.text(i, 0); });
}

Status PostgresStore::renewCertificate(const CertificateRenewal& renewal) {
  // Compare and set, as on SQLite: two renewals racing (perhaps on two homes) cannot both win.
  auto renewed = db.exec(
      "record a renewed certificate",
      "UPDATE agents SET "
      "previous_cert_serial = CASE WHEN cert_serial = $2 THEN cert_serial "
      "ELSE previous_cert_serial END, "
      "previous_cert_until_ms = $6, cert_serial = $3, cert_expires_ms = $4, cert_renewed_ms = $5 "
      "WHERE id = $1 AND revoked_ms IS NULL AND (cert_serial = $2 OR "
      "(previous_cert_serial = $2 AND previous_cert_until_ms > $5))",
      {renewal.agentId, renewal.requesterSerial, renewal.newSerial, renewal.expiresMs,
       renewal.nowMs, renewal.nowMs + renewal.graceMs});
  if (!renewed) return std::unexpected(renewed.error());
  if (renewed->affected() == 0) {
    return fail("certificate_mismatch",
                fmt::format("{}: agent {} is revoked, unknown, or no longer accepts certificate "
                            "{}",
                            db.where(), renewal.agentId, renewal.requesterSerial));
  }
  return {};
}

Result<std::vector<ExpectedArray>> PostgresStore::expectedArrays(std::string_view agentId) {
  PostgresTicketStorage storage(db);
  return storage.expectedArrays(agentId);
}

Status PostgresStore::setExpectedArrays(std::string_view agentId,
                                        std::span<const ExpectedArray> arrays, std::int64_t nowMs) {
  auto tx = Transaction::begin(db);
  if (!tx) return propagate(tx);
  // Locks the agent's row: two homes replacing its arrays at once take turns.
  auto known = db.exec("lock an agent", "SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", {agentId});
  if (!known) return propagate(known);
  if (known->size() == 0) {
    return fail("unknown_agent", fmt::format("{}: no enrolled agent {}", db.where(), agentId));
  }
  // Upsert what the form lists and drop the rest; a kept array keeps its dates.
  auto current = expectedArrays(agentId);
  if (!current) return propagate(current);
  for (const auto& old : *current) {
    bool kept = std::any_of(arrays.begin(), arrays.end(), [&](const ExpectedArray& a) {
      return a.family == old.family && a.serial == old.serial;
    });
    if (kept) continue;
    if (auto dropped = done(db.exec("drop an expected array",
                                    "DELETE FROM expected_arrays WHERE agent_id = $1 AND "
                                    "family = $2 AND serial = $3",
                                    {agentId, old.family, old.serial}));
        !dropped) {
      return dropped;
    }
  }
  for (const auto& a : arrays) {
    if (auto upserted = done(
            db.exec("store an expected array",
                    "INSERT INTO expected_arrays (agent_id, family, serial, model, name, since_ms) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id, family, serial) "
                    "DO UPDATE SET model = excluded.model, name = excluded.name",
                    {agentId, a.family, a.serial, a.model, a.name, nowMs}));
        !upserted) {
      return upserted;
    }
  }
  return tx->commit();
}

Result<std::vector<AgentSummary>> PostgresStore::agents() {
  return all(
      db.exec("list the agents",
              "SELECT id, customer, site, name, enrolled_ms, revoked_ms, last_seq, "
              "last_envelope_ms, last_heartbeat_ms, next_heartbeat_due_ms, "
              "(SELECT count(*) FROM envelopes v WHERE v.agent_id = a.id), "
              "heartbeat_due_home_ms, clock_skew_ms, coalesce(clock_warning, ''), "
              "cert_expires_ms, cert_renewed_ms FROM agents a ORDER BY customer, site, name, id"),
      [](const Rows& r, int i) {
        AgentSummary a;
        a.id = r.text(i, 0);
        a.customer = r.text(i, 1);
        a.site = r.text(i, 2);
        a.name = r.text(i, 3);
        a.enrolledMs = r.integer(i, 4);
        a.revokedMs = r.optInteger(i, 5);
        a.lastSeq = r.optInteger(i, 6);
        a.lastEnvelopeMs = r.optInteger(i, 7);
        a.lastHeartbeatMs = r.optInteger(i, 8);
        a.nextHeartbeatDueMs = r.optInteger(i, 9);
        a.envelopes = r.integer(i, 10);
        a.heartbeatDueHomeMs = r.optInteger(i, 11);
        a.clockSkewMs = r.optInteger(i, 12);
        a.clockWarning = r.text(i, 13);
        a.certExpiresMs = r.optInteger(i, 14);
        a.certRenewedMs = r.optInteger(i, 15);
        return a;
      });
}

// --- envelopes and events -------------------------------------------------------------------

Result<std::vector<StoredEnvelope>> PostgresStore::envelopes(
    const std::optional<std::string>& agentId) {
  return all(db.exec("list the envelopes",
                     "SELECT agent_id, seq, type, created_ms, received_ms, size, payload FROM "
                     "envelopes WHERE $1::text IS NULL OR agent_id = $1 ORDER BY agent_id, seq",
                     {agentId}),
             [](const Rows& r, int i) {
               StoredEnvelope e;
               e.agentId = r.text(i, 0);
               e.seq = static_cast<std::uint64_t>(r.integer(i, 1));
               e.type = r.text(i, 2);
               e.createdMs = r.integer(i, 3);
               e.receivedMs = r.integer(i, 4);
               e.size = static_cast<std::uint64_t>(r.integer(i, 5));
               e.payload = r.text(i, 6);
               return e;
             });
}

Result<std::vector<StoredEvent>> PostgresStore::events(const std::optional<std::string>& array) {
  return all(db.exec("list the events",
                     "SELECT e.agent_id, e.seq, e.family, e.\"array\", e.event_id, e.code, "
                     "e.severity, e.occurred_ms, v.received_ms, e.payload FROM events e LEFT JOIN "
                     "envelopes v ON v.agent_id = e.agent_id AND v.seq = e.seq "
                     "WHERE $1::text IS NULL OR e.\"array\" = $1 ORDER BY e.id",
                     {array}),
             [](const Rows& r, int i) {
               StoredEvent stored;
               stored.agentId = r.text(i, 0);
               stored.seq = static_cast<std::uint64_t>(r.integer(i, 1));
               // 0 once retention pruned the event's envelope.
               stored.receivedMs = r.optInteger(i, 8).value_or(0);
               auto& e = stored.event;
               e.family = r.optText(i, 2);
               e.array = r.optText(i, 3);
               e.id = r.optText(i, 4);
               e.code = r.optText(i, 5);
               e.severity = r.optText(i, 6);
               e.occurredMs = r.optInteger(i, 7);
               e.payload = r.text(i, 9);
               return stored;
             });
}

Status PostgresStore::storeNew(const EnvelopeRecord& r, std::int64_t& queued) {
  auto seq = static_cast<std::int64_t>(r.seq);
  if (r.type == "heartbeat") {
    if (auto stored =
            done(db.exec("store a heartbeat",
                         "INSERT INTO heartbeats (agent_id, seq, sent_ms, received_ms, "
                         "next_due_ms, payload) VALUES ($1, $2, $3, $4, $5, $6)",
                         {r.agentId, seq, r.createdMs, r.receivedMs, r.nextDueMs, r.payload}));
        !stored) {
      return stored;
    }
    // As on SQLite: only a newer heartbeat moves the due time, counted on the home's clock.
    auto moved = db.exec(
        "record an agent's heartbeat",
        "UPDATE agents SET last_heartbeat_ms = $1, next_heartbeat_due_ms = $2, "
        "heartbeat_received_ms = $4, "
        "heartbeat_due_home_ms = CASE WHEN $2::bigint IS NULL THEN NULL "
        "ELSE $4::bigint + LEAST(GREATEST($2::bigint - $1::bigint, 0), $5::bigint) END, "
        "heartbeat_interval_ms = CASE WHEN $2::bigint IS NULL THEN NULL "
        "WHEN $6::bigint > 0 THEN LEAST($6::bigint, $5::bigint) "
        "ELSE LEAST(GREATEST($2::bigint - $1::bigint, 0), $5::bigint) END "
        "WHERE id = $3 AND (last_heartbeat_ms IS NULL OR last_heartbeat_ms <= $1)",
        {r.createdMs, r.nextDueMs, r.agentId, r.receivedMs, kMaxHeartbeatIntervalMs, r.intervalMs});
    if (!moved) return propagate(moved);
    if (policy && moved->affected() > 0) {
      PostgresTicketStorage storage(db);
      TicketEngine engine(storage, *policy);
      auto ruled = engine.onHeartbeat(r);
      queued += engine.queued();
      if (!ruled) return ruled;
    }
  }
  if (!r.events.empty()) {
    std::int64_t idx = 0;
    std::vector<const EventRecord*> fresh;
    fresh.reserve(r.events.size());
    for (const auto& e : r.events) {
      // A repeat (same family, array and id) is dropped by events_by_id and changes no ticket.
      auto stored = db.exec("store an event",
                            "INSERT INTO events (agent_id, seq, idx, \"array\", code, severity, "
                            "occurred_ms, payload, family, event_id, kind) VALUES ($1, $2, $3, "
                            "$4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                            {r.agentId, seq, idx++, e.array, e.code, e.severity, e.occurredMs,
                             e.payload, e.family, e.id, e.kind});
      if (!stored) return propagate(stored);
      if (stored->affected() > 0) fresh.push_back(&e);
    }
    if (policy && !fresh.empty()) {
      PostgresTicketStorage storage(db);
      TicketEngine engine(storage, *policy);
      auto ruled = engine.onNewEvents(r, fresh);
      queued += engine.queued();
      if (!ruled) return ruled;
    }
  }
  return done(db.exec("record an agent's last envelope",
                      "UPDATE agents SET last_seq = GREATEST(coalesce(last_seq, $1), $1), "
                      "last_envelope_ms = GREATEST(coalesce(last_envelope_ms, $2), $2) "
                      "WHERE id = $3",
                      {seq, r.receivedMs, r.agentId}));
}

Result<std::vector<CommitResult>> PostgresStore::commitOnce(
    std::span<const EnvelopeRecord* const> batch, std::int64_t& queued) {
  auto tx = Transaction::begin(db, Transaction::Isolation::kReadCommitted);
  if (!tx) return propagate(tx);
  std::vector<CommitResult> results;
  results.reserve(batch.size());
  for (const EnvelopeRecord* r : batch) {
    // The unique key decides: a row another transaction (perhaps another home's) is inserting
    // makes this one wait for its end, then do nothing if it committed.
    auto inserted =
        db.exec("store an envelope",
                "INSERT INTO envelopes (agent_id, seq, created_ms, received_ms, type, "
                "size, payload) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (agent_id, seq) DO NOTHING RETURNING id",
                {r->agentId, static_cast<std::int64_t>(r->seq), r->createdMs, r->receivedMs,
                 r->type, static_cast<std::int64_t>(r->size), r->payload});
    if (!inserted) return propagate(inserted);
    if (inserted->size() == 0) {
      results.push_back(CommitResult::kDuplicate);
      continue;
    }
    if (auto stored = storeNew(*r, queued); !stored) return std::unexpected(stored.error());
    results.push_back(CommitResult::kAccepted);
  }
  if (auto committed = tx->commit(); !committed) return std::unexpected(committed.error());
  return results;
}

Result<std::vector<CommitResult>> PostgresStore::commit(
    std::span<const EnvelopeRecord* const> batch) {
  static Logger log(LogLevel::kInfo);
  for (int attempt = 1;; ++attempt) {
    std::int64_t queued = 0;
    auto results = commitOnce(batch, queued);
    if (results) {
      enqueued += queued;
      return results;
    }
    const auto& code = results.error().code;
    // The races scale-out.md lists ("What is left to the caller"): another home's transaction
    // won; this batch, answered only after COMMIT, runs again from the start.
    bool again = code == kRetry || code == "ticket.race" || code == kUniqueViolation;
    if (!again || attempt == kCommitAttempts) return results;
    log.warning("store.retry", {{"attempt", attempt},
                                {"envelopes", batch.size()},
                                {"code", code},
                                {"error", results.error().message}});
  }
}

// --- tickets --------------------------------------------------------------------------------

Result<std::vector<TicketRow>> PostgresStore::tickets(const TicketFilter& filter) {
  return all(db.exec("list the tickets",
                     "SELECT " PASS_PG_TICKET_COLUMNS
                     "FROM tickets WHERE ($1::bigint = 0 OR state <> 'resolved') AND "
                     "($2::text IS NULL OR customer = $2) AND ($3::text IS NULL OR \"array\" = "
                     "$3) ORDER BY id",
                     {std::int64_t{filter.liveOnly ? 1 : 0}, filter.customer, filter.array}),
             readTicket);
}

Result<std::optional<TicketRow>> PostgresStore::ticket(std::int64_t id) {
  PostgresTicketStorage storage(db);
  return storage.ticket(id);
}

Result<std::vector<TicketLogRow>> PostgresStore::ticketLog(std::int64_t id) {
  return all(db.exec("read a ticket's log",
                     "SELECT id, ticket_id, at_ms, who, action, detail FROM ticket_log WHERE "
                     "ticket_id = $1 ORDER BY id",
                     {id}),
             [](const Rows& r, int i) {
               return TicketLogRow{r.integer(i, 0), r.integer(i, 1), r.integer(i, 2),
                                   r.text(i, 3),    r.text(i, 4),    r.text(i, 5)};
             });
}

Result<TicketRow> PostgresStore::changeTicket(std::int64_t id, TicketAction action,
                                              std::string_view who, std::string_view note,
                                              std::int64_t nowMs) {
  auto tx = Transaction::begin(db);
  if (!tx) return propagate(tx);
  PostgresTicketStorage storage(db);
  TicketEngine engine(storage, *policy);
  auto changed = engine.change(id, action, who, note, nowMs);
  if (!changed) return changed;
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  enqueued += engine.queued();
  return changed;
}

Result<WatchdogReport> PostgresStore::watchdog(std::int64_t nowMs,
                                               std::optional<std::int64_t> receivingSinceMs) {
  auto tx = Transaction::begin(db);
  if (!tx) return propagate(tx);
  PostgresTicketStorage storage(db);
  Watchdog watchdog(storage, *policy, nowMs, receivingSinceMs);
  auto report = watchdog.run();
  if (!report) return report;
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  enqueued += watchdog.queued();
  return report;
}

// --- silences -------------------------------------------------------------------------------

Result<std::int64_t> PostgresStore::addSilence(const SilenceRow& x) {
  return single(db.exec("add a silence",
                        "INSERT INTO silences (customer, site, \"array\", code, starts_ms, "
                        "ends_ms, author, reason, created_ms) VALUES ($1, $2, $3, $4, $5, $6, "
                        "$7, $8, $9) RETURNING id",
                        {x.customer, x.site, x.array, x.code, x.startsMs, x.endsMs, x.author,
                         x.reason, x.createdMs}));
}

Result<std::vector<SilenceRow>> PostgresStore::silences(std::int64_t nowMs, bool all) {
  return postgres::all(
      db.exec("list the silences",
              "SELECT id, customer, site, \"array\", code, starts_ms, ends_ms, author, reason, "
              "created_ms, removed_ms, removed_by FROM silences WHERE $2::bigint = 1 OR "
              "(removed_ms IS NULL AND ends_ms > $1) ORDER BY id",
              {nowMs, std::int64_t{all ? 1 : 0}}),
      [](const Rows& r, int i) {
        SilenceRow x;
        x.id = r.integer(i, 0);
        x.customer = r.text(i, 1);
        x.site = r.text(i, 2);
        x.array = r.text(i, 3);
        x.code = r.text(i, 4);
        x.startsMs = r.integer(i, 5);
        x.endsMs = r.integer(i, 6);
        x.author = r.text(i, 7);
        x.reason = r.text(i, 8);
        x.createdMs = r.integer(i, 9);
        x.removedMs = r.optInteger(i, 10);
        x.removedBy = r.text(i, 11);
        return x;
      });
}

Status PostgresStore::removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs) {
  auto removed = db.exec("remove a silence",
                         "UPDATE silences SET removed_ms = $2, removed_by = $3 WHERE id = $1 AND "
                         "removed_ms IS NULL",
                         {id, nowMs, who});
  if (!removed) return propagate(removed);
  if (removed->affected() == 0) {
    return fail("silence.unknown", fmt::format("no active silence #{}", id));
  }
  return {};
}

}  // namespace pass::home::postgres
