// The outbox queue (home/src/store/outbox_queue.hpp) on SQLite and PostgreSQL: what a claim
// returns, who may finish it, what finishing writes, and workers claiming at once.

#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "pass/home/store.hpp"
#include "store/outbox_queue.hpp"
#include "test_home_store_backends.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::openStore;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;
constexpr std::int64_t kLease = 60'000;

const Recipient kMia{.name = "Mia", .channel = "email", .target = "mia@acme.example"};

}  // namespace

TEST_CASE_TEMPLATE("a claim returns the row, its holder and the lease's end", Backend,
                   PASS_STORE_BACKENDS) {
  Backend backend;
  Store store = openStore(backend);
  OutboxQueue& queue = store.outboxQueue();
  auto id = queue.enqueueTest(kMia, "from the test", kT0);
  REQUIRE(id.has_value());
  CHECK(store.takeEnqueued() == 1);

  // Not due before its time.
  CHECK_FALSE(queue.claim("w1", kT0 - 1, kLease).value().has_value());
  auto claim = queue.claim("w1", kT0 + 5, kLease).value();
  REQUIRE(claim.has_value());
  CHECK(claim->row.id == *id);
  CHECK(claim->row.channel == "email");
  CHECK(claim->row.target == "mia@acme.example");
  CHECK(claim->row.recipient == "Mia");
  CHECK(claim->row.attempts == 1);
  CHECK_FALSE(claim->row.ticketId.has_value());
  CHECK(nlohmann::json::parse(claim->row.notice).at("kind") == "test");
  CHECK(claim->worker == "w1");
  CHECK(claim->leaseUntilMs == kT0 + 5 + kLease);

  // Held until the lease's end, also from another connection; taken over after it.
  Store other = openStore(backend);
  CHECK_FALSE(other.outboxQueue().claim("w2", claim->leaseUntilMs, kLease).value().has_value());
  auto taken = other.outboxQueue().claim("w2", claim->leaseUntilMs + 1, kLease).value();
  REQUIRE(taken.has_value());
  CHECK(taken->row.id == *id);
  CHECK(taken->row.attempts == 2);
  CHECK(taken->leaseUntilMs == claim->leaseUntilMs + 1 + kLease);

  // The first holder can no longer finish it; the second can, once.
  auto late = queue.finish(*id, "w1", notify::Outcome::kSent, "250 ok", kT0, kT0);
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().code == "outbox.claim");
  CHECK(late.error().message.find("w1") != std::string::npos);
  REQUIRE(other.outboxQueue().finish(*id, "w2", notify::Outcome::kSent, "250 ok", kT0 + 70'000, 0));
  CHECK(other.outboxQueue()
            .finish(*id, "w2", notify::Outcome::kSent, "250 ok", kT0 + 70'000, 0)
            .error()
            .code == "outbox.claim");
  auto rows = queue.rows(std::nullopt).value();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == "sent");
  CHECK(rows[0].sentMs == kT0 + 70'000);
  CHECK_FALSE(queue.nextDue().value().has_value());
}

TEST_CASE_TEMPLATE("finishing: a retry is due again at its time, a permanent failure never",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  Store store = openStore(backend);
  OutboxQueue& queue = store.outboxQueue();
  auto first = queue.enqueueTest(kMia, "one", kT0).value();
  auto second = queue.enqueueTest(kMia, "two", kT0 + 1).value();
  CHECK(queue.nextDue().value() == kT0);

  auto a = queue.claim("w", kT0 + 10, kLease).value();
  REQUIRE(a.has_value());
  CHECK(a->row.id == first);  // the oldest due first
  REQUIRE(queue.finish(first, "w", notify::Outcome::kRetry, "451 later", kT0 + 20, kT0 + 30'000));
  auto b = queue.claim("w", kT0 + 20, kLease).value();
  REQUIRE(b.has_value());
  CHECK(b->row.id == second);
  REQUIRE(queue.finish(second, "w", notify::Outcome::kPermanent, "550 no such user", kT0 + 30, 0));

  CHECK(queue.nextDue().value() == kT0 + 30'000);
  CHECK_FALSE(queue.claim("w", kT0 + 29'999, kLease).value().has_value());
  auto again = queue.claim("w", kT0 + 30'000, kLease).value();
  REQUIRE(again.has_value());
  CHECK(again->row.id == first);
  CHECK(again->row.attempts == 2);
  CHECK(again->row.lastError == "451 later");

  auto rows = queue.rows(std::nullopt).value();
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].state == "failed");
  CHECK(rows[1].lastError == "550 no such user");
  CHECK(queue.rows(std::int64_t{1234}).value().empty());  // of one ticket: none
}

TEST_CASE_TEMPLATE("two workers claiming at once never get the same row", Backend,
                   PASS_STORE_BACKENDS) {
  Backend backend;
  constexpr int kRows = 40;
  {
    Store store = openStore(backend);
    for (int i = 0; i < kRows; ++i) REQUIRE(store.outboxQueue().enqueueTest(kMia, "x", kT0 + i));
  }
  // Each worker on its own connection (a home of its own) claims until nothing is due.
  auto work = [&](std::string worker, std::vector<std::int64_t>& got, std::string& error) {
    Store store = openStore(backend);
    while (true) {
      auto claim = store.outboxQueue().claim(worker, kT0 + kRows, kLease);
      if (!claim) {
        error = claim.error().message;
        return;
      }
      if (!*claim) return;
      got.push_back((*claim)->row.id);
    }
  };
  std::vector<std::int64_t> one, two;
  std::string errorOne, errorTwo;
  std::thread a(work, "w1", std::ref(one), std::ref(errorOne));
  std::thread b(work, "w2", std::ref(two), std::ref(errorTwo));
  a.join();
  b.join();
  CHECK(errorOne.empty());
  CHECK(errorTwo.empty());
  std::set<std::int64_t> all(one.begin(), one.end());
  all.insert(two.begin(), two.end());
  CHECK(all.size() == one.size() + two.size());  // no row twice
  CHECK(std::ssize(all) == kRows);               // and none left out
}

TEST_CASE_TEMPLATE("a claim whose lease ran out goes to another worker, who alone finishes it",
                   Backend, PASS_STORE_BACKENDS) {
  Backend backend;
  Store one = openStore(backend);
  Store two = openStore(backend);
  auto id = one.outboxQueue().enqueueTest(kMia, "x", kT0).value();
  auto first = one.outboxQueue().claim("home-1", kT0, kLease).value();
  REQUIRE(first.has_value());
  // Within the lease the row is home-1's; once it has run out (home-1 died), home-2 takes it.
  CHECK_FALSE(two.outboxQueue().claim("home-2", kT0 + kLease, kLease).value().has_value());
  auto second = two.outboxQueue().claim("home-2", kT0 + kLease + 1, kLease).value();
  REQUIRE(second.has_value());
  CHECK(second->row.id == id);
  CHECK(second->row.notice == first->row.notice);  // the same message, sent again
  CHECK(one.outboxQueue()
            .finish(id, "home-1", notify::Outcome::kSent, "250 ok", kT0 + kLease + 2, 0)
            .error()
            .code == "outbox.claim");
  REQUIRE(two.outboxQueue().finish(id, "home-2", notify::Outcome::kSent, "250 ok", kT0 + kLease + 3,
                                   0));
  CHECK(one.outbox(std::nullopt).value().at(0).state == "sent");
}
