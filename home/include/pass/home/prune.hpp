#pragma once
/// `pass-home prune`: retention by hand (docs/scale-out.md, "Retention").

#include <cstdint>
#include <filesystem>
#include <string>

#include "pass/result.hpp"

namespace pass::home {

/// Prunes once what STATE/home.xml's <retention> says is older than its ages at `nowMs`
/// (dryRun: only counts), whether or not this home leads the cluster's time-driven work; says
/// what, per table.
Result<std::string> runPrune(const std::filesystem::path& state, std::int64_t nowMs, bool dryRun);

}  // namespace pass::home
