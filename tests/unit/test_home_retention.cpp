// Retention (ClusterStore::prune, home.xml <retention>, docs/scale-out.md "Retention") on
// SQLite and PostgreSQL: what is pruned and what stays, in batches, a dry run, stopping between
// batches, what pruning does to duplicate detection, and home.xml's checks.

#include <doctest/doctest.h>

#include <fstream>

#include "config/retention.hpp"
#include "pass/home/home_config.hpp"
#include "store/cluster_store.hpp"
#include "test_home_store_backends.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::openStore;
using pass::home::test::sampleAgent;
using pass::home::test::sampleRecord;

namespace {

constexpr const char* kAgent = "11111111-2222-4333-8444-555555555555";
constexpr std::int64_t kDay = 24LL * 3600 * 1000;
// sampleRecord(seq) is created at kBase + seq and received 5 ms later.
constexpr std::int64_t kBase = 1'700'000'000'000;

template <typename Backend>
ClusterStore openCluster(const Backend& backend) {
  auto store = ClusterStore::open(backend.location());
  REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message));
  return std::move(*store);
}

void commit(Store& store, const EnvelopeRecord& r) {
  const EnvelopeRecord* batch[] = {&r};
  auto results = store.commit(batch);
  REQUIRE_MESSAGE(results.has_value(), (results ? "" : results.error().message));
}

CommitResult commitResult(Store& store, const EnvelopeRecord& r) {
  const EnvelopeRecord* batch[] = {&r};
  auto results = store.commit(batch);
  REQUIRE(results.has_value());
  return results->at(0);
}

/// 10 envelopes: seq 1..10, heartbeats for odd seq, reports (two events each) for even.
template <typename Backend>
Store storeWithTen(const Backend& backend) {
  Store store = openStore(backend);
  REQUIRE(store.addAgent(sampleAgent(kAgent)));
  for (std::uint64_t seq = 1; seq <= 10; ++seq) {
    auto r = sampleRecord(kAgent, seq, seq % 2 == 1 ? "heartbeat" : "report");
    if (r.type == "heartbeat") {
      r.events.clear();
      r.nextDueMs = r.createdMs + 60'000;
      r.intervalMs = 60'000;
    }
    commit(store, r);
  }
  return store;
}

// At this "now", with envelopes kept 31 days, seq 1..5 are older than the cut (received at
// kBase + seq + 5 < kBase + 11).
constexpr std::int64_t kNow = kBase + 11 + 31 * kDay;
const Retention kKeep31{.envelopesMs = 31 * kDay, .eventsMs = 0};

}  // namespace

TEST_CASE_TEMPLATE("prune removes envelopes and heartbeats older than their age, in batches",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  Store store = storeWithTen(backend);
  ClusterStore cluster = openCluster(backend);
  auto pruned = cluster.prune(kKeep31, kNow, false, 2);
  REQUIRE_MESSAGE(pruned.has_value(), (pruned ? "" : pruned.error().message));
  CHECK(pruned->envelopes == 5);
  CHECK(pruned->heartbeats == 3);  // seq 1, 3, 5
  CHECK(pruned->events == 0);      // events-days 0: kept for good
  CHECK(pruned->batches >= 3);     // 2 rows a batch
  CHECK_FALSE(pruned->stopped);
  auto left = store.envelopes(std::nullopt).value();
  REQUIRE(left.size() == 5);
  CHECK(left.front().seq == 6);
  // Events outlive their envelopes; their arrival is then unknown (0).
  auto events = store.events(std::nullopt).value();
  CHECK(events.size() == 10);
  CHECK(events.front().receivedMs == 0);
  CHECK(events.back().receivedMs == kBase + 10 + 5);
  // Nothing more to prune at the same time.
  auto again = cluster.prune(kKeep31, kNow, false, 2).value();
  CHECK(again.envelopes + again.heartbeats + again.events == 0);
}

TEST_CASE_TEMPLATE("a pruned envelope's key is gone, a kept one's still refuses its duplicate",
                   Backend, PASS_STORE_BACKENDS) {
  // The ingest refuses an envelope created more than the replay window (30 days) ago before it
  // reaches the store, and envelopes-days is at least 31: so the only envelopes the store can
  // take again are ones the ingest refuses anyway. Here the store is asked directly.
  Backend backend;
  Store store = storeWithTen(backend);
  ClusterStore cluster = openCluster(backend);
  REQUIRE(cluster.prune(kKeep31, kNow, false));
  CHECK(commitResult(store, sampleRecord(kAgent, 7)) == CommitResult::kDuplicate);
  CHECK(commitResult(store, sampleRecord(kAgent, 2)) == CommitResult::kAccepted);
  // Another connection (another home) sees the same.
  Store other = openStore(backend);
  CHECK(commitResult(other, sampleRecord(kAgent, 8)) == CommitResult::kDuplicate);
  CHECK(commitResult(other, sampleRecord(kAgent, 4)) == CommitResult::kAccepted);
}

TEST_CASE_TEMPLATE("a dry run counts and prunes nothing, and keepGoing stops between batches",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  Store store = storeWithTen(backend);
  ClusterStore cluster = openCluster(backend);
  auto dry = cluster.prune(kKeep31, kNow, true, 2).value();
  CHECK(dry.envelopes == 5);
  CHECK(dry.heartbeats == 3);
  CHECK(store.envelopes(std::nullopt).value().size() == 10);

  int asked = 0;
  auto stopped = cluster.prune(kKeep31, kNow, false, 2, [&] { return ++asked <= 1; }).value();
  CHECK(stopped.stopped);
  CHECK(stopped.envelopes == 2);  // the one batch it was let run
  CHECK(store.envelopes(std::nullopt).value().size() == 8);
}

TEST_CASE_TEMPLATE("events go after their age, except those of a live ticket's array and code",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  Store store = openStore(backend);
  REQUIRE(store.addAgent(sampleAgent(kAgent)));
  store.setPolicy(Policy::make(HomeConfig{}, Bytes(32, 7)));
  ClusterStore cluster = openCluster(backend);
  auto alert = [](std::string id, std::string code) {
    return EventRecord{.family = "hitachi_svp",
                       .array = "410123",
                       .id = std::move(id),
                       .code = std::move(code),
                       .severity = "acute",
                       .occurredMs = kBase,
                       .kind = "alert",
                       .component = "DKC-0 fan 2",
                       .text = "FAN ALARM",
                       .payload = "{}"};
  };
  auto r1 = sampleRecord(kAgent, 1, "report", 0);
  r1.events = {alert("e1", "307080")};
  auto r2 = sampleRecord(kAgent, 2, "report", 0);
  r2.events = {alert("e2", "307081")};
  commit(store, r1);
  commit(store, r2);
  auto tickets = store.tickets(TicketFilter{.liveOnly = true}).value();
  REQUIRE(tickets.size() == 2);
  const auto& second = tickets[0].code == "307081" ? tickets[0] : tickets[1];
  REQUIRE(store.changeTicket(second.id, TicketAction::kResolve, "test", "", kBase + 100));

  auto pruned =
      cluster.prune(Retention{.envelopesMs = 0, .eventsMs = 10 * kDay}, kBase + 11 * kDay, false)
          .value();
  CHECK(pruned.events == 1);
  CHECK(pruned.envelopes == 0);
  auto events = store.events(std::nullopt).value();
  REQUIRE(events.size() == 1);
  CHECK(events[0].event.code == std::optional<std::string>("307080"));
  // Tickets and their log stay.
  CHECK(store.tickets(TicketFilter{}).value().size() == 2);
  CHECK_FALSE(store.ticketLog(second.id).value().empty());
}

TEST_CASE("home.xml <retention>: ages in days, 0 keeps, too short an envelope age is refused") {
  pass::test::TempDir dir;
  auto write = [&](const std::string& retention) {
    std::ofstream(dir.path() / "home.xml") << "<pass-home schema=\"1\">\n"
                                           << retention << "\n</pass-home>\n";
  };
  auto none = loadRetention(dir.path());  // no home.xml
  REQUIRE(none.has_value());
  CHECK_FALSE(none->any());
  write("");
  CHECK_FALSE(loadRetention(dir.path()).value().any());
  write(R"(<retention envelopes-days="90" events-days="400" interval-minutes="5"/>)");
  auto set = loadRetention(dir.path());
  REQUIRE_MESSAGE(set.has_value(), (set ? "" : set.error().message));
  CHECK(set->envelopesMs == 90 * kDay);
  CHECK(set->eventsMs == 400 * kDay);
  CHECK(set->intervalMs == 5 * 60'000);
  write(R"(<retention envelopes-days="10"/>)");
  for (const auto& message : {loadRetention(dir.path()).error().message,
                              loadHomeConfig(dir.path() / "home.xml").error().message}) {
    CHECK(message.find("home.xml:2") != std::string::npos);
    CHECK(message.find("envelopes-days") != std::string::npos);
  }
}
