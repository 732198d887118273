// The ticket rules (TicketEngine) and the watchdog over every TicketStorage: an in-memory fake
// (the rules need no database), SQLite (store/sqlite/) and PostgreSQL (store/postgres/, a real
// server from test_postgres_support.hpp). One body per scenario, run on each backend; the
// PostgreSQL-only race between two homes is at the end. The SQLite Store runs the same rules
// end to end in test_home_tickets.cpp.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/home/home_config.hpp"
#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "store/postgres/migrate.hpp"
#include "store/postgres/pg.hpp"
#include "store/postgres/ticket_storage.hpp"
#include "store/sqlite.hpp"
#include "store/sqlite/ticket_storage.hpp"
#include "store/ticket_storage.hpp"
#include "test_postgres_support.hpp"
#include "tickets/ticket_engine.hpp"
#include "tickets/watchdog.hpp"

using namespace pass;
using namespace pass::home;
using pass::test::errorText;

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
  /// "action by who", in order.
  std::vector<std::string> audit(std::int64_t ticket) const {
    std::vector<std::string> out;
    for (const auto& l : log) {
      if (l.ticketId == ticket) out.push_back(l.action + " by " + l.who);
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
  Result<std::optional<std::int64_t>> openTicket(
      const TicketRow& t, const std::string& key,
      std::optional<std::int64_t> escalateAtMs) override {
    auto live = liveTicket(key);
    if (*live) return std::optional<std::int64_t>();
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
  Result<bool> markReopened(std::int64_t id, std::optional<std::int64_t> escalateAtMs) override {
    auto& t = at(id);
    if (t.row.state != "resolved" || *liveTicket(t.key)) return false;
    t.row.state = "open";
    t.row.ackedMs.reset();
    t.row.resolvedMs.reset();
    t.row.escalationLevel = 1;
    t.escalateAtMs = escalateAtMs;
    return true;
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
  cfg.stormThreshold = 2;  // a third new ticket at a site within 10 min is a storm
  cfg.stormWindowMs = 10 * kMinute;
  Customer acme;
  acme.name = "Acme";
  acme.escalateAfterMs = 30 * kMinute;
  acme.contacts.push_back(
      Contact{.name = "Mia Manager", .role = "management", .email = "mia@acme.example"});
  acme.contacts.push_back(
      Contact{.name = "Eli Engineer", .role = "engineer", .email = "eli@acme.example"});
  cfg.customers.push_back(acme);
  return Policy::make(std::move(cfg), Bytes(32, 7));
}

template <typename T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  return std::move(*r);
}

void must(const Status& s) { REQUIRE_MESSAGE(s.has_value(), errorText(s)); }

/// The outbox columns the scenarios look at.
OutboxRow outboxRow(std::int64_t id, std::optional<std::int64_t> ticketId, std::string target,
                    std::string state, std::string notice) {
  OutboxRow o;
  o.id = id;
  o.ticketId = ticketId;
  o.target = std::move(target);
  o.state = std::move(state);
  o.notice = std::move(notice);
  return o;
}

// --- the backends: set up agents and silences, run a transaction, look at what it wrote ------

/// MemoryStorage; a transaction is a call.
struct MemoryBackend {
  void addAgent(const std::string& id, const AgentInfo& info, std::optional<std::int64_t> dueMs,
                std::int64_t intervalMs) {
    storage.agents.push_back(MemoryStorage::Agent{id, info, dueMs, intervalMs});
  }
  std::int64_t addSilence(SilenceRow s) {
    s.id = static_cast<std::int64_t>(storage.silences.size()) + 1;
    storage.silences.push_back(s);
    return s.id;
  }
  template <typename F>
  void transaction(F&& f) {
    f(static_cast<TicketStorage&>(storage));
  }
  std::vector<TicketRow> tickets() const {
    std::vector<TicketRow> out;
    for (const auto& t : storage.tickets) out.push_back(t.row);
    return out;
  }
  std::vector<std::string> actions(std::int64_t ticket) const { return storage.actions(ticket); }
  std::vector<std::string> audit(std::int64_t ticket) const { return storage.audit(ticket); }
  std::vector<OutboxRow> outbox() const { return storage.outbox; }

  MemoryStorage storage;
};

/// A SQLite file made by Store::open (its migrations), on a connection of its own.
struct SqliteBackend {
  SqliteBackend() {
    must(Store::open(dir / "home.db", Store::Mode::kCreate));
    db = must(sqlite::Database::open(dir / "home.db", sqlite::Database::Mode::kOpenExisting));
  }
  void addAgent(const std::string& id, const AgentInfo& info, std::optional<std::int64_t> dueMs,
                std::int64_t intervalMs) {
    auto s = must(db.prepare(
        "INSERT INTO agents (id, customer, site, name, sign_key, cert_serial, enrolled_ms, "
        "heartbeat_due_home_ms, heartbeat_interval_ms) VALUES (?1, ?2, ?3, ?4, x'00', '1', 0, "
        "?5, ?6)"));
    s.bind(1, id).bind(2, info.customer).bind(3, info.site).bind(4, info.name);
    s.bind(5, dueMs).bind(6, intervalMs);
    must(s.run());
  }
  std::int64_t addSilence(const SilenceRow& r) {
    auto s = must(db.prepare(
        "INSERT INTO silences (customer, site, array, code, starts_ms, ends_ms, author, reason, "
        "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5)"));
    s.bind(1, r.customer).bind(2, r.site).bind(3, r.array).bind(4, r.code);
    s.bind(5, r.startsMs).bind(6, r.endsMs).bind(7, r.author).bind(8, r.reason);
    must(s.run());
    return db.lastInsertRowid();
  }
  /// Runs SQL both backends read the same.
  void exec(const std::string& sql) { must(db.exec(sql)); }
  template <typename F>
  void transaction(F&& f) {
    auto tx = must(sqlite::Transaction::beginImmediate(db));
    sqlite::SqliteTicketStorage storage(db, statements);
    f(static_cast<TicketStorage&>(storage));
    must(tx.commit());
  }
  std::vector<TicketRow> tickets() {
    auto s = must(db.prepare("SELECT " PASS_TICKET_COLUMNS "FROM tickets ORDER BY id"));
    return must(s.rows(sqlite::readTicket));
  }
  std::vector<std::string> actions(std::int64_t ticket) {
    auto s = must(db.prepare("SELECT action FROM ticket_log WHERE ticket_id = ?1 ORDER BY id"));
    s.bind(1, ticket);
    return must(s.rows([](const sqlite::Statement& r) { return r.columnText(0); }));
  }
  std::vector<std::string> audit(std::int64_t ticket) {
    auto s = must(db.prepare(
        "SELECT action || ' by ' || who FROM ticket_log WHERE ticket_id = ?1 ORDER BY id"));
    s.bind(1, ticket);
    return must(s.rows([](const sqlite::Statement& r) { return r.columnText(0); }));
  }
  std::vector<OutboxRow> outbox() {
    auto s =
        must(db.prepare("SELECT id, ticket_id, target, state, notice FROM outbox ORDER BY id"));
    return must(s.rows([](const sqlite::Statement& r) {
      return outboxRow(r.columnInt(0), r.columnOptInt(1), r.columnText(2), r.columnText(3),
                       r.columnText(4));
    }));
  }

  pass::test::TempDir dir;
  sqlite::Database db;
  sqlite::StatementCache statements;
};

/// A fresh PostgreSQL database with the schema (postgres/migrations/).
struct PostgresBackend {
  PostgresBackend() { must(postgres::migrate(db)); }
  void addAgent(const std::string& id, const AgentInfo& info, std::optional<std::int64_t> dueMs,
                std::int64_t intervalMs) {
    must(db.exec("add an agent",
                 "INSERT INTO agents (id, customer, site, name, sign_key, cert_serial, "
                 "enrolled_ms, heartbeat_due_home_ms, heartbeat_interval_ms) VALUES ($1, $2, "
                 "$3, $4, '\\x00', '1', 0, $5, $6)",
                 {id, info.customer, info.site, info.name, dueMs, intervalMs}));
  }
  std::int64_t addSilence(const SilenceRow& r) {
    auto rows = must(
        db.exec("add a silence",
                "INSERT INTO silences (customer, site, \"array\", code, starts_ms, "
                "ends_ms, author, reason, created_ms) VALUES ($1, $2, $3, $4, $5, "
                "$6, $7, $8, $5) RETURNING id",
                {r.customer, r.site, r.array, r.code, r.startsMs, r.endsMs, r.author, r.reason}));
    return rows.integer(0, 0);
  }
  /// Runs SQL both backends read the same.
  void exec(const std::string& sql) { must(db.script("set up the test", sql)); }
  template <typename F>
  void transaction(F&& f) {
    auto tx = must(postgres::Transaction::begin(db));
    postgres::PostgresTicketStorage storage(db);
    f(static_cast<TicketStorage&>(storage));
    must(tx.commit());
  }
  std::vector<TicketRow> tickets() {
    auto ids = must(db.exec("list the tickets", "SELECT id FROM tickets ORDER BY id"));
    std::vector<TicketRow> out;
    postgres::PostgresTicketStorage storage(db);
    for (int i = 0; i < ids.size(); ++i) out.push_back(*must(storage.ticket(ids.integer(i, 0))));
    return out;
  }
  std::vector<std::string> actions(std::int64_t ticket) {
    auto rows =
        must(db.exec("read a ticket's log",
                     "SELECT action FROM ticket_log WHERE ticket_id = $1 ORDER BY id", {ticket}));
    std::vector<std::string> out;
    for (int i = 0; i < rows.size(); ++i) out.push_back(rows.text(i, 0));
    return out;
  }
  std::vector<std::string> audit(std::int64_t ticket) {
    auto rows = must(db.exec("read a ticket's log",
                             "SELECT action || ' by ' || who FROM ticket_log WHERE ticket_id = "
                             "$1 ORDER BY id",
                             {ticket}));
    std::vector<std::string> out;
    for (int i = 0; i < rows.size(); ++i) out.push_back(rows.text(i, 0));
    return out;
  }
  std::vector<OutboxRow> outbox() {
    auto rows = must(db.exec(
        "read the outbox", "SELECT id, ticket_id, target, state, notice FROM outbox ORDER BY id"));
    std::vector<OutboxRow> out;
    for (int i = 0; i < rows.size(); ++i) {
      out.push_back(outboxRow(rows.integer(i, 0), rows.optInteger(i, 1), rows.text(i, 2),
                              rows.text(i, 3), rows.text(i, 4)));
    }
    return out;
  }

  pass::home::test::TestDatabase database;
  postgres::Connection db = database.connect();
};

/// One report of the agent with one event of `kind` (alert, recovery) at `at`.
EnvelopeRecord report(std::int64_t at, std::string kind, std::string array = "410123") {
  EnvelopeRecord r;
  r.agentId = kAgent;
  r.createdMs = at;
  r.receivedMs = at;
  r.type = "report";
  EventRecord e;
  e.family = "hitachi_svp";
  e.array = std::move(array);
  e.code = "307080";
  e.severity = "acute";
  e.kind = std::move(kind);
  e.component = "DKC-0 fan 2";
  e.text = "FAN ALARM";
  e.occurredMs = at;
  r.events.push_back(e);
  return r;
}

/// The ticket rules for the events of `r`, in `storage`'s transaction: messages queued.
Result<std::int64_t> onReport(TicketStorage& storage, const Policy& policy,
                              const EnvelopeRecord& r) {
  std::vector<const EventRecord*> events;
  for (const auto& e : r.events) events.push_back(&e);
  TicketEngine engine(storage, policy);
  if (auto done = engine.onNewEvents(r, events); !done) return std::unexpected(done.error());
  if (auto done = engine.flush(); !done) return std::unexpected(done.error());
  return engine.queued();
}

template <typename Backend>
struct Fixture {
  Fixture() { backend.addAgent(kAgent, AgentInfo{"Acme", "Berlin", "vsp-1"}, {}, 0); }

  /// One report through a fresh engine, in a transaction of its own.
  void report(std::int64_t at, std::string kind, std::string array = "410123") {
    auto r = ::report(at, std::move(kind), std::move(array));
    backend.transaction(
        [&](TicketStorage& storage) { queued += must(onReport(storage, *policy, r)); });
  }
  /// One pass of the watchdog at `nowMs`, in a transaction of its own.
  WatchdogReport watchdog(std::int64_t nowMs) {
    WatchdogReport out;
    backend.transaction([&](TicketStorage& storage) {
      Watchdog watchdog(storage, *policy, nowMs);
      out = must(watchdog.run());
      queued += watchdog.queued();
    });
    return out;
  }
  /// The only ticket.
  TicketRow ticket() {
    auto all = backend.tickets();
    REQUIRE(all.size() == 1);
    return all.front();
  }

  std::shared_ptr<const Policy> policy = makePolicy();
  Backend backend;
  std::int64_t queued = 0;
};

std::vector<std::string> targets(const std::vector<OutboxRow>& rows) {
  std::vector<std::string> out;
  for (const auto& o : rows) out.push_back(o.target);
  std::sort(out.begin(), out.end());
  return out;
}

const std::vector<std::string> kBoth = {"eli@acme.example", "mia@acme.example"};

}  // namespace

TYPE_TO_STRING(MemoryBackend);
TYPE_TO_STRING(SqliteBackend);
TYPE_TO_STRING(PostgresBackend);

#define PASS_BACKENDS MemoryBackend, SqliteBackend, PostgresBackend

TEST_CASE_TEMPLATE("tickets: an alert opens one ticket and queues its messages", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.report(kT0, "alert");
  const auto t = f.ticket();
  CHECK(t.kind == "alert");
  CHECK(t.state == "open");
  CHECK(t.count == 1);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened"});
  const auto outbox = f.backend.outbox();
  CHECK(targets(outbox) == kBoth);
  for (const auto& o : outbox) {
    CHECK(o.ticketId == t.id);
    CHECK(o.state == "pending");
  }
  CHECK(f.queued == 2);
}

TEST_CASE_TEMPLATE("tickets: a repeat counts an occurrence and sends nothing", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.report(kT0, "alert");
  f.report(kT0 + kMinute, "alert");
  const auto t = f.ticket();
  CHECK(t.count == 2);
  CHECK(t.lastSeenMs == kT0 + kMinute);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "repeated"});
  CHECK(f.backend.outbox().size() == 2);
}

TEST_CASE_TEMPLATE(
    "tickets: repeats in the reports of one transaction are one update, each audited occurrence "
    "naming its agent",
    Backend, PASS_BACKENDS) {
  Fixture<Backend> f;
  f.backend.addAgent("agent-2", AgentInfo{"Acme", "Berlin", "vsp-2"}, {}, 0);
  f.report(kT0, "alert");
  auto first = report(kT0 + kMinute, "alert");
  auto second = report(kT0 + 2 * kMinute, "alert");
  second.agentId = "agent-2";
  auto third = report(kT0 + 3 * kMinute, "alert");
  // One engine for a batch of three reports, as the store's commit runs it.
  f.backend.transaction([&](TicketStorage& storage) {
    TicketEngine engine(storage, *f.policy);
    for (const EnvelopeRecord* r : {&first, &second, &third}) {
      const EventRecord* event = &r->events.front();
      must(engine.onNewEvents(*r, std::span<const EventRecord* const>(&event, 1)));
    }
    must(engine.flush());
    CHECK(engine.queued() == 0);
  });
  const auto t = f.ticket();
  CHECK(t.count == 4);
  CHECK(t.lastSeenMs == kT0 + 3 * kMinute);
  CHECK(f.backend.audit(t.id) ==
        std::vector<std::string>{
            "opened by array 410123 (agent vsp-1)", "repeated by array 410123 (agent vsp-1)",
            "repeated by array 410123 (agent vsp-2)", "repeated by array 410123 (agent vsp-1)"});
  CHECK(f.backend.outbox().size() == 2);
}

TEST_CASE_TEMPLATE("tickets: a recovery resolves the ticket and tells who heard", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.report(kT0, "alert");
  f.report(kT0 + kMinute, "recovery");
  const auto t = f.ticket();
  CHECK(t.state == "resolved");
  CHECK(t.resolvedMs == kT0 + kMinute);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "resolved"});
  // The two first messages, then "resolved" by e-mail to both.
  const auto outbox = f.backend.outbox();
  REQUIRE(outbox.size() == 4);
  CHECK(outbox[2].notice.find(R"("kind":"resolved")") != std::string::npos);
  CHECK(f.queued == 4);
}

TEST_CASE_TEMPLATE("tickets: an alert after the recovery reopens the ticket", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.report(kT0, "alert");
  f.report(kT0 + kMinute, "recovery");
  f.report(kT0 + 2 * kMinute, "alert");
  const auto t = f.ticket();
  CHECK(t.state == "open");
  CHECK(t.count == 2);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "resolved", "reopened"});
}

TEST_CASE_TEMPLATE("tickets: a silence keeps the ticket and suppresses its messages", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  const auto silence = f.backend.addSilence(SilenceRow{.array = "410123",
                                                       .startsMs = kT0 - kMinute,
                                                       .endsMs = kT0 + 60 * kMinute,
                                                       .author = "ops",
                                                       .reason = "maintenance"});
  f.report(kT0, "alert");
  const auto t = f.ticket();
  CHECK(t.silencedBy == silence);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "silenced"});
  CHECK(f.backend.outbox().empty());
  CHECK(f.queued == 0);
  // Silenced: it does not escalate either.
  CHECK(f.watchdog(kT0 + 31 * kMinute).escalated == 0);
}

TEST_CASE_TEMPLATE("tickets: an alert nobody acknowledged escalates once per level", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.report(kT0, "alert");
  CHECK(f.watchdog(kT0 + 29 * kMinute).escalated == 0);
  CHECK(f.watchdog(kT0 + 31 * kMinute).escalated == 1);
  CHECK(f.ticket().escalationLevel == 2);
  CHECK(f.backend.actions(f.ticket().id) == std::vector<std::string>{"opened", "escalated"});
  const auto outbox = f.backend.outbox();
  CHECK(std::count_if(outbox.begin(), outbox.end(), [](const OutboxRow& o) {
          return o.notice.find(R"("kind":"escalated")") != std::string::npos;
        }) >= 1);
  // No rota beyond management: the last level was reached.
  CHECK(f.watchdog(kT0 + 120 * kMinute).escalated == 0);
}

TEST_CASE_TEMPLATE("tickets: a storm at a site is recorded, not sent, and summarised once", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  for (int i = 0; i < 4; ++i) f.report(kT0 + i * kMinute, "alert", fmt::format("41012{}", i));
  const auto tickets = f.backend.tickets();
  REQUIRE(tickets.size() == 4);
  CHECK(f.backend.actions(tickets[1].id) == std::vector<std::string>{"opened"});
  // The third new ticket within the window starts the storm; it and the fourth are in it.
  CHECK(f.backend.actions(tickets[2].id) == std::vector<std::string>{"opened", "storm"});
  CHECK(f.backend.actions(tickets[3].id) == std::vector<std::string>{"opened", "storm"});
  auto kinds = [&] {
    std::vector<std::string> out;
    for (const auto& o : f.backend.outbox()) {
      out.push_back(nlohmann::json::parse(o.notice).at("kind").template get<std::string>());
    }
    return out;
  };
  const auto during = kinds();
  CHECK(std::count(during.begin(), during.end(), "opened") == 4);  // two tickets, two people
  CHECK(std::count(during.begin(), during.end(), "storm_on") >= 1);
  // Still within the window of the last ticket: no summary yet; after it, one.
  CHECK(f.watchdog(kT0 + 12 * kMinute).stormSummaries == 0);
  CHECK(f.watchdog(kT0 + 14 * kMinute).stormSummaries == 1);
  CHECK(f.watchdog(kT0 + 20 * kMinute).stormSummaries == 0);
  CHECK(kinds().size() > during.size());
}

TEST_CASE_TEMPLATE("tickets: a missing heartbeat opens one ticket, once", Backend, PASS_BACKENDS) {
  Fixture<Backend> f;
  f.backend.addAgent("22222222-2222-4333-8444-555555555555", AgentInfo{"Acme", "Hamburg", "vsp-2"},
                     kT0, 5 * kMinute);
  // Grace: two intervals after the due time.
  CHECK(f.watchdog(kT0 + 10 * kMinute).missingOpened == 0);
  CHECK(f.backend.tickets().empty());
  CHECK(f.watchdog(kT0 + 11 * kMinute).missingOpened == 1);
  const auto t = f.ticket();
  CHECK(t.kind == "missing_heartbeat");
  CHECK(t.agentId == "22222222-2222-4333-8444-555555555555");
  CHECK(t.firstSeenMs == kT0);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened"});
  CHECK(targets(f.backend.outbox()) == kBoth);
  CHECK(f.queued == 2);

  CHECK(f.watchdog(kT0 + 20 * kMinute).missingOpened == 0);
  CHECK(f.backend.tickets().size() == 1);
  CHECK(f.backend.outbox().size() == 2);
}

TEST_CASE_TEMPLATE("tickets: the next heartbeat resolves the missing-heartbeat ticket", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.backend.addAgent("22222222-2222-4333-8444-555555555555", AgentInfo{"Acme", "Hamburg", "vsp-2"},
                     kT0, 5 * kMinute);
  f.watchdog(kT0 + 11 * kMinute);
  REQUIRE(f.backend.tickets().size() == 1);

  EnvelopeRecord heartbeat;
  heartbeat.agentId = "22222222-2222-4333-8444-555555555555";
  heartbeat.createdMs = kT0 + 30 * kMinute;
  heartbeat.receivedMs = kT0 + 30 * kMinute;
  heartbeat.type = "heartbeat";
  heartbeat.payload = R"({"schema":1,"type":"heartbeat","arrays":[]})";
  std::int64_t queued = 0;
  f.backend.transaction([&](TicketStorage& storage) {
    TicketEngine engine(storage, *f.policy);
    must(engine.onHeartbeat(heartbeat));
    queued = engine.queued();
  });
  const auto t = f.ticket();
  CHECK(t.state == "resolved");
  CHECK(t.resolvedBy == "agent vsp-2");
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "resolved"});
  // Both who heard of it hear that it is over, by e-mail.
  CHECK(f.backend.outbox().size() == 4);
  CHECK(queued == 2);
}

TEST_CASE_TEMPLATE(
    "tickets: a person acknowledges, resolves and reopens; a second live one "
    "blocks the reopen",
    Backend, PASS_BACKENDS) {
  Fixture<Backend> f;
  f.report(kT0, "alert");
  const auto id = f.ticket().id;
  auto change = [&](std::int64_t ticket, TicketAction action, std::int64_t at) {
    Result<TicketRow> out = TicketRow{};
    f.backend.transaction([&](TicketStorage& storage) {
      out = TicketEngine(storage, *f.policy).change(ticket, action, "ops", "", at);
    });
    return out;
  };
  CHECK(must(change(id, TicketAction::kAcknowledge, kT0 + kMinute)).state == "acknowledged");
  CHECK(f.watchdog(kT0 + 31 * kMinute).escalated == 0);  // acknowledged: no escalation
  CHECK(must(change(id, TicketAction::kResolve, kT0 + 32 * kMinute)).state == "resolved");
  CHECK(must(change(id, TicketAction::kReopen, kT0 + 33 * kMinute)).state == "open");
  CHECK(must(change(id, TicketAction::kResolve, kT0 + 34 * kMinute)).state == "resolved");
  // A day later the alert is a new ticket; the old one cannot come back beside it.
  f.report(kT0 + 25 * 60 * kMinute, "alert");
  REQUIRE(f.backend.tickets().size() == 2);
  auto refused = change(id, TicketAction::kReopen, kT0 + 26 * 60 * kMinute);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "ticket.state");
  CHECK(f.backend.tickets().front().state == "resolved");
  CHECK(f.backend.actions(id) ==
        std::vector<std::string>{"opened", "acknowledged", "resolved", "reopened", "resolved"});
}

// The in-memory fake knows no onboarding or certificates: these run on the databases only.
#define PASS_DATABASES SqliteBackend, PostgresBackend

TEST_CASE_TEMPLATE("watchdog: an onboarded agent that never reported is one ticket", Backend,
                   PASS_DATABASES) {
  Fixture<Backend> f;
  f.backend.exec(fmt::format(
      "INSERT INTO expected_arrays (agent_id, family, serial, model, name, since_ms) VALUES "
      "('{0}', 'hitachi_svp', '410124', 'VSP G370', 'b', {1}), "
      "('{0}', 'hitachi_svp', '410123', 'VSP G370', 'a', {2})",
      kAgent, kT0, kT0 + kMinute));
  constexpr std::int64_t kDay = 24 * 60 * kMinute;
  CHECK(f.watchdog(kT0 + 13 * kDay).neverReportedOpened == 0);
  CHECK(f.watchdog(kT0 + 15 * kDay).neverReportedOpened == 1);
  CHECK(f.watchdog(kT0 + 16 * kDay).neverReportedOpened == 0);
  const auto t = f.ticket();
  CHECK(t.kind == "never_reported");
  CHECK(t.firstSeenMs == kT0);
  CHECK(t.detail.find("2 array(s) (410123, 410124)") != std::string::npos);
  // Opened to both; a day later, not acknowledged, escalated to management.
  CHECK(targets(f.backend.outbox()) ==
        std::vector<std::string>{"eli@acme.example", "mia@acme.example", "mia@acme.example"});
}

TEST_CASE_TEMPLATE("ticket storage: an agent's expected arrays, in order, with their last report",
                   Backend, PASS_DATABASES) {
  Fixture<Backend> f;
  f.backend.exec(fmt::format(
      "INSERT INTO expected_arrays (agent_id, family, serial, model, name, since_ms) VALUES "
      "('{0}', 'nimble', 'AF-1', 'AF40', 'n', {1}), "
      "('{0}', 'hitachi_svp', '410123', 'VSP G370', 'a', {1})",
      kAgent, kT0));
  std::vector<ExpectedArray> arrays;
  f.backend.transaction([&](TicketStorage& storage) {
    REQUIRE(storage.markArrayReported(kAgent, "nimble", "AF-1", kT0 + kMinute).has_value());
    arrays = storage.expectedArrays(kAgent).value();
  });
  REQUIRE(arrays.size() == 2);
  CHECK(arrays[0].serial == "410123");
  CHECK(arrays[0].model == "VSP G370");
  CHECK(arrays[0].sinceMs == kT0);
  CHECK_FALSE(arrays[0].lastReportedMs.has_value());
  CHECK(arrays[1].serial == "AF-1");
  CHECK(arrays[1].lastReportedMs == kT0 + kMinute);
}

TEST_CASE_TEMPLATE("watchdog: an expiring agent certificate is a ticket until it is renewed",
                   Backend, PASS_DATABASES) {
  Fixture<Backend> f;
  f.backend.exec(fmt::format("UPDATE agents SET cert_expires_ms = {} WHERE id = '{}'",
                             kT0 + 60 * kMinute, kAgent));
  CHECK(f.watchdog(kT0).certificateExpiringOpened == 1);
  CHECK(f.watchdog(kT0 + kMinute).certificateExpiringOpened == 0);
  CHECK(f.ticket().kind == "certificate_expiring");
  CHECK(f.ticket().state == "open");
  f.backend.exec(fmt::format("UPDATE agents SET cert_expires_ms = {} WHERE id = '{}'",
                             kT0 + 365 * 24 * 60 * kMinute, kAgent));
  f.watchdog(kT0 + 2 * kMinute);
  CHECK(f.ticket().state == "resolved");
  CHECK(f.backend.actions(f.ticket().id) == std::vector<std::string>{"opened", "resolved"});
}

TEST_CASE_TEMPLATE("ticket storage: one live ticket per problem; a second is not stored", Backend,
                   PASS_BACKENDS) {
  Fixture<Backend> f;
  f.backend.transaction([&](TicketStorage& s) {
    TicketRow t = homeTicket("alert", "Acme", "Berlin", "fan", kT0);
    t.title = "fan";
    const auto first = must(s.openTicket(t, "key", std::nullopt));
    REQUIRE(first);
    CHECK_FALSE(must(s.openTicket(t, "key", std::nullopt)));
    CHECK_FALSE(must(s.markReopened(*first, std::nullopt)));  // it is open
    must(s.markResolved(*first, "ops", kT0));
    const auto second = must(s.openTicket(t, "key", std::nullopt));
    REQUIRE(second);
    // The first cannot come back while the second is live.
    CHECK_FALSE(must(s.markReopened(*first, std::nullopt)));
    must(s.markResolved(*second, "ops", kT0));
    CHECK(must(s.markReopened(*first, std::nullopt)));
  });
  const auto tickets = f.backend.tickets();
  REQUIRE(tickets.size() == 2);
  CHECK(tickets[0].state == "open");
  CHECK(tickets[1].state == "resolved");
}

namespace {

/// Messages each of two homes queued for the same report.
struct RaceResult {
  std::int64_t queuedA = 0, queuedB = 0;
};

/// What one home does in its transaction: the messages it queued.
using HomeStep = std::function<Result<std::int64_t>(postgres::PostgresTicketStorage&)>;

/// The rules for `r` as PostgresStore's commit runs them for a batch: agents and live tickets
/// read ahead (locked), counts and audit rows held and written at the end.
Result<std::int64_t> onBatch(postgres::PostgresTicketStorage& storage, const Policy& policy,
                             const EnvelopeRecord& r) {
  storage.holdWrites();
  std::vector<const EventRecord*> events;
  for (const auto& e : r.events) events.push_back(&e);
  TicketEngine engine(storage, policy);
  const EnvelopeEvents ahead{&r, events};
  if (auto done = engine.readAhead(std::span(&ahead, 1)); !done) {
    return std::unexpected(done.error());
  }
  if (auto done = engine.onNewEvents(r, events); !done) return std::unexpected(done.error());
  if (auto done = engine.flush(); !done) return std::unexpected(done.error());
  if (auto done = storage.writeHeld(); !done) return std::unexpected(done.error());
  return engine.queued();
}

/// Home A runs `stepA` and holds its transaction open until home B, on a connection of its
/// own, runs `stepB` and waits for one of A's locks; then A commits, and B.
RaceResult raceTwoHomes(Fixture<PostgresBackend>& f, const HomeStep& stepA, const HomeStep& stepB);

/// Both homes run the rules for `r`, one envelope at a time or as a batch.
RaceResult raceTwoHomes(Fixture<PostgresBackend>& f, const EnvelopeRecord& r, bool batch = false) {
  HomeStep step = [&](postgres::PostgresTicketStorage& storage) {
    return batch ? onBatch(storage, *f.policy, r) : onReport(storage, *f.policy, r);
  };
  return raceTwoHomes(f, step, step);
}

RaceResult raceTwoHomes(Fixture<PostgresBackend>& f, const HomeStep& stepA, const HomeStep& stepB) {
  auto homeB = f.backend.database.connect();
  const auto pidB =
      must(homeB.exec("read the backend's pid", "SELECT pg_backend_pid()")).integer(0, 0);
  RaceResult out;
  auto txA = must(postgres::Transaction::begin(f.backend.db));
  postgres::PostgresTicketStorage homeA(f.backend.db);
  out.queuedA = must(stepA(homeA));

  Result<std::int64_t> queuedB = 0;
  Status committedB;
  std::thread b([&] {
    auto txB = postgres::Transaction::begin(homeB);
    if (!txB) {
      committedB = std::unexpected(txB.error());
      return;
    }
    postgres::PostgresTicketStorage storage(homeB);
    queuedB = stepB(storage);
    committedB = queuedB ? txB->commit() : Status{};
  });
  // Polled with a deadline: B blocked on a lock A holds (the row, or tickets_one_live's entry).
  auto watcher = f.backend.database.connect();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool waiting = false;
  while (!waiting && std::chrono::steady_clock::now() < deadline) {
    waiting = must(watcher.exec("is home B waiting for a lock",
                                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND "
                                "wait_event_type = 'Lock'",
                                {pidB}))
                  .integer(0, 0) == 1;
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto committedA = txA.commit();
  b.join();
  REQUIRE(waiting);
  must(committedA);
  REQUIRE_MESSAGE(queuedB.has_value(), errorText(queuedB));
  REQUIRE_MESSAGE(committedB.has_value(), errorText(committedB));
  out.queuedB = *queuedB;
  return out;
}

}  // namespace

TEST_CASE("tickets on PostgreSQL: two homes racing to open the same problem's ticket open one") {
  // B found no live ticket (as a batch: read ahead none, A's is not committed); its INSERT
  // waits for A's transaction, stores nothing once A commits, and B counts its alert as an
  // occurrence of A's ticket.
  for (bool batch : {false, true}) {
    CAPTURE(batch);
    Fixture<PostgresBackend> f;
    const auto race = raceTwoHomes(f, report(kT0, "alert"), batch);
    const auto t = f.ticket();
    CHECK(t.state == "open");
    CHECK(t.count == 2);
    CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "repeated"});
    CHECK(race.queuedA == 2);
    CHECK(race.queuedB == 0);
    CHECK(targets(f.backend.outbox()) == kBoth);
  }
}

TEST_CASE("tickets on PostgreSQL: two homes racing to reopen a resolved ticket reopen it once") {
  // Both find the ticket resolved; B's UPDATE waits for A's row lock, then finds the ticket
  // open and changes nothing, and B counts its alert as an occurrence.
  Fixture<PostgresBackend> f;
  f.report(kT0, "alert");
  f.report(kT0 + kMinute, "recovery");
  const auto before = f.backend.outbox().size();
  const auto race = raceTwoHomes(f, report(kT0 + 2 * kMinute, "alert"));
  const auto t = f.ticket();
  CHECK(t.state == "open");
  CHECK(t.count == 3);
  CHECK(f.backend.actions(t.id) ==
        std::vector<std::string>{"opened", "resolved", "reopened", "repeated"});
  CHECK(race.queuedA == 2);
  CHECK(race.queuedB == 0);
  CHECK(f.backend.outbox().size() == before + 2);
}

TEST_CASE("tickets on PostgreSQL: a live ticket a batch read ahead waits for it to commit") {
  // A's batch read the live ticket ahead (locked) and counts into it; a person's resolve on
  // home B waits for A's commit, then resolves the ticket A counted.
  Fixture<PostgresBackend> f;
  f.report(kT0, "alert");
  const auto r = report(kT0 + kMinute, "alert");
  const auto id = f.ticket().id;
  const auto race = raceTwoHomes(
      f, [&](postgres::PostgresTicketStorage& storage) { return onBatch(storage, *f.policy, r); },
      [&](postgres::PostgresTicketStorage& storage) -> Result<std::int64_t> {
        TicketEngine engine(storage, *f.policy);
        auto changed =
            engine.change(id, TicketAction::kResolve, "eli", "replaced", kT0 + 2 * kMinute);
        if (!changed) return std::unexpected(changed.error());
        return engine.queued();
      });
  const auto t = f.ticket();
  CHECK(t.state == "resolved");
  CHECK(t.count == 2);
  CHECK(f.backend.actions(t.id) == std::vector<std::string>{"opened", "repeated", "resolved"});
  CHECK(race.queuedA == 0);
  CHECK(race.queuedB == 2);
}
