// The home's structured log: one JSON object per line.

#include "pass/home/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace pass::home {

std::string_view toString(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

Result<LogLevel> parseLogLevel(std::string_view text) {
  for (auto level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (text == toString(level)) return level;
  }
  return fail("usage.log_level",
              fmt::format("--log-level: '{}' is not one of debug, info, warning, error", text));
}

std::string formatTimestamp(std::int64_t unixMs) {
  auto seconds = static_cast<std::time_t>(unixMs / 1000);
  auto millis = unixMs % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(seconds), millis);
}

Logger::Logger(LogLevel minLevel)
    : Logger(minLevel, [](std::string_view line) {
        std::fwrite(line.data(), 1, line.size(), stderr);
        std::fflush(stderr);
      }) {}

Logger::Logger(LogLevel minLevel, Sink sink) : minLevel_(minLevel), sink_(std::move(sink)) {}

void Logger::log(LogLevel level, std::string_view event, const nlohmann::ordered_json& fields) {
  if (!enabled(level)) return;
  auto nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  nlohmann::ordered_json line = {
      {"ts", formatTimestamp(nowMs)}, {"level", toString(level)}, {"event", event}};
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) line[key] = value;
  }
  // Replace invalid UTF-8 (a peer's bytes may end up in a field) rather than throw.
  auto text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  text.push_back('\n');
  std::lock_guard lock(mutex_);
  sink_(text);
}

}  // namespace pass::home
