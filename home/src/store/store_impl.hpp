#pragma once
// Store::Impl: what a backend implements behind Store (pass/home/store.hpp), one method per
// Store call that touches the database. store/store.cpp picks the backend on open and checks
// what needs no database (a silence's fields, a policy being loaded); store/sqlite/store.cpp and
// store/postgres/store.cpp hold each backend's SQL.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "store/outbox_queue.hpp"

namespace pass::home {

template <typename T>
std::unexpected<Error> propagate(const Result<T>& r) {
  return std::unexpected(r.error());
}

// The watchdog trusts an agent's heartbeat interval up to a day (the longest pass-agent can be
// configured to); an agent promising its next heartbeat further out is still watched daily.
inline constexpr std::int64_t kMaxHeartbeatIntervalMs = 24LL * 3600 * 1000;

struct Store::Impl {
  virtual ~Impl() = default;

  /// Set by Store::setPolicy; the ticket rules run only with one.
  std::shared_ptr<const Policy> policy;
  /// Set by Store::setLogger: where commit() says it runs a batch again (store.retry).
  Logger* log = nullptr;
  /// Outbox rows written since the caller last took this count (wakes the outbox worker).
  std::int64_t enqueued = 0;

  virtual Result<std::int64_t> schemaVersion() = 0;
  virtual Status addAgent(const NewAgent& agent) = 0;
  virtual Result<std::optional<AgentAuth>> agentAuth(std::string_view agentId) = 0;
  virtual Status renewCertificate(const CertificateRenewal& renewal) = 0;
  virtual Status revokeAgent(std::string_view agentId, std::int64_t nowMs) = 0;
  virtual Result<std::vector<AgentSummary>> agents() = 0;
  virtual Result<std::vector<std::string>> revokedAgents() = 0;
  virtual Result<std::vector<ExpectedArray>> expectedArrays(std::string_view agentId) = 0;
  virtual Status setExpectedArrays(std::string_view agentId, std::span<const ExpectedArray> arrays,
                                   std::int64_t nowMs) = 0;
  virtual Result<std::vector<StoredEnvelope>> envelopes(
      const std::optional<std::string>& agentId) = 0;
  virtual Result<std::vector<StoredEvent>> events(const std::optional<std::string>& array) = 0;
  virtual Result<std::vector<CommitResult>> commit(
      std::span<const EnvelopeRecord* const> batch) = 0;

  virtual Result<std::vector<TicketRow>> tickets(const TicketFilter& filter) = 0;
  virtual Result<std::optional<TicketRow>> ticket(std::int64_t id) = 0;
  virtual Result<std::vector<TicketLogRow>> ticketLog(std::int64_t id) = 0;
  /// With a policy loaded (Store checks).
  virtual Result<TicketRow> changeTicket(std::int64_t id, TicketAction action, std::string_view who,
                                         std::string_view note, std::int64_t nowMs) = 0;
  virtual Result<WatchdogReport> watchdog(std::int64_t nowMs,
                                          std::optional<std::int64_t> receivingSinceMs) = 0;

  /// A silence Store has checked.
  virtual Result<std::int64_t> addSilence(const SilenceRow& silence) = 0;
  virtual Result<std::vector<SilenceRow>> silences(std::int64_t nowMs, bool all) = 0;
  virtual Status removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs) = 0;

  virtual OutboxQueue& outboxQueue() = 0;
};

}  // namespace pass::home
