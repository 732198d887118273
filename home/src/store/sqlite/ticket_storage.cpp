// TicketStorage on SQLite: the SQL of the ticket rules and the watchdog (the decisions are in
// tickets/ticket_engine.cpp and tickets/watchdog.cpp). Statements are prepared once per
// connection and kept; each call runs inside the Store's open write transaction.

#include "store/sqlite/ticket_storage.hpp"

namespace pass::home::sqlite {

namespace {

/// Binds `params` to ?1, ?2, … in order.
template <typename... Params>
Statement& bindAll(Statement& s, const Params&... params) {
  int index = 0;
  (s.bind(++index, params), ...);
  return s;
}

std::int64_t readInt(const Statement& s) { return s.columnInt(0); }

}  // namespace

TicketRow readTicket(const Statement& s) {
  TicketRow t;
  t.id = s.columnInt(0);
  t.kind = s.columnText(1);
  t.customer = s.columnText(2);
  t.site = s.columnText(3);
  t.family = s.columnText(4);
  t.array = s.columnText(5);
  t.agentId = s.columnText(6);
  t.problem = s.columnText(7);
  t.title = s.columnText(8);
  t.code = s.columnText(9);
  t.severity = s.columnText(10);
  t.component = s.columnText(11);
  t.urgent = s.columnInt(12) != 0;
  t.state = s.columnText(13);
  t.count = s.columnInt(14);
  t.firstSeenMs = s.columnInt(15);
  t.lastSeenMs = s.columnInt(16);
  t.openedMs = s.columnInt(17);
  t.ackedMs = s.columnOptInt(18);
  t.ackedBy = s.columnText(19);
  t.resolvedMs = s.columnOptInt(20);
  t.resolvedBy = s.columnText(21);
  t.escalationLevel = s.columnInt(22);
  t.parentId = s.columnOptInt(23);
  t.silencedBy = s.columnOptInt(24);
  t.detail = s.columnText(25);
  return t;
}

Status SqliteTicketStorage::run(const char* sql, auto&&... params) {
  auto s = statement(sql);
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, params...).run();
}

Result<std::optional<TicketRow>> SqliteTicketStorage::oneTicket(Statement& s) {
  return s.firstRow(readTicket);
}

// --- agents ---------------------------------------------------------------------------------

Result<std::optional<AgentInfo>> SqliteTicketStorage::agent(std::string_view agentId) {
  auto s = statement("SELECT customer, site, name FROM agents WHERE id = ?1");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, agentId).firstRow([](const Statement& r) {
    return AgentInfo{r.columnText(0), r.columnText(1), r.columnText(2)};
  });
}

Status SqliteTicketStorage::recordClockSkew(std::string_view agentId, std::int64_t skewMs,
                                            std::string_view warning) {
  return run("UPDATE agents SET clock_skew_ms = ?2, clock_warning = ?3 WHERE id = ?1", agentId,
             skewMs, warning);
}

Result<std::vector<ExpectedArray>> SqliteTicketStorage::expectedArrays(std::string_view agentId) {
  auto s = statement(
      "SELECT family, serial, model, name, since_ms, last_reported_ms FROM expected_arrays "
      "WHERE agent_id = ?1 ORDER BY family, serial");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, agentId).rows([](const Statement& r) {
    return ExpectedArray{.family = r.columnText(0),
                         .serial = r.columnText(1),
                         .model = r.columnText(2),
                         .name = r.columnText(3),
                         .sinceMs = r.columnInt(4),
                         .lastReportedMs = r.columnOptInt(5)};
  });
}

Status SqliteTicketStorage::markArrayReported(std::string_view agentId, std::string_view family,
                                              std::string_view serial, std::int64_t atMs) {
  return run(
      "UPDATE expected_arrays SET last_reported_ms = ?4 WHERE agent_id = ?1 AND family = ?2 "
      "AND serial = ?3",
      agentId, family, serial, atMs);
}

// --- tickets --------------------------------------------------------------------------------

Result<std::optional<TicketRow>> SqliteTicketStorage::liveTicket(const std::string& dedupKey) {
  auto s = statement("SELECT " PASS_TICKET_COLUMNS
                     "FROM tickets WHERE dedup_key = ?1 AND state <> 'resolved'");
  if (!s) return std::unexpected(s.error());
  return oneTicket(bindAll(**s, dedupKey));
}

Result<std::optional<TicketRow>> SqliteTicketStorage::resolvedSince(const std::string& dedupKey,
                                                                    std::int64_t sinceMs) {
  auto s = statement("SELECT " PASS_TICKET_COLUMNS
                     "FROM tickets WHERE dedup_key = ?1 AND state = 'resolved' AND "
                     "resolved_ms >= ?2 ORDER BY resolved_ms DESC LIMIT 1");
  if (!s) return std::unexpected(s.error());
  return oneTicket(bindAll(**s, dedupKey, sinceMs));
}

Result<std::optional<TicketRow>> SqliteTicketStorage::ticket(std::int64_t id) {
  auto s = statement("SELECT " PASS_TICKET_COLUMNS "FROM tickets WHERE id = ?1");
  if (!s) return std::unexpected(s.error());
  return oneTicket(bindAll(**s, id));
}

Result<std::optional<std::int64_t>> SqliteTicketStorage::openTicket(
    const TicketRow& t, const std::string& dedupKey, std::optional<std::int64_t> escalateAtMs) {
  // The unique index tickets_one_live keeps one live ticket per key: a second is not stored.
  auto s = statement(
      "INSERT INTO tickets (dedup_key, kind, customer, site, family, array, agent_id, problem, "
      "title, code, severity, component, urgent, state, count, first_seen_ms, last_seen_ms, "
      "opened_ms, escalate_at_ms, parent_id, silenced_by, detail) VALUES (?1, ?2, ?3, ?4, ?5, "
      "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'open', ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) "
      "ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO NOTHING RETURNING id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, dedupKey, t.kind, t.customer, t.site, t.family, t.array, t.agentId, t.problem,
                 t.title, t.code, t.severity, t.component, std::int64_t{t.urgent ? 1 : 0}, t.count,
                 t.firstSeenMs, t.lastSeenMs, t.openedMs, escalateAtMs, t.parentId, t.silencedBy,
                 t.detail)
      .firstRow(readInt);
}

Status SqliteTicketStorage::countOccurrences(std::int64_t id, std::int64_t n, std::int64_t seenMs,
                                             const std::string& detail) {
  return run(
      "UPDATE tickets SET count = count + ?4, last_seen_ms = max(last_seen_ms, ?2), "
      "detail = ?3 WHERE id = ?1",
      id, seenMs, detail, n);
}

Status SqliteTicketStorage::markAcknowledged(std::int64_t id, std::string_view who,
                                             std::int64_t atMs) {
  return run(
      "UPDATE tickets SET state = 'acknowledged', acked_ms = ?2, acked_by = ?3, "
      "escalate_at_ms = NULL WHERE id = ?1",
      id, atMs, who);
}

Status SqliteTicketStorage::markResolved(std::int64_t id, std::string_view who, std::int64_t atMs) {
  return run(
      "UPDATE tickets SET state = 'resolved', resolved_ms = ?2, resolved_by = ?3, "
      "escalate_at_ms = NULL WHERE id = ?1",
      id, atMs, who);
}

Result<bool> SqliteTicketStorage::markReopened(std::int64_t id,
                                               std::optional<std::int64_t> escalateAtMs) {
  auto done =
      run("UPDATE tickets SET state = 'open', acked_ms = NULL, acked_by = '', resolved_ms = NULL, "
          "resolved_by = '', escalation_level = 1, escalate_at_ms = ?2 WHERE id = ?1 AND state = "
          "'resolved' AND NOT EXISTS (SELECT 1 FROM tickets live WHERE live.dedup_key = "
          "tickets.dedup_key AND live.state <> 'resolved')",
          id, escalateAtMs);
  if (!done) return std::unexpected(done.error());
  return db_.changes() == 1;
}

Status SqliteTicketStorage::attachToParent(std::int64_t id, std::int64_t parentId) {
  return run("UPDATE tickets SET parent_id = ?2 WHERE id = ?1", id, parentId);
}

Status SqliteTicketStorage::setEscalation(std::int64_t id, std::int64_t level,
                                          std::optional<std::int64_t> nextAtMs) {
  return run("UPDATE tickets SET escalation_level = ?2, escalate_at_ms = ?3 WHERE id = ?1", id,
             level, nextAtMs);
}

Result<std::vector<TicketRow>> SqliteTicketStorage::ticketsDueToEscalate(std::int64_t nowMs) {
  auto s = statement("SELECT " PASS_TICKET_COLUMNS
                     "FROM tickets WHERE state = 'open' AND escalate_at_ms <= ?1 "
                     "AND silenced_by IS NULL AND parent_id IS NULL ORDER BY id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, nowMs).rows(readTicket);
}

Status SqliteTicketStorage::appendLog(std::int64_t ticketId, std::int64_t atMs,
                                      std::string_view who, std::string_view action,
                                      std::string_view detail) {
  return run(
      "INSERT INTO ticket_log (ticket_id, at_ms, who, action, detail) VALUES (?1, ?2, ?3, ?4, "
      "?5)",
      ticketId, atMs, who, action, detail);
}

// --- silences -------------------------------------------------------------------------------

Result<std::optional<std::int64_t>> SqliteTicketStorage::silenceCovering(const TicketRow& t,
                                                                         std::int64_t nowMs) {
  auto s = statement(
      "SELECT id FROM silences WHERE removed_ms IS NULL AND starts_ms <= ?5 AND ends_ms > ?5 "
      "AND (customer = '' OR customer = ?1) AND (site = '' OR site = ?2) "
      "AND (array = '' OR array = ?3) AND (code = '' OR lower(code) = lower(?4)) "
      "ORDER BY id LIMIT 1");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, t.customer, t.site, t.array, t.code, nowMs).firstRow(readInt);
}

// --- outbox ---------------------------------------------------------------------------------

Status SqliteTicketStorage::queueMessage(const OutboxRow& o) {
  return run(
      "INSERT INTO outbox (ticket_id, created_ms, channel, target, recipient, notice, state, "
      "not_before_ms, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
      o.ticketId, o.createdMs, o.channel, o.target, o.recipient, o.notice, o.state, o.notBeforeMs,
      o.lastError);
}

Result<std::int64_t> SqliteTicketStorage::messagesSentTo(std::string_view channel,
                                                         std::string_view target,
                                                         std::int64_t sinceMs) {
  auto s = statement(
      "SELECT count(*) FROM outbox WHERE channel = ?1 AND target = ?2 AND created_ms > ?3 "
      "AND state <> 'suppressed'");
  if (!s) return std::unexpected(s.error());
  auto n = bindAll(**s, channel, target, sinceMs).firstRow(readInt);
  if (!n) return std::unexpected(n.error());
  return n->value_or(0);
}

Result<std::vector<Recipient>> SqliteTicketStorage::ticketRecipients(std::int64_t ticketId) {
  auto s = statement(
      "SELECT DISTINCT recipient, channel, target FROM outbox WHERE ticket_id = ?1 "
      "AND state <> 'suppressed' ORDER BY id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, ticketId).rows([](const Statement& r) {
    return Recipient{r.columnText(0), r.columnText(1), r.columnText(2)};
  });
}

// --- storms ---------------------------------------------------------------------------------

Result<std::int64_t> SqliteTicketStorage::ticketsOpenedSince(std::string_view customer,
                                                             std::string_view site,
                                                             std::int64_t sinceMs) {
  auto s = statement(
      "SELECT count(*) FROM tickets WHERE customer = ?1 AND site = ?2 AND opened_ms > ?3 "
      "AND parent_id IS NULL");
  if (!s) return std::unexpected(s.error());
  auto n = bindAll(**s, customer, site, sinceMs).firstRow(readInt);
  if (!n) return std::unexpected(n.error());
  return n->value_or(0);
}

Result<bool> SqliteTicketStorage::stormActive(std::string_view customer, std::string_view site) {
  auto s = statement("SELECT tickets FROM storms WHERE customer = ?1 AND site = ?2");
  if (!s) return std::unexpected(s.error());
  auto found = bindAll(**s, customer, site).firstRow(readInt);
  if (!found) return std::unexpected(found.error());
  return found->has_value();
}

Status SqliteTicketStorage::startStorm(std::string_view customer, std::string_view site,
                                       std::int64_t atMs) {
  return run(
      "INSERT INTO storms (customer, site, started_ms, last_ms, tickets) VALUES (?1, ?2, ?3, ?3, "
      "1)",
      customer, site, atMs);
}

Status SqliteTicketStorage::extendStorm(std::string_view customer, std::string_view site,
                                        std::int64_t atMs) {
  return run(
      "UPDATE storms SET last_ms = ?3, tickets = tickets + 1 WHERE customer = ?1 AND site = ?2",
      customer, site, atMs);
}

Result<std::vector<EndedStorm>> SqliteTicketStorage::stormsEndedBy(std::int64_t lastBeforeMs) {
  auto s = statement("SELECT customer, site, started_ms, tickets FROM storms WHERE last_ms <= ?1");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, lastBeforeMs).rows([](const Statement& r) {
    return EndedStorm{r.columnText(0), r.columnText(1), r.columnInt(2), r.columnInt(3)};
  });
}

Result<std::vector<StormTicket>> SqliteTicketStorage::stormTickets(std::string_view customer,
                                                                   std::string_view site,
                                                                   std::int64_t sinceMs) {
  auto s = statement(
      "SELECT id, title, array FROM tickets WHERE customer = ?1 AND site = ?2 AND "
      "opened_ms >= ?3 AND parent_id IS NULL ORDER BY id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, customer, site, sinceMs).rows([](const Statement& r) {
    return StormTicket{r.columnInt(0), r.columnText(1), r.columnText(2)};
  });
}

Status SqliteTicketStorage::endStorm(std::string_view customer, std::string_view site) {
  return run("DELETE FROM storms WHERE customer = ?1 AND site = ?2", customer, site);
}

// --- the watchdog's questions ---------------------------------------------------------------

Result<std::vector<OverdueAgent>> SqliteTicketStorage::overdueAgents(
    std::int64_t nowMs, std::int64_t grace, std::int64_t receivingSinceMs) {
  auto s = statement(
      "SELECT id, customer, site, name, heartbeat_due_home_ms, heartbeat_interval_ms, "
      "?1 > max(heartbeat_due_home_ms, ?3) + ?2 * heartbeat_interval_ms "
      "FROM agents WHERE revoked_ms IS NULL AND heartbeat_due_home_ms IS NOT NULL "
      "AND ?1 > heartbeat_due_home_ms + ?2 * heartbeat_interval_ms ORDER BY customer, site, id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, nowMs, grace, receivingSinceMs).rows([](const Statement& r) {
    return OverdueAgent{r.columnText(0), r.columnText(1), r.columnText(2),    r.columnText(3),
                        r.columnInt(4),  r.columnInt(5),  r.columnInt(6) == 0};
  });
}

Result<std::int64_t> SqliteTicketStorage::longestHeartbeatInterval() {
  return db_.queryInt(
      "SELECT coalesce(max(heartbeat_interval_ms), 0) FROM agents WHERE revoked_ms IS NULL "
      "AND heartbeat_due_home_ms IS NOT NULL");
}

Result<std::int64_t> SqliteTicketStorage::heartbeatAgentsAt(std::string_view customer,
                                                            std::string_view site) {
  auto s = statement(
      "SELECT count(*) FROM agents WHERE customer = ?1 AND site = ?2 AND revoked_ms IS NULL "
      "AND heartbeat_due_home_ms IS NOT NULL");
  if (!s) return std::unexpected(s.error());
  auto n = bindAll(**s, customer, site).firstRow(readInt);
  if (!n) return std::unexpected(n.error());
  return n->value_or(0);
}

Result<std::vector<SilentSinceOnboarding>> SqliteTicketStorage::neverReportedAgents(
    std::int64_t onboardedBeforeMs) {
  auto s = statement(
      "SELECT a.id, a.customer, a.site, a.name, min(x.since_ms), count(*), "
      "group_concat(x.serial, ', ') FROM agents a JOIN expected_arrays x ON x.agent_id = a.id "
      "WHERE a.revoked_ms IS NULL AND a.heartbeat_received_ms IS NULL "
      "GROUP BY a.id HAVING min(x.since_ms) < ?1 ORDER BY a.customer, a.site, a.id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, onboardedBeforeMs).rows([](const Statement& r) {
    return SilentSinceOnboarding{r.columnText(0), r.columnText(1), r.columnText(2), r.columnText(3),
                                 r.columnInt(4),  r.columnInt(5),  r.columnText(6)};
  });
}

Result<std::vector<AgentCertificate>> SqliteTicketStorage::certificatesToReview(
    std::int64_t expiringByMs) {
  auto s = statement(
      "SELECT id, customer, site, name, cert_expires_ms, cert_expires_ms <= ?1 FROM agents a "
      "WHERE (revoked_ms IS NULL AND cert_expires_ms <= ?1) OR (cert_expires_ms > ?1 "
      "AND EXISTS (SELECT 1 FROM tickets t WHERE t.agent_id = a.id AND t.kind = "
      "'certificate_expiring' AND t.state != 'resolved')) ORDER BY customer, site, id");
  if (!s) return std::unexpected(s.error());
  return bindAll(**s, expiringByMs).rows([](const Statement& r) {
    return AgentCertificate{r.columnText(0), r.columnText(1), r.columnText(2),
                            r.columnText(3), r.columnInt(4),  r.columnInt(5) != 0};
  });
}

}  // namespace pass::home::sqlite
