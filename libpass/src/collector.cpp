#include "pass/collector.hpp"

#include <array>
#include <chrono>
#include <exception>
#include <utility>

#include <fmt/format.h>

namespace pass {

#ifdef PASS_COLLECTOR_HITACHI_SVP
namespace hitachi_svp {
void registerCollector(CollectorRegistry& registry);
}
#endif

namespace {

constexpr std::array<std::string_view, 5> kStates = {"unreachable", "login_failed", "bad_output",
                                                     "timeout", "config"};

std::uint64_t steadyMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

std::string statusState(std::string_view errorCode) {
  auto dot = errorCode.rfind('.');
  auto last = dot == std::string_view::npos ? errorCode : errorCode.substr(dot + 1);
  for (auto state : kStates) {
    if (last == state) return std::string(state);
  }
  return "error";
}

Collector::Outcome Collector::collect(CollectContext& ctx) {
  const auto startedSteady = steadyMs();
  ArrayStatus status;
  status.family = array_.family;
  status.serial = array_.serial;
  status.name = array_.name;
  status.lastRunMs = ctx.clock();
  Result<Collection> result = fail("error", "the collector did not run");
  try {
    result = doCollect(ctx);
  } catch (const std::exception& e) {
    // The boundary: a collector bug must cost one array's run, not the agent's.
    result = fail("error", fmt::format("{} {}: unexpected failure: {}", array_.family,
                                       array_.serial, e.what()));
  } catch (...) {
    result = fail("error", fmt::format("{} {}: unexpected failure", array_.family, array_.serial));
  }
  status.durationMs = steadyMs() - startedSteady;
  if (result) {
    status.state = "ok";
    status.lastSuccessMs = status.lastRunMs;
    status.newEvents = result->events.size();
  } else {
    status.state = statusState(result.error().code);
    status.message = result.error().message;
  }
  return Outcome{std::move(result), std::move(status)};
}

void CollectorRegistry::add(CollectorInfo info) { collectors_.push_back(std::move(info)); }

const CollectorInfo* CollectorRegistry::find(std::string_view family) const {
  for (const auto& c : collectors_) {
    if (c.family == family) return &c;
  }
  return nullptr;
}

const CollectorInfo* CollectorRegistry::findByElement(std::string_view element) const {
  for (const auto& c : collectors_) {
    if (c.element == element) return &c;
  }
  return nullptr;
}

void registerBuiltinCollectors([[maybe_unused]] CollectorRegistry& registry) {
#ifdef PASS_COLLECTOR_HITACHI_SVP
  hitachi_svp::registerCollector(registry);
#endif
}

const CollectorRegistry& builtinCollectors() {
  static const CollectorRegistry kRegistry = [] {
    CollectorRegistry r;
    registerBuiltinCollectors(r);
    return r;
  }();
  return kRegistry;
}

Result<std::unique_ptr<Collector>> createCollector(const ArrayConfig& array) {
  const CollectorInfo* info = builtinCollectors().find(array.family);
  if (info == nullptr) {
    return fail("config",
                fmt::format("{}: this build has no {} collector", array.where, array.family));
  }
  return info->create(array);
}

}  // namespace pass
