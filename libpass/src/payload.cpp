#include "pass/payload.hpp"

namespace pass::payload {

namespace {

// At most this many quarantined envelopes are listed by seq; the count is always complete.
constexpr std::size_t kQuarantineListed = 20;

nlohmann::json common(std::string_view type, std::uint64_t sentMs) {
  return {
      {"schema", kSchema}, {"type", type}, {"agent_version", PASS_VERSION}, {"sent_ms", sentMs}};
}

}  // namespace

nlohmann::json heartbeat(const HeartbeatInfo& info) {
  auto j = common("heartbeat", info.sentMs);
  j["interval_s"] = info.intervalSeconds;
  j["next_due_ms"] = info.nextDueMs;
  j["spool"] = {{"depth", info.spool.depth},
                {"bytes", info.spool.bytes},
                {"oldest_seq", info.spool.oldestSeq ? nlohmann::json(*info.spool.oldestSeq)
                                                    : nlohmann::json(nullptr)},
                {"max_envelopes", info.spool.limits.maxEnvelopes},
                {"max_bytes", info.spool.limits.maxBytes}};
  auto recent = nlohmann::json::array();
  std::size_t first =
      info.quarantine.size() > kQuarantineListed ? info.quarantine.size() - kQuarantineListed : 0;
  for (std::size_t i = first; i < info.quarantine.size(); ++i) {
    const auto& q = info.quarantine[i];
    recent.push_back({{"seq", q.seq}, {"kind", toString(q.kind)}, {"reason", q.reason}});
  }
  j["quarantine"] = {{"count", info.quarantine.size()}, {"recent", std::move(recent)}};
  j["dropped_heartbeats"] = info.droppedHeartbeats;
  j["refused_envelopes"] = info.refusedEnvelopes;
  j["last_delivery_ms"] =
      info.lastDeliveryMs ? nlohmann::json(*info.lastDeliveryMs) : nlohmann::json(nullptr);
  j["held_for_clock"] = info.heldForClock;
  j["storage_error"] =
      info.storageError.empty()
          ? nlohmann::json(nullptr)
          : nlohmann::json{{"message", info.storageError},
                           {"at_ms", info.storageErrorMs ? nlohmann::json(*info.storageErrorMs)
                                                         : nlohmann::json(nullptr)}};
  j["arrays"] = nlohmann::json::array();
  for (const auto& a : info.arrays) j["arrays"].push_back(arrayStatus(a));
  return j;
}

nlohmann::json arrayStatus(const ArrayStatus& a) {
  return {{"family", a.family},
          {"serial", a.serial},
          {"name", a.name},
          {"state", a.state},
          {"message", a.message},
          {"last_run_ms", a.lastRunMs},
          {"last_success_ms",
           a.lastSuccessMs ? nlohmann::json(*a.lastSuccessMs) : nlohmann::json(nullptr)},
          {"duration_ms", a.durationMs},
          {"new_events", a.newEvents}};
}

nlohmann::json event(const ArrayConfig& array, const CollectedEvent& e) {
  return {{"family", array.family},
          {"array", array.serial},
          {"id", e.id},
          {"kind", e.kind},
          {"code", e.code},
          {"severity", e.severity},
          {"occurred_ms", e.occurredMs ? nlohmann::json(*e.occurredMs) : nlohmann::json(nullptr)},
          {"component", e.component},
          {"text", e.text},
          {"raw", e.raw}};
}

nlohmann::json report(std::uint64_t sentMs, const ArrayConfig& array,
                      std::span<const CollectedEvent> events) {
  auto j = common("report", sentMs);
  j["array"] = {{"family", array.family},
                {"serial", array.serial},
                {"model", array.model},
                {"name", array.name}};
  auto list = nlohmann::json::array();
  for (const auto& e : events) list.push_back(event(array, e));
  j["events"] = std::move(list);
  return j;
}

nlohmann::json test(std::uint64_t sentMs, const std::string& message) {
  auto j = common("test", sentMs);
  j["message"] = message;
  return j;
}

}  // namespace pass::payload
