// `pass-home prune` (pass/home/prune.hpp).

#include "pass/home/prune.hpp"

#include <fmt/format.h>

#include "pass/home/log.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/state_store.hpp"
#include "store/cluster_store.hpp"

namespace pass::home {

Result<std::string> runPrune(const std::filesystem::path& state, std::int64_t nowMs, bool dryRun) {
  auto retention = loadRetention(state);
  if (!retention) return std::unexpected(retention.error());
  if (!retention->any()) {
    return fmt::format("{}: no <retention> ages: everything is kept, nothing to prune\n",
                       (state / "home.xml").string());
  }
  StatePaths paths(state);
  auto location = stateStoreLocation(paths);
  if (!location) return std::unexpected(location.error());
  if (auto opened = Store::open(*location, Store::Mode::kOpenExisting); !opened) {
    return std::unexpected(opened.error());  // not initialized, or migrates it
  }
  auto store = ClusterStore::open(*location);
  if (!store) return std::unexpected(store.error());
  auto pruned = store->prune(*retention, nowMs, dryRun);
  if (!pruned) return std::unexpected(pruned.error());
  auto age = [](std::int64_t ms) {
    return ms > 0 ? fmt::format("older than {} days", ms / (24LL * 3600 * 1000))
                  : std::string("kept for good");
  };
  return fmt::format(
      "{} at {}:\n  envelopes   {} ({})\n  heartbeats  {} (with the envelopes)\n  events      {} "
      "({})\nin {} batch(es), the longest {} ms\n",
      dryRun ? "would prune (dry run)" : "pruned", formatTimestamp(nowMs), pruned->envelopes,
      age(retention->envelopesMs), pruned->heartbeats, pruned->events, age(retention->eventsMs),
      pruned->batches, pruned->longestBatchMs);
}

}  // namespace pass::home
