#pragma once
/// The keys every home of a cluster shares (docs/scale-out.md, "Every home has the same keys"):
/// the CA, the server certificate's key, the current HPKE key, the admin token and the
/// acknowledgement key. The database records the SHA-256 of each (never the key) from the first
/// home that serves; every home compares its own before it listens, and `pass-home init --join`
/// makes a new home's state as a copy of a running home's.

#include <cstdint>

#include "pass/home/hpke_keys.hpp"
#include "pass/home/pki.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// Creates STATE/admin.token and STATE/ack.key when absent (as serve would), so that a state can
/// be copied to another home before its first serve.
Status createSharedSecrets(const StatePaths& paths);

/// On PostgreSQL: records this state's fingerprints where the database has none yet (the first
/// home), then compares them with the recorded ones. Fails with "cluster_keys" naming each key
/// that differs, the files that hold it, and what to do. On SQLite (one home) nothing to check.
/// Creates admin.token and ack.key first when absent.
Status checkClusterKeys(const StatePaths& paths);

/// `pass-home rotate-hpke-key`: on PostgreSQL, checks the state's keys first (checkClusterKeys),
/// rotates (rotateHpkeKey), then records the new current key as the cluster's, so that the
/// other homes are refused at serve until they hold a copy of the new key ring.
Result<Rotation> rotateClusterHpkeKey(const StatePaths& paths, std::int64_t nowMs,
                                      std::int64_t keepMs);

/// `pass-home init --state NEW --join EXISTING`: copies paths.clusterFiles() of `existing` (a
/// running home's state directory, copied to this machine) into `state` (private files stay
/// 0600), then checks them against the database's fingerprints (checkClusterKeys); on a
/// mismatch the copies are deleted again. Refusals, exit 2: "join.sqlite" (EXISTING keeps its
/// store in SQLite), "join.not_a_home", "join.incomplete" (a file a home needs is missing),
/// "already_initialized" (NEW holds a home).
Status joinCluster(const StatePaths& state, const StatePaths& existing);

}  // namespace pass::home
