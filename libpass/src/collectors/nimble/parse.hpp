#pragma once
// Pure decoding of NimbleOS REST answers (no I/O): one page of /v1/events/detail or
// /v1/alarms/detail, and each record in it. The fuzzer (tests/fuzz/fuzz_nimble.cpp) and
// `pass-agent parse --family nimble` use these without an array.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pass/collector.hpp"
#include "pass/result.hpp"

namespace pass::nimble {

/// The code of a record that could not be read: the event still carries the raw JSON.
inline constexpr std::string_view kUnparsedCode = "unparsed";

/// One page of a list: {"startRow":..,"endRow":..,"totalRows":..,"data":[...]}.
struct Page {
  std::int64_t startRow = 0;
  std::int64_t endRow = 0;
  std::optional<std::int64_t> totalRows;  // absent in some answers; then a short page ends
  std::vector<nlohmann::json> records;
};

/// Parses one page. Bytes that are not UTF-8 are U+FFFD (toUtf8) before the JSON is read, so
/// they cost their string, not the page. "nimble.bad_output" names `what` (the request), the
/// JSON path and quotes the start of the answer.
Result<Page> parsePage(std::string_view body, std::string_view what);

/// One event of /v1/events: never fails; a record that cannot be read becomes an event with
/// code "unparsed" whose text says why.
struct EventRecord {
  /// "event:<array id>", or "event:unparsed:<hash of the record>" when it has no id.
  std::string key;
  /// When it happened, in ms; nullopt when the record has no usable timestamp.
  std::optional<std::int64_t> ms;
  CollectedEvent event;  // event.id == key
};
EventRecord readEvent(const nlohmann::json& record);

/// One alarm of /v1/alarms.
struct AlarmRecord {
  std::string id;     // the array's alarm id; empty when the record has none (unparsed)
  std::string onset;  // curr_onset_event_id, else "t<onset_time>"; changes on a re-onset
  /// Status open or acknowledged (or none given): the condition persists. Acknowledging is a
  /// person having seen it, not a recovery.
  bool active = true;
  CollectedEvent event;  // id "alarm:<id>:<onset>", or "alarm:unparsed:<hash>"
};
AlarmRecord readAlarm(const nlohmann::json& record);

/// Milliseconds of a NimbleOS timestamp. The API documents int64 without a unit; epoch
/// seconds is assumed, and a value too large for seconds (after the year 5000) is taken as
/// milliseconds. nullopt for values <= 0.
std::optional<std::int64_t> timestampMs(std::int64_t value);

/// The "messages" of an error answer ({"messages":[{"code":..,"text":..}]}) as one line, or
/// a short excerpt of the body when it has none.
std::string errorText(std::string_view body);

/// A short, single-line excerpt for messages.
std::string excerpt(std::string_view text, std::size_t max = 120);

}  // namespace pass::nimble
