#pragma once
// TicketEngine: the ticket rules (docs/tickets.md) — what opens, counts, reopens and resolves a
// ticket, who is told and when, silences and storms — over a TicketStorage, whatever database
// is behind it. One engine serves one write transaction.

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "store/ticket_storage.hpp"

namespace pass::home {

/// What makes two tickets the same problem: at most one of them is live.
std::string dedupKey(std::string_view customer, std::string_view site, std::string_view family,
                     std::string_view array, std::string_view problem);

/// A ticket the home raises itself (not an array's alert): not urgent, one occurrence, first
/// seen, last seen and opened at `nowMs`.
TicketRow homeTicket(std::string kind, std::string customer, std::string site, std::string problem,
                     std::int64_t nowMs);

/// A span of time as a person reads it: "45 min", "3 h 5 min", "2 d 4 h".
std::string humanDuration(std::int64_t ms);

/// The new events of one envelope of a batch (none for a heartbeat).
struct EnvelopeEvents {
  const EnvelopeRecord* envelope = nullptr;
  std::span<const EventRecord* const> events;
};

class TicketEngine {
 public:
  TicketEngine(TicketStorage& storage, const Policy& policy) : storage_(storage), policy_(policy) {}

  /// Before a batch's onNewEvents() and onHeartbeat() calls: lets the storage read the agents
  /// and the live tickets they will ask for at once (TicketStorage::readAheadAgents).
  Status readAhead(std::span<const EnvelopeEvents> batch);
  /// Tickets for the new events of one envelope (those its insert did not find stored).
  /// Repeats of a live ticket may stay counted in memory: call flush() before committing;
  /// `r` and `events` must live until then.
  Status onNewEvents(const EnvelopeRecord& r, std::span<const EventRecord* const> events);
  /// Writes the repeats onNewEvents() counted in memory. Every other call does it first.
  Status flush();
  /// What a stored heartbeat ends or opens: missing-heartbeat and site tickets, clock skew,
  /// arrays not collected or not watched.
  Status onHeartbeat(const EnvelopeRecord& r);
  /// A person acknowledges, resolves or reopens a ticket. Fails with "ticket.unknown" or
  /// "ticket.state".
  Result<TicketRow> change(std::int64_t id, TicketAction action, std::string_view who,
                           std::string_view note, std::int64_t nowMs);

  /// Opens, counts or reopens the ticket of a problem, with audit rows and notifications.
  Status raise(TicketRow t, std::string_view who, std::int64_t nowMs);
  /// Resolves a live ticket and tells those who heard of it.
  Status resolve(const TicketRow& t, std::string_view who, std::string_view why,
                 std::int64_t nowMs);
  /// Resolves the live ticket of `key`, if there is one.
  Status resolveLive(const std::string& key, std::string_view who, std::string_view why,
                     std::int64_t nowMs);
  /// The message about a ticket.
  notify::Notice notice(const TicketRow& t, std::string_view kind, std::int64_t nowMs) const;
  /// Queues `notice` for each recipient from `notBeforeMs`, minding the per-recipient rate
  /// limit (a message over it is stored as suppressed, with an audit row).
  Status enqueue(std::optional<std::int64_t> ticket, const notify::Notice& notice,
                 const std::vector<Recipient>& to, std::int64_t notBeforeMs, std::int64_t nowMs);

  const Policy& policy() const { return policy_; }
  TicketStorage& storage() { return storage_; }
  /// Messages queued to be sent (not suppressed) by this engine.
  std::int64_t queued() const { return queued_; }

 private:
  /// An occurrence that gets an audit row (docs/tickets.md: 2 to 9, then 10, 20, … 100, 200, …).
  struct AuditedRepeat {
    std::int64_t occurrence = 0;
    std::string who;
    std::int64_t atMs = 0;
  };
  /// Repeats counted by raiseCoalesced() and not yet written.
  struct PendingRepeats {
    std::string key;
    std::int64_t ticket = 0;
    std::int64_t before = 0;  // the ticket's count before them
    std::int64_t n = 0;
    std::int64_t seenMs = 0;
    std::function<TicketRow()> latest;  // builds the row of the latest repeat, for its detail
    std::vector<AuditedRepeat> audited;
  };

  Status raiseCoalesced(std::string key, std::int64_t seenMs, std::function<TicketRow()> make,
                        std::string_view who, std::int64_t nowMs);
  Status flushRepeats();
  Status raiseNew(TicketRow t, const std::string& key, std::string_view who, std::int64_t nowMs);
  Status raisedElsewhere(const TicketRow& t, const std::string& key, std::string_view who,
                         std::int64_t nowMs);
  Status repeatedOnce(const TicketRow& live, const TicketRow& t, std::string_view who,
                      std::int64_t nowMs);
  Status repeated(std::int64_t id, std::int64_t before, std::int64_t n, std::int64_t seenMs,
                  const std::string& detail, std::string_view who, std::int64_t nowMs);
  /// False when the ticket is live again already, or another of its problem is.
  Result<bool> reopen(std::int64_t id, std::string_view customer, std::int64_t nowMs);
  Result<TicketRow> reread(std::int64_t id);
  Status notifyFirstLine(const TicketRow& t, std::string_view kind, std::int64_t nowMs);
  Status notifyFollowUp(const TicketRow& t, std::string_view kind, std::int64_t nowMs);
  Result<bool> storm(const TicketRow& t, std::int64_t nowMs);
  Status checkExpectedArrays(const AgentInfo& a, const std::string& agentId,
                             const nlohmann::json& listed, std::int64_t nowMs);
  std::optional<std::int64_t> escalateAt(std::string_view customer, std::int64_t fromMs) const;

  TicketStorage& storage_;
  const Policy& policy_;
  std::optional<PendingRepeats> pending_;
  std::int64_t queued_ = 0;
};

}  // namespace pass::home
