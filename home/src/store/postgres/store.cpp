// The home's store on PostgreSQL: agents, envelopes, events, heartbeats, tickets, silences. The
// SQL follows store/sqlite/store.cpp's statement for statement where the dialects allow. What
// differs: (agent, seq) is one UNIQUE key that every home shares (no two-level key), a
// duplicate is found by INSERT … ON CONFLICT DO NOTHING RETURNING (a failed statement would
// abort the whole transaction), transactions run at READ COMMITTED, and a batch that lost a
// race to another home is run again (docs/scale-out.md).

#include "store/postgres/store.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

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

namespace {

/// The batch index of each (agent, seq): the first, so that an envelope twice in one batch is
/// stored as its first copy and the second is a duplicate, as one after the other.
struct BatchIndex {
  explicit BatchIndex(std::span<const EnvelopeRecord* const> batch) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      first.emplace(std::pair(std::string_view(batch[i]->agentId), batch[i]->seq), i);
    }
  }
  std::optional<std::size_t> find(std::string_view agentId, std::uint64_t seq) const {
    auto found = first.find(std::pair(agentId, seq));
    if (found == first.end()) return std::nullopt;
    return found->second;
  }
  std::map<std::pair<std::string_view, std::uint64_t>, std::size_t> first;
};

}  // namespace

Result<std::vector<bool>> PostgresStore::insertEnvelopes(
    std::span<const EnvelopeRecord* const> batch) {
  ArrayLiteral agents, seqs, created, received, types, sizes, payloads;
  for (const EnvelopeRecord* r : batch) {
    agents.add(r->agentId);
    seqs.add(static_cast<std::int64_t>(r->seq));
    created.add(r->createdMs);
    received.add(r->receivedMs);
    types.add(r->type);
    sizes.add(static_cast<std::int64_t>(r->size));
    payloads.add(r->payload);
  }
  // The unique key decides: a row another transaction (perhaps another home's) is inserting
  // makes this one wait for its end, then do nothing if it committed.
  auto inserted = db.exec(
      "store the envelopes",
      "INSERT INTO envelopes (agent_id, seq, created_ms, received_ms, type, size, payload) "
      "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], "
      "$6::bigint[], $7::text[]) ON CONFLICT (agent_id, seq) DO NOTHING RETURNING agent_id, seq",
      {agents.text(), seqs.text(), created.text(), received.text(), types.text(), sizes.text(),
       payloads.text()});
  if (!inserted) return propagate(inserted);
  BatchIndex index(batch);
  std::vector<bool> stored(batch.size(), false);
  for (int i = 0; i < inserted->size(); ++i) {
    auto at = index.find(inserted->text(i, 0), static_cast<std::uint64_t>(inserted->integer(i, 1)));
    if (at) stored[*at] = true;
  }
  return stored;
}

Result<std::vector<std::vector<const EventRecord*>>> PostgresStore::insertEvents(
    std::span<const EnvelopeRecord* const> batch, const std::vector<bool>& stored) {
  std::vector<std::vector<const EventRecord*>> fresh(batch.size());
  ArrayLiteral agents, seqs, idxs, arrays, codes, severities, occurred, payloads, families, ids,
      kinds;
  bool any = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!stored[i]) continue;
    const EnvelopeRecord& r = *batch[i];
    std::int64_t idx = 0;
    for (const auto& e : r.events) {
      agents.add(r.agentId);
      seqs.add(static_cast<std::int64_t>(r.seq));
      idxs.add(idx++);
      arrays.add(e.array);
      codes.add(e.code);
      severities.add(e.severity);
      occurred.add(e.occurredMs);
      payloads.add(e.payload);
      families.add(e.family);
      ids.add(e.id);
      kinds.add(e.kind);
      any = true;
    }
  }
  if (!any) return fresh;
  // A repeat (same family, array and id) is dropped by events_by_id and changes no ticket.
  auto inserted = db.exec(
      "store the events",
      "INSERT INTO events (agent_id, seq, idx, \"array\", code, severity, occurred_ms, payload, "
      "family, event_id, kind) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], "
      "$4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], "
      "$11::text[]) ON CONFLICT DO NOTHING RETURNING agent_id, seq, idx",
      {agents.text(), seqs.text(), idxs.text(), arrays.text(), codes.text(), severities.text(),
       occurred.text(), payloads.text(), families.text(), ids.text(), kinds.text()});
  if (!inserted) return propagate(inserted);
  BatchIndex index(batch);
  // RETURNING comes in insertion order, which is the batch's and each envelope's.
  for (int i = 0; i < inserted->size(); ++i) {
    auto at = index.find(inserted->text(i, 0), static_cast<std::uint64_t>(inserted->integer(i, 1)));
    auto idx = inserted->integer(i, 2);
    if (!at || idx < 0 || static_cast<std::size_t>(idx) >= batch[*at]->events.size()) continue;
    fresh[*at].push_back(&batch[*at]->events[static_cast<std::size_t>(idx)]);
  }
  return fresh;
}

Status PostgresStore::storeHeartbeat(const EnvelopeRecord& r, TicketEngine* engine) {
  auto seq = static_cast<std::int64_t>(r.seq);
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
  if (engine && moved->affected() > 0) return engine->onHeartbeat(r);
  return {};
}

Status PostgresStore::recordLastEnvelopes(std::span<const EnvelopeRecord* const> batch,
                                          const std::vector<bool>& stored) {
  ArrayLiteral agents, seqs, received;
  bool any = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!stored[i]) continue;
    agents.add(batch[i]->agentId);
    seqs.add(static_cast<std::int64_t>(batch[i]->seq));
    received.add(batch[i]->receivedMs);
    any = true;
  }
  if (!any) return {};
  // One row per agent: its agents row is updated once. (Two homes updating the same agents in
  // another order would deadlock, which PostgreSQL breaks and commit() retries; an agent's
  // envelopes come to one home at a time on its connection.)
  return done(
      db.exec("record the agents' last envelopes",
              "UPDATE agents a SET last_seq = GREATEST(coalesce(a.last_seq, v.seq), v.seq), "
              "last_envelope_ms = GREATEST(coalesce(a.last_envelope_ms, v.received), v.received) "
              "FROM (SELECT id, max(seq) AS seq, max(received) AS received FROM unnest($1::text[], "
              "$2::bigint[], $3::bigint[]) AS u(id, seq, received) GROUP BY id) v "
              "WHERE a.id = v.id",
              {agents.text(), seqs.text(), received.text()}));
}

Result<std::vector<CommitResult>> PostgresStore::commitOnce(
    std::span<const EnvelopeRecord* const> batch, std::int64_t& queued) {
  // A handful of statements per batch, whatever its size: every envelope in one INSERT, every
  // event in one, the agents' rows in one UPDATE, the agents and live tickets the rules will
  // ask for in one SELECT each, the tickets' counts and audit rows in one statement each. The
  // rules run envelope by envelope, in the batch's order, through one engine; only what they
  // do besides counting (a ticket opened, resolved, a message queued) and heartbeats are
  // statements of their own (docs/scale-out.md).
  auto tx = Transaction::begin(db, Transaction::Isolation::kReadCommitted);
  if (!tx) return propagate(tx);
  auto stored = insertEnvelopes(batch);
  if (!stored) return propagate(stored);
  auto fresh = insertEvents(batch, *stored);
  if (!fresh) return propagate(fresh);
  PostgresTicketStorage storage(db);
  storage.holdWrites();
  std::optional<TicketEngine> engine;
  if (policy) engine.emplace(storage, *policy);
  TicketEngine* rules = engine ? &*engine : nullptr;
  if (rules) {
    std::vector<EnvelopeEvents> ahead;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if ((*stored)[i] && (batch[i]->type == "heartbeat" || !(*fresh)[i].empty())) {
        ahead.push_back({batch[i], (*fresh)[i]});
      }
    }
    if (auto done = rules->readAhead(ahead); !done) return std::unexpected(done.error());
  }
  std::vector<CommitResult> results(batch.size(), CommitResult::kDuplicate);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!(*stored)[i]) continue;
    const EnvelopeRecord& r = *batch[i];
    if (r.type == "heartbeat") {
      if (auto done = storeHeartbeat(r, rules); !done) return std::unexpected(done.error());
    }
    if (rules && !(*fresh)[i].empty()) {
      if (auto ruled = rules->onNewEvents(r, (*fresh)[i]); !ruled) {
        return std::unexpected(ruled.error());
      }
    }
    results[i] = CommitResult::kAccepted;
  }
  if (rules) {
    if (auto flushed = rules->flush(); !flushed) return std::unexpected(flushed.error());
    queued += rules->queued();
  }
  if (auto written = storage.writeHeld(); !written) return std::unexpected(written.error());
  if (auto recorded = recordLastEnvelopes(batch, *stored); !recorded) {
    return std::unexpected(recorded.error());
  }
  if (auto committed = tx->commit(); !committed) return std::unexpected(committed.error());
  return results;
}

Result<std::vector<CommitResult>> PostgresStore::commit(
    std::span<const EnvelopeRecord* const> batch) {
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
    if (!log) continue;
    log->warning("store.retry", {{"attempt", attempt},
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
