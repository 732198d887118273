// The watchdog's phases (docs/tickets.md), over TicketStorage: no SQL here.

#include "tickets/watchdog.hpp"

#include <set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/home/log.hpp"

namespace pass::home {

namespace {

using Json = nlohmann::json;

}  // namespace

Result<WatchdogReport> Watchdog::run() {
  for (auto phase :
       {&Watchdog::heartbeatsOverdue, &Watchdog::neverReported, &Watchdog::expiringCertificates,
        &Watchdog::escalations, &Watchdog::stormSummaries}) {
    if (auto done = (this->*phase)(); !done) return std::unexpected(done.error());
  }
  return report_;
}

Status Watchdog::heartbeatsOverdue() {
  // While the home was not receiving, nobody could reach it: the grace counts from the later of
  // the due time and the moment it began receiving again.
  const auto grace = static_cast<std::int64_t>(policy_.config().graceHeartbeats);
  auto overdue = storage_.overdueAgents(nowMs_, grace, receivingSinceMs_.value_or(0));
  if (!overdue) return std::unexpected(overdue.error());
  std::vector<OverdueAgent> silent;
  for (auto& a : *overdue) {
    if (a.held) {
      ++report_.held;
    } else {
      silent.push_back(std::move(a));
    }
  }
  if (receivingSinceMs_) {
    auto longest = storage_.longestHeartbeatInterval();
    if (!longest) return std::unexpected(longest.error());
    report_.holdUntilMs = *receivingSinceMs_ + grace * *longest;
  }
  std::set<std::pair<std::string, std::string>> sites;
  for (const auto& a : silent) sites.emplace(a.customer, a.site);
  for (const auto& [customer, site] : sites) {
    std::vector<const OverdueAgent*> here;
    for (const auto& a : silent) {
      if (a.customer == customer && a.site == site) here.push_back(&a);
    }
    auto parent = silentSite(customer, site, here.size());
    if (!parent) return std::unexpected(parent.error());
    for (const OverdueAgent* a : here) {
      if (auto done = missingHeartbeat(*a, *parent); !done) return done;
    }
  }
  return {};
}

Result<std::optional<std::int64_t>> Watchdog::silentSite(const std::string& customer,
                                                         const std::string& site,
                                                         std::size_t silent) {
  const std::string siteKey = dedupKey(customer, site, "", "", "site_silent");
  auto siteTicket = storage_.liveTicket(siteKey);
  if (!siteTicket) return std::unexpected(siteTicket.error());
  if (*siteTicket) return (*siteTicket)->id;
  // Agents per site that send heartbeats at all, to tell a silent site from a silent agent: a
  // site with two or more agents, all silent, is one ticket, not one page per agent.
  auto total = storage_.heartbeatAgentsAt(customer, site);
  if (!total) return std::unexpected(total.error());
  if (*total < 2 || static_cast<std::int64_t>(silent) != *total) return std::nullopt;
  TicketRow t = homeTicket("site_silent", customer, site, "site_silent", nowMs_);
  t.title = fmt::format("all {} agents of site {} are silent", *total, site);
  t.detail = Json{{"text",
                   "no heartbeat from any agent of the site: a network or power "
                   "outage at the site, or its route to the home"}}
                 .dump();
  if (auto done = engine_.raise(std::move(t), "watchdog", nowMs_); !done) {
    return std::unexpected(done.error());
  }
  auto opened = storage_.liveTicket(siteKey);
  if (!opened) return std::unexpected(opened.error());
  if (!*opened) return fail("store", "site ticket vanished");
  ++report_.siteOpened;
  return (*opened)->id;
}

Status Watchdog::missingHeartbeat(const OverdueAgent& a, std::optional<std::int64_t> parent) {
  const std::string key = dedupKey(a.customer, a.site, "", a.id, "missing_heartbeat");
  auto existing = storage_.liveTicket(key);
  if (!existing) return std::unexpected(existing.error());
  if (*existing) {
    if (!parent || (*existing)->parentId) return {};
    if (auto done = storage_.attachToParent((*existing)->id, *parent); !done) return done;
    return storage_.appendLog((*existing)->id, nowMs_, "watchdog", "attached",
                              fmt::format("under site ticket #{}", *parent));
  }
  TicketRow t = homeTicket("missing_heartbeat", a.customer, a.site, "missing_heartbeat", nowMs_);
  t.array = a.id;
  t.agentId = a.id;
  t.title = fmt::format("missing heartbeat from agent {}", a.name);
  t.firstSeenMs = a.dueMs;
  t.parentId = parent;
  t.detail =
      Json{{"text", fmt::format("the heartbeat due {} ago has not arrived (grace: {} "
                                "heartbeat intervals of {})",
                                humanDuration(nowMs_ - a.dueMs), policy_.config().graceHeartbeats,
                                humanDuration(a.intervalMs))}}
          .dump();
  if (auto done = engine_.raise(std::move(t), "watchdog", nowMs_); !done) return done;
  ++report_.missingOpened;
  return {};
}

Status Watchdog::neverReported() {
  // Shipped, but not installed or cut off.
  auto agents = storage_.neverReportedAgents(nowMs_ - policy_.config().firstReportMs);
  if (!agents) return std::unexpected(agents.error());
  for (const auto& a : *agents) {
    auto existing = storage_.liveTicket(dedupKey(a.customer, a.site, "", a.id, "never_reported"));
    if (!existing) return std::unexpected(existing.error());
    if (*existing) continue;
    TicketRow t = homeTicket("never_reported", a.customer, a.site, "never_reported", nowMs_);
    t.array = a.id;
    t.agentId = a.id;
    t.title = fmt::format("agent {} has never reported since onboarding", a.name);
    t.firstSeenMs = a.sinceMs;
    t.detail = Json{{"text", fmt::format("onboarded {} ago with {} array(s) ({}); no heartbeat "
                                         "has arrived: is the appliance or the MSI installed, "
                                         "and may it reach the home on port 9455?",
                                         humanDuration(nowMs_ - a.sinceMs), a.arrays, a.serials)}}
                   .dump();
    if (auto done = engine_.raise(std::move(t), "watchdog", nowMs_); !done) return done;
    ++report_.neverReportedOpened;
  }
  return {};
}

Status Watchdog::expiringCertificates() {
  // The agent renews a third of the lifetime ahead (docs/security.md), so one still expiring
  // within kCertificateExpiringMs did not renew. A renewal moves the date out and the next pass
  // resolves the ticket.
  auto certs = storage_.certificatesToReview(nowMs_ + kCertificateExpiringMs);
  if (!certs) return std::unexpected(certs.error());
  for (const auto& c : *certs) {
    const std::string key = dedupKey(c.customer, c.site, "", c.id, "certificate_expiring");
    auto existing = storage_.liveTicket(key);
    if (!existing) return std::unexpected(existing.error());
    if (!c.expiring) {
      if (!*existing) continue;
      if (auto done = engine_.resolve(**existing, "watchdog",
                                      fmt::format("the certificate was renewed; it now expires {}",
                                                  formatTimestamp(c.expiresMs)),
                                      nowMs_);
          !done) {
        return done;
      }
      continue;
    }
    if (*existing) continue;
    const bool expired = c.expiresMs <= nowMs_;
    TicketRow t =
        homeTicket("certificate_expiring", c.customer, c.site, "certificate_expiring", nowMs_);
    t.array = c.id;
    t.agentId = c.id;
    t.title = expired ? fmt::format("agent {}'s certificate has expired", c.name)
                      : fmt::format("agent {}'s certificate expires in {}", c.name,
                                    humanDuration(c.expiresMs - nowMs_));
    t.detail =
        Json{{"text", fmt::format("the agent's TLS certificate {} {} and was not renewed; the "
                                  "agent renews it by itself once a third of its lifetime is "
                                  "left, so it has not reached the home since (or its renewal "
                                  "failed: see its log). Without a renewal it can no longer "
                                  "deliver once the certificate has expired: enroll it again",
                                  expired ? "expired" : "expires", formatTimestamp(c.expiresMs))}}
            .dump();
    if (auto done = engine_.raise(std::move(t), "watchdog", nowMs_); !done) return done;
    ++report_.certificateExpiringOpened;
  }
  return {};
}

Status Watchdog::escalations() {
  auto due = storage_.ticketsDueToEscalate(nowMs_);
  if (!due) return std::unexpected(due.error());
  for (const auto& t : *due) {
    auto level = static_cast<unsigned>(t.escalationLevel + 1);
    // Past the rota's last level, management alone hears once more; then it stops.
    bool last = level > policy_.levels(t.customer);
    auto to = policy_.recipients(t.customer, /*urgent=*/true, level, nowMs_);
    const Customer* c = policy_.config().customer(t.customer);
    std::optional<std::int64_t> next;
    if (!last && c != nullptr && c->escalateAfterMs > 0) next = nowMs_ + c->escalateAfterMs;
    if (auto done = storage_.setEscalation(t.id, static_cast<std::int64_t>(level), next); !done) {
      return done;
    }
    auto n = engine_.notice(t, "escalated", nowMs_);
    n.detail = fmt::format("not acknowledged {} after it opened; escalation level {}",
                           humanDuration(nowMs_ - t.openedMs), level);
    if (auto done = storage_.appendLog(t.id, nowMs_, "watchdog", "escalated",
                                       fmt::format("level {}: {} recipient(s)", level, to.size()));
        !done) {
      return done;
    }
    if (!to.empty()) {
      if (auto done = engine_.enqueue(t.id, n, to, nowMs_, nowMs_); !done) return done;
    }
    ++report_.escalated;
  }
  return {};
}

Status Watchdog::stormSummaries() {
  auto ended = storage_.stormsEndedBy(nowMs_ - policy_.config().stormWindowMs);
  if (!ended) return std::unexpected(ended.error());
  for (const auto& e : *ended) {
    auto tickets = storage_.stormTickets(e.customer, e.site, e.startedMs);
    if (!tickets) return std::unexpected(tickets.error());
    constexpr std::size_t kShown = 50;
    std::string lines;
    for (std::size_t i = 0; i < tickets->size() && i < kShown; ++i) {
      const auto& t = (*tickets)[i];
      lines += fmt::format("#{} {} {}\n", t.id, t.array, t.title);
    }
    if (tickets->size() > kShown) {
      lines += fmt::format("... and {} more\n", tickets->size() - kShown);
    }
    const auto all = static_cast<std::int64_t>(tickets->size());
    notify::Notice n;
    n.kind = "storm_summary";
    n.customer = e.customer;
    n.site = e.site;
    n.problem = fmt::format("storm at {}/{} is over: {} tickets", e.customer, e.site, all);
    n.count = all;
    n.firstSeenMs = e.startedMs;
    n.lastSeenMs = nowMs_;
    n.detail = lines;
    auto to = policy_.recipients(e.customer, /*urgent=*/false, 1, nowMs_);
    if (!to.empty()) {
      if (auto done = engine_.enqueue(std::nullopt, n, to, nowMs_, nowMs_); !done) return done;
    }
    if (auto done = storage_.endStorm(e.customer, e.site); !done) return done;
    ++report_.stormSummaries;
  }
  return {};
}

}  // namespace pass::home
