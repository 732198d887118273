#pragma once
// The home's store on PostgreSQL (store.cpp), shared by every home of a cluster
// (docs/scale-out.md).

#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "store/postgres/outbox_queue.hpp"
#include "store/postgres/pg.hpp"
#include "store/store_impl.hpp"

namespace pass::home {
class TicketEngine;
}

namespace pass::home::postgres {

/// Connects to `url` (the password from `passwordFile`) and migrates the database (Store::open).
/// The database must exist: `mode` changes nothing here.
Result<std::unique_ptr<Store::Impl>> openPostgresStore(std::string_view url,
                                                       const std::filesystem::path& passwordFile,
                                                       Store::Mode mode);

/// How often commit() runs a batch's transaction before it gives up on store.retry (a
/// deadlock or serialization failure), ticket.race (another home opened and resolved the
/// ticket this batch was opening) or store.unique (a reopen raced another home's new ticket).
inline constexpr int kCommitAttempts = 5;

class PostgresStore final : public Store::Impl {
 public:
  explicit PostgresStore(Connection connection) : db(std::move(connection)) {}

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

 private:
  Connection db;

  /// One attempt at commit(): the batch in one READ COMMITTED transaction; outbox rows it
  /// queued are added to `queued`.
  Result<std::vector<CommitResult>> commitOnce(std::span<const EnvelopeRecord* const> batch,
                                               std::int64_t& queued);
  /// Inserts the batch's envelopes in one statement: true for each one stored, false for a
  /// duplicate (stored before, by this home or another, or earlier in the batch).
  Result<std::vector<bool>> insertEnvelopes(std::span<const EnvelopeRecord* const> batch);
  /// Inserts the events of the stored envelopes in one statement: each envelope's events that
  /// were new (not a repeat of a stored event id).
  Result<std::vector<std::vector<const EventRecord*>>> insertEvents(
      std::span<const EnvelopeRecord* const> batch, const std::vector<bool>& stored);
  /// A stored heartbeat and what it does to the agent's row and, through `engine`, to tickets.
  Status storeHeartbeat(const EnvelopeRecord& r, TicketEngine* engine);
  /// Each agent's last seq and envelope time, from the stored envelopes, in one statement.
  Status recordLastEnvelopes(std::span<const EnvelopeRecord* const> batch,
                             const std::vector<bool>& stored);

  OutboxQueue outboxQueue_{db, enqueued};
};

}  // namespace pass::home::postgres
