#pragma once
// TicketStorage on PostgreSQL (ticket_storage.cpp): the SQL of the ticket rules and the
// watchdog, on a pass-home connection inside its open transaction (READ COMMITTED: a statement
// sees what other homes committed before it began, which is how a home that lost the race to
// open a ticket finds the winner's).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/postgres/pg.hpp"
#include "store/ticket_storage.hpp"

namespace pass::home::postgres {

/// Borrows the connection for one transaction; the connection keeps the prepared statements.
class PostgresTicketStorage final : public TicketStorage {
 public:
  explicit PostgresTicketStorage(Connection& db) : db_(db) {}

  /// From now on countOccurrences() and appendLog() are held in memory and written together,
  /// one statement each, before the next other statement or by writeHeld(): a batch of
  /// envelopes counts into many tickets at the cost of one round trip. The caller calls
  /// writeHeld() before it commits.
  void holdWrites() { holding_ = true; }
  /// Writes what holdWrites() held.
  Status writeHeld();

  Status readAheadAgents(std::span<const std::string> agentIds) override;
  Status readAheadLiveTickets(std::span<const std::string> dedupKeys) override;
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
  Connection& db_;
  /// Drops what was read ahead of ticket `ticketId`: it is being changed.
  void forget(std::int64_t ticketId);
  /// db_.exec() after writeHeld().
  Result<Rows> exec(std::string_view purpose, std::string_view sql,
                    std::initializer_list<Param> params = {});

  struct HeldCount {
    std::int64_t id = 0, n = 0, seenMs = 0;
    std::string detail;
  };
  struct HeldLog {
    std::int64_t ticketId = 0, atMs = 0;
    std::string who, action, detail;
  };
  bool holding_ = false;
  std::vector<HeldCount> heldCounts_;
  std::map<std::int64_t, std::size_t> heldCountOf_;  // ticket id -> its index in heldCounts_
  std::vector<HeldLog> heldLogs_;

  /// agent() answers, for the transaction's length.
  std::map<std::string, std::optional<AgentInfo>, std::less<>> agents_;
  /// Live tickets read ahead (locked), by dedup key, until they change.
  std::map<std::string, TicketRow, std::less<>> live_;
};

}  // namespace pass::home::postgres
