#pragma once
// home.xml's <retention>: how long envelopes and events are kept (docs/scale-out.md,
// "Retention"). Declared in homeSchema() with the rest of home.xml (config/home_config.cpp).

#include <cstdint>
#include <filesystem>

#include "pass/result.hpp"

namespace pass::home {

/// The shortest envelope retention home.xml accepts: the ingest's replay window (an envelope
/// created more than 30 days ago is refused as stale) plus a day, so that the key of a pruned
/// envelope is never needed to refuse its replay.
inline constexpr std::uint64_t kMinEnvelopeRetentionDays = 31;

/// What is pruned (ClusterStore::prune); an age of 0 keeps for good.
struct Retention {
  std::int64_t envelopesMs = 0;
  std::int64_t eventsMs = 0;
  std::int64_t intervalMs = 60LL * 60 * 1000;

  bool any() const { return envelopesMs > 0 || eventsMs > 0; }
};

/// STATE/home.xml's <retention>; the defaults (nothing pruned) without the file or the element.
/// Errors as loadHomeConfig's, naming file:line.
Result<Retention> loadRetention(const std::filesystem::path& stateDir);

}  // namespace pass::home
