#pragma once
// TicketStorage: what the ticket rules (TicketEngine) and the watchdog read and write, as one
// backend-neutral interface. A store makes one for an open write transaction and it is valid
// only inside it: every call is part of that transaction, so a ticket, its audit rows and its
// outbox rows commit or roll back together with what caused them. Plain structs in and out;
// each backend implements it in its own folder (store/sqlite/ticket_storage.cpp).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// What a ticket change needs to know about the agent that caused it.
struct AgentInfo {
  std::string customer;
  std::string site;
  std::string name;
};

/// An agent whose heartbeat is overdue by more than the grace (watchdog, missing heartbeats).
struct OverdueAgent {
  std::string id, customer, site, name;
  std::int64_t dueMs = 0;       // when the heartbeat was due, on the home's clock
  std::int64_t intervalMs = 0;  // the agent's heartbeat interval
  /// Overdue, but not yet counting the grace from when the home began receiving again.
  bool held = false;
};

/// An onboarded agent that has never sent a heartbeat.
struct SilentSinceOnboarding {
  std::string id, customer, site, name;
  std::int64_t sinceMs = 0;  // the earliest onboarding of its expected arrays
  std::int64_t arrays = 0;
  std::string serials;  // the expected arrays' serials, ", "-separated
};

/// An agent certificate the watchdog looks at: expiring soon, or renewed with a live ticket.
struct AgentCertificate {
  std::string id, customer, site, name;
  std::int64_t expiresMs = 0;
  bool expiring = false;  // within the expiry window
};

/// A storm that ended (no new ticket at its site within the storm window).
struct EndedStorm {
  std::string customer, site;
  std::int64_t startedMs = 0;
  std::int64_t tickets = 0;
};

/// One line of a storm summary.
struct StormTicket {
  std::int64_t id = 0;
  std::string title, array;
};

class TicketStorage {
 public:
  virtual ~TicketStorage() = default;

  // --- reading ahead ----------------------------------------------------------------------
  /// What the rules of a batch of envelopes will ask agent() and liveTicket() for, each read
  /// in one statement before they run (TicketEngine::readAhead). A backend where a statement
  /// is a round trip to a server (PostgreSQL) answers the later calls from what it read, and
  /// keeps those answers true: the live tickets it read stay locked until the transaction
  /// ends, and a change to a ticket drops what it read of it. Others need not do anything.
  virtual Status readAheadAgents(std::span<const std::string> agentIds) {
    (void)agentIds;
    return {};
  }
  virtual Status readAheadLiveTickets(std::span<const std::string> dedupKeys) {
    (void)dedupKeys;
    return {};
  }

  // --- agents ---------------------------------------------------------------------------
  /// nullopt when the agent is unknown.
  virtual Result<std::optional<AgentInfo>> agent(std::string_view agentId) = 0;
  /// The agent clock's offset from the home's at its last heartbeat, and the warning shown.
  virtual Status recordClockSkew(std::string_view agentId, std::int64_t skewMs,
                                 std::string_view warning) = 0;
  /// The arrays onboarding says the agent watches.
  virtual Result<std::vector<ExpectedArray>> expectedArrays(std::string_view agentId) = 0;
  virtual Status markArrayReported(std::string_view agentId, std::string_view family,
                                   std::string_view serial, std::int64_t atMs) = 0;

  // --- tickets ----------------------------------------------------------------------------
  /// The open or acknowledged ticket of a problem (its deduplication key), if any.
  virtual Result<std::optional<TicketRow>> liveTicket(const std::string& dedupKey) = 0;
  /// The ticket of `dedupKey` resolved last, if that was at or after `sinceMs`.
  virtual Result<std::optional<TicketRow>> resolvedSince(const std::string& dedupKey,
                                                         std::int64_t sinceMs) = 0;
  virtual Result<std::optional<TicketRow>> ticket(std::int64_t id) = 0;
  /// Stores `t` as a new open ticket of `dedupKey` and returns its id; nullopt, storing
  /// nothing, when the problem already has a live ticket: one live ticket per key is the
  /// database's rule (the unique index tickets_one_live), and another transaction, perhaps
  /// another home's, may have opened it since this one looked (docs/scale-out.md).
  virtual Result<std::optional<std::int64_t>> openTicket(
      const TicketRow& t, const std::string& dedupKey,
      std::optional<std::int64_t> escalateAtMs) = 0;
  /// Adds `n` occurrences, the latest seen at `seenMs` with `detail`.
  virtual Status countOccurrences(std::int64_t id, std::int64_t n, std::int64_t seenMs,
                                  const std::string& detail) = 0;
  virtual Status markAcknowledged(std::int64_t id, std::string_view who, std::int64_t atMs) = 0;
  virtual Status markResolved(std::int64_t id, std::string_view who, std::int64_t atMs) = 0;
  /// Opens a resolved ticket again at escalation level 1. False, changing nothing, when it is
  /// not resolved (any more) or its problem has another live ticket.
  virtual Result<bool> markReopened(std::int64_t id, std::optional<std::int64_t> escalateAtMs) = 0;
  /// Puts a ticket under a site ticket (its messages go with the site's).
  virtual Status attachToParent(std::int64_t id, std::int64_t parentId) = 0;
  virtual Status setEscalation(std::int64_t id, std::int64_t level,
                               std::optional<std::int64_t> nextAtMs) = 0;
  /// Open, unsilenced top-level tickets whose escalation time is at or before `nowMs`, by id.
  virtual Result<std::vector<TicketRow>> ticketsDueToEscalate(std::int64_t nowMs) = 0;
  /// Appends to the ticket's audit trail.
  virtual Status appendLog(std::int64_t ticketId, std::int64_t atMs, std::string_view who,
                           std::string_view action, std::string_view detail) = 0;

  // --- silences -------------------------------------------------------------------------
  /// The first active silence at `nowMs` that covers the ticket's customer, site, array and
  /// code (an empty field of a silence matches anything; codes without regard to case).
  virtual Result<std::optional<std::int64_t>> silenceCovering(const TicketRow& t,
                                                              std::int64_t nowMs) = 0;

  // --- outbox ---------------------------------------------------------------------------
  /// Queues one message (state pending or suppressed; id, attempts and sentMs are ignored).
  virtual Status queueMessage(const OutboxRow& row) = 0;
  /// Messages to `channel`/`target` created after `sinceMs`, not counting suppressed ones.
  virtual Result<std::int64_t> messagesSentTo(std::string_view channel, std::string_view target,
                                              std::int64_t sinceMs) = 0;
  /// Everyone a ticket's messages went to (not suppressed), distinct, first message first.
  virtual Result<std::vector<Recipient>> ticketRecipients(std::int64_t ticketId) = 0;

  // --- storms -----------------------------------------------------------------------------
  /// Top-level tickets opened at a site after `sinceMs`.
  virtual Result<std::int64_t> ticketsOpenedSince(std::string_view customer, std::string_view site,
                                                  std::int64_t sinceMs) = 0;
  virtual Result<bool> stormActive(std::string_view customer, std::string_view site) = 0;
  virtual Status startStorm(std::string_view customer, std::string_view site,
                            std::int64_t atMs) = 0;
  /// One more ticket in the site's storm, at `atMs`.
  virtual Status extendStorm(std::string_view customer, std::string_view site,
                             std::int64_t atMs) = 0;
  /// Storms whose last ticket is at or before `lastBeforeMs`.
  virtual Result<std::vector<EndedStorm>> stormsEndedBy(std::int64_t lastBeforeMs) = 0;
  /// The top-level tickets of a site opened at or after `sinceMs`, by id.
  virtual Result<std::vector<StormTicket>> stormTickets(std::string_view customer,
                                                        std::string_view site,
                                                        std::int64_t sinceMs) = 0;
  virtual Status endStorm(std::string_view customer, std::string_view site) = 0;

  // --- the watchdog's questions -----------------------------------------------------------
  /// Agents (not revoked) whose heartbeat is overdue at `nowMs` by more than `grace`
  /// intervals, by customer, site, id. `held`: not yet overdue that much counted from
  /// `receivingSinceMs`.
  virtual Result<std::vector<OverdueAgent>> overdueAgents(std::int64_t nowMs, std::int64_t grace,
                                                          std::int64_t receivingSinceMs) = 0;
  /// The longest heartbeat interval of the agents that send heartbeats (0 when none does).
  virtual Result<std::int64_t> longestHeartbeatInterval() = 0;
  /// How many agents (not revoked) of a site send heartbeats.
  virtual Result<std::int64_t> heartbeatAgentsAt(std::string_view customer,
                                                 std::string_view site) = 0;
  /// Agents (not revoked) with expected arrays, onboarded before `onboardedBeforeMs`, that
  /// have never sent a heartbeat, by customer, site, id.
  virtual Result<std::vector<SilentSinceOnboarding>> neverReportedAgents(
      std::int64_t onboardedBeforeMs) = 0;
  /// Agents (not revoked) whose certificate expires by `expiringByMs`, and agents whose
  /// certificate expires later but that have a live certificate_expiring ticket.
  virtual Result<std::vector<AgentCertificate>> certificatesToReview(std::int64_t expiringByMs) = 0;
};

}  // namespace pass::home
