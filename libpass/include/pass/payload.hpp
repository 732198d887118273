#pragma once
/// The JSON payloads sealed inside envelopes, schema version 1 (docs/protocol.md names every
/// field). Builders here are the one place the agent side writes them.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pass/collector.hpp"
#include "pass/spool.hpp"

namespace pass::payload {

inline constexpr int kSchema = 1;

struct SpoolState {
  std::uint64_t depth = 0;
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> oldestSeq;
  SpoolLimits limits;
};

struct HeartbeatInfo {
  std::uint64_t sentMs = 0;
  std::uint64_t intervalSeconds = 0;
  std::uint64_t nextDueMs = 0;
  SpoolState spool;
  std::vector<QuarantineEntry> quarantine;
  std::uint64_t droppedHeartbeats = 0;
  std::uint64_t refusedEnvelopes = 0;
  std::optional<std::uint64_t> lastDeliveryMs;
  std::vector<ArrayStatus> arrays;
  std::uint64_t heldForClock = 0;  // refused for the agent's clock, waiting to be sealed again
  std::string storageError;        // the last failure to store; empty when none
  std::optional<std::uint64_t> storageErrorMs;
};

nlohmann::json heartbeat(const HeartbeatInfo& info);
nlohmann::json test(std::uint64_t sentMs, const std::string& message);

/// An event's `text`, `component`, `code`, `severity` and `id` are cut to this many bytes, and
/// its `raw` (and the bytes in `raw_b64`) to kMaxRawBytes, `raw_size` then giving the record's
/// whole size: so that one event, even JSON-escaped, stays far below the home's 1 MiB body limit.
inline constexpr std::size_t kMaxTextBytes = 16 * 1024;
inline constexpr std::size_t kMaxRawBytes = 64 * 1024;
/// A report holds at most this many events, and its events at most about this many bytes.
inline constexpr std::size_t kEventsPerReport = 200;
inline constexpr std::size_t kReportBytes = 512 * 1024;

/// One event as it travels in a report and as `pass-agent parse` prints it. Every string is
/// valid UTF-8; `raw_b64` carries the record's exact bytes when `raw` is not them.
nlohmann::json event(const ArrayConfig& array, const CollectedEvent& e);
/// A report of `events` (a slice of one collection run) from one array.
nlohmann::json report(std::uint64_t sentMs, const ArrayConfig& array,
                      std::span<const CollectedEvent> events);
/// The reports, as JSON text, that carry all of one array's `events` in order: a new report
/// after kEventsPerReport events or kReportBytes of them.
std::vector<std::string> reports(std::uint64_t sentMs, const ArrayConfig& array,
                                 std::span<const CollectedEvent> events);
nlohmann::json arrayStatus(const ArrayStatus& status);

}  // namespace pass::payload
