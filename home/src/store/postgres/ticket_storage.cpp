// TicketStorage on PostgreSQL: the SQL of the ticket rules and the watchdog, statement for
// statement the same as store/sqlite/ticket_storage.cpp's where the dialects allow ($1 for ?1,
// GREATEST for max, string_agg for group_concat, booleans read as such, "array" quoted).
// Connection::exec prepares each text once per connection and re-uses it.

#include "store/postgres/ticket_storage.hpp"

#include <algorithm>
#include <utility>

#include "store/postgres/rows.hpp"

namespace pass::home::postgres {

// --- reading ahead --------------------------------------------------------------------------

Status PostgresTicketStorage::readAheadAgents(std::span<const std::string> agentIds) {
  ArrayLiteral ids;
  for (const auto& id : agentIds) {
    ids.add(id);
    agents_.emplace(id, std::nullopt);  // unless the statement finds it
  }
  auto rows =
      exec("read the batch's agents",
           "SELECT id, customer, site, name FROM agents WHERE id = ANY($1::text[])", {ids.text()});
  if (!rows) return std::unexpected(rows.error());
  for (int i = 0; i < rows->size(); ++i) {
    agents_[rows->text(i, 0)] = AgentInfo{rows->text(i, 1), rows->text(i, 2), rows->text(i, 3)};
  }
  return {};
}

Status PostgresTicketStorage::readAheadLiveTickets(std::span<const std::string> dedupKeys) {
  ArrayLiteral keys;
  for (const auto& key : dedupKeys) keys.add(key);
  // FOR UPDATE: no other transaction (another home's batch, a person's resolve) changes these
  // tickets before this one ends, so what was read stays true. In id order, so that two homes
  // reading overlapping sets lock them in the same order. At READ COMMITTED a ticket another
  // transaction changed meanwhile is read as it committed.
  auto rows = exec("read the batch's live tickets",
                   "SELECT " PASS_PG_TICKET_COLUMNS
                   ", dedup_key FROM tickets WHERE dedup_key = ANY($1::text[]) AND "
                   "state <> 'resolved' ORDER BY id FOR UPDATE",
                   {keys.text()});
  if (!rows) return std::unexpected(rows.error());
  // Only tickets found are kept: a problem without one is asked again when the rules need it,
  // since another home may open one meanwhile, and nothing here would stop it.
  constexpr int kDedupKey = 26;  // after PASS_PG_TICKET_COLUMNS' 26 columns
  for (int i = 0; i < rows->size(); ++i) {
    live_.insert_or_assign(rows->text(i, kDedupKey), readTicket(*rows, i));
  }
  return {};
}

void PostgresTicketStorage::forget(std::int64_t ticketId) {
  std::erase_if(live_, [&](const auto& entry) { return entry.second.id == ticketId; });
}

// --- held writes ----------------------------------------------------------------------------

Result<Rows> PostgresTicketStorage::exec(std::string_view purpose, std::string_view sql,
                                         std::initializer_list<Param> params) {
  // Whatever a statement reads, the held writes come before it.
  if (auto written = writeHeld(); !written) return std::unexpected(written.error());
  return db_.exec(purpose, sql, params);
}

Status PostgresTicketStorage::writeHeld() {
  std::vector<HeldCount> counts = std::exchange(heldCounts_, {});
  std::vector<HeldLog> logs = std::exchange(heldLogs_, {});
  heldCountOf_.clear();
  if (!counts.empty()) {
    ArrayLiteral ids, ns, seen, details;
    for (const auto& c : counts) {
      ids.add(c.id);
      ns.add(c.n);
      seen.add(c.seenMs);
      details.add(c.detail);
    }
    if (auto counted = done(db_.exec(
            "count the tickets' occurrences",
            "UPDATE tickets t SET count = t.count + v.n, last_seen_ms = "
            "GREATEST(t.last_seen_ms, v.seen), detail = v.detail FROM unnest($1::bigint[], "
            "$2::bigint[], $3::bigint[], $4::text[]) AS v(id, n, seen, detail) WHERE t.id = v.id",
            {ids.text(), ns.text(), seen.text(), details.text()}));
        !counted) {
      return counted;
    }
  }
  if (!logs.empty()) {
    ArrayLiteral tickets, at, who, action, detail;
    for (const auto& l : logs) {
      tickets.add(l.ticketId);
      at.add(l.atMs);
      who.add(l.who);
      action.add(l.action);
      detail.add(l.detail);
    }
    // In order: the audit rows' ids follow the order they were written in.
    if (auto logged = done(
            db_.exec("append to the tickets' logs",
                     "INSERT INTO ticket_log (ticket_id, at_ms, who, action, detail) SELECT * FROM "
                     "unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])",
                     {tickets.text(), at.text(), who.text(), action.text(), detail.text()}));
        !logged) {
      return logged;
    }
  }
  return {};
}

// --- agents ---------------------------------------------------------------------------------

Result<std::optional<AgentInfo>> PostgresTicketStorage::agent(std::string_view agentId) {
  // An agent's customer, site and name do not change inside the transaction: a batch of its
  // envelopes asks once.
  if (auto known = agents_.find(agentId); known != agents_.end()) return known->second;
  auto found = first(
      exec("read an agent", "SELECT customer, site, name FROM agents WHERE id = $1", {agentId}),
      [](const Rows& r, int i) {
        return AgentInfo{r.text(i, 0), r.text(i, 1), r.text(i, 2)};
      });
  if (found) agents_.emplace(std::string(agentId), *found);
  return found;
}

Status PostgresTicketStorage::recordClockSkew(std::string_view agentId, std::int64_t skewMs,
                                              std::string_view warning) {
  return done(exec("record an agent's clock skew",
                   "UPDATE agents SET clock_skew_ms = $2, clock_warning = $3 WHERE id = $1",
                   {agentId, skewMs, warning}));
}

Result<std::vector<ExpectedArray>> PostgresTicketStorage::expectedArrays(std::string_view agentId) {
  return all(exec("read an agent's expected arrays",
                  "SELECT family, serial, model, name, since_ms, last_reported_ms FROM "
                  "expected_arrays WHERE agent_id = $1 ORDER BY family, serial",
                  {agentId}),
             [](const Rows& r, int i) {
               return ExpectedArray{.family = r.text(i, 0),
                                    .serial = r.text(i, 1),
                                    .model = r.text(i, 2),
                                    .name = r.text(i, 3),
                                    .sinceMs = r.integer(i, 4),
                                    .lastReportedMs = r.optInteger(i, 5)};
             });
}

Status PostgresTicketStorage::markArrayReported(std::string_view agentId, std::string_view family,
                                                std::string_view serial, std::int64_t atMs) {
  return done(exec("mark an expected array reported",
                   "UPDATE expected_arrays SET last_reported_ms = $4 WHERE agent_id = $1 AND "
                   "family = $2 AND serial = $3",
                   {agentId, family, serial, atMs}));
}

// --- tickets --------------------------------------------------------------------------------

Result<std::optional<TicketRow>> PostgresTicketStorage::liveTicket(const std::string& dedupKey) {
  if (auto known = live_.find(dedupKey); known != live_.end()) {
    return std::optional<TicketRow>(known->second);
  }
  return first(exec("read a problem's live ticket",
                    "SELECT " PASS_PG_TICKET_COLUMNS
                    "FROM tickets WHERE dedup_key = $1 AND state <> 'resolved'",
                    {dedupKey}),
               readTicket);
}

Result<std::optional<TicketRow>> PostgresTicketStorage::resolvedSince(const std::string& dedupKey,
                                                                      std::int64_t sinceMs) {
  return first(exec("read a problem's last resolved ticket",
                    "SELECT " PASS_PG_TICKET_COLUMNS
                    "FROM tickets WHERE dedup_key = $1 AND state = 'resolved' AND "
                    "resolved_ms >= $2 ORDER BY resolved_ms DESC LIMIT 1",
                    {dedupKey, sinceMs}),
               readTicket);
}

Result<std::optional<TicketRow>> PostgresTicketStorage::ticket(std::int64_t id) {
  return first(
      exec("read a ticket", "SELECT " PASS_PG_TICKET_COLUMNS "FROM tickets WHERE id = $1", {id}),
      readTicket);
}

Result<std::optional<std::int64_t>> PostgresTicketStorage::openTicket(
    const TicketRow& t, const std::string& dedupKey, std::optional<std::int64_t> escalateAtMs) {
  // The unique index tickets_one_live keeps one live ticket per key. When another home's
  // transaction inserted one and has not committed yet, this INSERT waits for it: after its
  // COMMIT nothing is stored here (no row returned), after its ROLLBACK this row is.
  return first(
      exec("open a ticket",
           "INSERT INTO tickets (dedup_key, kind, customer, site, family, \"array\", agent_id, "
           "problem, title, code, severity, component, urgent, state, count, first_seen_ms, "
           "last_seen_ms, opened_ms, escalate_at_ms, parent_id, silenced_by, detail) VALUES "
           "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'open', $14, $15, $16, "
           "$17, $18, $19, $20, $21) "
           "ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO NOTHING RETURNING id",
           {dedupKey,
            t.kind,
            t.customer,
            t.site,
            t.family,
            t.array,
            t.agentId,
            t.problem,
            t.title,
            t.code,
            t.severity,
            t.component,
            std::int64_t{t.urgent ? 1 : 0},
            t.count,
            t.firstSeenMs,
            t.lastSeenMs,
            t.openedMs,
            escalateAtMs,
            t.parentId,
            t.silencedBy,
            t.detail}),
      readInt);
}

Status PostgresTicketStorage::countOccurrences(std::int64_t id, std::int64_t n, std::int64_t seenMs,
                                               const std::string& detail) {
  forget(id);
  if (holding_) {
    // One held count per ticket: the counts add up, the latest detail wins.
    if (auto [at, added] = heldCountOf_.emplace(id, heldCounts_.size()); !added) {
      HeldCount& c = heldCounts_[at->second];
      c.n += n;
      c.seenMs = std::max(c.seenMs, seenMs);
      c.detail = detail;
    } else {
      heldCounts_.push_back({id, n, seenMs, detail});
    }
    return {};
  }
  return done(exec("count a ticket's occurrences",
                   "UPDATE tickets SET count = count + $4, last_seen_ms = "
                   "GREATEST(last_seen_ms, $2), detail = $3 WHERE id = $1",
                   {id, seenMs, detail, n}));
}

Status PostgresTicketStorage::markAcknowledged(std::int64_t id, std::string_view who,
                                               std::int64_t atMs) {
  forget(id);
  return done(exec("acknowledge a ticket",
                   "UPDATE tickets SET state = 'acknowledged', acked_ms = $2, acked_by = $3, "
                   "escalate_at_ms = NULL WHERE id = $1",
                   {id, atMs, who}));
}

Status PostgresTicketStorage::markResolved(std::int64_t id, std::string_view who,
                                           std::int64_t atMs) {
  forget(id);
  return done(exec("resolve a ticket",
                   "UPDATE tickets SET state = 'resolved', resolved_ms = $2, resolved_by = "
                   "$3, escalate_at_ms = NULL WHERE id = $1",
                   {id, atMs, who}));
}

Result<bool> PostgresTicketStorage::markReopened(std::int64_t id,
                                                 std::optional<std::int64_t> escalateAtMs) {
  forget(id);
  // Two homes reopening the same ticket: the second UPDATE waits for the first's row lock and
  // then finds the row open, so it changes nothing.
  auto rows =
      exec("reopen a ticket",
           "UPDATE tickets SET state = 'open', acked_ms = NULL, acked_by = '', resolved_ms = NULL, "
           "resolved_by = '', escalation_level = 1, escalate_at_ms = $2 WHERE id = $1 AND state = "
           "'resolved' AND NOT EXISTS (SELECT 1 FROM tickets live WHERE live.dedup_key = "
           "tickets.dedup_key AND live.state <> 'resolved')",
           {id, escalateAtMs});
  if (!rows) return std::unexpected(rows.error());
  return rows->affected() == 1;
}

Status PostgresTicketStorage::attachToParent(std::int64_t id, std::int64_t parentId) {
  forget(id);
  return done(exec("put a ticket under a site ticket",
                   "UPDATE tickets SET parent_id = $2 WHERE id = $1", {id, parentId}));
}

Status PostgresTicketStorage::setEscalation(std::int64_t id, std::int64_t level,
                                            std::optional<std::int64_t> nextAtMs) {
  forget(id);
  return done(exec("set a ticket's escalation",
                   "UPDATE tickets SET escalation_level = $2, escalate_at_ms = $3 WHERE id = $1",
                   {id, level, nextAtMs}));
}

Result<std::vector<TicketRow>> PostgresTicketStorage::ticketsDueToEscalate(std::int64_t nowMs) {
  return all(exec("read the tickets due to escalate",
                  "SELECT " PASS_PG_TICKET_COLUMNS
                  "FROM tickets WHERE state = 'open' AND escalate_at_ms <= $1 "
                  "AND silenced_by IS NULL AND parent_id IS NULL ORDER BY id",
                  {nowMs}),
             readTicket);
}

Status PostgresTicketStorage::appendLog(std::int64_t ticketId, std::int64_t atMs,
                                        std::string_view who, std::string_view action,
                                        std::string_view detail) {
  if (holding_) {
    heldLogs_.push_back(
        {ticketId, atMs, std::string(who), std::string(action), std::string(detail)});
    return {};
  }
  return done(exec("append to a ticket's log",
                   "INSERT INTO ticket_log (ticket_id, at_ms, who, action, detail) VALUES "
                   "($1, $2, $3, $4, $5)",
                   {ticketId, atMs, who, action, detail}));
}

// --- silences -------------------------------------------------------------------------------

Result<std::optional<std::int64_t>> PostgresTicketStorage::silenceCovering(const TicketRow& t,
                                                                           std::int64_t nowMs) {
  return first(
      exec("find a silence covering a ticket",
           "SELECT id FROM silences WHERE removed_ms IS NULL AND starts_ms <= $5 AND "
           "ends_ms > $5 AND (customer = '' OR customer = $1) AND (site = '' OR site = $2) "
           "AND (\"array\" = '' OR \"array\" = $3) AND (code = '' OR lower(code) = "
           "lower($4)) ORDER BY id LIMIT 1",
           {t.customer, t.site, t.array, t.code, nowMs}),
      readInt);
}

// --- outbox ---------------------------------------------------------------------------------

Status PostgresTicketStorage::queueMessage(const OutboxRow& o) {
  return done(exec("queue a message",
                   "INSERT INTO outbox (ticket_id, created_ms, channel, target, recipient, "
                   "notice, state, not_before_ms, last_error) VALUES ($1, $2, $3, $4, $5, "
                   "$6, $7, $8, $9)",
                   {o.ticketId, o.createdMs, o.channel, o.target, o.recipient, o.notice, o.state,
                    o.notBeforeMs, o.lastError}));
}

Result<std::int64_t> PostgresTicketStorage::messagesSentTo(std::string_view channel,
                                                           std::string_view target,
                                                           std::int64_t sinceMs) {
  return single(exec("count the messages to a recipient",
                     "SELECT count(*) FROM outbox WHERE channel = $1 AND target = $2 AND "
                     "created_ms > $3 AND state <> 'suppressed'",
                     {channel, target, sinceMs}));
}

Result<std::vector<Recipient>> PostgresTicketStorage::ticketRecipients(std::int64_t ticketId) {
  // SQLite's SELECT DISTINCT … ORDER BY id: PostgreSQL orders DISTINCT rows only by what they
  // select, so the first message of each recipient orders them.
  return all(exec("read a ticket's recipients",
                  "SELECT recipient, channel, target FROM outbox WHERE ticket_id = $1 AND "
                  "state <> 'suppressed' GROUP BY recipient, channel, target ORDER BY "
                  "min(id)",
                  {ticketId}),
             [](const Rows& r, int i) {
               return Recipient{r.text(i, 0), r.text(i, 1), r.text(i, 2)};
             });
}

// --- storms ---------------------------------------------------------------------------------

Result<std::int64_t> PostgresTicketStorage::ticketsOpenedSince(std::string_view customer,
                                                               std::string_view site,
                                                               std::int64_t sinceMs) {
  return single(exec("count a site's new tickets",
                     "SELECT count(*) FROM tickets WHERE customer = $1 AND site = $2 AND "
                     "opened_ms > $3 AND parent_id IS NULL",
                     {customer, site, sinceMs}));
}

Result<bool> PostgresTicketStorage::stormActive(std::string_view customer, std::string_view site) {
  auto rows =
      exec("read a site's storm", "SELECT tickets FROM storms WHERE customer = $1 AND site = $2",
           {customer, site});
  if (!rows) return std::unexpected(rows.error());
  return rows->size() > 0;
}

Status PostgresTicketStorage::startStorm(std::string_view customer, std::string_view site,
                                         std::int64_t atMs) {
  return done(exec("start a storm",
                   "INSERT INTO storms (customer, site, started_ms, last_ms, tickets) VALUES "
                   "($1, $2, $3, $3, 1)",
                   {customer, site, atMs}));
}

Status PostgresTicketStorage::extendStorm(std::string_view customer, std::string_view site,
                                          std::int64_t atMs) {
  return done(exec(
      "count a storm's ticket",
      "UPDATE storms SET last_ms = $3, tickets = tickets + 1 WHERE customer = $1 AND site = $2",
      {customer, site, atMs}));
}

Result<std::vector<EndedStorm>> PostgresTicketStorage::stormsEndedBy(std::int64_t lastBeforeMs) {
  return all(exec("read the storms that ended",
                  "SELECT customer, site, started_ms, tickets FROM storms WHERE last_ms <= $1",
                  {lastBeforeMs}),
             [](const Rows& r, int i) {
               return EndedStorm{r.text(i, 0), r.text(i, 1), r.integer(i, 2), r.integer(i, 3)};
             });
}

Result<std::vector<StormTicket>> PostgresTicketStorage::stormTickets(std::string_view customer,
                                                                     std::string_view site,
                                                                     std::int64_t sinceMs) {
  return all(exec("read a storm's tickets",
                  "SELECT id, title, \"array\" FROM tickets WHERE customer = $1 AND site = $2 "
                  "AND opened_ms >= $3 AND parent_id IS NULL ORDER BY id",
                  {customer, site, sinceMs}),
             [](const Rows& r, int i) {
               return StormTicket{r.integer(i, 0), r.text(i, 1), r.text(i, 2)};
             });
}

Status PostgresTicketStorage::endStorm(std::string_view customer, std::string_view site) {
  return done(exec("end a storm", "DELETE FROM storms WHERE customer = $1 AND site = $2",
                   {customer, site}));
}

// --- the watchdog's questions ---------------------------------------------------------------

Result<std::vector<OverdueAgent>> PostgresTicketStorage::overdueAgents(
    std::int64_t nowMs, std::int64_t grace, std::int64_t receivingSinceMs) {
  return all(exec("read the agents whose heartbeat is overdue",
                  "SELECT id, customer, site, name, heartbeat_due_home_ms, heartbeat_interval_ms, "
                  "$1 > GREATEST(heartbeat_due_home_ms, $3) + $2 * heartbeat_interval_ms "
                  "FROM agents WHERE revoked_ms IS NULL AND heartbeat_due_home_ms IS NOT NULL "
                  "AND $1 > heartbeat_due_home_ms + $2 * heartbeat_interval_ms "
                  "ORDER BY customer, site, id",
                  {nowMs, grace, receivingSinceMs}),
             [](const Rows& r, int i) {
               return OverdueAgent{r.text(i, 0),    r.text(i, 1),    r.text(i, 2),    r.text(i, 3),
                                   r.integer(i, 4), r.integer(i, 5), !r.boolean(i, 6)};
             });
}

Result<std::int64_t> PostgresTicketStorage::longestHeartbeatInterval() {
  return single(exec("read the longest heartbeat interval",
                     "SELECT coalesce(max(heartbeat_interval_ms), 0) FROM agents WHERE "
                     "revoked_ms IS NULL AND heartbeat_due_home_ms IS NOT NULL"));
}

Result<std::int64_t> PostgresTicketStorage::heartbeatAgentsAt(std::string_view customer,
                                                              std::string_view site) {
  return single(exec("count a site's agents that send heartbeats",
                     "SELECT count(*) FROM agents WHERE customer = $1 AND site = $2 AND "
                     "revoked_ms IS NULL AND heartbeat_due_home_ms IS NOT NULL",
                     {customer, site}));
}

Result<std::vector<SilentSinceOnboarding>> PostgresTicketStorage::neverReportedAgents(
    std::int64_t onboardedBeforeMs) {
  return all(exec("read the agents never heard of since onboarding",
                  "SELECT a.id, a.customer, a.site, a.name, min(x.since_ms), count(*), "
                  "string_agg(x.serial, ', ' ORDER BY x.family, x.serial) FROM agents a JOIN "
                  "expected_arrays x ON x.agent_id = a.id WHERE a.revoked_ms IS NULL AND "
                  "a.heartbeat_received_ms IS NULL GROUP BY a.id HAVING min(x.since_ms) < $1 "
                  "ORDER BY a.customer, a.site, a.id",
                  {onboardedBeforeMs}),
             [](const Rows& r, int i) {
               return SilentSinceOnboarding{r.text(i, 0), r.text(i, 1),    r.text(i, 2),
                                            r.text(i, 3), r.integer(i, 4), r.integer(i, 5),
                                            r.text(i, 6)};
             });
}

Result<std::vector<AgentCertificate>> PostgresTicketStorage::certificatesToReview(
    std::int64_t expiringByMs) {
  return all(exec("read the agent certificates to review",
                  "SELECT id, customer, site, name, cert_expires_ms, cert_expires_ms <= $1 FROM "
                  "agents a WHERE (revoked_ms IS NULL AND cert_expires_ms <= $1) OR "
                  "(cert_expires_ms > $1 AND EXISTS (SELECT 1 FROM tickets t WHERE t.agent_id = "
                  "a.id AND t.kind = 'certificate_expiring' AND t.state <> 'resolved')) "
                  "ORDER BY customer, site, id",
                  {expiringByMs}),
             [](const Rows& r, int i) {
               return AgentCertificate{r.text(i, 0), r.text(i, 1),    r.text(i, 2),
                                       r.text(i, 3), r.integer(i, 4), r.boolean(i, 5)};
             });
}

}  // namespace pass::home::postgres
