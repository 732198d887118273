// Leader election through the database (home/src/server/leader_lease.hpp, docs/scale-out.md):
// on PostgreSQL the lease statements, two LeaderLeases sharing one database, a clean stop
// handing over at once, and a leader killed with SIGKILL replaced within 10 s; on both backends
// a leader that cannot renew stops leading before its lease ends; on SQLite (one home) the home
// always leads.

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "pass/home/log.hpp"
#include "server/leader_lease.hpp"
#include "store/cluster_store.hpp"
#include "store/postgres/pg.hpp"
#include "test_home_store_backends.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::openStore;
using pass::home::test::PostgresStoreBackend;
using pass::home::test::SqliteStoreBackend;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

/// Polls `done` until it holds or `limit` passed; how long it took, or nullopt.
template <typename Done>
std::optional<Clock::duration> within(Clock::duration limit, Done done) {
  const auto start = Clock::now();
  while (!done()) {
    if (Clock::now() - start > limit) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
  return Clock::now() - start;
}

/// The events a Logger wrote.
struct LogLines {
  std::mutex mutex;
  std::vector<std::string> lines;
  Logger log{LogLevel::kInfo, [this](std::string_view line) {
               std::lock_guard lock(mutex);
               lines.emplace_back(line);
             }};
  int count(std::string_view event) {
    std::lock_guard lock(mutex);
    int n = 0;
    for (const auto& l : lines) n += l.find(fmt::format(R"("event":"{}")", event)) != l.npos;
    return n;
  }
};

const LeaseTiming kQuick{.length = 1500ms, .renewEvery = 300ms, .margin = 500ms};

/// A ClusterStore on `backend`'s database, which openStore made.
template <typename Backend>
ClusterStore openCluster(const Backend& backend) {
  auto store = ClusterStore::open(backend.location());
  REQUIRE_MESSAGE(store.has_value(), (store ? "" : store.error().message));
  return std::move(*store);
}

}  // namespace

TEST_CASE("a lease is held by one holder until it expires or is released") {
  PostgresStoreBackend backend;
  { openStore(backend); }
  ClusterStore a = openCluster(backend);
  ClusterStore b = openCluster(backend);
  CHECK(a.takeLease("work", "home-a", 60'000).value());
  CHECK_FALSE(b.takeLease("work", "home-b", 60'000).value());
  CHECK(a.takeLease("work", "home-a", 60'000).value());  // a renewal
  CHECK(b.leaseHolder("work").value() == std::optional<std::string>("home-a"));
  CHECK_FALSE(b.leaseHolder("other").value().has_value());
  // Releasing someone else's lease does nothing; the holder's release frees it at once.
  REQUIRE(b.releaseLease("work", "home-b"));
  CHECK_FALSE(b.takeLease("work", "home-b", 60'000).value());
  REQUIRE(a.releaseLease("work", "home-a"));
  CHECK_FALSE(b.leaseHolder("work").value().has_value());
  CHECK(b.takeLease("work", "home-b", 60'000).value());
  CHECK_FALSE(a.takeLease("work", "home-a", 60'000).value());
  // A lease whose time has passed on the database's clock is free to take.
  CHECK(a.takeLease("expired", "home-a", -1000).value());
  CHECK_FALSE(b.leaseHolder("expired").value().has_value());
  CHECK(b.takeLease("expired", "home-b", 60'000).value());
  CHECK(a.leaseHolder("expired").value() == std::optional<std::string>("home-b"));
}

TEST_CASE("two homes: one leads, and a clean stop hands the lease over at once") {
  PostgresStoreBackend backend;
  { openStore(backend); }
  LogLines logA, logB;
  std::atomic<int> tookOverA = 0, tookOverB = 0;
  LeaderLease a(
      backend.location(), "time-driven", "home-a", logA.log, [&] { ++tookOverA; }, kQuick);
  LeaderLease b(
      backend.location(), "time-driven", "home-b", logB.log, [&] { ++tookOverB; }, kQuick);
  REQUIRE(a.start());
  REQUIRE(b.start());
  CHECK(a.leading());
  // b keeps trying: it never leads while a renews.
  std::this_thread::sleep_for(kQuick.length * 2);
  CHECK(a.leading());
  CHECK_FALSE(b.leading());
  CHECK(tookOverA == 1);
  CHECK(tookOverB == 0);
  CHECK(logA.count("lease_taken") == 1);

  // A clean stop releases the lease at once (a holds it no more, though its time has not run
  // out): b takes it at its next attempt.
  ClusterStore reader = openCluster(backend);
  CHECK(reader.leaseHolder("time-driven").value() == std::optional<std::string>("home-a"));
  a.stop();
  CHECK_FALSE(a.leading());
  CHECK(logA.count("lease_released") == 1);
  CHECK(reader.leaseHolder("time-driven").value() != std::optional<std::string>("home-a"));
  auto took = within(10s, [&] { return b.leading(); });
  REQUIRE(took.has_value());
  CHECK(tookOverB == 1);
  CHECK(logB.count("lease_taken") == 1);
  CHECK(logB.count("lease_lost") == 0);
}

TEST_CASE_TEMPLATE("a leader that does not renew stops leading before its lease ends", Backend,
                   PASS_STORE_BACKENDS) {
  Backend backend;
  { openStore(backend); }
  ClusterStore store = openCluster(backend);
  LogLines log;
  // Renews far too rarely: the lease (3 s) ends long before the next attempt.
  LeaderLease lease(backend.location(), "time-driven", "home-a", log.log, {},
                    LeaseTiming{.length = 3000ms, .renewEvery = 60s, .margin = 1500ms});
  REQUIRE(lease.start());
  CHECK(lease.leading());
  REQUIRE(within(10s, [&] { return !lease.leading(); }).has_value());
  // It stopped while the database still names it the holder: no other home could lead yet.
  // (On SQLite no other home asks.)
  if constexpr (std::is_same_v<Backend, PostgresStoreBackend>) {
    CHECK(store.leaseHolder("time-driven").value() == std::optional<std::string>("home-a"));
  }
}

TEST_CASE("a leader killed with SIGKILL is replaced within 10 s") {
  PostgresStoreBackend backend;
  { openStore(backend); }
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The leader: the product's default timing; it says when it leads, then waits to be killed.
    ::close(ready[0]);
    Logger quiet(LogLevel::kError, [](std::string_view) {});
    LeaderLease leader(backend.location(), "time-driven", homeHolderId(), quiet);
    if (!leader.start()) ::_exit(1);
    while (!leader.leading()) std::this_thread::sleep_for(10ms);
    char one = '1';
    if (::write(ready[1], &one, 1) != 1) ::_exit(1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  pollfd fd{.fd = ready[0], .events = POLLIN, .revents = 0};
  REQUIRE(::poll(&fd, 1, 30'000) == 1);
  char one = 0;
  REQUIRE(::read(ready[0], &one, 1) == 1);
  ::close(ready[0]);

  LogLines log;
  LeaderLease follower(backend.location(), "time-driven", homeHolderId(), log.log);
  REQUIRE(follower.start());
  CHECK_FALSE(follower.leading());

  REQUIRE(::kill(child, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  auto took = within(15s, [&] { return follower.leading(); });
  REQUIRE(took.has_value());
  MESSAGE("take-over after SIGKILL: "
          << std::chrono::duration_cast<std::chrono::milliseconds>(*took).count() << " ms");
  CHECK(*took < 10s);
  CHECK(log.count("lease_taken") == 1);
}

TEST_CASE("on SQLite the one home always leads, and its stop releases nothing another needs") {
  SqliteStoreBackend backend;
  { openStore(backend); }
  LogLines logA, logB;
  LeaderLease a(backend.location(), "time-driven", "home-a", logA.log, {}, kQuick);
  REQUIRE(a.start());
  CHECK(a.leading());
  std::this_thread::sleep_for(kQuick.length * 2);
  CHECK(a.leading());
  CHECK(logA.count("lease_taken") == 1);
  a.stop();
  CHECK_FALSE(a.leading());
  CHECK(logA.count("lease_released") == 1);
}

TEST_CASE("a lease whose connection the server dropped connects again and keeps leading") {
  PostgresStoreBackend backend;
  { openStore(backend); }
  LogLines log;
  LeaderLease lease(backend.location(), "time-driven", "home-a", log.log, {}, kQuick);
  REQUIRE(lease.start());
  REQUIRE(lease.leading());
  // What a restart of the server does to the home's connections.
  const StoreLocation where = backend.location();
  auto admin = postgres::Connection::connect(where.postgresUrl, where.passwordFile);
  REQUIRE(admin.has_value());
  REQUIRE(admin->exec("drop the other connections",
                      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "datname = current_database() AND pid <> pg_backend_pid()"));
  REQUIRE(within(10s, [&] { return log.count("lease_error") == 1; }).has_value());
  // Still renewed after the lease's length has passed twice: the lease connected again.
  std::this_thread::sleep_for(kQuick.length * 2);
  ClusterStore reader = openCluster(backend);
  CHECK(reader.leaseHolder("time-driven").value() == std::optional<std::string>("home-a"));
  CHECK(lease.leading());
}
