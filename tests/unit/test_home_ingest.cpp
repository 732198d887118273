// The per-envelope checks of POST /v1/envelopes (Ingest::check) and payload validation.

#include <doctest/doctest.h>

#include <memory>

#include "pass/envelope.hpp"
#include "pass/home/admin.hpp"
#include "pass/home/ingest.hpp"
#include "pass/home/pki.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::nowMs;
using pass::home::test::TempDir;

namespace {

constexpr std::int64_t kDayMs = 86'400'000;

std::string report(int events) {
  std::string list;
  for (int i = 0; i < events; ++i) {
    if (i) list += ',';
    list += fmt::format(
        R"({{"array":"410123","code":"30708{}","severity":"acute","occurred_ms":1700000000000}})",
        i);
  }
  return fmt::format(R"({{"schema":1,"type":"report","events":[{}]}})", list);
}

struct Fixture {
  Fixture() {
    REQUIRE(initState(InitOptions{dir / "state", {}}).has_value());
    auto enrolled = enrollAgent(dir / "state", EnrollOptions{.customer = "Acme",
                                                             .site = "Berlin",
                                                             .name = "vsp",
                                                             .out = dir / "bundle",
                                                             .endpoints = {}});
    REQUIRE(enrolled.has_value());
    agent = *enrolled;
    sign = std::make_unique<Ed25519Key>(
        Ed25519Key::loadPem((dir / "bundle" / "agent-sign.key").string()).value());
    homePub = std::make_unique<X25519Key>(
        X25519Key::loadPem((dir / "bundle" / "home-hpke.pub").string()).value());
    directory =
        std::make_unique<AgentDirectory>(StoreLocation{.sqliteFile = dir / "state" / "home.db"});
    ingest = std::make_unique<Ingest>(
        *directory, X25519Key::loadPem((dir / "state" / "home-hpke.key").string()).value(),
        WindowOptions{});
    peer = PeerIdentity{agent.uuid, agent.certSerial};
  }

  Bytes seal(std::uint64_t seq, const std::string& payload, std::int64_t createdMs,
             const X25519Key* to = nullptr, const AgentId* as = nullptr) {
    EnvelopeHeader h;
    h.agentId = as ? *as : agent.id;
    h.seq = seq;
    h.createdMs = static_cast<std::uint64_t>(createdMs);
    h.keyId = hpkeKeyId(to ? *to : *homePub);
    auto env = sealEnvelope(h, payload, to ? *to : *homePub, *sign);
    REQUIRE(env.has_value());
    return *env;
  }

  /// Each call is a new connection: nothing remembered of the agent's row.
  Ingest::Outcome check(const Bytes& envelope, std::int64_t now) {
    return checkAs(envelope, peer, now);
  }
  Ingest::Outcome checkAs(const Bytes& envelope, const PeerIdentity& from, std::int64_t now) {
    ConnectionAuth fresh;
    return ingest->check(envelope, from, fresh, now);
  }

  TempDir dir;
  EnrolledAgent agent;
  std::unique_ptr<Ed25519Key> sign;
  std::unique_ptr<X25519Key> homePub;
  std::unique_ptr<AgentDirectory> directory;
  std::unique_ptr<Ingest> ingest;
  PeerIdentity peer;
};

const Refusal& refusalOf(const Ingest::Outcome& o) {
  REQUIRE(std::holds_alternative<Refusal>(o.result));
  return std::get<Refusal>(o.result);
}

const Checked& checkedOf(const Ingest::Outcome& o) {
  if (const auto* r = std::get_if<Refusal>(&o.result)) FAIL_CHECK(r->code << ": " << r->detail);
  REQUIRE(std::holds_alternative<Checked>(o.result));
  return std::get<Checked>(o.result);
}

}  // namespace

TEST_CASE("a good report becomes a record with one row per event") {
  Fixture f;
  auto now = nowMs();
  auto env = f.seal(7, report(3), now - 1000);
  auto out = f.check(env, now);
  const auto& c = checkedOf(out);
  CHECK(out.context.agent == f.agent.uuid);
  CHECK(out.context.seq == 7);
  CHECK(c.record.agentId == f.agent.uuid);
  CHECK(c.record.seq == 7);
  CHECK(c.record.type == "report");
  CHECK(c.record.createdMs == now - 1000);
  CHECK(c.record.receivedMs == now);
  CHECK(c.record.size == env.size());
  CHECK(c.record.payload == report(3));
  REQUIRE(c.record.events.size() == 3);
  CHECK(c.record.events[2].code == "307082");
  CHECK(c.record.events[0].occurredMs == 1'700'000'000'000);
  CHECK_FALSE(c.aheadMs.has_value());
}

TEST_CASE("a heartbeat carries its next due time") {
  Fixture f;
  auto now = nowMs();
  auto out = f.check(
      f.seal(1, R"({"schema":1,"type":"heartbeat","next_due_ms":1700000000000})", now), now);
  const auto& c = checkedOf(out);
  CHECK(c.record.type == "heartbeat");
  CHECK(c.record.nextDueMs == 1'700'000'000'000);
  CHECK(c.record.events.empty());
}

TEST_CASE("identity checks: certificate vs envelope, unknown, revoked, other certificate") {
  Fixture f;
  auto now = nowMs();
  auto env = f.seal(1, report(1), now);

  auto other = f.peer;
  other.commonName = formatUuid(randomUuid());
  auto mismatch = f.checkAs(env, other, now);
  CHECK(refusalOf(mismatch).status == 403);
  CHECK(refusalOf(mismatch).code == "agent_mismatch");
  CHECK(refusalOf(mismatch).detail.find(f.agent.uuid) != std::string::npos);

  auto reissued = f.peer;
  reissued.serialHex = "01";
  CHECK(refusalOf(f.checkAs(env, reissued, now)).code == "certificate_mismatch");

  auto stranger = randomUuid();
  auto strangerEnv = f.seal(1, report(1), now, nullptr, &stranger);
  auto unknown = f.checkAs(strangerEnv, PeerIdentity{formatUuid(stranger), "01"}, now);
  CHECK(refusalOf(unknown).status == 403);
  CHECK(refusalOf(unknown).code == "unknown_agent");

  checkedOf(f.check(env, now));
  REQUIRE(revokeAgent(f.dir / "state", f.agent.uuid).has_value());
  auto revoked = f.check(env, now);
  CHECK(refusalOf(revoked).status == 403);
  CHECK(refusalOf(revoked).code == "revoked");
}

TEST_CASE("a connection re-reads its agent's row after authRecheckMs, a new one at once") {
  Fixture f;
  auto now = nowMs();
  ConnectionAuth connection;
  ConnectionAuth stepped;  // will see the clock step back
  checkedOf(f.ingest->check(f.seal(1, report(1), now), f.peer, connection, now));
  checkedOf(f.ingest->check(f.seal(2, report(1), now), f.peer, stepped, now));
  REQUIRE(revokeAgent(f.dir / "state", f.agent.uuid).has_value());

  const auto recheck = WindowOptions{}.authRecheckMs;
  // Remembered: the open connection still passes until the memory is recheck old ...
  checkedOf(f.ingest->check(f.seal(3, report(1), now), f.peer, connection, now + recheck - 1));
  // ... while a new connection reads the row at once ...
  CHECK(refusalOf(f.check(f.seal(4, report(1), now), now + 1)).code == "revoked");
  // ... and so does the open one after recheck, or when the clock stepped back.
  CHECK(refusalOf(f.ingest->check(f.seal(5, report(1), now), f.peer, connection, now + recheck))
            .code == "revoked");
  CHECK(refusalOf(f.ingest->check(f.seal(6, report(1), now), f.peer, stepped, now - 5000)).code ==
        "revoked");
}

TEST_CASE("cryptographic checks: framing, signature, key id") {
  Fixture f;
  auto now = nowMs();
  auto env = f.seal(1, report(1), now);

  Bytes truncated(env.begin(), env.begin() + 20);
  auto framing = f.check(truncated, now);
  CHECK(refusalOf(framing).status == 400);
  CHECK(refusalOf(framing).code == "short");
  CHECK_FALSE(framing.context.seq.has_value());

  auto tampered = env;
  tampered[kEnvelopeHeaderSize + 40] ^= 0x01;  // inside the ciphertext
  auto badSig = f.check(tampered, now);
  CHECK(refusalOf(badSig).status == 403);
  CHECK(refusalOf(badSig).code == "bad_signature");

  auto otherHome = X25519Key::generate();
  auto wrongKey = f.check(f.seal(2, report(1), now, &otherHome), now);
  CHECK(refusalOf(wrongKey).status == 400);
  CHECK(refusalOf(wrongKey).code == "unknown_key_id");
}

TEST_CASE("the created_ms window: stale, future, and a skew that is only a warning") {
  Fixture f;
  auto now = nowMs();
  auto stale = f.check(f.seal(1, report(1), now - 31 * kDayMs), now);
  CHECK(refusalOf(stale).status == 422);
  CHECK(refusalOf(stale).code == "stale");
  checkedOf(f.check(f.seal(2, report(1), now - 29 * kDayMs), now));

  auto future = f.check(f.seal(3, report(1), now + kDayMs + 60'000), now);
  CHECK(refusalOf(future).status == 422);
  CHECK(refusalOf(future).code == "future");

  auto skewed = f.check(f.seal(4, report(1), now + 10 * 60'000), now);
  CHECK(checkedOf(skewed).aheadMs == 10 * 60'000);
  auto small = f.check(f.seal(5, report(1), now + 60'000), now);
  CHECK_FALSE(checkedOf(small).aheadMs.has_value());
}

TEST_CASE("a payload that is not schema 1 JSON is refused with 422 bad_payload") {
  Fixture f;
  auto now = nowMs();
  for (const char* payload :
       {"not json", "[1,2]", R"({"schema":2,"type":"report","events":[]})",
        R"({"type":"report","events":[]})", R"({"schema":1,"type":"alert"})",
        R"({"schema":1,"type":"report"})", R"({"schema":1,"type":"report","events":[1]})",
        R"({"schema":1,"type":"heartbeat","next_due_ms":-5})"}) {
    CAPTURE(payload);
    auto out = f.check(f.seal(1, payload, now), now);
    CHECK(refusalOf(out).status == 422);
    CHECK(refusalOf(out).code == "bad_payload");
  }
}

TEST_CASE("parsePayload keeps what the agent sent and stores missing fields as NULL") {
  auto test = parsePayload(R"({"schema":1,"type":"test","message":"hello"})");
  REQUIRE(test.has_value());
  CHECK(test->type == "test");

  auto parsed = parsePayload(
      R"({"schema":1,"type":"report","events":[{"code":12345,"extra":{"a":1}},{"array":"A1","severity":"info","occurred_ms":5}]})");
  REQUIRE(parsed.has_value());
  REQUIRE(parsed->events.size() == 2);
  const auto& first = parsed->events[0];
  CHECK(first.code == "12345");  // numeric codes are kept as their text
  CHECK_FALSE(first.array.has_value());
  CHECK_FALSE(first.severity.has_value());
  CHECK_FALSE(first.occurredMs.has_value());
  CHECK(first.payload == R"({"code":12345,"extra":{"a":1}})");
  CHECK(parsed->events[1].array == "A1");
  CHECK(parsed->events[1].occurredMs == 5);

  auto badField = parsePayload(R"({"schema":1,"type":"report","events":[{"code":[1]}]})");
  REQUIRE_FALSE(badField.has_value());
  CHECK(badField.error().find("events[0].code") != std::string::npos);
  auto heartbeat = parsePayload(R"({"schema":1,"type":"heartbeat"})");
  REQUIRE(heartbeat.has_value());
  CHECK_FALSE(heartbeat->nextDueMs.has_value());
}

TEST_CASE("parsePayload refuses an array in the events array without touching any event") {
  // Found by tests/fuzz/fuzz_payload.cpp: a value inside such an array was stored into
  // events_.back(), which after a repeated "events" key lies before the vector's storage (a
  // heap overflow, caught by AddressSanitizer: the asan preset). 100 events make the vector's
  // storage large enough that its left redzone covers where the stale event would be.
  std::string earlier;
  for (int i = 0; i < 100; ++i) {
    earlier += fmt::format(R"({}{{"text":"t","code":"c{}","occurred_ms":{}}})", i ? "," : "", i, i);
  }
  for (const char* inner : {"[5]", R"(["b",{"code":"x"},[1]])", "[[5]]", "[null]"}) {
    for (const std::string& before : {std::string(), fmt::format(R"("events":[{}],)", earlier)}) {
      auto payload =
          fmt::format(R"({{"schema":1,"type":"report",{}"events":[{}]}})", before, inner);
      CAPTURE(payload);
      auto refused = parsePayload(payload);
      REQUIRE_FALSE(refused.has_value());
      CHECK(refused.error() == "events[0] is not an object");
    }
  }
  auto mixed = parsePayload(R"({"schema":1,"type":"report","events":[{"code":"a"},["b"]]})");
  REQUIRE_FALSE(mixed.has_value());
  CHECK(mixed.error() == "events[1] is not an object");
}

TEST_CASE("parsePayload reads a heartbeat's interval_s, the interval the agent is set to") {
  auto set = parsePayload(
      R"({"schema":1,"type":"heartbeat","interval_s":300,"next_due_ms":1700000300000})");
  REQUIRE(set.has_value());
  CHECK(set->intervalMs == 300'000);
  CHECK(set->nextDueMs == 1'700'000'300'000);
  auto none = parsePayload(R"({"schema":1,"type":"heartbeat","interval_s":null})");
  REQUIRE(none.has_value());
  CHECK_FALSE(none->intervalMs.has_value());
  auto huge = parsePayload(R"({"schema":1,"type":"heartbeat","interval_s":18446744073709551615})");
  REQUIRE(huge.has_value());
  CHECK(huge->intervalMs > 0);  // no overflow; the store caps it at a day
  for (const char* bad : {R"("5 min")", "-300", "2.5", "[300]", "{}"}) {
    auto refused =
        parsePayload(fmt::format(R"({{"schema":1,"type":"heartbeat","interval_s":{}}})", bad));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == "interval_s must be seconds (an unsigned integer)");
  }
}

TEST_CASE("each event's payload is the event's own text, whatever the spacing") {
  auto parsed = parsePayload(
      "{ \"events\" : [ { \"code\" : \"a\" ,\"n\":1} ,\n{\"code\":\"b\",\"x\":[1,{\"y\":2}]}"
      ",{\"code\":\"c\",\"n\":2.5}], \"type\":\"report\", \"schema\" : 1 }");
  REQUIRE_MESSAGE(parsed.has_value(), (parsed ? "" : parsed.error()));
  REQUIRE(parsed->events.size() == 3);
  CHECK(parsed->events[0].payload == R"({ "code" : "a" ,"n":1})");
  CHECK(parsed->events[1].payload == R"({"code":"b","x":[1,{"y":2}]})");
  CHECK(parsed->events[2].payload == R"({"code":"c","n":2.5})");
  CHECK(parsed->events[2].code == "c");

  // Fields inside nested objects are not the event's own; a repeated key counts once.
  auto nested = parsePayload(
      R"({"schema":1,"type":"report","events":[{"detail":{"code":"inner"}}],"events":[{"code":"x"},{"code":"y"}]})");
  REQUIRE(nested.has_value());
  REQUIRE(nested->events.size() == 2);
  CHECK(nested->events[0].code == "x");

  auto trailing = parsePayload(R"({"schema":1,"type":"test"} x)");
  REQUIRE_FALSE(trailing.has_value());
  CHECK(trailing.error() == "the payload is not valid JSON");
  auto notObject = parsePayload(R"("just a string")");
  REQUIRE_FALSE(notObject.has_value());
  CHECK(notObject.error() == "the payload is not a JSON object");
  // Fields that only another type uses do not make a payload invalid.
  CHECK(parsePayload(R"({"schema":1,"type":"test","events":5,"next_due_ms":"soon"})").has_value());
}
