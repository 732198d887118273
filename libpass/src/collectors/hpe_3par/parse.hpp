#pragma once
/// HPE 3PAR outputs: the CLI's `showalert -d` blocks and a WSAPI /api/v1/eventlog page, and the
/// cursor that follows alert Ids from run to run. Everything here is pure: no I/O, no
/// exceptions escape, safe to call from several threads (the fuzzer links it with text.cpp and
/// -lfmt only).

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pass/collector.hpp"
#include "pass/result.hpp"
#include "pass/text.hpp"

namespace pass::hpe_3par {

/// Time-zone abbreviation (upper case) → offset from UTC in seconds. showalert prints the
/// array's zone as an abbreviation, and abbreviations are ambiguous (CST is US Central or
/// China), so the table is small, documented and can be extended per array.
using ZoneTable = std::map<std::string, std::int32_t, std::less<>>;

/// The built-in table (docs: hpe_3par "Times"): UTC, GMT, Z and the US, European, Japanese,
/// Korean, Chinese-Hong Kong-Singapore and Australian abbreviations that name one zone.
const ZoneTable& builtinZones();

/// Parses "CST=+08:00,IST=+05:30" (the `zone-abbreviations` setting) into builtinZones()
/// overridden and extended by those entries. Errors ("config") quote the bad entry.
Result<ZoneTable> zonesWithOverrides(std::string_view spec);

/// "0x2200de" → "0x02200de": lower-case hex with at least seven digits, as delfin's code table
/// and the 3PAR traps (decimal 2555934 → "0x027001e") write them. Decimal digits without the
/// prefix are read as the traps' decimal form. nullopt when it is neither.
std::optional<std::string> normaliseMessageCode(std::string_view code);

/// "2015-07-17 20:14:29 PDT" (or "+0200", "+02:00", "UTC", "UTC+2") → ms since the epoch;
/// nullopt for an unknown zone or a malformed time, so that a guess never becomes a wrong
/// instant.
std::optional<std::int64_t> parseAlertTime(std::string_view text, const ZoneTable& zones);

/// One `showalert -d` block.
struct AlertBlock {
  std::string id;        // the Id value; empty when the block has none (an "unparsed" event)
  std::string state;     // as printed: "New", "Acknowledged", "Fixed"
  std::size_t line = 0;  // 1-based line of the block's first line, for messages
  CollectedEvent event;  // id left empty; code "unparsed" when the block has no Id
  std::vector<std::string> notes;  // what was odd but not fatal (unknown key, bad time)
};

/// The alert state letter kept in the cursor: 'n' New, 'a' Acknowledged, 'f' Fixed, '?' other.
char stateLetter(std::string_view state);

/// Splits `showalert -d` output into blocks at blank lines and reads `Key : value` lines, keys
/// padded or not ("Component:" too). Lines before the first key and indented lines that are
/// not a known key continue the previous value. An empty output or "No alerts" is no alert.
/// Each line is decoded from `encoding` first (toUtf8: what is not text is U+FFFD); a block's
/// event keeps its lines' bytes (CollectedEvent::setRaw).
/// Errors ("hpe_3par.bad_output"): no block has an Id although the output is not empty — the
/// message quotes the start of the output.
Result<std::vector<AlertBlock>> parseShowAlert(std::string_view text, const ZoneTable& zones,
                                               const TextEncoding& encoding = {});

/// The event id of an unparsed block: "unparsed:" and 16 hex digits of a hash of its text, so
/// that the same garbage in the next run is recognised as already reported.
std::string unparsedId(std::string_view raw);

/// One member of a WSAPI eventlog page.
struct EventLogEntry {
  std::string logId;               // the member's "id" (event log sequence), as text
  std::int64_t timeSecs = 0;       // 0 when neither timeSecs nor time could be read
  std::int64_t category = 0;       // 2 = alert (delfin's query "category EQ 2")
  std::string alertId;             // alertInfo.alertId as text; empty when absent
  std::optional<char> alertState;  // from alertInfo.state when present ('n', 'a', 'f')
  CollectedEvent event;            // id filled: "<alertId>" or "eventlog:<logId>"
};

struct EventLogPage {
  std::vector<EventLogEntry> entries;
  std::optional<std::uint64_t> total;
};

/// Reads {"total": N, "members": [...]}. Members whose fields cannot be read become "unparsed"
/// events (id "eventlog:<id>" or a hash). Bytes that are not UTF-8 are U+FFFD (toUtf8) before
/// the JSON is read, so they cost their string, not the page. Errors ("hpe_3par.bad_output")
/// name the JSON path.
Result<EventLogPage> parseEventLog(std::string_view json);

/// The severity enum of the WSAPI (1 fatal ... 7 debug) as the CLI's lower-case word.
std::string wsapiSeverity(std::int64_t value);

/// What the collector remembers between runs (the cursor JSON, schema 1).
struct AlertCursor {
  /// Alert Id → state letter, for the Ids the last showalert listed (bounded by the array's
  /// own alert list: Ids no longer listed are forgotten).
  std::map<std::string, char, std::less<>> alerts;
  std::set<std::string, std::less<>> unparsed;  // unparsedId()s still listed
  bool sshStarted = false;
  /// WSAPI event log high-water mark: the newest timeSecs seen and the log ids seen at it.
  bool wsapiStarted = false;
  std::int64_t wsapiSecs = 0;
  std::set<std::string, std::less<>> wsapiIdsAtSecs;
};

/// Errors ("hpe_3par.bad_cursor") say what is wrong with the JSON.
Result<AlertCursor> parseCursor(std::string_view json);
std::string toJson(const AlertCursor& cursor);

/// What one showalert answer means against the cursor: events to report and the next cursor.
/// First run (!cursor.sshStarted): New alerts (and unparsed blocks) are reported, all Ids are
/// remembered. Later: an Id not in the cursor is reported (and, if it is already Fixed, its
/// recovery too); a known Id that turned Fixed gives a recovery "<Id>:fixed".
struct AlertDiff {
  std::vector<CollectedEvent> events;
  std::vector<std::string> notes;
};
AlertDiff followAlerts(const std::vector<AlertBlock>& blocks, AlertCursor& cursor);

/// The same for an eventlog page: entries after the high-water mark, alerts only (category 2).
/// First run (!cursor.wsapiStarted): nothing is reported, the mark is set.
AlertDiff followEventLog(const EventLogPage& page, AlertCursor& cursor);

}  // namespace pass::hpe_3par
