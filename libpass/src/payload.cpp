#include "pass/payload.hpp"

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/text.hpp"

namespace pass::payload {

namespace {

// At most this many quarantined envelopes are listed by seq; the count is always complete.
constexpr std::size_t kQuarantineListed = 20;

nlohmann::json common(std::string_view type, std::uint64_t sentMs) {
  return {
      {"schema", kSchema}, {"type", type}, {"agent_version", PASS_VERSION}, {"sent_ms", sentMs}};
}

nlohmann::json reportOf(std::uint64_t sentMs, const ArrayConfig& array, nlohmann::json events) {
  auto j = common("report", sentMs);
  j["array"] = {{"family", array.family},
                {"serial", array.serial},
                {"model", array.model},
                {"name", array.name}};
  j["events"] = std::move(events);
  return j;
}

/// Every string is UTF-8 already; replacement instead of an exception all the same.
std::string dumpSafely(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// A field of an event cut to `max` bytes, between characters.
std::string bounded(std::string_view text, std::size_t max) {
  return std::string(cutUtf8(toUtf8(text), max));
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
    recent.push_back({{"seq", q.seq}, {"kind", toString(q.kind)}, {"reason", toUtf8(q.reason)}});
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
          {"message", toUtf8(a.message)},
          {"last_run_ms", a.lastRunMs},
          {"last_success_ms",
           a.lastSuccessMs ? nlohmann::json(*a.lastSuccessMs) : nlohmann::json(nullptr)},
          {"duration_ms", a.durationMs},
          {"new_events", a.newEvents}};
}

nlohmann::json event(const ArrayConfig& array, const CollectedEvent& e) {
  // The collectors hand over UTF-8 (CollectedEvent::setRaw); toUtf8 again here makes a payload
  // that cannot be dumped impossible, whatever a collector missed. The bounds keep one event
  // far below the home's body limit, whatever an array printed.
  nlohmann::json j = {
      {"family", array.family},
      {"array", array.serial},
      {"id", bounded(e.id, kMaxTextBytes)},
      {"kind", e.kind},
      {"code", bounded(e.code, kMaxTextBytes)},
      {"severity", bounded(e.severity, kMaxTextBytes)},
      {"occurred_ms", e.occurredMs ? nlohmann::json(*e.occurredMs) : nlohmann::json(nullptr)},
      {"component", bounded(e.component, kMaxTextBytes)},
      {"text", bounded(e.text, kMaxTextBytes)},
      {"raw", bounded(e.raw, kMaxRawBytes)}};
  std::string_view bytes = e.rawBytes ? std::string_view(*e.rawBytes) : std::string_view(e.raw);
  if (e.rawBytes || !isCleanUtf8(e.raw)) {
    j["raw_b64"] = toBase64(asBytes(bytes.substr(0, kMaxRawBytes)));
  }
  if (bytes.size() > kMaxRawBytes) j["raw_size"] = bytes.size();
  return j;
}

nlohmann::json report(std::uint64_t sentMs, const ArrayConfig& array,
                      std::span<const CollectedEvent> events) {
  auto list = nlohmann::json::array();
  for (const auto& e : events) list.push_back(event(array, e));
  return reportOf(sentMs, array, std::move(list));
}

std::vector<std::string> reports(std::uint64_t sentMs, const ArrayConfig& array,
                                 std::span<const CollectedEvent> events) {
  std::vector<std::string> out;
  std::vector<nlohmann::json> batch;
  std::size_t batchBytes = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    out.push_back(dumpSafely(reportOf(sentMs, array, std::move(batch))));
    batch.clear();
    batchBytes = 0;
  };
  for (const auto& e : events) {
    auto j = event(array, e);
    const std::size_t size = dumpSafely(j).size();
    if (batch.size() == kEventsPerReport || (!batch.empty() && batchBytes + size > kReportBytes)) {
      flush();
    }
    batch.push_back(std::move(j));
    batchBytes += size;
  }
  flush();
  return out;
}

nlohmann::json test(std::uint64_t sentMs, const std::string& message) {
  auto j = common("test", sentMs);
  j["message"] = message;
  return j;
}

}  // namespace pass::payload
