// The Collector base: what every collector gets for free (timing, exception boundary, status).

#include <doctest/doctest.h>

#include <stdexcept>

#include "pass/collector.hpp"

using pass::ArrayConfig;
using pass::CollectContext;
using pass::Collection;
using pass::Result;

namespace {

/// Does whatever the test sets `behaviour` to.
class ScriptedCollector final : public pass::Collector {
 public:
  enum class Behaviour { kEvents, kFail, kThrow, kThrowOther };
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
      case Behaviour::kThrow:
        throw std::runtime_error("boom");
      case Behaviour::kThrowOther:
        throw 42;
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
    CHECK(out.status.message.find("test_family 12345") != std::string::npos);
  }
}

TEST_CASE("statusState keeps the known classes and calls the rest error") {
  CHECK(pass::statusState("unreachable") == "unreachable");
  CHECK(pass::statusState("hpe_3par.login_failed") == "login_failed");
  CHECK(pass::statusState("svp.bad_output") == "bad_output");
  CHECK(pass::statusState("timeout") == "timeout");
  CHECK(pass::statusState("config") == "config");
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
