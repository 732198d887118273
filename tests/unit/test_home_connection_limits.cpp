// Handshake slots per source address and the tally of refused connections
// (pass/home/connection_limits.hpp).

#include <doctest/doctest.h>

#include <string>

#include "pass/home/connection_limits.hpp"

using namespace pass::home;
using Outcome = HandshakeSlots::Outcome;

namespace {

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }

}  // namespace

TEST_CASE("connections are counted per IPv4 address and per IPv6 /64") {
  CHECK(addressKey(ip("192.0.2.7")) == "192.0.2.7");
  CHECK(addressKey(ip("::ffff:192.0.2.7")) == "192.0.2.7");
  CHECK(addressKey(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")) == "2001:db8:1:2::/64");
  CHECK(addressKey(ip("2001:db8:1:2::1")) == addressKey(ip("2001:db8:1:2:ffff::9")));
  CHECK(addressKey(ip("2001:db8:1:3::1")) != addressKey(ip("2001:db8:1:2::1")));
}

TEST_CASE("an address gets at most its share of handshake slots") {
  HandshakeSlots slots(10, 2);
  CHECK(slots.admit(1, "a").outcome == Outcome::kAdmitted);
  CHECK(slots.admit(2, "a").outcome == Outcome::kAdmitted);
  auto third = slots.admit(3, "a");
  CHECK(third.outcome == Outcome::kAddressFull);
  CHECK_FALSE(third.evicted);
  CHECK(slots.count("a") == 2);
  // Another address is not affected; a finished handshake frees its address's slot.
  CHECK(slots.admit(4, "b").outcome == Outcome::kAdmitted);
  slots.release(1);
  CHECK(slots.admit(5, "a").outcome == Outcome::kAdmitted);
  CHECK(slots.size() == 3);
}

TEST_CASE("when all slots are taken, a new address takes the oldest slot of the busiest") {
  HandshakeSlots slots(4, 3);
  CHECK(slots.admit(1, "b").outcome == Outcome::kAdmitted);
  CHECK(slots.admit(2, "a").outcome == Outcome::kAdmitted);
  CHECK(slots.admit(3, "a").outcome == Outcome::kAdmitted);
  CHECK(slots.admit(4, "a").outcome == Outcome::kAdmitted);
  auto agent = slots.admit(5, "agent");
  REQUIRE(agent.outcome == Outcome::kAdmitted);
  REQUIRE(agent.evicted);
  CHECK(agent.evicted->id == 2);
  CHECK(agent.evicted->key == "a");
  CHECK(slots.size() == 4);
  CHECK(slots.count("a") == 2);
  // "a" now holds 2, "b" and "agent" 1 each: "a" cannot take from anyone busier than itself,
  // a further new address takes from "a" again.
  auto again = slots.admit(6, "a");
  CHECK(again.outcome == Outcome::kFull);
  CHECK_FALSE(again.evicted);
  auto other = slots.admit(7, "c");
  REQUIRE(other.evicted);
  CHECK(other.evicted->id == 3);
  // Each address holds one slot: a new address takes the oldest of them ("b"'s), an address
  // holding one already takes none.
  auto fourth = slots.admit(8, "d");
  REQUIRE(fourth.evicted);
  CHECK(fourth.evicted->id == 1);
  CHECK(fourth.evicted->key == "b");
  CHECK(slots.admit(9, "a").outcome == Outcome::kFull);
  CHECK(slots.count("b") == 0);
  // Releasing an evicted connection later changes nothing.
  slots.release(2);
  CHECK(slots.size() == 4);
}

TEST_CASE("refused connections make one summary per interval, busiest addresses first") {
  RefusalTally tally;
  CHECK_FALSE(tally.take());
  // The first refusal opens an interval: the caller logs at once.
  CHECK(tally.add(ConnectionRefusal::kAddressLimit, "127.0.0.2"));
  auto first = tally.take();
  REQUIRE(first);
  CHECK((*first)["refused"] == 1);
  CHECK((*first)["address_limit"] == 1);
  CHECK((*first)["handshake_timeout"] == 0);
  // Within the interval, refusals are only counted.
  for (int i = 0; i < 1000; ++i) {
    CHECK_FALSE(
        tally.add(ConnectionRefusal::kHandshakeTimeout, "127.0.0." + std::to_string(i % 7)));
  }
  CHECK_FALSE(tally.add(ConnectionRefusal::kEvicted, "127.0.0.3"));
  CHECK_FALSE(tally.add(ConnectionRefusal::kConnectionLimit, "127.0.0.1"));
  auto summary = tally.take();
  REQUIRE(summary);
  CHECK((*summary)["refused"] == 1002);
  CHECK((*summary)["handshake_timeout"] == 1000);
  CHECK((*summary)["evicted"] == 1);
  CHECK((*summary)["connection_limit"] == 1);
  CHECK((*summary)["addresses"] == 7);
  auto& top = (*summary)["top_addresses"];
  REQUIRE(top.size() == RefusalTally::kTopAddresses);
  // 1000 timeouts over 7 addresses: .0 to .5 have 143, .6 has 142; .1 and .3 one more.
  CHECK(top[0] == nlohmann::ordered_json{{"address", "127.0.0.1"}, {"refused", 144}});
  CHECK(top[1] == nlohmann::ordered_json{{"address", "127.0.0.3"}, {"refused", 144}});
  CHECK(top[2] == nlohmann::ordered_json{{"address", "127.0.0.0"}, {"refused", 143}});
  // An interval without refusals closes it: the next refusal is logged at once again.
  CHECK_FALSE(tally.take());
  CHECK(tally.add(ConnectionRefusal::kHandshakeLimit, "127.0.0.9"));
}

TEST_CASE("the tally names a bounded number of addresses") {
  RefusalTally tally;
  for (std::size_t i = 0; i < RefusalTally::kMaxAddresses + 10; ++i) {
    tally.add(ConnectionRefusal::kHandshakeTimeout, "10.0." + std::to_string(i));
  }
  auto summary = tally.take();
  REQUIRE(summary);
  CHECK((*summary)["addresses"] == RefusalTally::kMaxAddresses);
  CHECK((*summary)["refused_from_uncounted_addresses"] == 10);
  CHECK((*summary)["refused"] == RefusalTally::kMaxAddresses + 10);
}
