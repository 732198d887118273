// The keys every home of a cluster shares (pass/home/cluster_keys.hpp): their fingerprints,
// the check at serve, the HPKE rotation that records its new key, and `init --join`.

#include "pass/home/cluster_keys.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pass/crypto.hpp"
#include "pass/home/admin_api.hpp"
#include "pass/home/state_store.hpp"
#include "pass/home/tickets.hpp"
#include "platform/fs.hpp"
#include "store/cluster_store.hpp"

namespace pass::home {
namespace {

namespace fs = std::filesystem;

/// One row of cluster_keys: what it fingerprints, and the files a home copies to hold it.
struct SharedKey {
  std::string_view name;
  std::string_view what;
  std::vector<fs::path> (*files)(const StatePaths&);
};

constexpr std::string_view kHpke = "hpke";

const std::array<SharedKey, 5> kSharedKeys{{
    {"ca", "the CA certificate",
     [](const StatePaths& p) {
       return std::vector{p.caKey(), p.caCert()};
     }},
    {"server", "the server certificate's key",
     [](const StatePaths& p) {
       return std::vector{p.serverKey(), p.serverCert()};
     }},
    {kHpke, "the current HPKE key",
     [](const StatePaths& p) {
       return std::vector{p.hpkeKeys(), p.hpkeKey(), p.hpkePub()};
     }},
    {"admin-token", "the admin token",
     [](const StatePaths& p) { return std::vector{p.adminToken()}; }},
    {"ack-key", "the acknowledgement key",
     [](const StatePaths& p) { return std::vector{p.ackKey()}; }},
}};

std::string fingerprint(ByteView data) { return toHex(sha256(data)); }

std::string hpkeFingerprint(const HpkeKey& key) { return fingerprint(key.key.rawPublic()); }

/// This state's fingerprint of each of kSharedKeys; admin.token and ack.key are made when
/// absent, as serve would.
Result<KeyFingerprints> fingerprints(const StatePaths& paths) {
  auto ca = readCertificateDer(paths.caCert());
  if (!ca) return std::unexpected(ca.error());
  auto server = readCertificateDer(paths.serverCert());
  if (!server) return std::unexpected(server.error());
  auto hpke = loadHpkeKeys(paths);
  if (!hpke) return std::unexpected(hpke.error());
  auto token = loadAdminToken(paths.dir);
  if (!token) return std::unexpected(token.error());
  auto ack = loadAckKey(paths.dir);
  if (!ack) return std::unexpected(ack.error());
  return KeyFingerprints{{"ca", fingerprint(ca->certificate)},
                         {"server", fingerprint(server->publicKey)},
                         {std::string(kHpke), hpkeFingerprint(hpke->current())},
                         {"admin-token", fingerprint(asBytes(*token))},
                         {"ack-key", fingerprint(*ack)}};
}

/// Fails with "cluster_keys" when `mine` differs from `recorded` in any key.
Status compare(const StatePaths& paths, const KeyFingerprints& mine,
               const KeyFingerprints& recorded, const std::string& database) {
  std::vector<std::string> differ;
  std::vector<std::string> files;
  for (const SharedKey& key : kSharedKeys) {
    auto have = mine.find(key.name);
    auto want = recorded.find(key.name);
    if (have == mine.end() || want == recorded.end() || have->second == want->second) continue;
    differ.push_back(std::string(key.what));
    for (const auto& file : key.files(paths)) files.push_back(file.filename().string());
  }
  if (differ.empty()) return {};
  return fail("cluster_keys",
              fmt::format("{}: keys differ from those the database {} records for every home "
                          "of the cluster (the first home that served recorded them): {}. Copy "
                          "{} from a home of the cluster into {} (after `pass-home "
                          "rotate-hpke-key` on another home, its HPKE key files), or make this "
                          "state anew with `pass-home init --state NEW --join EXISTING_STATE` "
                          "(docs/scale-out.md, \"Adding and removing a home\")",
                          platform::displayPath(paths.dir), database, fmt::join(differ, ", "),
                          fmt::join(files, ", "), platform::displayPath(paths.dir)));
}

/// The state's PostgreSQL store, or nullopt on SQLite.
Result<std::optional<StoreLocation>> postgresLocation(const StatePaths& paths) {
  auto where = stateStoreLocation(paths);
  if (!where) return std::unexpected(where.error());
  if (where->postgresUrl.empty()) return std::nullopt;
  return *where;
}

/// Records and compares on the open `store`.
Status checkOn(ClusterStore& store, const StatePaths& paths, const std::string& database) {
  auto mine = fingerprints(paths);
  if (!mine) return std::unexpected(mine.error());
  auto recorded = store.recordKeys(*mine);
  if (!recorded) return std::unexpected(recorded.error());
  return compare(paths, *mine, *recorded, database);
}

std::unexpected<Error> refuseJoin(std::string_view what, std::string message) {
  return fail(fmt::format("join.{}", what), std::move(message));
}

bool present(const fs::path& file) {
  std::error_code ec;
  return fs::exists(file, ec);
}

/// Copies `from` to `to` atomically; private (0600) unless `from` is readable by others.
Status copyStateFile(const fs::path& from, const fs::path& to) {
  auto text = platform::readFile(from);
  if (!text) return std::unexpected(text.error());
  std::error_code ec;
  const auto perms = fs::status(from, ec).permissions();
  const bool shared =
      !ec && (perms & (fs::perms::group_read | fs::perms::others_read)) != fs::perms::none;
  return platform::writeFileAtomic(to, *text, /*privateFile=*/!shared);
}

void removeClusterFiles(const StatePaths& paths) {
  std::error_code ec;
  for (const auto& file : paths.clusterFiles()) fs::remove(file, ec);
}

}  // namespace

Status createSharedSecrets(const StatePaths& paths) {
  if (auto token = loadAdminToken(paths.dir); !token) return std::unexpected(token.error());
  if (auto ack = loadAckKey(paths.dir); !ack) return std::unexpected(ack.error());
  return {};
}

Status checkClusterKeys(const StatePaths& paths) {
  auto where = postgresLocation(paths);
  if (!where) return std::unexpected(where.error());
  if (!*where) return {};
  auto store = ClusterStore::open(**where);
  if (!store) return std::unexpected(store.error());
  return checkOn(*store, paths, (*where)->postgresUrl);
}

Result<Rotation> rotateClusterHpkeKey(const StatePaths& paths, std::int64_t nowMs,
                                      std::int64_t keepMs) {
  auto where = postgresLocation(paths);
  if (!where) return std::unexpected(where.error());
  if (!*where) return rotateHpkeKey(paths, nowMs, keepMs);
  auto store = ClusterStore::open(**where);
  if (!store) return std::unexpected(store.error());
  // A state that is not the cluster's must not make its key the cluster's.
  if (auto same = checkOn(*store, paths, (*where)->postgresUrl); !same) {
    return std::unexpected(same.error());
  }
  auto rotated = rotateHpkeKey(paths, nowMs, keepMs);
  if (!rotated) return rotated;
  if (auto recorded = store->replaceKey(kHpke, hpkeFingerprint(rotated->current)); !recorded) {
    return fail(recorded.error().code,
                fmt::format("{}: the new HPKE key is in {} but the database still records the "
                            "old one: {}",
                            (*where)->postgresUrl, platform::displayPath(paths.dir),
                            recorded.error().message));
  }
  return rotated;
}

Status joinCluster(const StatePaths& state, const StatePaths& existing) {
  const std::string from = platform::displayPath(existing.dir);
  if (!present(existing.caKey())) {
    return refuseJoin("not_a_home",
                      fmt::format("{}: holds no pass-home state (no ca.key); give the state "
                                  "directory of a home of the cluster",
                                  from));
  }
  auto where = stateStoreLocation(existing);
  if (!where) return std::unexpected(where.error());
  if (where->postgresUrl.empty()) {
    return refuseJoin("sqlite",
                      fmt::format("{}: keeps its store in SQLite ({}), which serves one home; a "
                                  "cluster shares a PostgreSQL database: move it there first "
                                  "with `pass-home migrate --state {} --to postgresql://...` "
                                  "(docs/scale-out.md)",
                                  from, existing.sqliteDatabase().filename().string(), from));
  }
  std::vector<std::string> missing;
  for (const auto& file :
       {existing.caKey(), existing.caCert(), existing.serverKey(), existing.serverCert(),
        existing.hpkePub(), existing.adminToken(), existing.ackKey(), existing.databaseConfig()}) {
    if (!present(file)) missing.push_back(file.filename().string());
  }
  if (!present(existing.hpkeKeys()) && !present(existing.hpkeKey())) {
    missing.push_back(fmt::format("{} or {}", existing.hpkeKeys().filename().string(),
                                  existing.hpkeKey().filename().string()));
  }
  if (!where->passwordFile.empty() && !present(where->passwordFile)) {
    missing.push_back(platform::displayPath(where->passwordFile));
  }
  if (!missing.empty()) {
    return refuseJoin("incomplete",
                      fmt::format("{}: lacks {}; copy the whole state directory of a running "
                                  "home (admin.token and ack.key appear at its first serve)",
                                  from, fmt::join(missing, ", ")));
  }
  if (auto empty = checkHoldsNoHome(state); !empty) return empty;
  std::error_code ec;
  fs::create_directories(state.dir, ec);
  if (ec) {
    return fail(
        "io", fmt::format("{}: cannot create: {}", platform::displayPath(state.dir), ec.message()));
  }
  // The state holds the CA key: keep others out of the directory too.
  fs::permissions(state.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  const auto sources = existing.clusterFiles();
  const auto targets = state.clusterFiles();
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (!present(sources[i])) continue;
    if (auto copied = copyStateFile(sources[i], targets[i]); !copied) {
      removeClusterFiles(state);
      return copied;
    }
  }
  // Opening the store brings the database's schema up to this pass-home's.
  if (auto store = openStateStore(state); !store) {
    removeClusterFiles(state);
    return std::unexpected(store.error());
  }
  if (auto same = checkClusterKeys(state); !same) {
    removeClusterFiles(state);
    return same;
  }
  return {};
}

}  // namespace pass::home
