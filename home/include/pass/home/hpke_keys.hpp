#pragma once
/// The home's HPKE (X25519) key set: the current key, which agents seal to, and retired keys,
/// kept until no envelope sealed to them can still be inside the replay window
/// (docs/security.md, "Rotating the home's HPKE key").
///
/// STATE/hpke-keys.json (0600, written atomically) holds every key with its creation and
/// retirement time. A state made before rotation existed has only home-hpke.key: that is the
/// current key until the first `pass-home rotate-hpke-key` moves it into hpke-keys.json.
/// home-hpke.pub is always the current public key (enroll copies it into new bundles).

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/home/pki.hpp"
#include "pass/result.hpp"

namespace pass::home {

struct HpkeKey {
  KeyId id{};
  X25519Key key;
  std::optional<std::int64_t> createdMs;  // none for the key of a state made before rotation
  std::optional<std::int64_t> retiredMs;  // none for the current key
};

/// The key set as loaded: exactly one current key (the last one), retired keys before it.
struct HpkeKeySet {
  std::vector<HpkeKey> keys;
  const HpkeKey& current() const { return keys.back(); }
  const HpkeKey* find(const KeyId& id) const;
};

/// How long a retired key is kept: an envelope sealed to it just before its retirement is
/// accepted until `maxAgeMs` after its created_ms, which an agent clock `maxAheadMs` ahead puts
/// that much later.
inline std::int64_t retiredKeyKeepMs(std::int64_t maxAgeMs, std::int64_t maxAheadMs) {
  return maxAgeMs + maxAheadMs;
}

/// The default of retiredKeyKeepMs with the default replay window: 30 + 1 days.
inline constexpr std::int64_t kRetiredKeyKeepMs = 31LL * 24 * 3600 * 1000;

/// Reads the key set of a state directory. "hpke_keys" names the file and what is wrong.
Result<HpkeKeySet> loadHpkeKeys(const StatePaths& paths);

struct Rotation {
  HpkeKey current;
  std::vector<KeyId> deleted;  // retired keys past keepMs, destroyed by this rotation
};

/// `pass-home rotate-hpke-key`: retires the current key at `nowMs`, makes a new current one,
/// deletes retired keys whose retirement is more than `keepMs` ago, writes hpke-keys.json and
/// home-hpke.pub. "locked" while another process changes the key set.
Result<Rotation> rotateHpkeKey(const StatePaths& paths, std::int64_t nowMs, std::int64_t keepMs);

/// Deletes retired keys whose retirement is more than `keepMs` before `nowMs`; returns them.
/// "locked" while another process changes the key set.
Result<std::vector<KeyId>> pruneHpkeKeys(const StatePaths& paths, std::int64_t nowMs,
                                         std::int64_t keepMs);

/// `pass-home hpke-keys`: one line per key (id, created, retired, deleted after), or JSON.
Result<std::string> listHpkeKeys(const StatePaths& paths, std::int64_t keepMs, bool json);

/// The key set as `pass-home serve` uses it on many threads: reloaded when another process
/// (rotate-hpke-key) replaced hpke-keys.json, and pruned when a retired key's time is up.
class HpkeKeyRing {
 public:
  /// Loads the set and deletes what is past its time.
  static Result<std::unique_ptr<HpkeKeyRing>> open(const StatePaths& paths, std::int64_t keepMs,
                                                   std::int64_t nowMs);
  /// A fixed set of one key, read from no file (tests, tools).
  explicit HpkeKeyRing(X25519Key key);

  /// The set for one envelope received at `nowMs`: reloaded when the file changed (one stat),
  /// so that a rotation applies to the next envelope; pruned when a retired key's time is up.
  std::shared_ptr<const HpkeKeySet> get(std::int64_t nowMs);

  /// What the last reload or prune did that the server should log; cleared by reading it.
  std::vector<std::string> takeNotes();

 private:
  HpkeKeyRing() = default;
  void updateLocked(std::int64_t nowMs);

  std::optional<StatePaths> paths_;  // none: a fixed set
  std::int64_t keepMs_ = kRetiredKeyKeepMs;
  std::mutex mutex_;
  std::shared_ptr<const HpkeKeySet> set_;
  std::string fileStamp_;  // identity of the file last loaded (inode, mtime, size)
  std::optional<std::int64_t> pruneTriedMs_;
  std::vector<std::string> notes_;
};

}  // namespace pass::home
