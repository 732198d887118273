// Tickets, audit trail, outbox, silences, storms and the watchdog, on a real SQLite store with
// an injected clock (every time below is a Unix ms the test chooses).

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "pass/home/home_config.hpp"
#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "store/outbox_queue.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::sampleAgent;
using pass::home::test::TempDir;

namespace {

constexpr const char* kAgentA = "11111111-2222-4333-8444-555555555555";
constexpr const char* kAgentB = "99999999-2222-4333-8444-555555555555";
constexpr std::int64_t kT0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;

HomeConfig testConfig() {
  HomeConfig cfg;
  cfg.stormThreshold = 5;
  cfg.stormWindowMs = 10 * kMinute;
  cfg.ratePerHour = 1000;
  cfg.ackUrl = "https://pass.example.com:9456";
  Customer acme;
  acme.name = "Acme";
  acme.escalateAfterMs = 30 * kMinute;
  acme.contacts.push_back(
      Contact{.name = "Mia Manager", .role = "management", .email = "mia@acme.example"});
  acme.contacts.push_back(Contact{.name = "Eli Engineer",
                                  .role = "engineer",
                                  .email = "eli@acme.example",
                                  .sms = "+4915112345678"});
  cfg.customers.push_back(acme);
  return cfg;
}

std::shared_ptr<const Policy> makePolicy(HomeConfig cfg = testConfig()) {
  return Policy::make(std::move(cfg), Bytes(32, 7));
}

struct Home {
  explicit Home(std::shared_ptr<const Policy> policy = makePolicy()) {
    auto opened = Store::open(dir / "home.db", Store::Mode::kCreate);
    REQUIRE(opened.has_value());
    store = std::make_unique<Store>(std::move(*opened));
    REQUIRE(store->addAgent(sampleAgent(kAgentA)).has_value());
    auto b = sampleAgent(kAgentB);
    b.name = "vsp-2";
    REQUIRE(store->addAgent(b).has_value());
    store->setPolicy(std::move(policy));
  }

  Store second() {
    auto opened = Store::open(dir / "home.db");
    REQUIRE(opened.has_value());
    opened->setPolicy(makePolicy());
    return std::move(*opened);
  }

  void commit(const EnvelopeRecord& r) { commit(*store, r); }
  static void commit(Store& s, const EnvelopeRecord& r) {
    const EnvelopeRecord* batch[] = {&r};
    auto results = s.commit(batch);
    REQUIRE_MESSAGE(results.has_value(), (results ? "" : results.error().message));
  }

  std::vector<TicketRow> tickets(bool liveOnly = false) {
    auto rows = store->tickets(TicketFilter{.liveOnly = liveOnly});
    REQUIRE(rows.has_value());
    return *rows;
  }
  std::vector<OutboxRow> outbox(std::optional<std::int64_t> ticket = std::nullopt) {
    auto rows = store->outbox(ticket);
    REQUIRE(rows.has_value());
    return *rows;
  }
  std::vector<std::string> actions(std::int64_t ticket) {
    auto rows = store->ticketLog(ticket);
    REQUIRE(rows.has_value());
    std::vector<std::string> out;
    for (const auto& r : *rows) out.push_back(r.action);
    return out;
  }

  TempDir dir;
  std::unique_ptr<Store> store;
  std::uint64_t seq = 1;
};

EventRecord alert(std::string id, std::string code = "307080", std::string severity = "acute",
                  std::string component = "DKC-0 fan 2") {
  EventRecord e;
  e.family = "hitachi_svp";
  e.array = "410123";
  e.id = std::move(id);
  e.code = std::move(code);
  e.severity = std::move(severity);
  e.kind = "alert";
  e.component = std::move(component);
  e.text = "FAN ALARM";
  e.payload = "{}";
  return e;
}

EnvelopeRecord report(const char* agent, std::uint64_t seq, std::int64_t at,
                      std::vector<EventRecord> events) {
  EnvelopeRecord r;
  r.agentId = agent;
  r.seq = seq;
  r.createdMs = at;
  r.receivedMs = at;
  r.type = "report";
  r.size = 300;
  r.payload = R"({"schema":1,"type":"report"})";
  r.arrayModel = "VSP G900";
  r.arrayName = "prod-vsp";
  for (auto& e : events) e.occurredMs = at;
  r.events = std::move(events);
  return r;
}

EnvelopeRecord heartbeat(const char* agent, std::uint64_t seq, std::int64_t sentMs,
                         std::int64_t receivedMs, std::int64_t intervalMs,
                         const std::string& arrays = "[]", int spoolDepth = 0) {
  EnvelopeRecord r;
  r.agentId = agent;
  r.seq = seq;
  r.createdMs = sentMs;
  r.receivedMs = receivedMs;
  r.type = "heartbeat";
  r.size = 300;
  r.nextDueMs = sentMs + intervalMs;
  r.payload = fmt::format(
      R"({{"schema":1,"type":"heartbeat","sent_ms":{},"next_due_ms":{},"spool":{{"depth":{}}},"arrays":{}}})",
      sentMs, sentMs + intervalMs, spoolDepth, arrays);
  return r;
}

std::int64_t countWhere(const std::vector<OutboxRow>& rows, std::string_view channel,
                        std::string_view state = "pending") {
  return std::count_if(rows.begin(), rows.end(), [&](const OutboxRow& o) {
    return o.channel == channel && o.state == state;
  });
}

std::int64_t rawCount(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(db.string().c_str(), &raw) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  auto n = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return n;
}

}  // namespace

TEST_CASE("an alert opens a ticket, writes its audit row and queues its messages") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("sim-1")}));
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 1);
  const auto& t = tickets[0];
  CHECK(t.state == "open");
  CHECK(t.kind == "alert");
  CHECK(t.customer == "Acme");
  CHECK(t.site == "Berlin");
  CHECK(t.array == "410123");
  CHECK(t.code == "307080");
  CHECK(t.urgent);  // acute is above hitachi_svp's urgent_from (serious)
  CHECK(t.count == 1);
  CHECK(home.actions(t.id) == std::vector<std::string>{"opened"});
  auto out = home.outbox(t.id);
  // Management and the engineer by e-mail, the engineer by SMS (urgent).
  CHECK(countWhere(out, "email") == 2);
  CHECK(countWhere(out, "sms") == 1);
  auto notice = noticeFromJson(nlohmann::json::parse(out[0].notice));
  CHECK(notice.kind == "opened");
  CHECK(notice.ticket == t.id);
  CHECK(notice.serial == "410123");
  CHECK(notice.model == "VSP G900");
  CHECK(notice.customer == "Acme");
  CHECK(notice.ackUrl.starts_with(fmt::format("https://pass.example.com:9456/v1/ack/{}/", t.id)));
  CHECK(home.store->takeEnqueued() == 3);
  CHECK(home.store->takeEnqueued() == 0);
}

TEST_CASE(
    "a storm of 1000 identical alerts is one ticket with count 1000, one set of messages and "
    "27 repeat rows") {
  Home home;
  for (int i = 0; i < 1000; ++i) {
    home.commit(report(kAgentA, home.seq++, kT0 + i * 1000, {alert(fmt::format("sim-{}", i))}));
  }
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 1);
  CHECK(tickets[0].count == 1000);
  CHECK(tickets[0].lastSeenMs == kT0 + 999 * 1000);
  CHECK(home.outbox().size() == 3);
  // The audit log keeps occurrences 2-9, then those with one significant digit.
  auto log = home.store->ticketLog(tickets[0].id);
  REQUIRE(log.has_value());
  REQUIRE(log->size() == 28);
  CHECK(log->front().action == "opened");
  std::vector<std::string> repeats;
  for (const auto& r : *log) {
    if (r.action == "repeated") repeats.push_back(r.detail);
  }
  std::vector<std::string> expected;
  for (int n : {2,  3,  4,  5,   6,   7,   8,   9,   10,  20,  30,  40,  50,  60,
                70, 80, 90, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}) {
    expected.push_back(fmt::format("occurrence {}", n));
  }
  CHECK(repeats == expected);
}

TEST_CASE("a code whose meaning is not published is titled with the array's own text") {
  Home home;
  auto unpublished = alert("sim-1", "307080", "moderate", "DKC power supply");
  unpublished.text = "Processor failure";
  auto published = alert("sim-2", "DC0123", "moderate", "DKC");
  published.text = "Journal group 01 suspended";
  auto unknown = alert("sim-3", "AB0001", "moderate", "CL1");
  unknown.text = "Something the table does not know";
  home.commit(report(kAgentA, 1, kT0, {unpublished, published, unknown}));
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 3);
  CHECK(tickets[0].title == "307080 Processor failure (DKC power supply)");
  CHECK(tickets[1].title == "DC0123 Journal pair: P-VOL suspended, path recovery impossible (DKC)");
  CHECK(tickets[2].title == "AB0001 Something the table does not know (CL1)");
  // The table's note stays with the ticket and reaches the message body.
  auto notice = noticeFromJson(nlohmann::json::parse(home.outbox(tickets[0].id).at(0).notice));
  CHECK(notice.problem == "307080 Processor failure (DKC power supply)");
  CHECK(notice.meaning.find("its meaning is not published") != std::string::npos);
  CHECK(notice.text == "Processor failure");
}

TEST_CASE("a storm of 1000 identical alerts in one report counts as exactly as 1000 reports") {
  Home home;
  std::vector<EventRecord> storm;
  for (int i = 0; i < 1000; ++i) storm.push_back(alert(fmt::format("sim-{}", i)));
  home.commit(report(kAgentA, home.seq++, kT0, std::move(storm)));
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 1);
  CHECK(tickets[0].count == 1000);
  auto actions = home.actions(tickets[0].id);
  CHECK(actions.size() == 28);
  CHECK(std::count(actions.begin(), actions.end(), "repeated") == 27);
}

TEST_CASE("repeats in one report are counted per problem, in order with a recovery between") {
  Home home;
  auto a = [](int i) { return alert(fmt::format("a{}", i)); };
  auto b = [](int i) { return alert(fmt::format("b{}", i), "307080", "acute", "DKC-1 fan 3"); };
  auto fixed = alert("a:fixed");
  fixed.kind = "recovery";
  // a a a b b a a (recovery of a) a
  home.commit(report(kAgentA, 1, kT0, {a(1), a(2), a(3), b(1), b(2), a(4), a(5), fixed, a(6)}));
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 2);
  const auto& ta = tickets[0].component == "DKC-0 fan 2" ? tickets[0] : tickets[1];
  const auto& tb = tickets[0].component == "DKC-0 fan 2" ? tickets[1] : tickets[0];
  CHECK(ta.count == 6);
  CHECK(ta.state == "open");  // reopened by the alert after the recovery
  CHECK(tb.count == 2);
  CHECK(tb.state == "open");
  auto log = home.store->ticketLog(ta.id);
  REQUIRE(log.has_value());
  std::vector<std::string> story;
  for (const auto& r : *log) {
    if (r.action == "repeated") {
      story.push_back(r.detail);
    } else if (r.action == "opened" || r.action == "resolved" || r.action == "reopened") {
      story.push_back(r.action);
    }
  }
  CHECK(story == std::vector<std::string>{"opened", "occurrence 2", "occurrence 3", "occurrence 4",
                                          "occurrence 5", "resolved", "reopened"});
  CHECK(home.actions(tb.id) == std::vector<std::string>{"opened", "repeated"});
}

TEST_CASE("the same event id sent twice changes no ticket") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("sim-1")}));
  home.commit(report(kAgentA, 2, kT0 + 1000, {alert("sim-1")}));
  REQUIRE(home.tickets().size() == 1);
  CHECK(home.tickets()[0].count == 1);
}

TEST_CASE("a recovery resolves the ticket of the same problem and tells who heard of it") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("a1")}));
  auto recovery = alert("a1:fixed");
  recovery.kind = "recovery";
  home.commit(report(kAgentA, 2, kT0 + kMinute, {recovery}));
  auto t = home.tickets().at(0);
  CHECK(t.state == "resolved");
  CHECK(t.resolvedBy.find("array 410123") != std::string::npos);
  auto out = home.outbox(t.id);
  // Resolved goes by e-mail to the two who got the opening; no SMS at night for good news.
  auto resolvedMails = std::count_if(out.begin(), out.end(), [](const OutboxRow& o) {
    return o.channel == "email" && o.notice.find("\"kind\":\"resolved\"") != std::string::npos;
  });
  CHECK(resolvedMails == 2);
  CHECK(countWhere(out, "sms") == 1);
}

TEST_CASE("a problem back within the reopen window reopens its ticket, later it is a new one") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("a1")}));
  auto id = home.tickets()[0].id;
  REQUIRE(
      home.store->changeTicket(id, TicketAction::kResolve, "eli", "fan replaced", kT0 + kMinute));
  home.commit(report(kAgentA, 2, kT0 + 2 * kHour, {alert("a2")}));
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 1);
  CHECK(tickets[0].state == "open");
  CHECK(tickets[0].count == 2);
  CHECK(home.actions(id) == std::vector<std::string>{"opened", "resolved", "reopened"});
  REQUIRE(home.store->changeTicket(id, TicketAction::kResolve, "eli", "", kT0 + 3 * kHour));
  // The default window is a day.
  home.commit(report(kAgentA, 3, kT0 + 3 * kHour + 25 * kHour, {alert("a3")}));
  tickets = home.tickets();
  REQUIRE(tickets.size() == 2);
  CHECK(tickets[1].state == "open");
  CHECK(tickets[1].count == 1);
}

TEST_CASE("one live ticket per problem holds across two connections committing at once") {
  Home home;
  Store other = home.second();
  std::atomic<bool> go{false};
  auto run = [&](Store& s, const char* agent, int offset) {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 100; ++i) {
      Home::commit(s, report(agent, static_cast<std::uint64_t>(i + 1), kT0 + i,
                             {alert(fmt::format("e-{}-{}", offset, i))}));
    }
  };
  std::thread a([&] { run(*home.store, kAgentA, 0); });
  std::thread b([&] { run(other, kAgentB, 1); });
  go = true;
  a.join();
  b.join();
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].count == 200);
  CHECK(home.outbox().size() == 3);
}

TEST_CASE("the store refuses a second live ticket and edits of the audit trail") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("a1")}));
  auto db = home.dir / "home.db";
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(db.string().c_str(), &raw) == SQLITE_OK);
  sqlite3_busy_timeout(raw, 5000);
  CHECK(
      sqlite3_exec(raw,
                   "INSERT INTO tickets (dedup_key, kind, customer, site, problem, title, urgent, "
                   "state, first_seen_ms, last_seen_ms, opened_ms) SELECT dedup_key, kind, "
                   "customer, site, problem, title, urgent, 'open', 1, 1, 1 FROM tickets",
                   nullptr, nullptr, nullptr) == SQLITE_CONSTRAINT);
  CHECK(sqlite3_exec(raw, "UPDATE ticket_log SET who = 'mallory'", nullptr, nullptr, nullptr) ==
        SQLITE_CONSTRAINT);
  CHECK(sqlite3_exec(raw, "DELETE FROM ticket_log", nullptr, nullptr, nullptr) ==
        SQLITE_CONSTRAINT);
  sqlite3_close(raw);
  CHECK(rawCount(db, "SELECT count(*) FROM ticket_log") == 1);
}

TEST_CASE("rules: the customer's first, then the top level, then the code table defaults") {
  HomeConfig cfg = testConfig();
  cfg.customers[0].rules.push_back(Rule{.where = "home.xml:10",
                                        .family = "hitachi_svp",
                                        .codes = {"3070*"},
                                        .action = RuleAction::kIgnore});
  cfg.rules.push_back(Rule{.where = "home.xml:20",
                           .severities = {"MODERATE"},
                           .action = RuleAction::kTicket,
                           .urgent = true});
  auto d = decide(cfg, "Acme", "Berlin", "hitachi_svp", "307080", "acute");
  CHECK(std::string(toString(d.action)) == "ignore");
  CHECK(d.why == "home.xml:10");
  d = decide(cfg, "Other", "Berlin", "hitachi_svp", "307080", "acute");
  CHECK(std::string(toString(d.action)) == "ticket");
  CHECK(d.urgent);
  d = decide(cfg, "Acme", "Berlin", "hitachi_svp", "ffee00", "moderate");
  CHECK(d.why == "home.xml:20");
  CHECK(d.urgent);
  d = decide(cfg, "Acme", "Berlin", "hpe_3par", "0x0270001", "informational");
  CHECK(std::string(toString(d.action)) == "record");
  d = decide(cfg, "Acme", "Berlin", "hpe_3par", "0x0270001", "degraded");
  CHECK(std::string(toString(d.action)) == "ticket");
  CHECK_FALSE(d.urgent);
  d = decide(cfg, "Acme", "Berlin", "nimble", "7", "apocalyptic");
  CHECK(std::string(toString(d.action)) == "ticket");
  CHECK(d.urgent);
}

TEST_CASE("recorded and ignored alerts open no ticket") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("s1", "ffee01", "service")}));
  CHECK(home.tickets().empty());
  CHECK(rawCount(home.dir / "home.db", "SELECT count(*) FROM events") == 1);
}

TEST_CASE("a non-urgent ticket waits for the end of quiet hours and sends no SMS") {
  HomeConfig cfg = testConfig();
  cfg.customers[0].quietHours = "22:00-07:00";
  cfg.customers[0].timeZone = "UTC";
  cfg.customers[0].quiet = QuietHours::parse("22:00-07:00", "UTC").value();
  Home home(makePolicy(cfg));
  // 2027-01-15T23:00:00Z is inside the quiet hours; moderate is not urgent.
  std::int64_t night = kT0 + 15 * kHour;
  home.commit(report(kAgentA, 1, night, {alert("m1", "ffee02", "moderate")}));
  auto out = home.outbox();
  REQUIRE(out.size() == 2);
  CHECK(countWhere(out, "sms") == 0);
  for (const auto& o : out) CHECK(o.notBeforeMs == kT0 + 23 * kHour);  // 07:00Z next morning
  // An urgent one goes at once, also by SMS.
  home.commit(report(kAgentA, 2, night, {alert("u1")}));
  out = home.outbox();
  CHECK(countWhere(out, "sms") == 1);
  CHECK(out.back().notBeforeMs == night);
}

TEST_CASE("a silenced alert is recorded on its ticket and notifies nobody") {
  Home home;
  auto id = home.store->addSilence(SilenceRow{.array = "410123",
                                              .startsMs = kT0,
                                              .endsMs = kT0 + kHour,
                                              .author = "eli",
                                              .reason = "disk swap",
                                              .createdMs = kT0});
  REQUIRE(id.has_value());
  home.commit(report(kAgentA, 1, kT0 + kMinute, {alert("a1")}));
  auto t = home.tickets().at(0);
  CHECK(t.silencedBy == *id);
  CHECK(home.outbox().empty());
  CHECK(home.actions(t.id) == std::vector<std::string>{"opened", "silenced"});
  // After the window the same array's next problem notifies again.
  home.commit(report(kAgentA, 2, kT0 + 2 * kHour, {alert("b1", "3a0001")}));
  CHECK(home.outbox().size() == 3);
  CHECK_FALSE(home.store->addSilence(
      SilenceRow{.startsMs = kT0, .endsMs = kT0 + 1, .author = "x", .reason = "y"}));
}

TEST_CASE("storm mode: past the threshold one notice, then silence, then one summary") {
  Home home;  // threshold 5 in 10 minutes
  for (int i = 0; i < 12; ++i) {
    home.commit(report(kAgentA, home.seq++, kT0 + i * 1000,
                       {alert(fmt::format("s{}", i), fmt::format("3a00{:02}", i))}));
  }
  CHECK(home.tickets().size() == 12);
  auto out = home.outbox();
  std::int64_t opened = std::count_if(out.begin(), out.end(), [](const OutboxRow& o) {
    return o.notice.find("\"kind\":\"opened\"") != std::string::npos;
  });
  std::int64_t stormOn = std::count_if(out.begin(), out.end(), [](const OutboxRow& o) {
    return o.notice.find("\"kind\":\"storm_on\"") != std::string::npos;
  });
  CHECK(opened == 5 * 3);  // the first five tickets, three messages each
  CHECK(stormOn == 3);     // the on-call engineer (mail and SMS) and management
  auto report1 = home.store->watchdog(kT0 + 5 * kMinute);
  REQUIRE(report1.has_value());
  CHECK(report1->stormSummaries == 0);
  auto report2 = home.store->watchdog(kT0 + 11 * kMinute + 12 * 1000);
  REQUIRE(report2.has_value());
  CHECK(report2->stormSummaries == 1);
  out = home.outbox();
  auto summary = std::find_if(out.begin(), out.end(), [](const OutboxRow& o) {
    return o.notice.find("\"kind\":\"storm_summary\"") != std::string::npos;
  });
  REQUIRE(summary != out.end());
  auto notice = noticeFromJson(nlohmann::json::parse(summary->notice));
  // The summary lists the tickets that were not sent on their own: the 6th to the 12th.
  CHECK(notice.count == 7);
  CHECK(notice.detail.find("3a0011") != std::string::npos);
  CHECK(notice.detail.find("3a0004") == std::string::npos);
}

TEST_CASE("watchdog: missing heartbeat after due plus grace, resolved when heartbeats return") {
  Home home;
  const std::int64_t interval = 4 * kHour;
  home.commit(heartbeat(kAgentA, 1, kT0, kT0 + 2000, interval));
  // Due at kT0 + 4h (on the home's clock: arrival + interval); grace two more intervals.
  auto early = home.store->watchdog(kT0 + 2000 + 3 * interval - kMinute);
  REQUIRE(early.has_value());
  CHECK(early->missingOpened == 0);
  auto late = home.store->watchdog(kT0 + 2000 + 3 * interval + kMinute);
  REQUIRE(late.has_value());
  CHECK(late->missingOpened == 1);
  auto again = home.store->watchdog(kT0 + 2000 + 3 * interval + 2 * kMinute);
  CHECK(again->missingOpened == 0);
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].kind == "missing_heartbeat");
  CHECK(home.outbox(live[0].id).size() == 2);  // not urgent: e-mail only
  home.commit(heartbeat(kAgentA, 2, kT0 + 13 * kHour, kT0 + 13 * kHour + 500, interval));
  auto t = home.tickets().at(0);
  CHECK(t.state == "resolved");
  CHECK(t.resolvedBy == "agent vsp-1");
  auto log = home.store->ticketLog(t.id).value();
  CHECK(log.back().detail.find("heartbeats are back") != std::string::npos);
}

TEST_CASE("watchdog: an agent announcing its next heartbeat years ahead is still watched daily") {
  Home home;
  const std::int64_t day = 24 * kHour;
  home.commit(heartbeat(kAgentA, 1, kT0, kT0 + 2000, 300LL * 365 * day));
  // Capped at a day: due a day after arrival, missing after two more.
  auto early = home.store->watchdog(kT0 + 2000 + 3 * day - kMinute);
  REQUIRE(early.has_value());
  CHECK(early->missingOpened == 0);
  auto late = home.store->watchdog(kT0 + 2000 + 3 * day + kMinute);
  REQUIRE(late.has_value());
  CHECK(late->missingOpened == 1);
}

TEST_CASE("watchdog: the missing-heartbeat ticket names the interval the agent is set to") {
  Home home;
  const std::int64_t interval = 5 * kMinute;
  // As the agent seals it: sent_ms, then the envelope's created_ms a few ms later, and
  // next_due_ms one interval after sent_ms; interval_s says the setting.
  EnvelopeRecord r = heartbeat(kAgentA, 1, kT0, kT0 + 2000, interval);
  r.createdMs = kT0 + 7;
  r.intervalMs = interval;
  home.commit(r);
  // The grace counts in whole intervals of the setting: due kT0 + 2 s + 5 min, two more.
  auto early = home.store->watchdog(kT0 + 2000 + 3 * interval - 1000);
  REQUIRE(early.has_value());
  CHECK(early->missingOpened == 0);
  auto late = home.store->watchdog(kT0 + 2000 + 3 * interval + 1000);
  REQUIRE(late.has_value());
  CHECK(late->missingOpened == 1);
  auto t = home.tickets(true).at(0);
  INFO(t.detail);
  CHECK(t.detail.find("grace: 2 heartbeat intervals of 5 min") != std::string::npos);
}

TEST_CASE("watchdog: without interval_s, the interval is next_due - created, as before") {
  Home home;
  EnvelopeRecord r = heartbeat(kAgentA, 1, kT0, kT0, kHour);
  home.commit(r);
  auto late = home.store->watchdog(kT0 + 3 * kHour + kMinute);
  REQUIRE(late.has_value());
  CHECK(late->missingOpened == 1);
  CHECK(home.tickets(true).at(0).detail.find("intervals of 60 min") != std::string::npos);
}

TEST_CASE("watchdog: the home's own outage does not count against the agents") {
  Home home;
  const std::int64_t interval = 5 * kMinute;
  home.commit(heartbeat(kAgentA, 1, kT0, kT0, interval));
  home.commit(heartbeat(kAgentB, 1, kT0, kT0, interval));
  // The home was down for ten hours and receives again from `back`: both agents of the site are
  // long overdue, but neither is missing, nor the site silent, before two intervals from then.
  const std::int64_t back = kT0 + 10 * kHour;
  auto first = home.store->watchdog(back + 1000, back);
  REQUIRE(first.has_value());
  CHECK(first->missingOpened == 0);
  CHECK(first->siteOpened == 0);
  CHECK(first->held == 2);
  CHECK(first->holdUntilMs == back + 2 * interval);
  CHECK(home.tickets().empty());
  // A (healthy) heartbeats after the restart; B stays silent.
  home.commit(heartbeat(kAgentA, 2, back + kMinute, back + kMinute, interval));
  auto held = home.store->watchdog(back + 2 * interval, back);
  REQUIRE(held.has_value());
  CHECK(held->missingOpened == 0);
  CHECK(held->held == 1);
  auto after = home.store->watchdog(back + 2 * interval + 1000, back);
  REQUIRE(after.has_value());
  CHECK(after->missingOpened == 1);
  CHECK(after->siteOpened == 0);
  CHECK(after->held == 0);
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].kind == "missing_heartbeat");
  CHECK(live[0].agentId == kAgentB);
  // Without a hold (one pass of `pass-home watchdog`) the due time alone counts, as before.
  Home other;
  other.commit(heartbeat(kAgentA, 1, kT0, kT0, interval));
  auto plain = other.store->watchdog(back + 1000);
  REQUIRE(plain.has_value());
  CHECK(plain->missingOpened == 1);
  CHECK_FALSE(plain->holdUntilMs.has_value());
}

TEST_CASE("a skewed agent clock is a warning, never a missing heartbeat") {
  Home home;
  const std::int64_t interval = 4 * kHour;
  // The agent's clock runs 3 hours ahead: its next_due_ms is 7 hours ahead of the home.
  home.commit(heartbeat(kAgentA, 1, kT0 + 3 * kHour, kT0, interval));
  auto agents = home.store->agents().value();
  auto a =
      std::find_if(agents.begin(), agents.end(), [](const auto& x) { return x.id == kAgentA; });
  REQUIRE(a != agents.end());
  CHECK(rawCount(home.dir / "home.db",
                 fmt::format("SELECT count(*) FROM agents WHERE id = '{}' AND clock_warning LIKE "
                             "'%ahead%'",
                             kAgentA)) == 1);
  // Heartbeats keep arriving every 4 hours of home time: no ticket ever.
  for (int i = 1; i <= 5; ++i) {
    home.commit(
        heartbeat(kAgentA, 1 + i, kT0 + 3 * kHour + i * interval, kT0 + i * interval, interval));
    auto r = home.store->watchdog(kT0 + i * interval + interval - kMinute);
    REQUIRE(r.has_value());
    CHECK(r->missingOpened == 0);
  }
  // An agent 3 hours behind whose heartbeat waited in its spool is not called skewed.
  home.commit(heartbeat(kAgentB, 1, kT0 - 3 * kHour, kT0, interval, "[]", 4));
  CHECK(rawCount(home.dir / "home.db",
                 fmt::format("SELECT count(*) FROM agents WHERE id = '{}' AND clock_warning = ''",
                             kAgentB)) == 1);
  CHECK(home.tickets().empty());
}

TEST_CASE("all agents of a site silent: one site ticket, the agents' tickets beneath it") {
  Home home;
  const std::int64_t interval = kHour;
  home.commit(heartbeat(kAgentA, 1, kT0, kT0, interval));
  home.commit(heartbeat(kAgentB, 1, kT0 + 10 * kMinute, kT0 + 10 * kMinute, interval));
  auto r = home.store->watchdog(kT0 + 4 * kHour);
  REQUIRE(r.has_value());
  CHECK(r->siteOpened == 1);
  CHECK(r->missingOpened == 2);
  auto tickets = home.tickets(true);
  REQUIRE(tickets.size() == 3);
  auto site = std::find_if(tickets.begin(), tickets.end(),
                           [](const TicketRow& t) { return t.kind == "site_silent"; });
  REQUIRE(site != tickets.end());
  for (const auto& t : tickets) {
    if (t.kind != "missing_heartbeat") continue;
    CHECK(t.parentId == site->id);
    CHECK(home.outbox(t.id).empty());
  }
  CHECK(home.outbox(site->id).size() == 2);
  // One agent back: the site ticket resolves, the other agent's ticket stays.
  home.commit(heartbeat(kAgentA, 2, kT0 + 5 * kHour, kT0 + 5 * kHour, interval));
  CHECK(home.tickets(true).size() == 1);
}

TEST_CASE("an open ticket nobody acknowledged escalates; acknowledging stops it") {
  Home home;  // escalate after 30 minutes; no schedule: level 2 is management alone
  home.commit(report(kAgentA, 1, kT0, {alert("a1")}));
  home.commit(report(kAgentA, 2, kT0, {alert("b1", "3a0001")}));
  auto tickets = home.tickets();
  REQUIRE(tickets.size() == 2);
  REQUIRE(home.store->changeTicket(tickets[1].id, TicketAction::kAcknowledge, "eli", "on it",
                                   kT0 + 10 * kMinute));
  auto r = home.store->watchdog(kT0 + 31 * kMinute);
  REQUIRE(r.has_value());
  CHECK(r->escalated == 1);
  auto escalated = home.store->ticket(tickets[0].id).value().value();
  CHECK(escalated.escalationLevel == 2);
  auto out = home.outbox(tickets[0].id);
  auto mails = std::count_if(out.begin(), out.end(), [](const OutboxRow& o) {
    return o.notice.find("\"kind\":\"escalated\"") != std::string::npos;
  });
  CHECK(mails == 1);  // management
  // The last level was reached: no further escalation.
  CHECK(home.store->watchdog(kT0 + 3 * kHour)->escalated == 0);
  CHECK(home.actions(tickets[1].id) == std::vector<std::string>{"opened", "acknowledged"});
}

TEST_CASE("people change tickets: only the allowed moves, each in the audit trail") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("a1")}));
  auto id = home.tickets()[0].id;
  CHECK(home.store->changeTicket(id, TicketAction::kReopen, "eli", "", kT0).error().code ==
        "ticket.state");
  CHECK(home.store->changeTicket(id, TicketAction::kAcknowledge, "eli", "", kT0).has_value());
  CHECK(home.store->changeTicket(id, TicketAction::kAcknowledge, "eli", "", kT0).error().code ==
        "ticket.state");
  CHECK(home.store->changeTicket(id, TicketAction::kResolve, "mia", "done", kT0).has_value());
  CHECK(home.store->changeTicket(id, TicketAction::kReopen, "mia", "not fixed", kT0).has_value());
  CHECK(home.store->changeTicket(999, TicketAction::kResolve, "x", "", kT0).error().code ==
        "ticket.unknown");
  auto log = home.store->ticketLog(id).value();
  REQUIRE(log.size() == 4);
  CHECK(log[1].who == "eli");
  CHECK(log[2].who == "mia");
  CHECK(log[2].detail == "done");
  CHECK(log[3].action == "reopened");
}

TEST_CASE("an array the agent cannot reach is its own ticket until it is collected again") {
  Home home;
  const std::string down =
      R"([{"family":"hpe_3par","serial":"1600123","state":"unreachable","message":"connect: timed out"}])";
  const std::string up = R"([{"family":"hpe_3par","serial":"1600123","state":"ok","message":""}])";
  home.commit(heartbeat(kAgentA, 1, kT0, kT0, kHour, down));
  home.commit(heartbeat(kAgentA, 2, kT0 + kHour, kT0 + kHour, kHour, down));
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].kind == "array_unreachable");
  CHECK(live[0].count == 2);
  home.commit(heartbeat(kAgentA, 3, kT0 + 2 * kHour, kT0 + 2 * kHour, kHour, up));
  CHECK(home.tickets(true).empty());
}

TEST_CASE(
    "outbox: each row is claimed by one worker, retried with backoff, reclaimed after a "
    "lease") {
  Home home;
  home.commit(report(kAgentA, 1, kT0, {alert("a1")}));
  Store other = home.second();
  std::set<std::int64_t> claimed;
  for (int i = 0; i < 3; ++i) {
    auto a = home.store->outboxQueue().claim("w1", kT0, 60'000);
    auto b = other.outboxQueue().claim("w2", kT0, 60'000);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    if (*a) CHECK(claimed.insert((*a)->row.id).second);
    if (*b) CHECK(claimed.insert((*b)->row.id).second);
  }
  CHECK(claimed.size() == 3);
  auto rows = home.outbox();
  CHECK(std::all_of(rows.begin(), rows.end(), [](const OutboxRow& o) { return o.attempts == 1; }));
  // A worker that died: after its lease another worker takes the row.
  auto reclaimed = other.outboxQueue().claim("w2", kT0 + 61'000, 60'000);
  REQUIRE(reclaimed.has_value());
  REQUIRE(reclaimed->has_value());
  auto id = (*reclaimed)->row.id;
  CHECK(home.store->outboxQueue()
            .finish(id, "w1", notify::Outcome::kSent, "", kT0, kT0)
            .error()
            .code == "outbox.claim");
  REQUIRE(other.outboxQueue().finish(id, "w2", notify::Outcome::kRetry, "451 try later",
                                     kT0 + 62'000, kT0 + 122'000));
  auto row = other.outbox(std::nullopt).value();
  auto it = std::find_if(row.begin(), row.end(), [&](const OutboxRow& o) { return o.id == id; });
  CHECK(it->state == "pending");
  CHECK(it->notBeforeMs == kT0 + 122'000);
  CHECK(it->lastError == "451 try later");
  // The two rows still claimed by the dead worker keep their due time.
  CHECK(other.outboxQueue().nextDue().value() == kT0);
  REQUIRE(other.outboxQueue().claim("w2", kT0 + 122'000, 60'000).value().has_value());
}

TEST_CASE("a Hitachi DF component's recovery resolves its ticket although its code differs") {
  Home home;
  auto fan = alert("fan-0/1", "fan.alarm", "serious", "Fan/Unit 0/Fan 1");
  fan.family = "hitachi_df";
  home.commit(report(kAgentA, 1, kT0, {fan}));
  auto other = alert("fan-0/2", "fan.alarm", "serious", "Fan/Unit 0/Fan 2");
  other.family = "hitachi_df";
  home.commit(report(kAgentA, 2, kT0, {other}));
  REQUIRE(home.tickets(true).size() == 2);
  auto normal = alert("fan-0/1:normal", "fan.normal", "service", "Fan/Unit 0/Fan 1");
  normal.family = "hitachi_df";
  normal.kind = "recovery";
  home.commit(report(kAgentA, 3, kT0 + kMinute, {normal}));
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].component == "Fan/Unit 0/Fan 2");
}

TEST_CASE("an onboarded array missing from the agent's heartbeat is a ticket until it is listed") {
  Home home;
  const ExpectedArray expected[] = {{.family = "hpe_3par", .serial = "1600123", .model = "8200"},
                                    {.family = "nimble", .serial = "AF-1", .model = "AF40"}};
  REQUIRE(home.store->setExpectedArrays(kAgentA, expected, kT0).has_value());
  const std::string onlyThreePar =
      R"([{"family":"hpe_3par","serial":"1600123","state":"ok","message":""}])";
  home.commit(heartbeat(kAgentA, 1, kT0 + kHour, kT0 + kHour, kHour, onlyThreePar));
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].kind == "array_not_reported");
  CHECK(live[0].array == "AF-1");
  CHECK(live[0].family == "nimble");
  CHECK(live[0].title == "array AF-1 is not watched by agent vsp-1");
  auto arrays = home.store->expectedArrays(kAgentA).value();
  REQUIRE(arrays.size() == 2);
  CHECK(arrays[0].lastReportedMs == kT0 + kHour);  // hpe_3par, listed
  CHECK_FALSE(arrays[1].lastReportedMs.has_value());
  // Listed again (the engineer added it to agent.xml): resolved.
  const std::string both = R"([{"family":"hpe_3par","serial":"1600123","state":"ok","message":""},)"
                           R"({"family":"nimble","serial":"AF-1","state":"ok","message":""}])";
  home.commit(heartbeat(kAgentA, 2, kT0 + 2 * kHour, kT0 + 2 * kHour, kHour, both));
  CHECK(home.tickets(true).empty());
  CHECK(home.tickets().at(0).resolvedBy == "agent vsp-1");
  // An agent nobody onboarded is not held to any list.
  home.commit(heartbeat(kAgentB, 1, kT0, kT0, kHour));
  CHECK(home.tickets(true).empty());
}

TEST_CASE("setting expected arrays keeps the dates of kept ones and drops the rest") {
  Home home;
  const ExpectedArray first[] = {{.family = "hpe_3par", .serial = "1"},
                                 {.family = "nimble", .serial = "2"}};
  REQUIRE(home.store->setExpectedArrays(kAgentA, first, kT0).has_value());
  const ExpectedArray second[] = {{.family = "nimble", .serial = "2", .name = "renamed"},
                                  {.family = "hitachi_df", .serial = "3"}};
  REQUIRE(home.store->setExpectedArrays(kAgentA, second, kT0 + kHour).has_value());
  auto arrays = home.store->expectedArrays(kAgentA).value();
  REQUIRE(arrays.size() == 2);
  CHECK(arrays[0].family == "hitachi_df");
  CHECK(arrays[0].sinceMs == kT0 + kHour);
  CHECK(arrays[1].family == "nimble");
  CHECK(arrays[1].sinceMs == kT0);
  CHECK(arrays[1].name == "renamed");
  auto unknown = home.store->setExpectedArrays("00000000-0000-4000-8000-000000000000", first, kT0);
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().code == "unknown_agent");
}

TEST_CASE("watchdog: an onboarded agent that never reports is a ticket after first-report-days") {
  Home home;
  const ExpectedArray expected[] = {{.family = "hitachi_svp", .serial = "470849"}};
  REQUIRE(home.store->setExpectedArrays(kAgentA, expected, kT0).has_value());
  const std::int64_t grace = testConfig().firstReportMs;
  auto early = home.store->watchdog(kT0 + grace - kMinute);
  REQUIRE(early.has_value());
  CHECK(early->neverReportedOpened == 0);
  auto late = home.store->watchdog(kT0 + grace + kMinute);
  REQUIRE(late.has_value());
  CHECK(late->neverReportedOpened == 1);
  CHECK(home.store->watchdog(kT0 + grace + 2 * kMinute)->neverReportedOpened == 0);
  auto live = home.tickets(true);
  REQUIRE(live.size() == 1);
  CHECK(live[0].kind == "never_reported");
  CHECK(live[0].title == "agent vsp-1 has never reported since onboarding");
  CHECK(live[0].detail.find("470849") != std::string::npos);
  const std::string listed =
      R"([{"family":"hitachi_svp","serial":"470849","state":"ok","message":""}])";
  home.commit(heartbeat(kAgentA, 1, kT0 + grace + kHour, kT0 + grace + kHour, kHour, listed));
  CHECK(home.tickets(true).empty());
  // Heard from once: the watchdog's missing-heartbeat rule takes over, not this one.
  CHECK(home.store->watchdog(kT0 + 2 * grace)->neverReportedOpened == 0);
}
