// The home's store: envelopes, events, heartbeats and agents on both backends (SQLite and
// PostgreSQL); SQLite's migrations and two-level key; group commit; revocation across
// connections.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "pass/home/group_commit.hpp"
#include "pass/home/ingest.hpp"
#include "pass/home/log.hpp"
#include "pass/home/revoked_agents.hpp"
#include "pass/home/store.hpp"
#include "test_home_store_backends.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::openStore;
using pass::home::test::sampleAgent;
using pass::home::test::sampleRecord;
using pass::home::test::TempDir;

namespace {

constexpr const char* kAgentA = "11111111-2222-4333-8444-555555555555";
constexpr const char* kAgentB = "99999999-2222-4333-8444-555555555555";

// Raw SQLite access for checks the Store API does not offer.
struct RawDb {
  explicit RawDb(const std::filesystem::path& file) {
    REQUIRE(sqlite3_open(file.string().c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
  }
  ~RawDb() { sqlite3_close(db); }
  std::int64_t count(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    auto n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
  }
  void exec(const std::string& sql) {
    REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  sqlite3* db = nullptr;
};

Store openNew(const std::filesystem::path& file) {
  auto store = Store::open(file, Store::Mode::kCreate);
  REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message));
  return std::move(*store);
}

std::vector<CommitResult> commitAll(Store& store, const std::vector<EnvelopeRecord>& records) {
  std::vector<const EnvelopeRecord*> batch;
  for (const auto& r : records) batch.push_back(&r);
  auto results = store.commit(batch);
  REQUIRE_MESSAGE(results.has_value(), (results ? "" : results.error().message));
  return *results;
}

}  // namespace

TEST_CASE("migrations bring a new database to the current schema, once") {
  TempDir dir;
  auto file = dir / "home.db";
  {
    auto store = openNew(file);
    CHECK(store.schemaVersion().value() == kSchemaVersion);
    CHECK(store.addAgent(sampleAgent(kAgentA)).has_value());
  }
  // Re-opening migrates nothing and keeps the data.
  auto again = Store::open(file);
  REQUIRE(again.has_value());
  CHECK(again->schemaVersion().value() == kSchemaVersion);
  CHECK(again->agents().value().size() == 1);
  RawDb raw(file);
  CHECK(raw.count("PRAGMA user_version") == kSchemaVersion);
  for (const char* table : {"agents", "envelopes", "heartbeats", "events"}) {
    CAPTURE(table);
    CHECK(raw.count(fmt::format("SELECT count(*) FROM sqlite_master WHERE name = '{}'", table)) ==
          1);
  }
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw.db, "PRAGMA journal_mode", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "wal");
  sqlite3_finalize(stmt);
}

TEST_CASE("a missing database or one from a newer pass-home is refused") {
  TempDir dir;
  auto missing = Store::open(dir / "home.db");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == "not_initialized");
  CHECK(missing.error().message.find("home.db") != std::string::npos);

  { openNew(dir / "home.db"); }
  RawDb(dir / "home.db").exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion + 1));
  auto newer = Store::open(dir / "home.db");
  REQUIRE_FALSE(newer.has_value());
  CHECK(newer.error().code == "store.version");
}

TEST_CASE_TEMPLATE("a commit stores each (agent, seq) once, within one batch and across batches",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  auto store = openStore(backend);
  REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  REQUIRE(store.addAgent(sampleAgent(kAgentB)).has_value());

  auto first = commitAll(store, {sampleRecord(kAgentA, 1), sampleRecord(kAgentA, 1),
                                 sampleRecord(kAgentA, 2), sampleRecord(kAgentB, 1)});
  CHECK(first == std::vector{CommitResult::kAccepted, CommitResult::kDuplicate,
                             CommitResult::kAccepted, CommitResult::kAccepted});
  auto second = commitAll(store, {sampleRecord(kAgentA, 2), sampleRecord(kAgentA, 3)});
  CHECK(second == std::vector{CommitResult::kDuplicate, CommitResult::kAccepted});

  auto stored = store.envelopes(std::string(kAgentA)).value();
  REQUIRE(stored.size() == 3);
  CHECK(stored[0].seq == 1);
  CHECK(stored[2].seq == 3);
  CHECK(store.envelopes(std::nullopt).value().size() == 4);

  // Two events per new envelope; the duplicates added none.
  auto events = store.events(std::nullopt).value();
  CHECK(events.size() == 8);
  CHECK(std::count_if(events.begin(), events.end(), [](const StoredEvent& e) {
          return e.agentId == kAgentA && e.seq == 1;
        }) == 2);
  CHECK(std::count_if(events.begin(), events.end(), [](const StoredEvent& e) {
          return e.event.code == "307081" && e.event.severity == "acute";
        }) == 4);

  auto agents = store.agents().value();
  REQUIRE(agents.size() == 2);
  const auto& a = agents[0].id == kAgentA ? agents[0] : agents[1];
  CHECK(a.lastSeq == 3);
  CHECK(a.envelopes == 3);
  CHECK(a.lastEnvelopeMs.has_value());
}

TEST_CASE_TEMPLATE("two connections committing the same (agent, seq) at once store it once",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  {
    auto store = openStore(backend);
    REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  }
  // Two homes receive the same spooled envelopes (an agent that timed out on one and sent them
  // again to the other): every (agent, seq) is accepted by exactly one of them.
  constexpr std::uint64_t kEnvelopes = 50;
  std::vector<EnvelopeRecord> records;
  for (std::uint64_t seq = 1; seq <= kEnvelopes; ++seq)
    records.push_back(sampleRecord(kAgentA, seq));
  auto home = [&](std::vector<CommitResult>& results, std::string& error) {
    auto store = openStore(backend);
    for (const auto& r : records) {
      const EnvelopeRecord* batch[] = {&r};
      auto done = store.commit(batch);
      if (!done) {
        error = done.error().message;
        return;
      }
      results.push_back(done->at(0));
    }
  };
  std::vector<CommitResult> one, two;
  std::string errorOne, errorTwo;
  std::thread a(home, std::ref(one), std::ref(errorOne));
  std::thread b(home, std::ref(two), std::ref(errorTwo));
  a.join();
  b.join();
  REQUIRE(errorOne.empty());
  REQUIRE(errorTwo.empty());
  REQUIRE(one.size() == kEnvelopes);
  REQUIRE(two.size() == kEnvelopes);
  for (std::size_t i = 0; i < kEnvelopes; ++i) {
    CHECK((one[i] == CommitResult::kAccepted) != (two[i] == CommitResult::kAccepted));
  }
  auto store = openStore(backend);
  CHECK(store.envelopes(std::nullopt).value().size() == kEnvelopes);
  CHECK(store.events(std::nullopt).value().size() == 2 * kEnvelopes);
  CHECK(store.agents().value().at(0).lastSeq == std::int64_t{kEnvelopes});
}

TEST_CASE("the envelopes key stays exact across a merge of its recent level") {
  TempDir dir;
  auto store = openNew(dir / "home.db");
  REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  // More than one merge's worth in one batch: the batch ends with a merge.
  std::vector<EnvelopeRecord> many;
  for (std::uint64_t seq = 1; seq <= 5000; ++seq) {
    many.push_back(sampleRecord(kAgentA, seq, "report", 0));
  }
  auto first = commitAll(store, many);
  CHECK(std::count(first.begin(), first.end(), CommitResult::kAccepted) == 5000);
  {
    RawDb raw(dir / "home.db");
    CHECK(raw.count("SELECT count(*) FROM envelope_keys") == 5000);
    CHECK(raw.count("SELECT upto FROM envelope_keys_merged") ==
          raw.count("SELECT max(id) FROM envelopes"));
  }
  // Merged keys, a recent one and new ones, in one batch.
  auto second = commitAll(
      store, {sampleRecord(kAgentA, 1, "report", 0), sampleRecord(kAgentA, 5000, "report", 0),
              sampleRecord(kAgentA, 5001, "report", 0), sampleRecord(kAgentA, 5001, "report", 0)});
  CHECK(second == std::vector{CommitResult::kDuplicate, CommitResult::kDuplicate,
                              CommitResult::kAccepted, CommitResult::kDuplicate});
  RawDb raw(dir / "home.db");
  CHECK(raw.count("SELECT count(*) FROM envelope_keys") == 5000);  // 5001 is still recent
  CHECK(raw.count("SELECT count(*) FROM envelopes") == 5001);
  // A reader merges the recent level first, so it lists every envelope.
  CHECK(store.envelopes(std::string(kAgentA)).value().size() == 5001);
  CHECK(raw.count("SELECT count(*) FROM envelope_keys") == 5001);
}

TEST_CASE("two connections see each other's recent envelopes and merges") {
  TempDir dir;
  auto one = openNew(dir / "home.db");
  REQUIRE(one.addAgent(sampleAgent(kAgentA)).has_value());
  auto two = Store::open(dir / "home.db");
  REQUIRE(two.has_value());

  CHECK(commitAll(one, {sampleRecord(kAgentA, 1), sampleRecord(kAgentA, 2)}) ==
        std::vector{CommitResult::kAccepted, CommitResult::kAccepted});
  // Only in one's recent level and the envelopes table: two must still find it.
  CHECK(commitAll(*two, {sampleRecord(kAgentA, 2), sampleRecord(kAgentA, 3)}) ==
        std::vector{CommitResult::kDuplicate, CommitResult::kAccepted});
  // two's reader merges; one notices and finds the merged keys.
  CHECK(two->envelopes(std::nullopt).value().size() == 3);
  CHECK(commitAll(one,
                  {sampleRecord(kAgentA, 1), sampleRecord(kAgentA, 3), sampleRecord(kAgentA, 4)}) ==
        std::vector{CommitResult::kDuplicate, CommitResult::kDuplicate, CommitResult::kAccepted});
  auto agents = one.agents().value();
  REQUIRE(agents.size() == 1);
  CHECK(agents[0].envelopes == 4);
  CHECK(agents[0].lastSeq == 4);
}

TEST_CASE("a rolled-back batch leaves no key behind: its envelopes are new when sent again") {
  TempDir dir;
  auto store = openNew(dir / "home.db");
  REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  RawDb(dir / "home.db")
      .exec(
          "CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.code = 'boom' "
          "BEGIN SELECT RAISE(ABORT, 'boom refused'); END");
  auto bad = sampleRecord(kAgentA, 2);
  bad.events[0].code = "boom";
  std::vector<const EnvelopeRecord*> batch;
  auto good = sampleRecord(kAgentA, 1);
  batch.push_back(&good);
  batch.push_back(&bad);
  auto failed = store.commit(batch);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().message.find("boom refused") != std::string::npos);
  // Seq 1 was inserted, then rolled back with the batch: it must not count as stored.
  CHECK(commitAll(store, {sampleRecord(kAgentA, 1), sampleRecord(kAgentA, 2)}) ==
        std::vector{CommitResult::kAccepted, CommitResult::kAccepted});
  CHECK(store.envelopes(std::nullopt).value().size() == 2);
}

TEST_CASE("a database from before the two-level key is migrated with its envelopes") {
  TempDir dir;
  auto file = dir / "home.db";
  { openNew(file).addAgent(sampleAgent(kAgentA)).value(); }
  {
    // Put the file back to schema 4: one table keyed by (agent_id, seq), two envelopes.
    RawDb raw(file);
    raw.exec(
        "DROP TABLE envelopes; DROP TABLE envelope_keys; DROP TABLE envelope_keys_merged;"
        "CREATE TABLE envelopes (agent_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "created_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, type TEXT NOT NULL, "
        "size INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (agent_id, seq));"
        "ALTER TABLE agents DROP COLUMN cert_expires_ms;"
        "ALTER TABLE agents DROP COLUMN cert_renewed_ms;"
        "ALTER TABLE agents DROP COLUMN previous_cert_serial;"
        "ALTER TABLE agents DROP COLUMN previous_cert_until_ms;"
        "PRAGMA user_version = 4;");
    raw.exec(
        fmt::format("INSERT INTO envelopes VALUES ('{0}', 7, 1, 2, 'report', 10, '{{}}'), "
                    "('{0}', 3, 1, 4, 'heartbeat', 10, '{{}}')",
                    kAgentA));
  }
  auto store = Store::open(file);
  REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message));
  CHECK(store->schemaVersion().value() == kSchemaVersion);
  // Schema 6: an agent enrolled before it has the 5 years its enrollment gave it.
  auto agents = store->agents().value();
  REQUIRE(agents.size() == 1);
  CHECK(agents[0].certExpiresMs == agents[0].enrolledMs + 1825LL * 86'400'000);
  auto listed = store->envelopes(std::nullopt).value();
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].seq == 3);
  CHECK(listed[0].receivedMs == 4);
  CHECK(listed[1].seq == 7);
  CHECK(commitAll(*store, {sampleRecord(kAgentA, 7), sampleRecord(kAgentA, 8)}) ==
        std::vector{CommitResult::kDuplicate, CommitResult::kAccepted});
  RawDb raw(file);
  CHECK(raw.count("SELECT upto FROM envelope_keys_merged") == 2);
  CHECK(raw.count("SELECT count(*) FROM envelopes WHERE id > 2") == 1);
}

TEST_CASE_TEMPLATE("an event already stored under its family, array and id is a repeat", Backend,
                   PASS_STORE_BACKENDS) {
  Backend backend;
  auto store = openStore(backend);
  REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  REQUIRE(store.addAgent(sampleAgent(kAgentB)).has_value());
  auto withIds = [](const char* agent, std::uint64_t seq, std::vector<const char*> ids) {
    auto r = sampleRecord(agent, seq);
    r.events.resize(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      r.events[i].family = "hitachi_svp";
      r.events[i].array = "470849";
      r.events[i].id = ids[i];
      r.events[i].payload = fmt::format(R"({{"id":"{}"}})", ids[i]);
    }
    return r;
  };
  // Re-collected after a crash: a new envelope (seq 2) repeats event "b"; another agent
  // watching the same array reports "c" again.
  commitAll(store, {withIds(kAgentA, 1, {"a", "b"})});
  commitAll(store, {withIds(kAgentA, 2, {"b", "c"}), withIds(kAgentB, 1, {"c"})});
  auto noId = sampleRecord(kAgentA, 3);  // events without an id are never merged
  commitAll(store, {noId, sampleRecord(kAgentA, 4)});

  auto events = store.events(std::nullopt).value();
  auto withId = [&](std::optional<std::string> id) {
    return std::count_if(events.begin(), events.end(),
                         [&](const StoredEvent& e) { return e.event.id == id; });
  };
  CHECK(withId("a") + withId("b") + withId("c") == 3);
  CHECK(withId("b") == 1);
  CHECK(withId(std::nullopt) == 2 * std::ssize(noId.events));
  auto c = std::find_if(events.begin(), events.end(),
                        [](const StoredEvent& e) { return e.event.id == "c"; });
  REQUIRE(c != events.end());
  CHECK(c->seq == 2);
}

TEST_CASE_TEMPLATE("heartbeats move the due time forward only", Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  auto store = openStore(backend);
  REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  auto hb = [](std::uint64_t seq, std::int64_t createdMs, std::int64_t dueMs) {
    auto r = sampleRecord(kAgentA, seq, "heartbeat", 0);
    r.createdMs = createdMs;
    r.nextDueMs = dueMs;
    return r;
  };
  commitAll(store, {hb(5, 2000, 9000)});
  commitAll(store, {hb(4, 1000, 5000)});  // an older heartbeat delivered late
  auto agent = store.agents().value().at(0);
  CHECK(agent.lastHeartbeatMs == 2000);
  CHECK(agent.nextHeartbeatDueMs == 9000);
  CHECK(agent.lastSeq == 5);
  CHECK(store.envelopes(std::nullopt).value().size() == 2);
}

TEST_CASE("the group committer groups concurrent jobs and answers each after COMMIT") {
  TempDir dir;
  auto file = dir / "home.db";
  auto writer = openNew(file);
  REQUIRE(writer.addAgent(sampleAgent(kAgentA)).has_value());
  std::vector<std::string> lines;
  Logger log(LogLevel::kDebug, [&](std::string_view line) { lines.emplace_back(line); });

  // Another connection holds the write lock, so every job queues up behind the first batch.
  RawDb blocker(file);
  blocker.exec("BEGIN IMMEDIATE");

  GroupCommitter committer(std::move(writer), 1024, log);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::mutex mutex;
  std::condition_variable cv;
  int done = 0;
  int accepted = 0;
  int duplicates = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    // Every thread sends seq 1..50 of one agent: each seq arrives kThreads times.
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        committer.submit(CommitJob{sampleRecord(kAgentA, static_cast<std::uint64_t>(i + 1)),
                                   [&](Result<CommitResult> r) {
                                     std::lock_guard lock(mutex);
                                     if (r && *r == CommitResult::kAccepted) ++accepted;
                                     if (r && *r == CommitResult::kDuplicate) ++duplicates;
                                     ++done;
                                     cv.notify_all();
                                   }});
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::lock_guard lock(mutex);
    CHECK(done == 0);  // nothing is answered before its commit
  }
  blocker.exec("COMMIT");
  {
    std::unique_lock lock(mutex);
    REQUIRE(
        cv.wait_for(lock, std::chrono::seconds(30), [&] { return done == kThreads * kPerThread; }));
  }
  CHECK(accepted == kPerThread);
  CHECK(duplicates == (kThreads - 1) * kPerThread);
  CHECK(committer.jobs() == kThreads * kPerThread);
  CHECK(committer.batches() <= 2);  // the first job alone, then everything that queued
  committer.stop();
  RawDb raw(file);
  CHECK(raw.count("SELECT count(*) FROM envelopes") == kPerThread);
}

TEST_CASE("jobs submitted after stop() fail at once instead of hanging") {
  TempDir dir;
  Logger log(LogLevel::kError, [](std::string_view) {});
  GroupCommitter committer(openNew(dir / "home.db"), 16, log);
  committer.stop();
  std::optional<Result<CommitResult>> got;
  committer.submit(CommitJob{sampleRecord(kAgentA, 1), [&](Result<CommitResult> r) { got = r; }});
  REQUIRE(got.has_value());
  REQUIRE_FALSE(got->has_value());
  CHECK(got->error().code == "stopping");
}

TEST_CASE("a revocation is seen at once by another connection and the agent directory") {
  TempDir dir;
  auto file = dir / "home.db";
  auto admin = openNew(file);
  REQUIRE(admin.addAgent(sampleAgent(kAgentA)).has_value());

  auto reader = Store::open(file).value();
  AgentDirectory directory(StoreLocation{.sqliteFile = file});
  REQUIRE(reader.agentAuth(kAgentA).value().has_value());
  CHECK_FALSE(reader.agentAuth(kAgentA).value()->revokedMs.has_value());
  auto before = directory.find(kAgentA).value();
  REQUIRE(before.has_value());
  CHECK_FALSE(before->revoked);
  CHECK(before->certSerial == "0abc");

  REQUIRE(admin.revokeAgent(kAgentA, 1234).has_value());
  CHECK(reader.agentAuth(kAgentA).value()->revokedMs == 1234);
  CHECK(directory.find(kAgentA).value()->revoked);

  // A second revocation keeps the first time; an unknown agent is an error.
  REQUIRE(admin.revokeAgent(kAgentA, 9999).has_value());
  CHECK(reader.agentAuth(kAgentA).value()->revokedMs == 1234);
  auto unknown = admin.revokeAgent(kAgentB, 1);
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().code == "unknown_agent");
  CHECK_FALSE(directory.find(kAgentB).value().has_value());
}

TEST_CASE("the revoked agents a server holds: each refresh names the newly revoked ones") {
  TempDir dir;
  auto file = dir / "home.db";
  auto admin = openNew(file);
  REQUIRE(admin.addAgent(sampleAgent(kAgentA)).has_value());
  REQUIRE(admin.addAgent(sampleAgent(kAgentB)).has_value());
  REQUIRE(admin.revokeAgent(kAgentB, 1000).has_value());

  RevokedAgents revoked(StoreLocation{.sqliteFile = file});
  CHECK_FALSE(revoked.contains(kAgentB));  // nothing read yet
  CHECK(revoked.refresh().value() == std::vector<std::string>{kAgentB});
  CHECK(revoked.contains(kAgentB));
  CHECK_FALSE(revoked.contains(kAgentA));
  CHECK(revoked.refresh().value().empty());

  // Another connection (`pass-home revoke`) revokes A: the next refresh names A only.
  REQUIRE(admin.revokeAgent(kAgentA, 2000).has_value());
  CHECK(revoked.refresh().value() == std::vector<std::string>{kAgentA});
  CHECK(revoked.contains(kAgentA));
  CHECK(admin.revokedAgents().value() == std::vector<std::string>{kAgentA, kAgentB});
}

TEST_CASE("the revoked agents of a missing database are an error naming it") {
  TempDir dir;
  RevokedAgents revoked(StoreLocation{.sqliteFile = dir / "home.db"});
  auto read = revoked.refresh();
  REQUIRE_FALSE(read.has_value());
  CHECK(read.error().code == "not_initialized");
  CHECK(read.error().message.find("home.db") != std::string::npos);
}

TEST_CASE("the agent directory re-reads a changed sign key") {
  TempDir dir;
  auto file = dir / "home.db";
  auto admin = openNew(file);
  auto agent = sampleAgent(kAgentA);
  REQUIRE(admin.addAgent(agent).has_value());
  AgentDirectory directory(StoreLocation{.sqliteFile = file});
  CHECK(directory.find(kAgentA).value()->signKey.rawPublic() == agent.signKey);
  auto replacement = Ed25519Key::generate().rawPublic();
  RawDb(file).exec(fmt::format("UPDATE agents SET sign_key = x'{}'", toHex(replacement)));
  CHECK(directory.find(kAgentA).value()->signKey.rawPublic() == replacement);
}

TEST_CASE_TEMPLATE("enrolling the same agent id twice is refused", Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  auto store = openStore(backend);
  REQUIRE(store.addAgent(sampleAgent(kAgentA)).has_value());
  auto again = store.addAgent(sampleAgent(kAgentA));
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().code == "agent_exists");
}

TEST_CASE_TEMPLATE(
    "agents: a revocation, a renewal and expected arrays, seen by another connection", Backend,
    PASS_STORE_BACKENDS) {
  Backend backend;
  auto admin = openStore(backend);
  auto reader = openStore(backend);
  REQUIRE(admin.addAgent(sampleAgent(kAgentA)).has_value());
  REQUIRE(admin.addAgent(sampleAgent(kAgentB)).has_value());

  REQUIRE(admin.revokeAgent(kAgentB, 1234).has_value());
  REQUIRE(admin.revokeAgent(kAgentB, 9999).has_value());  // the first time stays
  CHECK(reader.agentAuth(kAgentB).value()->revokedMs == 1234);
  CHECK(reader.revokedAgents().value() == std::vector<std::string>{kAgentB});
  CHECK(admin.revokeAgent("00000000-0000-4000-8000-000000000000", 1).error().code ==
        "unknown_agent");
  CHECK_FALSE(reader.agentAuth("00000000-0000-4000-8000-000000000000").value().has_value());

  CertificateRenewal renewal{.agentId = kAgentA,
                             .requesterSerial = "0abc",
                             .newSerial = "0def",
                             .expiresMs = 5000,
                             .nowMs = 1000,
                             .graceMs = 100};
  REQUIRE(admin.renewCertificate(renewal).has_value());
  auto auth = reader.agentAuth(kAgentA).value().value();
  CHECK(auth.certSerial == "0def");
  CHECK(auth.previousCertSerial == "0abc");
  CHECK(auth.previousCertUntilMs == 1100);
  renewal.requesterSerial = "0bad";
  CHECK(admin.renewCertificate(renewal).error().code == "certificate_mismatch");

  std::vector<ExpectedArray> arrays{{.family = "hitachi_svp", .serial = "470849"},
                                    {.family = "hpe_3par", .serial = "4UW0001"}};
  REQUIRE(admin.setExpectedArrays(kAgentA, arrays, 100).has_value());
  arrays.erase(arrays.begin());
  arrays.push_back({.family = "nimble", .serial = "AF-1"});
  REQUIRE(admin.setExpectedArrays(kAgentA, arrays, 200).has_value());
  auto expected = reader.expectedArrays(kAgentA).value();
  REQUIRE(expected.size() == 2);
  CHECK(expected[0].serial == "4UW0001");
  CHECK(expected[0].sinceMs == 100);  // kept, with its date
  CHECK(expected[1].serial == "AF-1");
  CHECK(expected[1].sinceMs == 200);
  CHECK(admin.setExpectedArrays("00000000-0000-4000-8000-000000000000", arrays, 1).error().code ==
        "unknown_agent");
}

TEST_CASE_TEMPLATE("silences: added, listed and removed once", Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  auto store = openStore(backend);
  SilenceRow silence{.customer = "Acme",
                     .array = "470849",
                     .startsMs = 100,
                     .endsMs = 200,
                     .author = "mia",
                     .reason = "maintenance",
                     .createdMs = 50};
  auto id = store.addSilence(silence).value();
  CHECK(store.silences(150, false).value().at(0).id == id);
  CHECK(store.silences(200, false).value().empty());  // ended
  REQUIRE(store.removeSilence(id, "mia", 160).has_value());
  CHECK(store.silences(150, false).value().empty());
  CHECK(store.silences(150, true).value().at(0).removedBy == "mia");
  CHECK(store.removeSilence(id, "mia", 170).error().code == "silence.unknown");
}

namespace {

/// A report of `agent` with one event of `kind` about `component` of array 410123.
EnvelopeRecord oneEvent(const std::string& agent, std::uint64_t seq, std::string kind,
                        std::string component) {
  EnvelopeRecord r = sampleRecord(agent, seq, "report", 0);
  r.events.push_back(EventRecord{.family = "hitachi_svp",
                                 .array = "410123",
                                 .id = fmt::format("{}-{}", agent, seq),
                                 .code = "307080",
                                 .severity = "acute",
                                 .occurredMs = r.createdMs,
                                 .kind = std::move(kind),
                                 .component = std::move(component),
                                 .text = "FAN ALARM",
                                 .payload = "{}"});
  return r;
}

/// Each ticket as "state count" and its audit trail as "action by who: detail".
std::vector<std::string> ticketStory(Store& store) {
  std::vector<std::string> out;
  const auto tickets = store.tickets(TicketFilter{}).value();
  for (const auto& t : tickets) {
    out.push_back(fmt::format("{} {} {}", t.component, t.state, t.count));
    const auto log = store.ticketLog(t.id).value();
    for (const auto& l : log) {
      if (l.who == "outbox") continue;
      out.push_back(fmt::format("  {} by {}: {}", l.action, l.who, l.detail));
    }
  }
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE(
    "tickets: a batch of reports makes the tickets and audit rows its reports make one by one",
    Backend, PASS_STORE_BACKENDS) {
  HomeConfig cfg;
  cfg.ratePerHour = 1000;
  auto policy = Policy::make(cfg, Bytes(32, 7));
  Backend oneByOne, batched;
  auto single = openStore(oneByOne);
  auto batch = openStore(batched);
  for (Store* s : {&single, &batch}) {
    REQUIRE(s->addAgent(sampleAgent(kAgentA)).has_value());
    auto b = sampleAgent(kAgentB);
    b.name = "vsp-2";
    REQUIRE(s->addAgent(b).has_value());
    s->setPolicy(policy);
  }
  // Two agents on one array: repeats across agents, another problem between, a recovery and
  // the problem back at once (reopened), all in one batch.
  const std::vector<EnvelopeRecord> reports = {
      oneEvent(kAgentA, 1, "alert", "fan 2"),    oneEvent(kAgentB, 1, "alert", "fan 2"),
      oneEvent(kAgentB, 2, "alert", "fan 2"),    oneEvent(kAgentA, 2, "alert", "fan 3"),
      oneEvent(kAgentA, 3, "alert", "fan 2"),    oneEvent(kAgentB, 3, "recovery", "fan 2"),
      oneEvent(kAgentA, 4, "alert", "fan 2"),    oneEvent(kAgentB, 4, "alert", "fan 2"),
      oneEvent(kAgentA, 5, "recovery", "fan 3"), oneEvent(kAgentB, 5, "alert", "fan 3")};
  for (const auto& r : reports) {
    CHECK(commitAll(single, {r}) == std::vector{CommitResult::kAccepted});
  }
  auto results = commitAll(batch, reports);
  CHECK(std::count(results.begin(), results.end(), CommitResult::kAccepted) == 10);
  const auto story = ticketStory(single);
  CHECK(story == ticketStory(batch));
  CHECK(story.size() == 12);  // fan 2: 7 rows, fan 3: opened, resolved, reopened
  CHECK(story.at(0) == "fan 2 open 6");
  CHECK(story.at(2) == "  repeated by array 410123 (agent vsp-2): occurrence 2");
}
