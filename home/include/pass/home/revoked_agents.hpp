#pragma once
/// The revoked agents as the running server knows them: read from the store at start and again
/// on every poll, because `pass-home revoke` is another process writing to the store. The TLS
/// handshake of every connection asks contains(); the server closes the open connections of
/// the agents a poll found newly revoked (docs/security.md, Revocation).

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "pass/home/store.hpp"
#include "pass/result.hpp"

namespace pass::home {

class RevokedAgents {
 public:
  explicit RevokedAgents(StoreLocation database);

  /// Reads the revoked agents from the store; returns those that were not revoked at the
  /// previous refresh (every revoked agent on the first), sorted. "not_initialized" or
  /// "store" errors when the database cannot be read; the set is then left as it was. Call it
  /// from one thread at a time.
  Result<std::vector<std::string>> refresh();

  /// Whether `agentId` was revoked at the last refresh. Thread-safe.
  bool contains(const std::string& agentId) const;

 private:
  StoreLocation database_;
  std::optional<Store> store_;  // opened by the first refresh
  mutable std::mutex mutex_;
  std::unordered_set<std::string> revoked_;
};

}  // namespace pass::home
