#pragma once
/// Hitachi DKC/DW SIM records: the documented 32-byte SSB, and text lines of the SVP's SIM log
/// described by line profiles kept as data (vendor-codes/hitachi_svp/sim-log-profiles.json).
/// Everything here is pure: no I/O, no exceptions, safe to call from several threads.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pass/collector.hpp"
#include "pass/result.hpp"
#include "pass/text.hpp"

namespace pass::hitachi_svp {

/// What the public user guides document of a SIM's 32 bytes of sense data.
struct SsbRecord {
  std::string referenceCode;  // bytes 22, 23, 13 (from 0) as upper-case hex: "307080"
  std::string simType;        // byte 28: "F1"
  std::string simTypeName;  // "DKC SIM", "CACHE SIM", "DEVICE SIM", "MEDIA SIM", "unknown SIM type"
};

/// Decodes 32 bytes written as hex, upper or lower case, with spaces or tabs allowed between
/// bytes. Errors ("svp.bad_ssb") name the offending character's position or the byte count.
Result<SsbRecord> decodeSsb(std::string_view hex);

/// What one separated field of a SIM log line holds.
enum class LineField : std::uint8_t {
  kDate,
  kTime,
  kRefcode,
  kSeverity,
  kPart,
  kDescription,
  kSsb,
  kSkip
};

/// The profile's spelling of a field: "date", "time", ...
std::string_view toString(LineField field);

/// One element of a compiled date or time format.
struct TimeToken {
  enum class Kind : std::uint8_t {
    kLiteral,
    kYear,
    kYear2,
    kMonth,
    kMonthName,
    kDay,
    kHour,
    kMinute,
    kSecond
  };
  Kind kind = Kind::kLiteral;
  char literal = 0;
};

/// How the lines of one SIM log format are split and read. Build it with parseProfiles(), which
/// validates it; parseSimLine() relies on that.
struct LineProfile {
  std::string name;
  std::string source;  // where the format comes from (free text)
  std::string note;
  char separator = ',';
  /// In order; the last one takes the rest of the line, separators included.
  std::vector<LineField> fields;
  std::string dateFormat;  // as written in the profile, for messages
  std::string timeFormat;
  std::vector<TimeToken> dateTokens;  // compiled from dateFormat / timeFormat
  std::vector<TimeToken> timeTokens;
  std::string commentPrefix;  // empty: no comment lines
  enum class Zone : std::uint8_t { kUtc, kLocal, kFixed };
  Zone zone = Zone::kUtc;
  std::int32_t utcOffsetSeconds = 0;  // for kFixed: local time minus UTC
  /// Lower-case text as written in the log → acute, serious, moderate or service.
  std::vector<std::pair<std::string, std::string>> severityMap;
  /// What the log's bytes are written in (key "encoding"; an array's own `encoding` setting
  /// replaces it). Lines are decoded before they are split.
  TextEncoding encoding;
};

/// Parses and validates a profile file's text:
///   {"schema": 1, "note": "...", "profiles": [{"name": ..., "separator": ..., "fields": [...],
///    "date_format": ..., "time_format": ..., "comment_prefix": ..., "timezone": ...,
///    "severity_map": {...}, "encoding": ..., "source": ..., "note": ...}, ...]}
/// Errors ("svp.bad_profile") name `file`, the profile (name and position) and the key.
Result<std::vector<LineProfile>> parseProfiles(std::string_view json, std::string_view file);

/// The profile called `name`, or nullptr.
const LineProfile* findProfile(const std::vector<LineProfile>& profiles, std::string_view name);

/// True for lines that carry no record: empty or blank lines and comment lines.
bool skipsLine(const LineProfile& profile, std::string_view line);

/// One SIM log line (without its '\n'; a trailing '\r' is tolerated), as bytes in the
/// profile's encoding → an event with code, severity (mapped by the profile), occurredMs (date
/// and time in the profile's zone; absent when the profile has no date), component (part),
/// text (description) and raw (the line; CollectedEvent::setRaw). Every text is UTF-8: bytes
/// that are not text in the encoding are U+FFFD.
/// `id` is left empty for the caller. Errors: "svp.bad_line" naming the field and what was
/// expected; "svp.skipped_line" for a line skipsLine() is true for.
Result<CollectedEvent> parseSimLine(const LineProfile& profile, std::string_view line);

}  // namespace pass::hitachi_svp
