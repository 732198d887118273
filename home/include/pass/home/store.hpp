#pragma once
/// The home's SQLite store (home.db, WAL, synchronous=FULL). Schema changes are numbered
/// migrations tracked in PRAGMA user_version. One Store is one connection: use it from one
/// thread at a time.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// The schema version this build migrates to.
inline constexpr std::int64_t kSchemaVersion = 2;

/// An agent as enrolled.
struct NewAgent {
  std::string id;  // UUID text, lower case
  std::string customer;
  std::string site;
  std::string name;
  Bytes signKey;           // raw 32-byte Ed25519 public key
  std::string certSerial;  // lower-case hex
  std::int64_t enrolledMs = 0;
};

/// What the ingest path needs to authenticate an agent.
struct AgentAuth {
  Bytes signKey;
  std::string certSerial;
  std::optional<std::int64_t> revokedMs;
};

/// One row of `pass-home agents`.
struct AgentSummary {
  std::string id;
  std::string customer;
  std::string site;
  std::string name;
  std::int64_t enrolledMs = 0;
  std::optional<std::int64_t> revokedMs;
  std::optional<std::int64_t> lastSeq;
  std::optional<std::int64_t> lastEnvelopeMs;
  std::optional<std::int64_t> lastHeartbeatMs;
  std::optional<std::int64_t> nextHeartbeatDueMs;
  std::int64_t envelopes = 0;
};

/// One event of a report payload; absent fields are stored as NULL.
struct EventRecord {
  std::optional<std::string> family;
  std::optional<std::string> array;
  /// The collector's stable id: an event already stored under the same family, array and id is
  /// a repeat (the agent crashed between spooling it and saving its cursor) and is dropped.
  std::optional<std::string> id;
  std::optional<std::string> code;
  std::optional<std::string> severity;
  std::optional<std::int64_t> occurredMs;
  std::string payload;  // the event's JSON object
};

/// An opened, validated envelope ready to be stored.
struct EnvelopeRecord {
  std::string agentId;  // UUID text, lower case
  std::uint64_t seq = 0;
  std::int64_t createdMs = 0;
  std::int64_t receivedMs = 0;
  std::string type;                       // heartbeat | test | report
  std::uint64_t size = 0;                 // envelope bytes on the wire
  std::string payload;                    // the decrypted JSON payload
  std::optional<std::int64_t> nextDueMs;  // heartbeat only
  std::vector<EventRecord> events;        // report only
};

/// One stored envelope, as `pass-home messages` shows it.
struct StoredEnvelope {
  std::string agentId;
  std::uint64_t seq = 0;
  std::string type;
  std::int64_t createdMs = 0;
  std::int64_t receivedMs = 0;
  std::uint64_t size = 0;
  std::string payload;
};

/// One stored event, as `pass-home events` shows it.
struct StoredEvent {
  std::string agentId;
  std::uint64_t seq = 0;
  std::int64_t receivedMs = 0;
  EventRecord event;  // as stored; payload is the event's JSON object as the agent sent it
};

enum class CommitResult { kAccepted, kDuplicate };

class Store {
 public:
  enum class Mode { kOpenExisting, kCreate };

  /// Opens (or creates) the database and migrates it to kSchemaVersion. Fails with
  /// "not_initialized" when kOpenExisting finds no file, "store" on SQLite errors and
  /// "store.version" when the file was written by a newer pass-home.
  static Result<Store> open(const std::filesystem::path& file, Mode mode = Mode::kOpenExisting);

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  Result<std::int64_t> schemaVersion();

  /// Fails with "agent_exists" when the id is taken.
  Status addAgent(const NewAgent& agent);
  /// nullopt when the agent is unknown. Always reads the committed state, so a revocation by
  /// another process is seen by the next call.
  Result<std::optional<AgentAuth>> agentAuth(std::string_view agentId);
  /// Marks the agent revoked (the first revocation time is kept). Fails with "unknown_agent".
  Status revokeAgent(std::string_view agentId, std::int64_t nowMs);
  Result<std::vector<AgentSummary>> agents();
  /// Stored envelopes in (agent, seq) order, optionally of one agent only.
  Result<std::vector<StoredEnvelope>> envelopes(const std::optional<std::string>& agentId);
  /// Stored events in arrival order, optionally of one array (serial).
  Result<std::vector<StoredEvent>> events(const std::optional<std::string>& array);

  /// Stores a batch in one transaction (BEGIN IMMEDIATE ... COMMIT). A record whose
  /// (agent, seq) is already stored — also earlier in the same batch — is a duplicate and
  /// changes nothing. Results are in batch order. On error nothing of the batch is stored.
  Result<std::vector<CommitResult>> commit(std::span<const EnvelopeRecord* const> batch);

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pass::home
