// The home's HPKE keys: the current one and the retired ones, rotation and timed deletion.

#include "pass/home/hpke_keys.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/iso_time.hpp"
#include "platform/fs.hpp"
#include "platform/lock.hpp"

namespace pass::home {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr std::string_view kLockFile = "hpke-keys.lock";
constexpr std::int64_t kPruneRetryMs = 60'000;

Error bad(const fs::path& file, std::string_view what) {
  return Error{"hpke_keys", fmt::format("{}: {}", platform::displayPath(file), what)};
}

Json optionalMs(const std::optional<std::int64_t>& v) { return v ? Json(*v) : Json(nullptr); }

Result<std::optional<std::int64_t>> msField(const fs::path& file, const Json& entry,
                                            std::size_t index, const char* name) {
  auto it = entry.find(name);
  if (it == entry.end() || it->is_null()) return std::optional<std::int64_t>();
  if (!it->is_number_integer()) {
    return std::unexpected(
        bad(file, fmt::format("keys[{}].{} is not milliseconds since 1970", index, name)));
  }
  return std::optional<std::int64_t>(it->get<std::int64_t>());
}

Result<HpkeKeySet> parseKeys(const fs::path& file, const std::string& text) {
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("keys") || !j["keys"].is_array()) {
    return std::unexpected(bad(file, "not a JSON object with a \"keys\" array"));
  }
  HpkeKeySet set;
  const auto& keys = j["keys"];
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto& entry = keys[i];
    auto field = [&](const char* name) -> std::string {
      if (!entry.is_object() || !entry.contains(name) || !entry[name].is_string()) return {};
      return entry[name].get<std::string>();
    };
    auto raw = fromHex(field("private"));
    if (!raw || raw->size() != 32) {
      return std::unexpected(bad(file, fmt::format("keys[{}].private is not 64 hex digits", i)));
    }
    auto key = X25519Key::fromRawPrivate(*raw);
    secureZero(*raw);
    if (!key)
      return std::unexpected(
          bad(file, fmt::format("keys[{}].private: {}", i, key.error().message)));
    HpkeKey k{hpkeKeyId(*key), std::move(*key), {}, {}};
    if (field("key_id") != toHex(k.id)) {
      return std::unexpected(
          bad(file, fmt::format("keys[{}].key_id is not the id of its key ({})", i, toHex(k.id))));
    }
    auto created = msField(file, entry, i, "created_ms");
    if (!created) return std::unexpected(created.error());
    auto retired = msField(file, entry, i, "retired_ms");
    if (!retired) return std::unexpected(retired.error());
    k.createdMs = *created;
    k.retiredMs = *retired;
    bool last = i + 1 == keys.size();
    if (last == k.retiredMs.has_value()) {
      return std::unexpected(bad(
          file, fmt::format("keys[{}]: only the last key, the current one, has no retired_ms", i)));
    }
    set.keys.push_back(std::move(k));
  }
  if (set.keys.empty()) return std::unexpected(bad(file, "holds no key"));
  return set;
}

std::string renderKeys(const HpkeKeySet& set) {
  Json keys = Json::array();
  for (const auto& k : set.keys) {
    auto raw = k.key.rawPrivate();
    keys.push_back({{"key_id", toHex(k.id)},
                    {"public", toHex(k.key.rawPublic())},
                    {"private", toHex(raw)},
                    {"created_ms", optionalMs(k.createdMs)},
                    {"retired_ms", optionalMs(k.retiredMs)}});
    secureZero(raw);
  }
  return Json{{"keys", std::move(keys)}}.dump(2) + "\n";
}

/// Writes the set: hpke-keys.json first (it holds every private key), then home-hpke.pub, then
/// the pre-rotation home-hpke.key goes, as its key now lives in hpke-keys.json (or was deleted).
Status saveKeys(const StatePaths& paths, const HpkeKeySet& set) {
  if (auto written = platform::writeFileAtomic(paths.hpkeKeys(), renderKeys(set), true); !written)
    return written;
  if (auto written = platform::writeFileAtomic(paths.hpkePub(), set.current().key.publicPem());
      !written)
    return written;
  std::error_code ec;
  if (fs::remove(paths.hpkeKey(), ec)) return platform::syncDirectory(paths.dir);
  if (ec) {
    return fail("io", fmt::format("cannot delete {}: {}", platform::displayPath(paths.hpkeKey()),
                                  ec.message()));
  }
  return {};
}

std::vector<KeyId> dropExpired(HpkeKeySet& set, std::int64_t nowMs, std::int64_t keepMs) {
  std::vector<KeyId> gone;
  std::erase_if(set.keys, [&](const HpkeKey& k) {
    bool expired = k.retiredMs && nowMs - *k.retiredMs > keepMs;
    if (expired) gone.push_back(k.id);
    return expired;
  });
  return gone;
}

Result<platform::FileLock> lockKeys(const StatePaths& paths) {
  auto lock = platform::FileLock::tryAcquire(paths.dir / kLockFile);
  if (!lock && lock.error().code == "locked") {
    return fail("locked", fmt::format("{}: another pass-home is changing the HPKE keys; try again",
                                      platform::displayPath(paths.dir / kLockFile)));
  }
  return lock;
}

// Identifies one version of the file: an atomic rename gives it a new inode.
std::string fileStamp(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "absent";
  return fmt::format("{}:{}.{}:{}", st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size);
}

std::string when(const std::optional<std::int64_t>& ms) { return ms ? isoUtc(*ms) : "-"; }

}  // namespace

const HpkeKey* HpkeKeySet::find(const KeyId& id) const {
  auto it = std::find_if(keys.begin(), keys.end(), [&](const HpkeKey& k) { return k.id == id; });
  return it == keys.end() ? nullptr : &*it;
}

Result<HpkeKeySet> loadHpkeKeys(const StatePaths& paths) {
  auto file = paths.hpkeKeys();
  auto text = platform::readFile(file);
  if (text) return parseKeys(file, *text);
  if (text.error().code != "not_found") return std::unexpected(text.error());
  // A state from before rotation: its one key.
  auto key = X25519Key::loadPem(paths.hpkeKey().string());
  if (!key) return std::unexpected(key.error());
  if (!key->hasPrivate()) {
    return std::unexpected(bad(paths.hpkeKey(), "holds no private key"));
  }
  HpkeKeySet set;
  set.keys.push_back(HpkeKey{hpkeKeyId(*key), std::move(*key), {}, {}});
  return set;
}

Result<Rotation> rotateHpkeKey(const StatePaths& paths, std::int64_t nowMs, std::int64_t keepMs) {
  auto lock = lockKeys(paths);
  if (!lock) return std::unexpected(lock.error());
  auto set = loadHpkeKeys(paths);
  if (!set) return std::unexpected(set.error());
  set->keys.back().retiredMs = nowMs;
  auto deleted = dropExpired(*set, nowMs, keepMs);
  auto key = X25519Key::generate();
  set->keys.push_back(HpkeKey{hpkeKeyId(key), std::move(key), nowMs, {}});
  if (auto saved = saveKeys(paths, *set); !saved) return std::unexpected(saved.error());
  return Rotation{set->current(), std::move(deleted)};
}

Result<std::vector<KeyId>> pruneHpkeKeys(const StatePaths& paths, std::int64_t nowMs,
                                         std::int64_t keepMs) {
  auto lock = lockKeys(paths);
  if (!lock) return std::unexpected(lock.error());
  auto set = loadHpkeKeys(paths);
  if (!set) return std::unexpected(set.error());
  auto gone = dropExpired(*set, nowMs, keepMs);
  if (gone.empty()) return gone;
  if (auto saved = saveKeys(paths, *set); !saved) return std::unexpected(saved.error());
  return gone;
}

Result<std::string> listHpkeKeys(const StatePaths& paths, std::int64_t keepMs, bool json) {
  auto set = loadHpkeKeys(paths);
  if (!set) return std::unexpected(set.error());
  auto deleteAt = [&](const HpkeKey& k) -> std::optional<std::int64_t> {
    if (!k.retiredMs) return std::nullopt;
    return *k.retiredMs + keepMs;
  };
  if (json) {
    Json out = Json::array();
    for (const auto& k : set->keys) {
      out.push_back({{"key_id", toHex(k.id)},
                     {"public", toHex(k.key.rawPublic())},
                     {"current", !k.retiredMs},
                     {"created_ms", optionalMs(k.createdMs)},
                     {"retired_ms", optionalMs(k.retiredMs)},
                     {"delete_after_ms", optionalMs(deleteAt(k))}});
    }
    return out.dump(2) + "\n";
  }
  std::string out = fmt::format("{:<16}  {:<7}  {:<20}  {:<20}  {}\n", "KEY ID", "STATE", "CREATED",
                                "RETIRED", "DELETED AFTER");
  for (const auto& k : set->keys) {
    out += fmt::format("{:<16}  {:<7}  {:<20}  {:<20}  {}\n", toHex(k.id),
                       k.retiredMs ? "retired" : "current", when(k.createdMs), when(k.retiredMs),
                       when(deleteAt(k)));
  }
  return out;
}

Result<std::unique_ptr<HpkeKeyRing>> HpkeKeyRing::open(const StatePaths& paths, std::int64_t keepMs,
                                                       std::int64_t nowMs) {
  auto ring = std::unique_ptr<HpkeKeyRing>(new HpkeKeyRing());
  ring->paths_ = paths;
  ring->keepMs_ = keepMs;
  auto gone = pruneHpkeKeys(paths, nowMs, keepMs);
  if (!gone && gone.error().code != "locked") return std::unexpected(gone.error());
  if (gone) {
    for (const auto& id : *gone) ring->notes_.push_back(fmt::format("deleted {}", toHex(id)));
  }
  ring->fileStamp_ = fileStamp(paths.hpkeKeys());
  auto set = loadHpkeKeys(paths);
  if (!set) return std::unexpected(set.error());
  ring->set_ = std::make_shared<const HpkeKeySet>(std::move(*set));
  return ring;
}

HpkeKeyRing::HpkeKeyRing(X25519Key key) {
  HpkeKeySet set;
  set.keys.push_back(HpkeKey{hpkeKeyId(key), std::move(key), {}, {}});
  set_ = std::make_shared<const HpkeKeySet>(std::move(set));
}

std::shared_ptr<const HpkeKeySet> HpkeKeyRing::get(std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  if (paths_) updateLocked(nowMs);
  return set_;
}

void HpkeKeyRing::updateLocked(std::int64_t nowMs) {
  bool due = std::any_of(set_->keys.begin(), set_->keys.end(), [&](const HpkeKey& k) {
    return k.retiredMs && nowMs - *k.retiredMs > keepMs_;
  });
  // A prune that failed (a full disk) is tried again a minute later, not for every envelope.
  if (due &&
      (!pruneTriedMs_ || nowMs - *pruneTriedMs_ >= kPruneRetryMs || nowMs < *pruneTriedMs_)) {
    pruneTriedMs_ = nowMs;
    auto gone = pruneHpkeKeys(*paths_, nowMs, keepMs_);
    if (!gone) {
      // "locked": rotate-hpke-key is at work and prunes itself.
      if (gone.error().code != "locked") notes_.push_back("not pruned: " + gone.error().message);
    } else {
      for (const auto& id : *gone) notes_.push_back(fmt::format("deleted {}", toHex(id)));
    }
  }
  auto stamp = fileStamp(paths_->hpkeKeys());
  if (stamp == fileStamp_) return;
  // Looked at once per version of the file: a damaged one is reported once, not per envelope.
  fileStamp_ = stamp;
  auto set = loadHpkeKeys(*paths_);
  if (!set) {
    notes_.push_back("not reloaded, still using the keys loaded before: " + set.error().message);
    return;
  }
  if (set->current().id != set_->current().id) {
    notes_.push_back(fmt::format("current {}", toHex(set->current().id)));
  }
  pruneTriedMs_.reset();
  set_ = std::make_shared<const HpkeKeySet>(std::move(*set));
}

std::vector<std::string> HpkeKeyRing::takeNotes() {
  std::lock_guard lock(mutex_);
  return std::exchange(notes_, {});
}

}  // namespace pass::home
