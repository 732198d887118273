#pragma once
// The home's store on SQLite (store.cpp: agents, envelopes, events, heartbeats;
// store_tickets.cpp: tickets, silences, the watchdog over SqliteTicketStorage).

#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_set>

#include "store/sqlite.hpp"
#include "store/sqlite/outbox_queue.hpp"
#include "store/store_impl.hpp"

namespace pass::home::sqlite {

/// Opens (or creates) `file` and migrates it (Store::open).
Result<std::unique_ptr<Store::Impl>> openSqliteStore(const std::filesystem::path& file,
                                                     Store::Mode mode);

class SqliteStore final : public Store::Impl {
 public:
  explicit SqliteStore(Database database) : db(std::move(database)) {}

  Result<std::int64_t> schemaVersion() override;
  Status addAgent(const NewAgent& agent) override;
  Result<std::optional<AgentAuth>> agentAuth(std::string_view agentId) override;
  Status renewCertificate(const CertificateRenewal& renewal) override;
  Status revokeAgent(std::string_view agentId, std::int64_t nowMs) override;
  Result<std::vector<AgentSummary>> agents() override;
  Result<std::vector<std::string>> revokedAgents() override;
  Result<std::vector<ExpectedArray>> expectedArrays(std::string_view agentId) override;
  Status setExpectedArrays(std::string_view agentId, std::span<const ExpectedArray> arrays,
                           std::int64_t nowMs) override;
  Result<std::vector<StoredEnvelope>> envelopes(const std::optional<std::string>& agentId) override;
  Result<std::vector<StoredEvent>> events(const std::optional<std::string>& array) override;
  Result<std::vector<CommitResult>> commit(std::span<const EnvelopeRecord* const> batch) override;
  Result<std::vector<TicketRow>> tickets(const TicketFilter& filter) override;
  Result<std::optional<TicketRow>> ticket(std::int64_t id) override;
  Result<std::vector<TicketLogRow>> ticketLog(std::int64_t id) override;
  Result<TicketRow> changeTicket(std::int64_t id, TicketAction action, std::string_view who,
                                 std::string_view note, std::int64_t nowMs) override;
  Result<WatchdogReport> watchdog(std::int64_t nowMs,
                                  std::optional<std::int64_t> receivingSinceMs) override;
  Result<std::int64_t> addSilence(const SilenceRow& silence) override;
  Result<std::vector<SilenceRow>> silences(std::int64_t nowMs, bool all) override;
  Status removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs) override;
  home::OutboxQueue& outboxQueue() override { return outboxQueue_; }

  Status migrate();

 private:
  Database db;
  std::optional<Statement> insertEnvelope;
  std::optional<Statement> selectMergedKey;
  std::optional<Statement> selectMergedUpto;
  std::optional<Statement> selectRecentKeys;
  std::optional<Statement> insertHeartbeat;
  std::optional<Statement> insertEvent;
  std::optional<Statement> updateAgentSeq;
  std::optional<Statement> updateAgentHeartbeat;
  std::optional<Statement> selectAuth;
  std::optional<Statement> beginStatement;
  std::optional<Statement> commitStatement;
  std::optional<Statement> rollbackStatement;

  // Prepared once per connection: preparing costs more than running these statements.
  Result<Statement*> statement(std::optional<Statement>& slot, std::string_view sql) {
    return prepareOnce(db, slot, sql);
  }

  // --- the envelopes key in two levels (store.cpp, docs/architecture.md) --------------------
  // envelope_keys holds the (agent, seq) of every envelope up to envelope_keys_merged.upto;
  // the envelopes after it are the recent level, whose keys this connection keeps in memory.
  // Both levels together are exact: an (agent, seq) found in either is a duplicate.
  std::unordered_set<std::string> recentKeys;
  /// The upto recentKeys was built against; -1 when they must be read again (a rollback).
  std::int64_t recentUpto = -1;
  /// The highest envelope id whose key is in recentKeys (or merged).
  std::int64_t recentLastId = 0;

  /// Inside a write transaction: brings recentKeys up to date with the database, including
  /// what another connection stored or merged.
  Status syncRecentKeys();
  /// Inside a write transaction, after syncRecentKeys: whether (agent, seq) is stored.
  Result<bool> envelopeStored(const std::string& recentKey, std::string_view agentId,
                              std::int64_t seq);
  /// Inside a write transaction: moves the keys of the envelopes after upto into
  /// envelope_keys, in key order, so that each agent's leaf page is written once per merge.
  Status mergeRecentKeys();
  /// mergeRecentKeys in its own transaction, so that readers find every envelope through
  /// envelope_keys alone.
  Status foldRecentKeys();
  /// Stores a new envelope's rows; with a policy, also what its events and heartbeat do to
  /// tickets and the outbox.
  Status storeNew(const EnvelopeRecord& r);

  // --- tickets (store_tickets.cpp: TicketEngine over sqlite/ticket_storage.cpp) -------------
  StatementCache statements;

  /// TicketEngine's rules for the new events of one envelope (those its insert did not find
  /// stored) and for a heartbeat, in the open write transaction.
  Status onNewEvents(const EnvelopeRecord& r, std::span<const EventRecord* const> events);
  Status onHeartbeat(const EnvelopeRecord& r);

  // Declared last: its statements are finalized before the connection closes.
  OutboxQueue outboxQueue_{db, enqueued};
};

}  // namespace pass::home::sqlite
