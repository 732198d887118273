#pragma once
// TicketStorage on SQLite (ticket_storage.cpp): every SQL text of the ticket rules and the
// watchdog, on the Store's connection inside its open write transaction.

#include "store/sqlite.hpp"
#include "store/ticket_storage.hpp"

namespace pass::home::sqlite {

/// The columns readTicket() reads, in its order.
#define PASS_TICKET_COLUMNS                                                             \
  "id, kind, customer, site, family, array, agent_id, problem, title, code, severity, " \
  "component, urgent, state, count, first_seen_ms, last_seen_ms, opened_ms, acked_ms, " \
  "acked_by, resolved_ms, resolved_by, escalation_level, parent_id, silenced_by, detail "

/// A row selected with PASS_TICKET_COLUMNS.
TicketRow readTicket(const Statement& s);

/// Borrows the connection and its statement cache for one write transaction.
class SqliteTicketStorage final : public TicketStorage {
 public:
  SqliteTicketStorage(Database& db, StatementCache& statements)
      : db_(db), statements_(statements) {}

  Result<std::optional<AgentInfo>> agent(std::string_view agentId) override;
  Status recordClockSkew(std::string_view agentId, std::int64_t skewMs,
                         std::string_view warning) override;
  Result<std::vector<ExpectedArray>> expectedArrays(std::string_view agentId) override;
  Status markArrayReported(std::string_view agentId, std::string_view family,
                           std::string_view serial, std::int64_t atMs) override;

  Result<std::optional<TicketRow>> liveTicket(const std::string& dedupKey) override;
  Result<std::optional<TicketRow>> resolvedSince(const std::string& dedupKey,
                                                 std::int64_t sinceMs) override;
  Result<std::optional<TicketRow>> ticket(std::int64_t id) override;
  Result<std::optional<std::int64_t>> openTicket(const TicketRow& t, const std::string& dedupKey,
                                                 std::optional<std::int64_t> escalateAtMs) override;
  Status countOccurrences(std::int64_t id, std::int64_t n, std::int64_t seenMs,
                          const std::string& detail) override;
  Status markAcknowledged(std::int64_t id, std::string_view who, std::int64_t atMs) override;
  Status markResolved(std::int64_t id, std::string_view who, std::int64_t atMs) override;
  Result<bool> markReopened(std::int64_t id, std::optional<std::int64_t> escalateAtMs) override;
  Status attachToParent(std::int64_t id, std::int64_t parentId) override;
  Status setEscalation(std::int64_t id, std::int64_t level,
                       std::optional<std::int64_t> nextAtMs) override;
  Result<std::vector<TicketRow>> ticketsDueToEscalate(std::int64_t nowMs) override;
  Status appendLog(std::int64_t ticketId, std::int64_t atMs, std::string_view who,
                   std::string_view action, std::string_view detail) override;

  Result<std::optional<std::int64_t>> silenceCovering(const TicketRow& t,
                                                      std::int64_t nowMs) override;

  Status queueMessage(const OutboxRow& row) override;
  Result<std::int64_t> messagesSentTo(std::string_view channel, std::string_view target,
                                      std::int64_t sinceMs) override;
  Result<std::vector<Recipient>> ticketRecipients(std::int64_t ticketId) override;

  Result<std::int64_t> ticketsOpenedSince(std::string_view customer, std::string_view site,
                                          std::int64_t sinceMs) override;
  Result<bool> stormActive(std::string_view customer, std::string_view site) override;
  Status startStorm(std::string_view customer, std::string_view site, std::int64_t atMs) override;
  Status extendStorm(std::string_view customer, std::string_view site, std::int64_t atMs) override;
  Result<std::vector<EndedStorm>> stormsEndedBy(std::int64_t lastBeforeMs) override;
  Result<std::vector<StormTicket>> stormTickets(std::string_view customer, std::string_view site,
                                                std::int64_t sinceMs) override;
  Status endStorm(std::string_view customer, std::string_view site) override;

  Result<std::vector<OverdueAgent>> overdueAgents(std::int64_t nowMs, std::int64_t grace,
                                                  std::int64_t receivingSinceMs) override;
  Result<std::int64_t> longestHeartbeatInterval() override;
  Result<std::int64_t> heartbeatAgentsAt(std::string_view customer, std::string_view site) override;
  Result<std::vector<SilentSinceOnboarding>> neverReportedAgents(
      std::int64_t onboardedBeforeMs) override;
  Result<std::vector<AgentCertificate>> certificatesToReview(std::int64_t expiringByMs) override;

 private:
  /// The cached statement of `sql`, reset with its parameters cleared.
  Result<Statement*> statement(const char* sql) { return statements_.get(db_, sql); }
  /// Runs a statement that returns no rows.
  Status run(const char* sql, auto&&... params);
  Result<std::optional<TicketRow>> oneTicket(Statement& s);

  Database& db_;
  StatementCache& statements_;
};

}  // namespace pass::home::sqlite
