// The outbox queue (home/src/store/outbox_queue.hpp) on SQLite: what a claim returns, who may
// finish it, and what finishing writes.

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "pass/home/store.hpp"
#include "store/outbox_queue.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::TempDir;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;
constexpr std::int64_t kLease = 60'000;

Store openNew(const std::filesystem::path& file) {
  auto store = Store::open(file, Store::Mode::kCreate);
  REQUIRE(store.has_value());
  return std::move(*store);
}

const Recipient kMia{.name = "Mia", .channel = "email", .target = "mia@acme.example"};

}  // namespace

TEST_CASE("a claim returns the row, its holder and the lease's end") {
  TempDir dir;
  Store store = openNew(dir / "home.db");
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
  Store other = Store::open(dir / "home.db").value();
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

TEST_CASE("finishing: a retry is due again at its time, a permanent failure never") {
  TempDir dir;
  Store store = openNew(dir / "home.db");
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
