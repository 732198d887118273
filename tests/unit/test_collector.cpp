// The Collector base: what every collector gets for free (timing, exception boundary, status).

#include <doctest/doctest.h>

#include <stdexcept>

#include <fmt/format.h>

#include "pass/collector.hpp"
#include "pass/pin_store.hpp"
#include "platform/fs.hpp"
#include "test_support.hpp"

using pass::ArrayConfig;
using pass::CollectContext;
using pass::Collection;
using pass::Result;

namespace {

/// Does whatever the test sets `behaviour` to.
class ScriptedCollector final : public pass::Collector {
 public:
  enum class Behaviour { kEvents, kFail, kFailQuotingBytes, kThrow, kThrowOther, kRecordsThrow };
  explicit ScriptedCollector(Behaviour b) : Collector(array()), behaviour_(b) {}

  static ArrayConfig array() {
    ArrayConfig a;
    a.family = "test_family";
    a.serial = "12345";
    a.name = "lab";
    return a;
  }

 protected:
  Result<Collection> doCollect(CollectContext& ctx) override {
    switch (behaviour_) {
      case Behaviour::kEvents: {
        Collection c;
        c.events.resize(2);
        c.cursor = ctx.cursor.value_or("") + "+";
        return c;
      }
      case Behaviour::kFail:
        return pass::fail("test.unreachable", "192.0.2.1: connection refused");
      case Behaviour::kFailQuotingBytes:
        return pass::fail("test.bad_output",
                          "the array answered \"L\xfc"
                          "fter\"");
      case Behaviour::kThrow:
        throw std::runtime_error("boom \xfc");
      case Behaviour::kThrowOther:
        throw 42;
      case Behaviour::kRecordsThrow: {
        // Four records; the second and the fourth throw while being read.
        Collection c;
        for (int line = 1; line <= 4; ++line) {
          pass::readRecord(
              c, array(), fmt::format("file sim.log, the line at byte {}", line * 100),
              [&] {
                if (line % 2 == 0) throw std::runtime_error("odd record \xfc");
                c.events.emplace_back().code = fmt::format("read-{}", line);
              },
              [&](const std::string& failure) {
                auto& e = c.events.emplace_back();
                e.code = fmt::format("unparsed-{}", line);
                e.text = failure;
              });
        }
        c.cursor = "after-4";
        return c;
      }
    }
    return Collection{};
  }

 private:
  Behaviour behaviour_;
};

CollectContext context() {
  CollectContext ctx;
  ctx.clock = [] { return std::uint64_t{1'700'000'000'000}; };
  ctx.cursor = "c";
  return ctx;
}

}  // namespace

TEST_CASE("a successful collection is ok, counts its events and keeps its cursor") {
  ScriptedCollector c(ScriptedCollector::Behaviour::kEvents);
  auto ctx = context();
  auto out = c.collect(ctx);
  REQUIRE(out.result.has_value());
  CHECK(out.result->cursor == "c+");
  CHECK(out.status.state == "ok");
  CHECK(out.status.message.empty());
  CHECK(out.status.newEvents == 2);
  CHECK(out.status.family == "test_family");
  CHECK(out.status.serial == "12345");
  CHECK(out.status.name == "lab");
  CHECK(out.status.lastRunMs == 1'700'000'000'000);
  CHECK(out.status.lastSuccessMs == out.status.lastRunMs);
}

TEST_CASE("a failure becomes the array's status, classified by its code") {
  ScriptedCollector c(ScriptedCollector::Behaviour::kFail);
  auto ctx = context();
  auto out = c.collect(ctx);
  REQUIRE_FALSE(out.result.has_value());
  CHECK(out.status.state == "unreachable");
  CHECK(out.status.message == "192.0.2.1: connection refused");
  CHECK_FALSE(out.status.lastSuccessMs.has_value());
}

TEST_CASE("an exception stops at the boundary and names the array") {
  for (auto b : {ScriptedCollector::Behaviour::kThrow, ScriptedCollector::Behaviour::kThrowOther}) {
    ScriptedCollector c(b);
    auto ctx = context();
    auto out = c.collect(ctx);
    REQUIRE_FALSE(out.result.has_value());
    CHECK(out.status.state == "error");
    CHECK(out.status.message.find("test_family 12345 (lab): unexpected failure while collecting") ==
          0);
    CHECK(pass::isCleanUtf8(out.status.message));
  }
}

TEST_CASE("a record that throws is the array's error naming the file and line; no record is lost") {
  ScriptedCollector c(ScriptedCollector::Behaviour::kRecordsThrow);
  auto ctx = context();
  auto out = c.collect(ctx);
  REQUIRE(out.result.has_value());
  // Every record reaches the spool, the failing ones as unparsed events with the sentence.
  REQUIRE(out.result->events.size() == 4);
  CHECK(out.result->events[0].code == "read-1");
  CHECK(out.result->events[1].code == "unparsed-2");
  CHECK(out.result->events[1].text.find("file sim.log, the line at byte 200") != std::string::npos);
  CHECK(out.result->events[2].code == "read-3");
  CHECK(out.result->events[3].code == "unparsed-4");
  CHECK(out.result->cursor == "after-4");
  CHECK(out.status.state == "error");
  CHECK(out.status.message.find("test_family 12345 (lab): unexpected failure while reading file "
                                "sim.log, the line at byte 200: odd record") == 0);
  CHECK(out.status.message.find("and 1 more record(s)") != std::string::npos);
  CHECK(pass::isCleanUtf8(out.status.message));
  CHECK(out.status.newEvents == 4);
}

TEST_CASE("a failure quoting bytes that are not UTF-8 is a status in UTF-8") {
  ScriptedCollector c(ScriptedCollector::Behaviour::kFailQuotingBytes);
  auto ctx = context();
  auto out = c.collect(ctx);
  CHECK(out.status.state == "bad_output");
  CHECK(out.status.message ==
        "the array answered \"L\xef\xbf\xbd"
        "fter\"");
}

TEST_CASE("statusState keeps the known classes and calls the rest error") {
  CHECK(pass::statusState("unreachable") == "unreachable");
  CHECK(pass::statusState("hpe_3par.login_failed") == "login_failed");
  CHECK(pass::statusState("svp.bad_output") == "bad_output");
  CHECK(pass::statusState("timeout") == "timeout");
  CHECK(pass::statusState("config") == "config");
  CHECK(pass::statusState("collector.pin_mismatch") == "pin_mismatch");
  CHECK(pass::statusState("io_error") == "error");
  CHECK(pass::statusState("") == "error");
}

TEST_CASE("the built-in registry knows each collector by family and by element") {
  const auto& registry = pass::builtinCollectors();
#ifdef PASS_TEST_HAS_HITACHI_SVP
  const auto* svp = registry.find("hitachi_svp");
  REQUIRE(svp != nullptr);
  CHECK(registry.findByElement("hitachi-svp") == svp);
  CHECK_FALSE(svp->sources.empty());
#endif
  CHECK(registry.find("no_such_family") == nullptr);
  ArrayConfig unknown;
  unknown.family = "no_such_family";
  unknown.where = "agent.xml:9";
  auto created = pass::createCollector(unknown);
  REQUIRE_FALSE(created.has_value());
  CHECK(created.error().code == "config");
  CHECK(created.error().message.find("agent.xml:9") != std::string::npos);
}

TEST_CASE("pins survive a reopen, a damaged file is refused") {
  pass::test::TempDir dir;
  const auto file = pass::pinFile(dir.path(), ScriptedCollector::array());
  std::uint64_t now = 1000;
  auto clock = [&now] { return now; };
  {
    auto store = pass::FilePinStore::open(file, clock);
    REQUIRE_MESSAGE(store.has_value(), pass::test::errorText(store));
    CHECK_FALSE(store->find("ssh").has_value());
    REQUIRE(store->remember("ssh", "SHA256:abc").has_value());
  }
  now = 2000;
  auto reopened = pass::FilePinStore::open(file, clock);
  REQUIRE(reopened.has_value());
  CHECK(reopened->find("ssh") == "SHA256:abc");
  CHECK(reopened->pins().at("ssh").pinnedMs == 1000);

  REQUIRE(pass::platform::writeFileAtomic(file, R"({"pins": {"ssh": {"value": ""}}})").has_value());
  auto damaged = pass::FilePinStore::open(file, clock);
  REQUIRE_FALSE(damaged.has_value());
  CHECK(damaged.error().code == "state.corrupt");
  CHECK(damaged.error().message.find(pass::platform::displayPath(file)) != std::string::npos);
}

TEST_CASE("a changed key names both keys and the way to accept it") {
  auto e =
      pass::pinMismatch(ScriptedCollector::array(), "SSH host key", "SHA256:old", "SHA256:new");
  CHECK(pass::statusState(e.code) == "pin_mismatch");
  CHECK(e.message.find("SHA256:old") != std::string::npos);
  CHECK(e.message.find("SHA256:new") != std::string::npos);
  CHECK(e.message.find("forget-pin --array 12345") != std::string::npos);
}

TEST_CASE("readSecret takes the first line of the file a setting names") {
  pass::test::TempDir dir;
  auto array = ScriptedCollector::array();
  array.configDir = dir.path();
  array.where = "agent.xml:7";
  array.settings["password-file"] = "secret.txt";
  auto missing = pass::readSecret(array, "password-file");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == "config");
  CHECK(missing.error().message.find("agent.xml:7") != std::string::npos);
  REQUIRE(pass::platform::writeFileAtomic(dir.path() / "secret.txt", "s3cret\r\nignored\n")
              .has_value());
  CHECK(pass::readSecret(array, "password-file").value() == "s3cret");
  REQUIRE(pass::platform::writeFileAtomic(dir.path() / "secret.txt", "\n").has_value());
  CHECK_FALSE(pass::readSecret(array, "password-file").has_value());
}
