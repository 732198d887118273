#pragma once
// Watchdog: the time-driven ticket rules (docs/tickets.md), one method per phase, over a
// TicketStorage: heartbeats overdue (missing agents and silent sites), agents never heard of
// since onboarding, expiring certificates, escalations, storm summaries.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pass/home/tickets.hpp"
#include "store/ticket_storage.hpp"
#include "tickets/ticket_engine.hpp"

namespace pass::home {

class Watchdog {
 public:
  /// One pass at `nowMs`, inside the storage's transaction. `receivingSinceMs`: see
  /// Store::watchdog.
  Watchdog(TicketStorage& storage, const Policy& policy, std::int64_t nowMs,
           std::optional<std::int64_t> receivingSinceMs = std::nullopt)
      : engine_(storage, policy),
        storage_(storage),
        policy_(policy),
        nowMs_(nowMs),
        receivingSinceMs_(receivingSinceMs) {}

  /// Every phase, in this order.
  Result<WatchdogReport> run();

  /// Agents whose heartbeat is overdue by more than the grace: per site, a site ticket when
  /// all of its (two or more) agents are silent, and one missing-heartbeat ticket per agent.
  Status heartbeatsOverdue();
  /// Onboarded agents that never sent a heartbeat.
  Status neverReported();
  /// Agent certificates near their end (opened), and renewed ones (resolved).
  Status expiringCertificates();
  /// Open tickets nobody acknowledged in time go to the next level.
  Status escalations();
  /// Storms that ended: one summary each.
  Status stormSummaries();

  const WatchdogReport& report() const { return report_; }
  /// Messages queued to be sent (not suppressed) by this pass.
  std::int64_t queued() const { return engine_.queued(); }

 private:
  /// The site ticket of customer/site (a live one, or one opened now when all `total` agents of
  /// the site are among the `silent`), or nullopt.
  Result<std::optional<std::int64_t>> silentSite(const std::string& customer,
                                                 const std::string& site, std::size_t silent);
  /// A missing-heartbeat ticket for `agent` (under the site ticket `parent`, if any).
  Status missingHeartbeat(const OverdueAgent& agent, std::optional<std::int64_t> parent);

  TicketEngine engine_;
  TicketStorage& storage_;
  const Policy& policy_;
  std::int64_t nowMs_;
  std::optional<std::int64_t> receivingSinceMs_;
  WatchdogReport report_;
};

}  // namespace pass::home
