#pragma once
/// One agent: what `pass-agent run|test|status` (and pass-svp.exe) do, with every file it keeps
/// in the state directory: seq (sequence reservations), spool/, agent-state.json, run.lock.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pass/collector.hpp"
#include "pass/config.hpp"
#include "pass/crypto.hpp"
#include "pass/sequence.hpp"
#include "pass/spool.hpp"
#include "pass/transport.hpp"

namespace pass {

/// Milliseconds since the Unix epoch; injectable for tests.
using Clock = std::function<std::uint64_t()>;
std::uint64_t systemNowMs();

/// What the agent remembers between runs (state/agent-state.json).
struct AgentState {
  std::uint64_t nextHeartbeatDueMs = 0;  // 0: due now
  std::optional<std::uint64_t> lastDeliveryMs;
  std::optional<std::uint64_t> lastRunMs;
  std::string lastError;  // empty when the last run delivered everything it tried
  std::uint64_t droppedHeartbeats = 0;
  std::uint64_t refusedEnvelopes = 0;
  std::vector<ArrayStatus> arrays;  // the last collection of each configured array
};

/// One array's collection in this run.
struct ArrayRun {
  ArrayConfig array;
  ArrayStatus status;
  std::vector<CollectedEvent> events;
  std::vector<std::string> notes;
  std::optional<std::string> cursor;  // saved once the events are in the spool
};

struct RunSummary {
  std::vector<ArrayRun> arrays;
  bool heartbeatSpooled = false;
  std::uint64_t delivered = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t remaining = 0;
  std::optional<DeliveryResult> stoppedBy;  // the kRetry answer that ended the flush early
  std::optional<Error> spoolRefusal;        // "spool_full": an envelope could not be stored
};

struct StatusReport {
  AgentState state;
  std::uint64_t spoolDepth = 0;
  std::uint64_t spoolBytes = 0;
  std::uint64_t quarantined = 0;
};

class Agent {
 public:
  /// Loads keys, takes the run lock, opens sequence counter and spool.
  /// Errors: key files ("crypto.*"), "locked", spool/sequence I/O.
  static Result<Agent> open(const AgentConfig& cfg, Clock clock = systemNowMs);
  Agent(Agent&&) noexcept;
  Agent& operator=(Agent&&) noexcept;
  ~Agent();

  /// One scheduled cycle: collect every array (new events are spooled, then the array's
  /// cursor advances), a heartbeat when due, then flush the spool oldest first. An unreachable
  /// home or array is not an error: the spool keeps the envelopes, the array's status says it.
  Result<RunSummary> run();

  /// Collects every array without spooling anything or advancing any cursor (--dry-run).
  std::vector<ArrayRun> collectOnly();

  /// Seals a test message and sends it now, outside the spool; returns the home's answer.
  Result<DeliveryResult> sendTest(const std::string& message);

  /// Seals a payload and stores it in the spool (the collectors' way in).
  Result<std::uint64_t> enqueue(EnvelopeKind kind, const std::string& payloadJson);

  const AgentState& state() const;

 private:
  struct Impl;
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// What forgetPins() removed: the array and the pins it held.
struct ForgottenPins {
  ArrayConfig array;
  std::map<std::string, std::string, std::less<>> pins;  // name → value
};

/// `pass-agent forget-pin --array SERIAL`: deletes the pins of every configured array with
/// that serial, under the run lock, so that the next run pins the keys it meets. "config"
/// when no configured array has the serial; "locked" while a run holds the lock.
Result<std::vector<ForgottenPins>> forgetPins(const AgentConfig& cfg, std::string_view serial);

/// Reads the state directory without locking or changing anything (safe during a run).
Result<StatusReport> readStatus(const AgentConfig& cfg);

}  // namespace pass
