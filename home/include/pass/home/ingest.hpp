#pragma once
/// The per-envelope checks of POST /v1/envelopes, free of any network code: framing, agent
/// identity and status, signature, HPKE open, time window, payload. The server calls
/// Ingest::check on its I/O threads and hands the result to the group committer.

#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/home/hpke_keys.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/store.hpp"

namespace pass::home {

/// A permanent refusal: HTTP status and the {"error": code, "detail": detail} body.
struct Refusal {
  unsigned status = 400;
  std::string code;
  std::string detail;
};

/// A validated payload (docs/protocol.md): a JSON object with "schema": 1 and a "type".
struct ParsedPayload {
  std::string type;
  std::optional<std::int64_t> nextDueMs;   // heartbeat
  std::optional<std::int64_t> intervalMs;  // heartbeat: its "interval_s", the agent's setting
  std::vector<EventRecord> events;         // report
  std::optional<std::string> arrayModel;   // report: "array"."model"
  std::optional<std::string> arrayName;    // report: "array"."name"
};

/// Validates a decrypted payload; the error is the "detail" of a 422 bad_payload.
std::expected<ParsedPayload, std::string> parsePayload(std::string_view json);

/// Reads agents' authentication rows through a small pool of read connections (one per
/// concurrent caller) and caches their parsed Ed25519 keys. Every lookup reads the committed
/// row, so a revocation by another process applies to the next lookup.
class AgentDirectory {
 public:
  explicit AgentDirectory(StoreLocation database);
  ~AgentDirectory();
  AgentDirectory(const AgentDirectory&) = delete;
  AgentDirectory& operator=(const AgentDirectory&) = delete;

  struct Entry {
    Ed25519Key signKey;
    std::string certSerial;
    bool revoked = false;
    /// The certificate a renewal replaced, accepted until previousCertUntilMs (grace period).
    std::string previousCertSerial{};
    std::optional<std::int64_t> previousCertUntilMs{};
    bool acceptsCertificate(std::string_view serialHex, std::int64_t nowMs) const {
      return home::acceptsCertificate(certSerial, previousCertSerial, previousCertUntilMs,
                                      serialHex, nowMs);
    }
  };
  /// nullopt for an unknown agent; "store" errors when the database cannot be read.
  Result<std::optional<Entry>> find(const std::string& agentId);

 private:
  StoreLocation database_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Store>> idle_;
  struct CachedKey {
    Bytes raw;
    Ed25519Key key;
  };
  std::unordered_map<std::string, CachedKey> keys_;
};

/// What one TLS connection remembers of its agent's row, so that a busy connection does not
/// read the database for every envelope. A new connection starts empty and always reads the
/// row: a revocation applies at once to new connections and within
/// WindowOptions::authRecheckMs to connections already open.
struct ConnectionAuth {
  std::string agentId;
  std::optional<AgentDirectory::Entry> entry;  // nullopt: not enrolled
  std::optional<std::int64_t> checkedMs;
};

struct WindowOptions {
  std::int64_t maxAgeMs = 30LL * 24 * 3600 * 1000;
  std::int64_t maxAheadMs = 24LL * 3600 * 1000;
  std::int64_t warnSkewMs = 5LL * 60 * 1000;
  std::int64_t authRecheckMs = 1000;
};

/// What check() found about an acceptable envelope, beyond the record itself.
struct Checked {
  EnvelopeRecord record;
  /// Set when created_ms is more than warnSkewMs ahead of the home clock.
  std::optional<std::int64_t> aheadMs;
  /// The key id the envelope was sealed to, and the home's current key when that differs: the
  /// answer announces it (docs/protocol.md, "home_key").
  KeyId sealedTo{};
  std::optional<HpkeKey> newHomeKey;
};

/// Context for a refusal log line.
struct RefusalContext {
  std::string agent;
  std::optional<std::uint64_t> seq;
};

class Ingest {
 public:
  /// `homeKey` is the home's only HPKE private key; `store` errors surface as Error (503).
  Ingest(AgentDirectory& agents, X25519Key homeKey, WindowOptions window);
  /// Opens envelopes sealed to any key `homeKeys` holds.
  Ingest(AgentDirectory& agents, std::shared_ptr<HpkeKeyRing> homeKeys, WindowOptions window);

  struct Outcome {
    /// Checked: store it; Refusal: answer 4xx; Error: the store could not be read (503).
    std::variant<Checked, Refusal, Error> result;
    RefusalContext context;
  };

  /// Runs every check on one envelope received from `peer` at `nowMs`, on a connection whose
  /// memory of the agent's row is `auth`.
  Outcome check(ByteView envelope, const PeerIdentity& peer, ConnectionAuth& auth,
                std::int64_t nowMs);

 private:
  Result<const std::optional<AgentDirectory::Entry>*> lookup(const std::string& agentId,
                                                             ConnectionAuth& auth,
                                                             std::int64_t nowMs);

  AgentDirectory& agents_;
  std::shared_ptr<HpkeKeyRing> homeKeys_;
  WindowOptions window_;
};

}  // namespace pass::home
