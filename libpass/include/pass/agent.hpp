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

#include "pass/agent_certificate.hpp"
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
  /// The home's last refusal about time (`stale`, `future`); empty once an envelope sealed
  /// afterwards was accepted (the clocks agree again).
  std::string clockError;
  std::optional<std::int64_t> clockSkewMs;  // this host's clock minus the home's, when known
  /// The last failure to store a new envelope, a cursor or this state (a full disk); kept until
  /// a heartbeat that reports it is spooled by a run that stored everything.
  std::string storageError;
  std::optional<std::uint64_t> storageErrorMs;
};

/// One array's collection in this run.
struct ArrayRun {
  ArrayConfig array;
  ArrayStatus status;
  std::vector<CollectedEvent> events;
  std::vector<std::string> notes;
  std::optional<std::string> cursor;  // saved once the events are in the spool
  /// The collector returned a collection: its events are stored and its cursor saved, also
  /// when the state is "error" because a record could not be read (Collection::recordFailures).
  bool collected = false;
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
  /// Envelopes the home refused for this host's clock in this run, set aside in spool/held/
  /// (a refused heartbeat is dropped instead: the next one says more).
  std::uint64_t held = 0;
  std::uint64_t resealed = 0;                  // held envelopes sealed again and spooled
  std::uint64_t stillHeld = 0;                 // in spool/held/ after this run
  std::optional<DeliveryResult> clockRefusal;  // the last refusal about time in this run
  std::optional<std::int64_t> clockSkewMs;     // this host's clock minus the home's, when known
  bool clockConfirmed = false;  // an envelope sealed in this run was accepted: the clocks agree
  /// A new envelope, a cursor or the state could not be written (a full disk); what was spooled
  /// before was still sent.
  std::optional<Error> storageError;
  /// The home announced a new HPKE key in this run: taken, or why not (empty: no announcement).
  std::string homeKeyNote;
  /// The certificate this run renewed to (agent_certificate.hpp), or why a due renewal failed
  /// (tried again next run; the current certificate stays in use).
  std::optional<TlsIdentity> renewedCertificate;
  std::optional<Error> renewalError;
};

struct StatusReport {
  AgentState state;
  std::uint64_t spoolDepth = 0;
  std::uint64_t spoolBytes = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t held = 0;  // in spool/held/: refused for the clock, waiting to be sealed again
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
  /// cursor advances), flush the spool oldest first, renew the TLS certificate once a third of
  /// its lifetime is left (unless the home could not be reached), a heartbeat when due (sealed
  /// after the flush, so that it counts what the flush quarantined) and flush it, then, once an
  /// envelope sealed in this run was accepted, seal again what the home refused for the clock and
  /// send it. An unreachable home or array is not an error: the spool keeps the envelopes, the
  /// array's status says it. Nor is a full disk: what is spooled is still sent
  /// (summary.storageError).
  Result<RunSummary> run();

  /// Collects every array without spooling anything or advancing any cursor (--dry-run); the
  /// keys of arrays met for the first time are pinned as in run().
  std::vector<ArrayRun> collectOnly();

  /// Seals a test message and sends it now, outside the spool; returns the home's answer.
  Result<DeliveryResult> sendTest(const std::string& message);

  /// Seals a payload and stores it in the spool (the collectors' way in).
  Result<std::uint64_t> enqueue(EnvelopeKind kind, const std::string& payloadJson);

  const AgentState& state() const;

  /// The key and certificate the agent connects with (renewed ones once it has renewed).
  const TlsIdentity& tlsIdentity() const;

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
