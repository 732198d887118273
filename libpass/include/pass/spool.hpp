#pragma once
/// The agent's spool: a durable FIFO of sealed envelopes in a directory. Each envelope is one
/// file "<seq:020>.<kind>.env", written to a temp file, fsynced, renamed and the directory
/// fsynced. Bounded by count and bytes: when full, the oldest heartbeats go first; alerts are
/// never dropped (push refuses with "spool_full" and the caller reports it).
///
/// Beside an envelope may lie its copy "<seq:020>.<kind>.copy": the same payload sealed to the
/// agent itself, so that the agent can seal it again with a new seq and time when the home
/// refuses the envelope for the agent's clock. Such an envelope is "held": its copy moves to
/// held/ until the clock agrees again (docs/agent.md).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/result.hpp"

namespace pass {

enum class EnvelopeKind { kReport, kHeartbeat, kTest };
std::string_view toString(EnvelopeKind kind);

struct SpoolLimits {
  std::uint64_t maxEnvelopes = 10000;
  std::uint64_t maxBytes = 64ull * 1024 * 1024;
};

struct SpoolEntry {
  std::uint64_t seq = 0;
  EnvelopeKind kind = EnvelopeKind::kReport;
  std::uint64_t size = 0;  // the envelope's and its copy's bytes
  std::filesystem::path path;
  std::filesystem::path copy;  // empty when the envelope has no copy
};

/// A copy in held/: an envelope the home refused for the agent's clock, waiting to be sealed
/// again.
struct HeldEntry {
  std::uint64_t seq = 0;  // the refused envelope's
  EnvelopeKind kind = EnvelopeKind::kReport;
  std::string reason;  // the home's answer
  std::filesystem::path copy;
};

struct QuarantineEntry {
  std::uint64_t seq = 0;  // 0 when the file's name was not a spool name
  EnvelopeKind kind = EnvelopeKind::kReport;
  std::string reason;  // first line of the .reason file
  std::string file;    // the file's name in quarantine/
};

class Spool {
 public:
  /// Opens the spool in `dir` (created if missing). Removes stray temp files left by a crash and
  /// copies without their envelope (a push or remove that did not complete), and envelopes whose
  /// copy is already held (a hold that did not complete); moves any file that is not a whole
  /// envelope to quarantine (reason "corrupt: <error>"), as well as files whose name is not a
  /// spool name and second files for one seq.
  static Result<Spool> open(const std::filesystem::path& dir, SpoolLimits limits);

  /// Adds an envelope durably, with its copy when `copy` is not empty (the copy first). Returns the
  /// sequence numbers of heartbeats dropped to make room. Fails with "spool_full" when there is no
  /// room even after dropping every heartbeat (then nothing is dropped), "duplicate_seq" when `seq`
  /// is already spooled, "bad_envelope" when parseEnvelopeHeader refuses `envelope`. On any error
  /// the envelope was not added (heartbeats already dropped for it, before a write error, stay
  /// dropped).
  Result<std::vector<std::uint64_t>> push(std::uint64_t seq, EnvelopeKind kind, ByteView envelope,
                                          ByteView copy = {});

  /// Entries oldest first (by seq).
  const std::vector<SpoolEntry>& entries() const { return entries_; }
  Result<Bytes> read(const SpoolEntry& entry) const;
  /// Removes a delivered envelope and its copy durably. "not_found" when `seq` is not spooled.
  Status remove(std::uint64_t seq);
  /// Moves an envelope to quarantine/ with a reason file ("<name>.reason", one line).
  /// "not_found" when `seq` is not spooled.
  Status quarantine(std::uint64_t seq, std::string_view reason);
  /// Quarantined envelopes sorted by seq (unrecognised names first, by name).
  std::vector<QuarantineEntry> quarantined() const;
  /// Moves an envelope's copy to held/ with a reason file and removes the envelope. "not_found"
  /// when `seq` is not spooled, "no_copy" when it has no copy (then nothing changed).
  Status hold(std::uint64_t seq, std::string_view reason);
  /// The held copies, oldest first.
  std::vector<HeldEntry> held() const;
  /// Deletes a held copy and its reason, once it was sealed again and spooled.
  Status release(const HeldEntry& entry);

  std::uint64_t depth() const { return entries_.size(); }
  std::uint64_t bytes() const { return bytes_; }

 private:
  /// At open: attaches each copy to its envelope; removes lone copies and envelopes held already.
  Status matchCopies(const std::vector<std::filesystem::path>& copies);

  std::filesystem::path dir_;
  SpoolLimits limits_;
  std::vector<SpoolEntry> entries_;
  std::uint64_t bytes_ = 0;
};

}  // namespace pass
