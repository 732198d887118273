// The outbox worker against a real SMTP server (tools/smtpd/pass-smtpd.py) with an injected
// clock: a mail server down for an hour of simulated time loses nothing and sends nothing
// twice.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "pass/home/log.hpp"
#include "pass/home/outbox_worker.hpp"
#include "pass/home/store.hpp"
#include "test_home_support.hpp"
#include "test_smtpd.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::sampleAgent;
using pass::test::Smtpd;
using pass::test::TempDir;

namespace {

constexpr const char* kAgent = "11111111-2222-4333-8444-555555555555";
constexpr std::int64_t kT0 = 1'800'000'000'000;
constexpr std::int64_t kMinute = 60'000;

std::string readText(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string header(const std::string& message, const std::string& name) {
  auto at = message.find("\n" + name + ": ");
  if (at == std::string::npos) return {};
  at += name.size() + 3;
  return message.substr(at, message.find_first_of("\r\n", at) - at);
}

EnvelopeRecord alertReport(std::uint64_t seq, std::int64_t at, const std::string& code) {
  EnvelopeRecord r;
  r.agentId = kAgent;
  r.seq = seq;
  r.createdMs = at;
  r.receivedMs = at;
  r.type = "report";
  r.size = 300;
  r.payload = R"({"schema":1,"type":"report"})";
  EventRecord e;
  e.family = "hitachi_svp";
  e.array = "410123";
  e.id = "sim-" + code;
  e.code = code;
  e.severity = "acute";
  e.kind = "alert";
  e.occurredMs = at;
  e.payload = "{}";
  r.events.push_back(e);
  return r;
}

std::shared_ptr<const Policy> policyFor(std::uint16_t smtpPort) {
  HomeConfig cfg;
  notify::SmtpSettings smtp;
  smtp.url = fmt::format("smtp://127.0.0.1:{}", smtpPort);
  smtp.from = "PASS <pass@home.example>";
  smtp.tls = notify::SmtpSettings::Tls::kNone;
  smtp.connectTimeout = std::chrono::milliseconds(2000);
  smtp.totalTimeout = std::chrono::milliseconds(5000);
  cfg.smtp = smtp;
  Customer c;
  c.name = "Acme";
  c.contacts.push_back(Contact{.name = "Mia", .role = "management", .email = "mia@acme.example"});
  cfg.customers.push_back(c);
  return Policy::make(std::move(cfg), Bytes(32, 1));
}

}  // namespace

TEST_CASE("a mail server down for an hour: every message arrives once when it is back") {
  TempDir dir;
  // Find a free port for the mail server, then leave it down.
  std::uint16_t port = 0;
  {
    Smtpd probe(dir, {});
    port = probe.port();
  }
  auto policy = policyFor(port);
  {
    auto store = Store::open(dir / "home.db", Store::Mode::kCreate);
    REQUIRE(store.has_value());
    REQUIRE(store->addAgent(sampleAgent(kAgent)).has_value());
    store->setPolicy(policy);
    for (int i = 0; i < 3; ++i) {
      EnvelopeRecord r =
          alertReport(static_cast<std::uint64_t>(i + 1), kT0, fmt::format("3a000{}", i));
      const EnvelopeRecord* batch[] = {&r};
      REQUIRE(store->commit(batch).has_value());
    }
    REQUIRE(store->outbox(std::nullopt)->size() == 3);
  }

  std::int64_t now = kT0;
  Logger log(LogLevel::kError, [](std::string_view) {});
  OutboxWorker worker(StoreLocation{.sqliteFile = dir / "home.db"}, policy, log, "test-worker",
                      [&now] { return now; });
  auto store = Store::open(dir / "home.db");
  REQUIRE(store.has_value());

  // An hour without a mail server, the worker looking every minute.
  for (; now <= kT0 + 60 * kMinute; now += kMinute) {
    auto handled = worker.drainOnce();
    REQUIRE(handled.has_value());
  }
  auto rows = store->outbox(std::nullopt).value();
  for (const auto& row : rows) {
    CHECK(row.state == "pending");
    // Backoff 30 s doubling: about 7 attempts in an hour, not 60.
    CHECK(row.attempts >= 5);
    CHECK(row.attempts <= 8);
    CHECK_FALSE(row.lastError.empty());
  }

  Smtpd server(dir, {}, port);
  for (; now <= kT0 + 120 * kMinute; now += kMinute) {
    REQUIRE(worker.drainOnce().has_value());
  }
  rows = store->outbox(std::nullopt).value();
  std::set<std::string> expected;
  for (const auto& row : rows) {
    CHECK(row.state == "sent");
    expected.insert(fmt::format("<pass-outbox-{}.{}@pass>", row.id, row.createdMs));
  }
  auto messages = server.messages();
  REQUIRE(messages.size() == 3);
  std::set<std::string> ids;
  for (const auto& m : messages) ids.insert(header(readText(m), "Message-ID"));
  CHECK(ids == expected);
  // Nothing is sent again later.
  now += 24 * 60 * kMinute;
  CHECK(worker.drainOnce().value() == 0);
  CHECK(server.messages().size() == 3);
  // Each ticket's history says its message went out.
  auto tickets = store->tickets(TicketFilter{}).value();
  REQUIRE(tickets.size() == 3);
  for (const auto& t : tickets) {
    auto history = store->ticketLog(t.id).value();
    CHECK(history.back().action == "notified");
  }
}

TEST_CASE("clockJumped: more than the period, and more than a minute, away from the wait") {
  const std::int64_t second = 1000;
  CHECK_FALSE(clockJumped(kT0, kT0 + second, second));
  CHECK_FALSE(clockJumped(kT0, kT0 + second + kMinute, second));  // a slow minute
  CHECK(clockJumped(kT0, kT0 + second + kMinute + 1, second));
  CHECK(clockJumped(kT0, kT0 + 10 * 60 * kMinute, second));  // ten hours ahead
  CHECK(clockJumped(kT0, kT0 - 2 * kMinute, second));        // back
  CHECK_FALSE(clockJumped(kT0, kT0 - 30 * second, second));  // NTP stepping a little
  // With a ten-minute period, a jump must exceed the period.
  CHECK_FALSE(clockJumped(kT0, kT0 + 18 * kMinute, 10 * kMinute));
  CHECK(clockJumped(kT0, kT0 + 21 * kMinute, 10 * kMinute));
}

TEST_CASE("the watchdog loop holds after its start and after a clock jump, and logs both") {
  TempDir dir;
  constexpr std::int64_t kHour = 60 * kMinute;
  const std::int64_t interval = 5 * kMinute;
  HomeConfig cfg;
  cfg.watchdogIntervalMs = 1000;
  Customer c;
  c.name = "Acme";
  c.contacts.push_back(Contact{.name = "Mia", .role = "management", .email = "mia@acme.example"});
  cfg.customers.push_back(c);
  auto policy = Policy::make(std::move(cfg), Bytes(32, 1));
  {
    auto store = Store::open(dir / "home.db", Store::Mode::kCreate);
    REQUIRE(store.has_value());
    REQUIRE(store->addAgent(sampleAgent(kAgent)).has_value());
    EnvelopeRecord r;
    r.agentId = kAgent;
    r.seq = 1;
    r.createdMs = kT0;
    r.receivedMs = kT0;
    r.type = "heartbeat";
    r.payload = R"({"schema":1,"type":"heartbeat"})";
    r.nextDueMs = kT0 + interval;
    r.intervalMs = interval;
    const EnvelopeRecord* batch[] = {&r};
    REQUIRE(store->commit(batch).has_value());
  }
  std::mutex mutex;
  std::vector<std::string> lines;
  Logger log(LogLevel::kInfo, [&](std::string_view line) {
    std::lock_guard lock(mutex);
    lines.emplace_back(line);
  });
  auto holds = [&] {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& l : lines) {
      if (l.find(R"("event":"watchdog_hold")") != std::string::npos) out.push_back(l);
    }
    return out;
  };
  // The home starts ten hours after the agent's last heartbeat. Its clock then jumps six hours
  // ahead while the loop waits after its first pass (the loop reads the clock for the pass,
  // when its wait begins, and when it ends).
  const std::int64_t start = kT0 + 10 * kHour;
  const std::int64_t jumped = start + 6 * kHour;
  std::atomic<int> reads{0};
  WatchdogLoop loop(StoreLocation{.sqliteFile = dir / "home.db"}, policy, log, {},
                    [&] { return reads.fetch_add(1) < 2 ? start : jumped; });
  REQUIRE(loop.start().has_value());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (holds().size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  loop.stop();
  auto seen = holds();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].find(R"("reason":"start")") != std::string::npos);
  CHECK(seen[0].find(fmt::format(R"("until":"{}")", formatTimestamp(start + 2 * interval))) !=
        std::string::npos);
  CHECK(seen[0].find(R"("overdue_agents":1)") != std::string::npos);
  CHECK(seen[1].find(R"("reason":"clock_jump")") != std::string::npos);
  CHECK(seen[1].find(fmt::format(R"("until":"{}")", formatTimestamp(jumped + 2 * interval))) !=
        std::string::npos);
  auto store = Store::open(dir / "home.db");
  REQUIRE(store.has_value());
  CHECK(store->tickets(TicketFilter{})->empty());
}

TEST_CASE(
    "the watchdog loop runs no pass while another home leads, and one at once when woken as "
    "leader") {
  TempDir dir;
  HomeConfig cfg;
  cfg.watchdogIntervalMs = 3'600'000;  // an hour: a pass within the test is the wake's
  auto policy = Policy::make(std::move(cfg), Bytes(32, 1));
  {
    auto store = Store::open(dir / "home.db", Store::Mode::kCreate);
    REQUIRE(store.has_value());
  }
  std::mutex mutex;
  int passes = 0;  // the first pass logs watchdog_hold
  Logger log(LogLevel::kInfo, [&](std::string_view line) {
    std::lock_guard lock(mutex);
    if (line.find(R"("event":"watchdog_hold")") != std::string::npos) ++passes;
  });
  auto seen = [&] {
    std::lock_guard lock(mutex);
    return passes;
  };
  std::atomic<bool> leading{false};
  WatchdogLoop loop(StoreLocation{.sqliteFile = dir / "home.db"}, policy, log, {});
  loop.leadOnlyWhen([&] { return leading.load(); });
  REQUIRE(loop.start().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(seen() == 0);
  leading = true;
  loop.wake();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (seen() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  loop.stop();
  CHECK(seen() == 1);
}
