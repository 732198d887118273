#pragma once
/// The home's store, on SQLite (home.db, WAL, synchronous=FULL; schema version in PRAGMA
/// user_version) or on PostgreSQL (shared by several homes; schema version in schema_version).
/// Schema changes are numbered migrations per backend (home/src/store/<backend>/migrations/
/// NNNN_<name>.sql, compiled in). One Store is one connection: use it from one thread at a time.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/home/tickets.hpp"
#include "pass/result.hpp"

namespace pass::home {

class Logger;

class OutboxQueue;

/// The schema version this build migrates to.
inline constexpr std::int64_t kSchemaVersion = 6;

/// An agent as enrolled.
struct NewAgent {
  std::string id;  // UUID text, lower case
  std::string customer;
  std::string site;
  std::string name;
  Bytes signKey;           // raw 32-byte Ed25519 public key
  std::string certSerial;  // lower-case hex
  std::int64_t enrolledMs = 0;
  std::int64_t certExpiresMs = 0;  // the certificate's notAfter; 0: unknown (stored as NULL)
};

/// What the ingest path needs to authenticate an agent.
struct AgentAuth {
  Bytes signKey;
  std::string certSerial;
  std::optional<std::int64_t> revokedMs;
  /// The certificate a renewal replaced (empty when none), accepted until previousCertUntilMs.
  std::string previousCertSerial{};
  std::optional<std::int64_t> previousCertUntilMs{};
};

/// Whether a client certificate with `serialHex` may speak for an agent at `nowMs`: its
/// current certificate, or the one the last renewal replaced before `previousUntilMs`.
inline bool acceptsCertificate(std::string_view currentSerial, std::string_view previousSerial,
                               std::optional<std::int64_t> previousUntilMs,
                               std::string_view serialHex, std::int64_t nowMs) {
  if (serialHex == currentSerial) return true;
  return !previousSerial.empty() && serialHex == previousSerial && previousUntilMs &&
         nowMs < *previousUntilMs;
}

/// A renewed agent certificate (POST /v1/certificate, docs/protocol.md).
struct CertificateRenewal {
  std::string agentId;
  std::string requesterSerial;  // the certificate the request came with
  std::string newSerial;
  std::int64_t expiresMs = 0;  // the new certificate's notAfter
  std::int64_t nowMs = 0;
  std::int64_t graceMs = 0;  // how long the replaced certificate stays accepted
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
  /// When the watchdog expects the next heartbeat, on the home's clock (tickets.md).
  std::optional<std::int64_t> heartbeatDueHomeMs;
  /// The last heartbeat's sent_ms minus its arrival; a warning when beyond the threshold.
  std::optional<std::int64_t> clockSkewMs;
  std::string clockWarning;
  std::int64_t envelopes = 0;
  std::optional<std::int64_t> certExpiresMs;  // the current certificate's notAfter
  std::optional<std::int64_t> certRenewedMs;  // the last renewal, if any
};

/// An array an agent should report (`pass-home onboard`); the watchdog and the heartbeat
/// check that it does.
struct ExpectedArray {
  std::string family{};  // collector family: hitachi_svp, hitachi_df, hpe_3par, nimble
  std::string serial{};
  std::string model{};
  std::string name{};
  std::int64_t sinceMs = 0;
  std::optional<std::int64_t> lastReportedMs{};
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
  std::optional<std::string> kind{};  // alert | recovery
  std::optional<std::string> component{};
  std::optional<std::string> text{};
  std::string payload;  // the event's JSON object
};

/// An opened, validated envelope ready to be stored.
struct EnvelopeRecord {
  std::string agentId;  // UUID text, lower case
  std::uint64_t seq = 0;
  std::int64_t createdMs = 0;
  std::int64_t receivedMs = 0;
  std::string type;                        // heartbeat | test | report
  std::uint64_t size = 0;                  // envelope bytes on the wire
  std::string payload;                     // the decrypted JSON payload
  std::optional<std::int64_t> nextDueMs;   // heartbeat only
  std::optional<std::int64_t> intervalMs;  // heartbeat only: the interval the agent is set to
  std::vector<EventRecord> events;         // report only
  std::optional<std::string> arrayModel;   // report only: the report's "array" object
  std::optional<std::string> arrayName;
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

/// Where the database is: an SQLite file, or a PostgreSQL server (docs/scale-out.md).
struct StoreLocation {
  std::filesystem::path sqliteFile{};
  /// postgresql://user@host:port/database; the password never in it.
  std::string postgresUrl{};
  /// The password's file (its first line); empty: none (trust, peer, or ~/.pgpass).
  std::filesystem::path passwordFile{};
  /// The file or the URL, for messages.
  std::string name() const { return postgresUrl.empty() ? sqliteFile.string() : postgresUrl; }
};

class Store {
 public:
  enum class Mode { kOpenExisting, kCreate };

  /// Opens (or creates) the database and migrates it to its backend's latest schema version.
  /// Fails with "not_initialized" when kOpenExisting finds no SQLite file, "store" on database
  /// errors, "store.connect" when PostgreSQL is not reachable, and "store.version" when the
  /// database was written by a newer pass-home.
  static Result<Store> open(const StoreLocation& where, Mode mode = Mode::kOpenExisting);
  /// The SQLite file `file`.
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
  /// Records a renewed certificate: it becomes the agent's current one. When the request came
  /// with the current certificate, that one becomes the previous; when it came with the
  /// previous one (the agent never got an earlier renewal's answer), the previous stays. Either
  /// way the previous is accepted until now + graceMs. Fails with "certificate_mismatch" when
  /// the agent is unknown or revoked, or the requester's certificate is neither its current one
  /// nor its previous one within the grace period (checked in the same statement).
  Status renewCertificate(const CertificateRenewal& renewal);
  /// Marks the agent revoked (the first revocation time is kept). Fails with "unknown_agent".
  Status revokeAgent(std::string_view agentId, std::int64_t nowMs);
  Result<std::vector<AgentSummary>> agents();
  /// The ids of the revoked agents, sorted; a running server polls it (RevokedAgents).
  Result<std::vector<std::string>> revokedAgents();
  /// The arrays `agentId` should report, as `pass-home onboard` last set them.
  Result<std::vector<ExpectedArray>> expectedArrays(std::string_view agentId);
  /// Replaces the agent's expected arrays in one transaction: new ones start at `nowMs`, kept
  /// ones keep their dates, absent ones are dropped. Fails with "unknown_agent".
  Status setExpectedArrays(std::string_view agentId, std::span<const ExpectedArray> arrays,
                           std::int64_t nowMs);
  /// Stored envelopes in (agent, seq) order, optionally of one agent only.
  Result<std::vector<StoredEnvelope>> envelopes(const std::optional<std::string>& agentId);
  /// Stored events in arrival order, optionally of one array (serial).
  Result<std::vector<StoredEvent>> events(const std::optional<std::string>& array);

  /// Stores a batch in one transaction, answered after its COMMIT. A record whose
  /// (agent, seq) is already stored — also earlier in the same batch, or by another home on
  /// the same PostgreSQL database — is a duplicate and changes nothing. Results are in batch
  /// order. On error nothing of the batch is stored.
  Result<std::vector<CommitResult>> commit(std::span<const EnvelopeRecord* const> batch);

  // --- tickets, notifications, silences (docs/tickets.md) ----------------------------------

  /// From now on commit() runs every new event and heartbeat through `policy`: tickets, their
  /// audit trail and outbox rows are written in the same transaction as the envelope.
  void setPolicy(std::shared_ptr<const Policy> policy);
  /// Where commit() logs what its caller does not see: a batch run again after it lost a race
  /// to another home (store.retry warnings, PostgreSQL). Without one they are not logged.
  void setLogger(Logger& log);
  /// Outbox rows this connection wrote since the last call (the outbox worker's wake-up).
  std::int64_t takeEnqueued();

  Result<std::vector<TicketRow>> tickets(const TicketFilter& filter);
  Result<std::optional<TicketRow>> ticket(std::int64_t id);
  Result<std::vector<TicketLogRow>> ticketLog(std::int64_t id);
  /// Outbox rows, of one ticket or all, oldest first (outboxQueue().rows()).
  Result<std::vector<OutboxRow>> outbox(std::optional<std::int64_t> ticketId);
  /// A person acknowledges, resolves or reopens a ticket (needs a policy). Fails with
  /// "ticket.unknown" or "ticket.state" (e.g. acknowledging a resolved ticket).
  Result<TicketRow> changeTicket(std::int64_t id, TicketAction action, std::string_view who,
                                 std::string_view note, std::int64_t nowMs);
  /// One watchdog pass at `nowMs` (needs a policy): missing heartbeats, silent sites,
  /// escalations, storm summaries. `receivingSinceMs`: when this home began receiving again
  /// (the server's start, or its last clock jump); an agent is then called missing (and a site
  /// silent) only once it has also had its grace counted from that moment, so that time the
  /// home was not listening never counts against the agents (tickets.md). Without it (one pass
  /// of `pass-home watchdog`) nothing is held.
  Result<WatchdogReport> watchdog(std::int64_t nowMs,
                                  std::optional<std::int64_t> receivingSinceMs = std::nullopt);

  /// Fails with "silence.invalid" when ends <= starts or no field narrows it.
  Result<std::int64_t> addSilence(const SilenceRow& silence);
  /// Silences not removed and not yet ended at `nowMs` (all when `all`).
  Result<std::vector<SilenceRow>> silences(std::int64_t nowMs, bool all);
  /// Fails with "silence.unknown".
  Status removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs);

  /// The outbox queue on this connection (home/src/store/outbox_queue.hpp): the outbox worker
  /// claims and finishes its rows there.
  OutboxQueue& outboxQueue();

  /// A backend (home/src/store/store_impl.hpp).
  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pass::home
