#pragma once
// pass-svp.exe's rolling log file: <config folder>\logs\pass-svp.log, kept below 1 MiB by
// renaming it to pass-svp.1.log (and .1 to .2, up to 5) before it would grow past that.

#include <filesystem>
#include <string_view>

namespace pass::win {

inline constexpr std::uintmax_t kLogFileMaxBytes = 1024 * 1024;
inline constexpr int kLogFilesKept = 5;

/// Appends `text` (lines, each prefixed with the UTC time and `command`) to the log in `dir`,
/// rolling first when needed. Failures are ignored: logging never stops a run.
void appendLog(const std::filesystem::path& dir, std::string_view command, std::string_view text);

}  // namespace pass::win
