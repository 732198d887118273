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

/// One event as it travels in a report and as `pass-agent parse` prints it.
nlohmann::json event(const ArrayConfig& array, const CollectedEvent& e);
/// A report of `events` (a slice of one collection run) from one array.
nlohmann::json report(std::uint64_t sentMs, const ArrayConfig& array,
                      std::span<const CollectedEvent> events);
nlohmann::json arrayStatus(const ArrayStatus& status);

}  // namespace pass::payload
