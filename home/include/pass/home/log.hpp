#pragma once
/// Structured log lines for pass-home: one JSON object per line,
/// {"ts":"2026-11-27T17:00:00.123Z","level":"info","event":"listening",...}.

#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pass/result.hpp"

namespace pass::home {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

std::string_view toString(LogLevel level);
/// "debug", "info", "warning" or "error"; fails with "usage.log_level" otherwise.
Result<LogLevel> parseLogLevel(std::string_view text);

/// UTC ISO 8601 with milliseconds, e.g. "2026-11-27T17:00:00.123Z".
std::string formatTimestamp(std::int64_t unixMs);

class Logger {
 public:
  using Sink = std::function<void(std::string_view line)>;

  /// Writes to stderr.
  explicit Logger(LogLevel minLevel);
  /// Writes each line (with its trailing newline) to `sink`; the logger serialises calls.
  Logger(LogLevel minLevel, Sink sink);

  bool enabled(LogLevel level) const { return level >= minLevel_; }

  /// Logs `event` with the members of `fields` (a JSON object) after ts, level and event.
  void log(LogLevel level, std::string_view event,
           const nlohmann::ordered_json& fields = nlohmann::ordered_json::object());

  void debug(std::string_view event, const nlohmann::ordered_json& fields = {}) {
    log(LogLevel::kDebug, event, fields);
  }
  void info(std::string_view event, const nlohmann::ordered_json& fields = {}) {
    log(LogLevel::kInfo, event, fields);
  }
  void warning(std::string_view event, const nlohmann::ordered_json& fields = {}) {
    log(LogLevel::kWarning, event, fields);
  }
  void error(std::string_view event, const nlohmann::ordered_json& fields = {}) {
    log(LogLevel::kError, event, fields);
  }

 private:
  LogLevel minLevel_;
  Sink sink_;
  std::mutex mutex_;
};

}  // namespace pass::home
