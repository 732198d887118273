// TicketEngine and Watchdog over an in-memory TicketStorage: the ticket rules need no
// database (the SQLite store runs the same rules in test_home_tickets.cpp).

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pass/home/home_config.hpp"
#include "pass/home/tickets.hpp"
#include "store/ticket_storage.hpp"
#include "tickets/ticket_engine.hpp"
#include "tickets/watchdog.hpp"

using namespace pass;
using namespace pass::home;

namespace {

constexpr const char* kAgent = "11111111-2222-4333-8444-555555555555";
constexpr std::int64_t kT0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
constexpr std::int64_t kMinute = 60'000;

/// Tickets, their log, the outbox, silences, storms and agents in memory; ids start at 1.
class MemoryStorage final : public TicketStorage {
 public:
  struct Agent {
    std::string id;
    AgentInfo info;
    std::optional<std::int64_t> heartbeatDueMs;
    std::int64_t heartbeatIntervalMs = 0;
  };
  struct Ticket {
    TicketRow row;
    std::string key;
    std::optional<std::int64_t> escalateAtMs;
  };
  struct Storm {
    std::int64_t startedMs = 0, lastMs = 0, tickets = 0;
  };

  std::vector<Agent> agents;
  std::vector<Ticket> tickets;
  std::vector<TicketLogRow> log;
  std::vector<OutboxRow> outbox;
  std::vector<SilenceRow> silences;
  std::map<std::pair<std::string, std::string>, Storm> storms;

  std::vector<std::string> actions(std::int64_t ticket) const {
    std::vector<std::string> out;
    for (const auto& l : log) {
      if (l.ticketId == ticket) out.push_back(l.action);
    }
    return out;
  }

  Result<std::optional<AgentInfo>> agent(std::string_view agentId) override {
    for (const auto& a : agents) {
      if (a.id == agentId) return a.info;
    }
    return std::optional<AgentInfo>();
  }
  Status recordClockSkew(std::string_view, std::int64_t, std::string_view) override { return {}; }
  Result<std::vector<ExpectedArray>> expectedArrays(std::string_view) override {
    return std::vector<ExpectedArray>();
  }
  Status markArrayReported(std::string_view, std::string_view, std::string_view,
                           std::int64_t) override {
    return {};
  }

  Result<std::optional<TicketRow>> liveTicket(const std::string& key) override {
    for (const auto& t : tickets) {
      if (t.key == key && t.row.state != "resolved") return t.row;
    }
    return std::optional<TicketRow>();
  }
  Result<std::optional<TicketRow>> resolvedSince(const std::string& key,
                                                 std::int64_t sinceMs) override {
    std::optional<TicketRow> out;
    for (const auto& t : tickets) {
      if (t.key == key && t.row.state == "resolved" && t.row.resolvedMs >= sinceMs &&
          (!out || t.row.resolvedMs > out->resolvedMs)) {
        out = t.row;
      }
    }
    return out;
  }
  Result<std::optional<TicketRow>> ticket(std::int64_t id) override {
    if (id < 1 || id > static_cast<std::int64_t>(tickets.size())) {
      return std::optional<TicketRow>();
    }
    return at(id).row;
  }
  Result<std::int64_t> openTicket(const TicketRow& t, const std::string& key,
                                  std::optional<std::int64_t> escalateAtMs) override {
    auto live = liveTicket(key);
    if (*live) return fail("store", "a live ticket of this problem exists");
    Ticket stored{t, key, escalateAtMs};
    stored.row.id = static_cast<std::int64_t>(tickets.size()) + 1;
    stored.row.state = "open";
    tickets.push_back(std::move(stored));
    return tickets.back().row.id;
  }
  Status countOccurrences(std::int64_t id, std::int64_t n, std::int64_t seenMs,
                          const std::string& detail) override {
    auto& t = at(id).row;
    t.count += n;
    t.lastSeenMs = std::max(t.lastSeenMs, seenMs);
    t.detail = detail;
    return {};
  }
  Status markAcknowledged(std::int64_t id, std::string_view who, std::int64_t atMs) override {
    auto& t = at(id);
    t.row.state = "acknowledged";
    t.row.ackedMs = atMs;
    t.row.ackedBy = who;
    t.escalateAtMs.reset();
    return {};
  }
  Status markResolved(std::int64_t id, std::string_view who, std::int64_t atMs) override {
    auto& t = at(id);
    t.row.state = "resolved";
    t.row.resolvedMs = atMs;
    t.row.resolvedBy = who;
    t.escalateAtMs.reset();
    return {};
  }
  Status markReopened(std::int64_t id, std::optional<std::int64_t> escalateAtMs) override {
    auto& t = at(id);
    t.row.state = "open";
    t.row.ackedMs.reset();
    t.row.resolvedMs.reset();
    t.row.escalationLevel = 1;
    t.escalateAtMs = escalateAtMs;
    return {};
  }
  Status attachToParent(std::int64_t id, std::int64_t parentId) override {
    at(id).row.parentId = parentId;
    return {};
  }
  Status setEscalation(std::int64_t id, std::int64_t level,
                       std::optional<std::int64_t> nextAtMs) override {
    at(id).row.escalationLevel = level;
    at(id).escalateAtMs = nextAtMs;
    return {};
  }
  Result<std::vector<TicketRow>> ticketsDueToEscalate(std::int64_t nowMs) override {
    std::vector<TicketRow> out;
    for (const auto& t : tickets) {
      if (t.row.state == "open" && t.escalateAtMs && *t.escalateAtMs <= nowMs &&
          !t.row.silencedBy && !t.row.parentId) {
        out.push_back(t.row);
      }
    }
    return out;
  }
  Status appendLog(std::int64_t ticketId, std::int64_t atMs, std::string_view who,
                   std::string_view action, std::string_view detail) override {
    log.push_back(TicketLogRow{static_cast<std::int64_t>(log.size()) + 1, ticketId, atMs,
                               std::string(who), std::string(action), std::string(detail)});
    return {};
  }

  Result<std::optional<std::int64_t>> silenceCovering(const TicketRow& t,
                                                      std::int64_t nowMs) override {
    auto covers = [](const std::string& field, const std::string& value) {
      return field.empty() || field == value;
    };
    for (const auto& s : silences) {
      if (!s.removedMs && s.startsMs <= nowMs && nowMs < s.endsMs &&
          covers(s.customer, t.customer) && covers(s.site, t.site) && covers(s.array, t.array) &&
          covers(s.code, t.code)) {
        return s.id;
      }
    }
    return std::optional<std::int64_t>();
  }

  Status queueMessage(const OutboxRow& row) override {
    outbox.push_back(row);
    outbox.back().id = static_cast<std::int64_t>(outbox.size());
    return {};
  }
  Result<std::int64_t> messagesSentTo(std::string_view channel, std::string_view target,
                                      std::int64_t sinceMs) override {
    return std::count_if(outbox.begin(), outbox.end(), [&](const OutboxRow& o) {
      return o.channel == channel && o.target == target && o.createdMs > sinceMs &&
             o.state != "suppressed";
    });
  }
  Result<std::vector<Recipient>> ticketRecipients(std::int64_t ticketId) override {
    std::vector<Recipient> out;
    for (const auto& o : outbox) {
      if (o.ticketId == ticketId && o.state != "suppressed") {
        out.push_back(Recipient{o.recipient, o.channel, o.target});
      }
    }
    return out;
  }

  Result<std::int64_t> ticketsOpenedSince(std::string_view customer, std::string_view site,
                                          std::int64_t sinceMs) override {
    return std::count_if(tickets.begin(), tickets.end(), [&](const Ticket& t) {
      return t.row.customer == customer && t.row.site == site && t.row.openedMs > sinceMs &&
             !t.row.parentId;
    });
  }
  Result<bool> stormActive(std::string_view customer, std::string_view site) override {
    return storms.contains({std::string(customer), std::string(site)});
  }
  Status startStorm(std::string_view customer, std::string_view site, std::int64_t atMs) override {
    storms[{std::string(customer), std::string(site)}] = Storm{atMs, atMs, 1};
    return {};
  }
  Status extendStorm(std::string_view customer, std::string_view site, std::int64_t atMs) override {
    auto& s = storms[{std::string(customer), std::string(site)}];
    s.lastMs = atMs;
    ++s.tickets;
    return {};
  }
  Result<std::vector<EndedStorm>> stormsEndedBy(std::int64_t lastBeforeMs) override {
    std::vector<EndedStorm> out;
    for (const auto& [where, s] : storms) {
      if (s.lastMs <= lastBeforeMs)
        out.push_back({where.first, where.second, s.startedMs, s.tickets});
    }
    return out;
  }
  Result<std::vector<StormTicket>> stormTickets(std::string_view customer, std::string_view site,
                                                std::int64_t sinceMs) override {
    std::vector<StormTicket> out;
    for (const auto& t : tickets) {
      if (t.row.customer == customer && t.row.site == site && t.row.openedMs >= sinceMs &&
          !t.row.parentId) {
        out.push_back({t.row.id, t.row.title, t.row.array});
      }
    }
    return out;
  }
  Status endStorm(std::string_view customer, std::string_view site) override {
    storms.erase({std::string(customer), std::string(site)});
    return {};
  }

  Result<std::vector<OverdueAgent>> overdueAgents(std::int64_t nowMs, std::int64_t grace,
                                                  std::int64_t receivingSinceMs) override {
    std::vector<OverdueAgent> out;
    for (const auto& a : agents) {
      if (!a.heartbeatDueMs) continue;
      const std::int64_t allowed = grace * a.heartbeatIntervalMs;
      if (nowMs <= *a.heartbeatDueMs + allowed) continue;
      const bool held = nowMs <= std::max(*a.heartbeatDueMs, receivingSinceMs) + allowed;
      out.push_back(OverdueAgent{a.id, a.info.customer, a.info.site, a.info.name, *a.heartbeatDueMs,
                                 a.heartbeatIntervalMs, held});
    }
    return out;
  }
  Result<std::int64_t> longestHeartbeatInterval() override {
    std::int64_t longest = 0;
    for (const auto& a : agents) {
      if (a.heartbeatDueMs) longest = std::max(longest, a.heartbeatIntervalMs);
    }
    return longest;
  }
  Result<std::int64_t> heartbeatAgentsAt(std::string_view customer,
                                         std::string_view site) override {
    return std::count_if(agents.begin(), agents.end(), [&](const Agent& a) {
      return a.info.customer == customer && a.info.site == site && a.heartbeatDueMs;
    });
  }
  Result<std::vector<SilentSinceOnboarding>> neverReportedAgents(std::int64_t) override {
    return std::vector<SilentSinceOnboarding>();
  }
  Result<std::vector<AgentCertificate>> certificatesToReview(std::int64_t) override {
    return std::vector<AgentCertificate>();
  }

 private:
  Ticket& at(std::int64_t id) { return tickets.at(static_cast<std::size_t>(id - 1)); }
};

std::shared_ptr<const Policy> makePolicy() {
  HomeConfig cfg;
  cfg.ratePerHour = 1000;
  Customer acme;
  acme.name = "Acme";
  acme.contacts.push_back(
      Contact{.name = "Mia Manager", .role = "management", .email = "mia@acme.example"});
  acme.contacts.push_back(
      Contact{.name = "Eli Engineer", .role = "engineer", .email = "eli@acme.example"});
  cfg.customers.push_back(acme);
  return Policy::make(std::move(cfg), Bytes(32, 7));
}

struct Fixture {
  Fixture() {
    storage.agents.push_back(MemoryStorage::Agent{
        .id = kAgent, .info = AgentInfo{"Acme", "Berlin", "vsp-1"}, .heartbeatDueMs = {}});
  }

  /// One report of the agent with one event, through a fresh engine (one transaction).
  void report(std::int64_t at, std::string kind) {
    EnvelopeRecord r;
    r.agentId = kAgent;
    r.createdMs = at;
    r.receivedMs = at;
    r.type = "report";
    EventRecord e;
    e.family = "hitachi_svp";
    e.array = "410123";
    e.code = "307080";
    e.severity = "acute";
    e.kind = std::move(kind);
    e.component = "DKC-0 fan 2";
    e.text = "FAN ALARM";
    e.occurredMs = at;
    r.events.push_back(e);
    const EventRecord* events[] = {&r.events.front()};
    TicketEngine engine(storage, *policy);
    auto done = engine.onNewEvents(r, events);
    REQUIRE_MESSAGE(done.has_value(), (done ? "" : done.error().message));
    queued += engine.queued();
  }

  std::shared_ptr<const Policy> policy = makePolicy();
  MemoryStorage storage;
  std::int64_t queued = 0;
};

std::vector<std::string> targets(const std::vector<OutboxRow>& rows) {
  std::vector<std::string> out;
  for (const auto& o : rows) out.push_back(o.target);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("ticket engine, no database: an alert opens one ticket and queues its messages") {
  Fixture f;
  f.report(kT0, "alert");
  REQUIRE(f.storage.tickets.size() == 1);
  const auto& t = f.storage.tickets.front().row;
  CHECK(t.kind == "alert");
  CHECK(t.state == "open");
  CHECK(t.count == 1);
  CHECK(f.storage.actions(t.id) == std::vector<std::string>{"opened"});
  CHECK(targets(f.storage.outbox) ==
        std::vector<std::string>{"eli@acme.example", "mia@acme.example"});
  for (const auto& o : f.storage.outbox) {
    CHECK(o.ticketId == t.id);
    CHECK(o.state == "pending");
  }
  CHECK(f.queued == 2);
}

TEST_CASE("ticket engine, no database: a repeat counts an occurrence and sends nothing") {
  Fixture f;
  f.report(kT0, "alert");
  f.report(kT0 + kMinute, "alert");
  REQUIRE(f.storage.tickets.size() == 1);
  const auto& t = f.storage.tickets.front().row;
  CHECK(t.count == 2);
  CHECK(t.lastSeenMs == kT0 + kMinute);
  CHECK(f.storage.actions(t.id) == std::vector<std::string>{"opened", "repeated"});
  CHECK(f.storage.outbox.size() == 2);
}

TEST_CASE("ticket engine, no database: a recovery resolves the ticket and tells who heard") {
  Fixture f;
  f.report(kT0, "alert");
  f.report(kT0 + kMinute, "recovery");
  REQUIRE(f.storage.tickets.size() == 1);
  const auto& t = f.storage.tickets.front().row;
  CHECK(t.state == "resolved");
  CHECK(t.resolvedMs == kT0 + kMinute);
  CHECK(f.storage.actions(t.id) == std::vector<std::string>{"opened", "resolved"});
  // The two first messages, then "resolved" by e-mail to both.
  REQUIRE(f.storage.outbox.size() == 4);
  CHECK(f.storage.outbox[2].notice.find(R"("kind":"resolved")") != std::string::npos);
  CHECK(f.queued == 4);
}

TEST_CASE("ticket engine, no database: a silence keeps the ticket and suppresses its messages") {
  Fixture f;
  f.storage.silences.push_back(SilenceRow{.id = 7,
                                          .array = "410123",
                                          .startsMs = kT0 - kMinute,
                                          .endsMs = kT0 + 60 * kMinute,
                                          .author = "ops",
                                          .reason = "maintenance"});
  f.report(kT0, "alert");
  REQUIRE(f.storage.tickets.size() == 1);
  const auto& t = f.storage.tickets.front().row;
  CHECK(t.silencedBy == 7);
  CHECK(f.storage.actions(t.id) == std::vector<std::string>{"opened", "silenced"});
  CHECK(f.storage.outbox.empty());
  CHECK(f.queued == 0);
}

TEST_CASE("watchdog, no database: a missing heartbeat opens one ticket, once") {
  Fixture f;
  f.storage.agents.front().heartbeatDueMs = kT0;
  f.storage.agents.front().heartbeatIntervalMs = 5 * kMinute;
  // Grace: two intervals after the due time.
  {
    Watchdog watchdog(f.storage, *f.policy, kT0 + 10 * kMinute);
    auto report = watchdog.run();
    REQUIRE(report.has_value());
    CHECK(report->missingOpened == 0);
    CHECK(f.storage.tickets.empty());
  }
  Watchdog watchdog(f.storage, *f.policy, kT0 + 11 * kMinute);
  auto report = watchdog.run();
  REQUIRE(report.has_value());
  CHECK(report->missingOpened == 1);
  REQUIRE(f.storage.tickets.size() == 1);
  const auto& t = f.storage.tickets.front().row;
  CHECK(t.kind == "missing_heartbeat");
  CHECK(t.agentId == kAgent);
  CHECK(t.firstSeenMs == kT0);
  CHECK(f.storage.actions(t.id) == std::vector<std::string>{"opened"});
  CHECK(targets(f.storage.outbox) ==
        std::vector<std::string>{"eli@acme.example", "mia@acme.example"});
  CHECK(watchdog.queued() == 2);

  Watchdog again(f.storage, *f.policy, kT0 + 20 * kMinute);
  auto second = again.run();
  REQUIRE(second.has_value());
  CHECK(second->missingOpened == 0);
  CHECK(f.storage.tickets.size() == 1);
  CHECK(f.storage.outbox.size() == 2);
}

TEST_CASE("ticket engine, no database: the next heartbeat resolves the missing-heartbeat ticket") {
  Fixture f;
  f.storage.agents.front().heartbeatDueMs = kT0;
  f.storage.agents.front().heartbeatIntervalMs = 5 * kMinute;
  REQUIRE(Watchdog(f.storage, *f.policy, kT0 + 11 * kMinute).run().has_value());
  REQUIRE(f.storage.tickets.size() == 1);

  EnvelopeRecord heartbeat;
  heartbeat.agentId = kAgent;
  heartbeat.createdMs = kT0 + 30 * kMinute;
  heartbeat.receivedMs = kT0 + 30 * kMinute;
  heartbeat.type = "heartbeat";
  heartbeat.payload = R"({"schema":1,"type":"heartbeat","arrays":[]})";
  TicketEngine engine(f.storage, *f.policy);
  auto done = engine.onHeartbeat(heartbeat);
  REQUIRE_MESSAGE(done.has_value(), (done ? "" : done.error().message));
  const auto& t = f.storage.tickets.front().row;
  CHECK(t.state == "resolved");
  CHECK(t.resolvedBy == "agent vsp-1");
  CHECK(f.storage.actions(t.id) == std::vector<std::string>{"opened", "resolved"});
  // Both who heard of it hear that it is over, by e-mail.
  CHECK(f.storage.outbox.size() == 4);
  CHECK(engine.queued() == 2);
}
