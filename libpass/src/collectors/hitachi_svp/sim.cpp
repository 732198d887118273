#include "collectors/hitachi_svp/sim.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join
#include <nlohmann/json.hpp>

#include "pass/text.hpp"

namespace pass::hitachi_svp {
namespace {

constexpr std::size_t kSsbBytes = 32;
// A line has few fields; more than this is a mistake in the profile.
constexpr std::size_t kMaxFields = 32;
// Values quoted in error messages are cut here: a field engineer needs to recognise the value,
// and a binary file matched by mistake must not produce megabyte messages.
constexpr std::size_t kQuoteLimit = 40;
constexpr std::array<std::string_view, 4> kSeverities = {"acute", "serious", "moderate", "service"};
constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};

constexpr std::array<std::int8_t, 256> makeHexTable() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) {
    t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
    t[static_cast<std::size_t>(c - 'a' + 'A')] = static_cast<std::int8_t>(c - 'a' + 10);
  }
  return t;
}
constexpr std::array<std::int8_t, 256> kHexValue = makeHexTable();

int hexValue(char c) { return kHexValue[static_cast<unsigned char>(c)]; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view lowerB) {
  if (a.size() != lowerB.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lowerB[i]) return false;
  }
  return true;
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

/// A value for an error message: control bytes escaped, long values cut (between characters).
std::string quote(std::string_view v) {
  std::string out = "'";
  for (char byte : cutUtf8(v, kQuoteLimit)) {
    auto c = static_cast<unsigned char>(byte);
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += v.size() > kQuoteLimit ? "'..." : "'";
  return out;
}

inline std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

/// The line without its '\r' and without a UTF-8 byte order mark (which Windows editors put at
/// the start of a file, so on its first line).
std::string_view bodyOf(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.starts_with(kUtf8Bom)) line.remove_prefix(kUtf8Bom.size());
  return line;
}

std::string hexByte(std::uint8_t b) {
  constexpr std::string_view kDigits = "0123456789ABCDEF";
  return {kDigits[b >> 4], kDigits[b & 0x0f]};
}

// ---- dates and times ---------------------------------------------------------------------

struct DateTime {
  int year = -1;
  int month = -1;
  int day = -1;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

constexpr std::array<std::pair<char, TimeToken::Kind>, 8> kConversions = {{
    {'Y', TimeToken::Kind::kYear},
    {'y', TimeToken::Kind::kYear2},
    {'m', TimeToken::Kind::kMonth},
    {'b', TimeToken::Kind::kMonthName},
    {'d', TimeToken::Kind::kDay},
    {'H', TimeToken::Kind::kHour},
    {'M', TimeToken::Kind::kMinute},
    {'S', TimeToken::Kind::kSecond},
}};

/// Compiles a strftime-like format; nullopt with `error` set on an unsupported conversion.
std::optional<std::vector<TimeToken>> compileFormat(std::string_view format, std::string& error) {
  using Kind = TimeToken::Kind;
  std::vector<TimeToken> tokens;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      tokens.push_back({Kind::kLiteral, format[i]});
      continue;
    }
    if (++i == format.size()) {
      error = "ends with a lone '%'";
      return std::nullopt;
    }
    if (format[i] == '%') {
      tokens.push_back({Kind::kLiteral, '%'});
      continue;
    }
    auto it = std::find_if(kConversions.begin(), kConversions.end(),
                           [&](const auto& c) { return c.first == format[i]; });
    if (it == kConversions.end()) {
      error = fmt::format(
          "has the unsupported conversion '%{}' (supported: %Y %y %m %b %d %H %M %S %%)",
          format[i]);
      return std::nullopt;
    }
    tokens.push_back({it->second, 0});
  }
  return tokens;
}

bool hasKind(const std::vector<TimeToken>& tokens, std::initializer_list<TimeToken::Kind> kinds) {
  for (const auto& t : tokens) {
    for (auto k : kinds) {
      if (t.kind == k) return true;
    }
  }
  return false;
}

/// Reads `minDigits` to `maxDigits` decimal digits from the front of `v` into `out`.
inline bool takeDigits(std::string_view& v, std::size_t minDigits, std::size_t maxDigits,
                       int& out) {
  int n = 0;
  std::size_t i = 0;
  for (; i < maxDigits && i < v.size(); ++i) {
    auto digit = static_cast<unsigned>(v[i] - '0');
    if (digit > 9) break;
    n = n * 10 + static_cast<int>(digit);
  }
  if (i < minDigits) return false;
  v.remove_prefix(i);
  out = n;
  return true;
}

/// Matches `value` against `tokens`, filling `dt`; false when it does not fit.
bool matchFormat(const std::vector<TimeToken>& tokens, std::string_view value, DateTime& dt) {
  using Kind = TimeToken::Kind;
  for (const auto& t : tokens) {
    bool ok = true;
    switch (t.kind) {
      case Kind::kLiteral:
        ok = !value.empty() && value.front() == t.literal;
        if (ok) value.remove_prefix(1);
        break;
      case Kind::kMonthName: {
        auto it =
            value.size() < 3
                ? kMonthNames.end()
                : std::find_if(kMonthNames.begin(), kMonthNames.end(), [&](std::string_view name) {
                    return equalsIgnoreCase(value.substr(0, 3), name);
                  });
        ok = it != kMonthNames.end();
        if (ok) {
          dt.month = static_cast<int>(it - kMonthNames.begin()) + 1;
          value.remove_prefix(3);
        }
        break;
      }
      case Kind::kYear:
        ok = takeDigits(value, 4, 4, dt.year);
        break;
      case Kind::kYear2:
        ok = takeDigits(value, 2, 2, dt.year);
        // POSIX strptime's pivot: 69-99 are 1969-1999, 00-68 are 2000-2068.
        dt.year += dt.year >= 69 ? 1900 : 2000;
        break;
      case Kind::kMonth:
        ok = takeDigits(value, 1, 2, dt.month);
        break;
      case Kind::kDay:
        ok = takeDigits(value, 1, 2, dt.day);
        break;
      case Kind::kHour:
        ok = takeDigits(value, 1, 2, dt.hour);
        break;
      case Kind::kMinute:
        ok = takeDigits(value, 1, 2, dt.minute);
        break;
      case Kind::kSecond:
        ok = takeDigits(value, 1, 2, dt.second);
        break;
    }
    if (!ok) return false;
  }
  return value.empty();
}

/// Seconds since the epoch of a local time on the machine's clock (the SVP's: the agent runs
/// on it). mktime is slow and takes a lock in most C libraries, while a log's lines crowd into
/// few minutes: the result is cached per minute (zones change offset on whole minutes).
std::optional<std::int64_t> localToEpochSeconds(const DateTime& dt) {
  struct Cache {
    int year = -1, month = -1, day = -1, hour = -1, minute = -1;
    std::int64_t minuteStart = 0;
  };
  thread_local Cache cache;
  if (cache.year != dt.year || cache.month != dt.month || cache.day != dt.day ||
      cache.hour != dt.hour || cache.minute != dt.minute) {
    std::tm tm{};
    tm.tm_year = dt.year - 1900;
    tm.tm_mon = dt.month - 1;
    tm.tm_mday = dt.day;
    tm.tm_hour = dt.hour;
    tm.tm_min = dt.minute;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;  // let the C library decide whether summer time applies
    std::time_t t = std::mktime(&tm);
    if (t == static_cast<std::time_t>(-1)) return std::nullopt;
    cache = Cache{dt.year, dt.month, dt.day, dt.hour, dt.minute, static_cast<std::int64_t>(t)};
  }
  return cache.minuteStart + dt.second;
}

// ---- profiles ----------------------------------------------------------------------------

constexpr std::array<std::pair<std::string_view, LineField>, 8> kFieldNames = {{
    {"date", LineField::kDate},
    {"time", LineField::kTime},
    {"refcode", LineField::kRefcode},
    {"severity", LineField::kSeverity},
    {"part", LineField::kPart},
    {"description", LineField::kDescription},
    {"ssb", LineField::kSsb},
    {"skip", LineField::kSkip},
}};

std::optional<LineField> fieldFromName(std::string_view name) {
  for (const auto& [n, f] : kFieldNames) {
    if (n == name) return f;
  }
  return std::nullopt;
}

bool hasField(const LineProfile& p, LineField f) {
  for (auto x : p.fields) {
    if (x == f) return true;
  }
  return false;
}

/// "+09:00" → 32400; nullopt when not of the form ±HH:MM within ±14:00.
std::optional<std::int32_t> parseOffset(std::string_view tz) {
  if (tz.size() != 6 || (tz[0] != '+' && tz[0] != '-') || tz[3] != ':') return std::nullopt;
  std::string_view hh = tz.substr(1, 2);
  std::string_view mm = tz.substr(4, 2);
  int h = 0;
  int m = 0;
  if (!takeDigits(hh, 2, 2, h) || !takeDigits(mm, 2, 2, m)) return std::nullopt;
  if (m >= 60 || h * 60 + m > 14 * 60) return std::nullopt;
  std::int32_t seconds = (h * 60 + m) * 60;
  return tz[0] == '-' ? -seconds : seconds;
}

/// Validates one profile object; `where` prefixes every message ("file: profile 'x' (#2)").
Result<LineProfile> parseProfile(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](std::string_view key, std::string what) {
    return fail("svp.bad_profile", fmt::format("{}: '{}' {}", where, key, what));
  };
  static constexpr std::array<std::string_view, 11> kKeys = {
      "name",        "source",         "note",     "separator",    "fields",  "date_format",
      "time_format", "comment_prefix", "timezone", "severity_map", "encoding"};
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (auto k : kKeys) known = known || k == key;
    if (!known) {
      return bad(key, fmt::format("is not a profile key (known: {})", fmt::join(kKeys, ", ")));
    }
  }
  auto text = [&](std::string_view key, bool required, std::string& out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) return bad(key, "is missing");
      return {};
    }
    if (!it->is_string()) return bad(key, "must be a string");
    out = it->get<std::string>();
    return {};
  };

  LineProfile p;
  if (auto s = text("name", true, p.name); !s) return std::unexpected(s.error());
  if (p.name.empty()) return bad("name", "must not be empty");
  if (auto s = text("source", false, p.source); !s) return std::unexpected(s.error());
  if (auto s = text("note", false, p.note); !s) return std::unexpected(s.error());

  std::string separator;
  if (auto s = text("separator", true, separator); !s) return std::unexpected(s.error());
  if (separator.size() != 1) {
    return bad("separator", fmt::format("must be one character, got {}", quote(separator)));
  }
  if (separator[0] == '\n' || separator[0] == '\r') {
    return bad("separator", "must not be a line break");
  }
  p.separator = separator[0];

  auto fields = j.find("fields");
  if (fields == j.end()) return bad("fields", "is missing");
  if (!fields->is_array() || fields->empty()) return bad("fields", "must be a non-empty list");
  if (fields->size() > kMaxFields) {
    return bad("fields",
               fmt::format("has {} entries; at most {} are supported", fields->size(), kMaxFields));
  }
  for (std::size_t i = 0; i < fields->size(); ++i) {
    const auto& f = (*fields)[i];
    auto field = f.is_string() ? fieldFromName(f.get_ref<const std::string&>()) : std::nullopt;
    if (!field) {
      return bad("fields",
                 fmt::format("entry {} is {}; expected one of date, time, refcode, severity, "
                             "part, description, ssb, skip",
                             i + 1, f.dump()));
    }
    if (*field != LineField::kSkip && hasField(p, *field)) {
      return bad("fields", fmt::format("names '{}' twice", toString(*field)));
    }
    p.fields.push_back(*field);
  }
  if (!hasField(p, LineField::kRefcode) && !hasField(p, LineField::kSsb)) {
    return bad("fields",
               "needs a 'refcode' or an 'ssb' field: the reference code is the record's identity");
  }

  bool hasDate = hasField(p, LineField::kDate);
  bool hasTime = hasField(p, LineField::kTime);
  if (hasTime && !hasDate) return bad("fields", "has 'time' without 'date'");
  std::string error;
  if (auto s = text("date_format", hasDate, p.dateFormat); !s) return std::unexpected(s.error());
  if (hasDate) {
    auto tokens = compileFormat(p.dateFormat, error);
    if (!tokens) return bad("date_format", std::move(error));
    using Kind = TimeToken::Kind;
    if (!hasKind(*tokens, {Kind::kYear, Kind::kYear2}) ||
        !hasKind(*tokens, {Kind::kMonth, Kind::kMonthName}) || !hasKind(*tokens, {Kind::kDay})) {
      return bad("date_format",
                 fmt::format("{} needs a year (%Y or %y), a month (%m or %b) and a day (%d)",
                             quote(p.dateFormat)));
    }
    p.dateTokens = std::move(*tokens);
  }
  if (auto s = text("time_format", hasTime, p.timeFormat); !s) return std::unexpected(s.error());
  if (hasTime) {
    auto tokens = compileFormat(p.timeFormat, error);
    if (!tokens) return bad("time_format", std::move(error));
    if (!hasKind(*tokens, {TimeToken::Kind::kHour})) {
      return bad("time_format", fmt::format("{} needs an hour (%H)", quote(p.timeFormat)));
    }
    p.timeTokens = std::move(*tokens);
  }

  if (auto s = text("comment_prefix", false, p.commentPrefix); !s)
    return std::unexpected(s.error());

  std::string encoding;
  if (auto s = text("encoding", false, encoding); !s) return std::unexpected(s.error());
  if (!encoding.empty()) {
    auto named = TextEncoding::named(encoding);
    if (!named) return bad("encoding", named.error().message);
    p.encoding = *named;
  }

  std::string zone;
  if (auto s = text("timezone", hasDate, zone); !s) return std::unexpected(s.error());
  if (hasDate) {
    if (zone == "utc") {
      p.zone = LineProfile::Zone::kUtc;
    } else if (zone == "local") {
      p.zone = LineProfile::Zone::kLocal;
    } else if (auto offset = parseOffset(zone)) {
      p.zone = LineProfile::Zone::kFixed;
      p.utcOffsetSeconds = *offset;
    } else {
      return bad("timezone",
                 fmt::format("is {}; expected \"utc\", \"local\" or an offset like \"+09:00\"",
                             quote(zone)));
    }
  }

  auto map = j.find("severity_map");
  bool hasSeverity = hasField(p, LineField::kSeverity);
  if (map == j.end() && hasSeverity) return bad("severity_map", "is missing");
  if (map != j.end()) {
    if (!map->is_object() || map->empty()) return bad("severity_map", "must be a non-empty object");
    for (const auto& [key, value] : map->items()) {
      if (key.empty()) return bad("severity_map", "has an empty key");
      auto level = value.is_string() ? toLower(value.get_ref<const std::string&>()) : std::string();
      bool known = false;
      for (auto s : kSeverities) known = known || s == level;
      if (!known) {
        return bad("severity_map",
                   fmt::format("maps {} to {}; expected acute, serious, moderate or service",
                               quote(key), value.dump()));
      }
      auto lowered = toLower(key);
      for (const auto& [existing, unused] : p.severityMap) {
        if (existing == lowered) {
          return bad("severity_map",
                     fmt::format("has {} twice (keys are case-insensitive)", quote(key)));
        }
      }
      p.severityMap.emplace_back(std::move(lowered), std::move(level));
    }
  }
  return p;
}

}  // namespace

// ---- SSB -----------------------------------------------------------------------------------

namespace {

using SsbBytes = std::array<std::uint8_t, kSsbBytes>;

Result<SsbBytes> ssbBytes(std::string_view hex) {
  SsbBytes bytes{};
  std::size_t count = 0;
  for (std::size_t i = 0; i < hex.size();) {
    char c = hex[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    int hi = hexValue(c);
    if (hi < 0) {
      return fail("svp.bad_ssb", fmt::format("SSB character {} ({}) is not a hex digit", i + 1,
                                             quote(hex.substr(i, 1))));
    }
    if (i + 1 == hex.size() || hexValue(hex[i + 1]) < 0) {
      if (i + 1 < hex.size() && hex[i + 1] != ' ' && hex[i + 1] != '\t') {
        return fail("svp.bad_ssb", fmt::format("SSB character {} ({}) is not a hex digit", i + 2,
                                               quote(hex.substr(i + 1, 1))));
      }
      return fail("svp.bad_ssb",
                  fmt::format("SSB byte {} at character {} has one hex digit instead of two",
                              count + 1, i + 1));
    }
    if (count < kSsbBytes) {
      bytes[count] = static_cast<std::uint8_t>(hi << 4 | hexValue(hex[i + 1]));
    }
    ++count;
    i += 2;
  }
  if (count != kSsbBytes) {
    return fail("svp.bad_ssb", fmt::format("SSB has {} bytes instead of {}", count, kSsbBytes));
  }
  return bytes;
}

/// The reference code: bytes 22, 23 and 13, as the user guides and the MIB's eventTrapREFCODE
/// ("22nd,23rd,13rd byte in SIM") count them from 0.
std::string referenceCodeOf(const SsbBytes& b) {
  constexpr std::string_view kDigits = "0123456789ABCDEF";
  std::string code(6, '0');
  std::size_t at = 0;
  for (std::size_t index : {22, 23, 13}) {
    code[at++] = kDigits[b[index] >> 4];
    code[at++] = kDigits[b[index] & 0x0f];
  }
  return code;
}

/// Byte 28 as the user guides name it (HP XP24000 CAJ guide, SIM format figure).
std::string_view simTypeName(std::uint8_t type) {
  if (type == 0xF1) return "DKC SIM";
  if (type == 0xF2) return "CACHE SIM";
  if (type == 0xFE) return "DEVICE SIM";
  if (type == 0xFF) return "MEDIA SIM";
  return "unknown SIM type";
}

}  // namespace

Result<SsbRecord> decodeSsb(std::string_view hex) {
  auto decoded = ssbBytes(hex);
  if (!decoded) return std::unexpected(decoded.error());
  const auto& bytes = *decoded;
  SsbRecord r;
  r.referenceCode = referenceCodeOf(bytes);
  r.simType = hexByte(bytes[28]);
  r.simTypeName = simTypeName(bytes[28]);
  return r;
}

// ---- profiles ------------------------------------------------------------------------------

std::string_view toString(LineField field) {
  for (const auto& [n, f] : kFieldNames) {
    if (f == field) return n;
  }
  return "?";
}

Result<std::vector<LineProfile>> parseProfiles(std::string_view json, std::string_view file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    // e.what() says where ("at line 3, column 7") and what was expected.
    return fail("svp.bad_profile", fmt::format("{}: not valid JSON: {}", file, e.what()));
  }
  if (!j.is_object()) {
    return fail("svp.bad_profile",
                fmt::format("{}: must be a JSON object with a 'profiles' list", file));
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "schema" && key != "note" && key != "profiles") {
      return fail("svp.bad_profile",
                  fmt::format("{}: '{}' is not a top-level key (known: schema, note, profiles)",
                              file, key));
    }
  }
  if (auto schema = j.find("schema"); schema != j.end() && *schema != 1) {
    return fail("svp.bad_profile", fmt::format("{}: 'schema' is {}; this version reads schema 1",
                                               file, schema->dump()));
  }
  if (auto note = j.find("note"); note != j.end() && !note->is_string()) {
    return fail("svp.bad_profile", fmt::format("{}: 'note' must be a string", file));
  }
  auto list = j.find("profiles");
  if (list == j.end() || !list->is_array() || list->empty()) {
    return fail("svp.bad_profile", fmt::format("{}: 'profiles' must be a non-empty list", file));
  }
  std::vector<LineProfile> out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto& entry = (*list)[i];
    std::string where;
    auto name = entry.is_object() ? entry.find("name") : entry.end();
    if (entry.is_object() && name != entry.end() && name->is_string()) {
      where = fmt::format("{}: profile {} (#{})", file, quote(name->get_ref<const std::string&>()),
                          i + 1);
    } else {
      where = fmt::format("{}: profile #{}", file, i + 1);
    }
    if (!entry.is_object()) return fail("svp.bad_profile", where + " must be a JSON object");
    auto p = parseProfile(entry, where);
    if (!p) return std::unexpected(p.error());
    if (findProfile(out, p->name)) {
      return fail("svp.bad_profile",
                  fmt::format("{}: 'name' is used by an earlier profile", where));
    }
    out.push_back(std::move(*p));
  }
  return out;
}

const LineProfile* findProfile(const std::vector<LineProfile>& profiles, std::string_view name) {
  for (const auto& p : profiles) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// ---- lines ---------------------------------------------------------------------------------

bool skipsLine(const LineProfile& profile, std::string_view line) {
  line = bodyOf(line);
  if (!profile.commentPrefix.empty() && line.starts_with(profile.commentPrefix)) return true;
  return trim(line).empty();
}

namespace {

/// parseSimLine's work, into an event built in place: this is the hot path of a SIM log read,
/// and moving an event's seven strings costs as much as reading a field.
Status parseInto(const LineProfile& profile, std::string_view line, CollectedEvent& ev) {
  std::string_view body = bodyOf(line);
  if (skipsLine(profile, body)) {
    return fail("svp.skipped_line", "blank or comment line carries no SIM record");
  }
  const std::size_t n = profile.fields.size();
  if (n == 0) {
    return fail("svp.bad_line", fmt::format("profile {} was not validated: it has {} fields",
                                            quote(profile.name), n));
  }
  auto bad = [&](std::size_t i, std::string what) {
    return fail("svp.bad_line", fmt::format("profile {}: field {} ({}) {}", quote(profile.name),
                                            i + 1, toString(profile.fields[i]), what));
  };

  // One pass that splits and reads.
  DateTime dt;
  std::optional<std::size_t> dateField;
  std::optional<std::size_t> timeField;
  std::optional<SsbBytes> ssb;
  std::string_view rest = body;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view v = rest;
    if (i + 1 < n) {
      auto sep = rest.find(profile.separator);
      if (sep == std::string_view::npos) {
        return fail(
            "svp.bad_line",
            fmt::format("profile {}: field {} ({}) is missing: the line has {} field(s), the "
                        "profile expects {}",
                        quote(profile.name), i + 2, toString(profile.fields[i + 1]), i + 1, n));
      }
      v = rest.substr(0, sep);
      rest.remove_prefix(sep + 1);
    }
    v = trim(v);
    switch (profile.fields[i]) {
      case LineField::kDate:
        if (!matchFormat(profile.dateTokens, v, dt)) {
          return bad(i, fmt::format("is {}; expected a date like {}", quote(v),
                                    quote(profile.dateFormat)));
        }
        dateField = i;
        break;
      case LineField::kTime:
        if (!matchFormat(profile.timeTokens, v, dt)) {
          return bad(i, fmt::format("is {}; expected a time like {}", quote(v),
                                    quote(profile.timeFormat)));
        }
        timeField = i;
        break;
      case LineField::kRefcode: {
        bool ok = v.size() == 6;
        for (std::size_t k = 0; ok && k < v.size(); ++k) ok = hexValue(v[k]) >= 0;
        if (!ok) return bad(i, fmt::format("is {}; expected 6 hex digits like '307080'", quote(v)));
        ev.code = std::string(v);
        for (auto& c : ev.code) c = (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c;
        break;
      }
      case LineField::kSeverity: {
        const std::string* level = nullptr;
        for (const auto& [text, mapped] : profile.severityMap) {
          if (equalsIgnoreCase(v, text)) {
            level = &mapped;
            break;
          }
        }
        if (level == nullptr) {
          return bad(
              i, fmt::format("is {}, which the profile's severity_map does not name", quote(v)));
        }
        ev.severity = *level;
        break;
      }
      case LineField::kPart:
        ev.component = std::string(v);
        break;
      case LineField::kDescription:
        ev.text = std::string(v);
        break;
      case LineField::kSsb: {
        auto bytes = ssbBytes(v);
        if (!bytes) return bad(i, "is not a SIM SSB: " + bytes.error().message);
        ssb = *bytes;
        break;
      }
      case LineField::kSkip:
        break;
    }
  }
  // A refcode field wins over the SSB's: a profile names both only when the log writes both,
  // and the written code is what the SVP itself reported.
  if (ev.code.empty() && ssb) ev.code = referenceCodeOf(*ssb);

  if (dateField) {
    using namespace std::chrono;
    year_month_day ymd{year{dt.year}, month{static_cast<unsigned>(dt.month)},
                       day{static_cast<unsigned>(dt.day)}};
    if (dt.month < 1 || dt.month > 12 || dt.day < 1 || !ymd.ok()) {
      return bad(*dateField, fmt::format("is the date {:04}-{:02}-{:02}, which does not exist",
                                         dt.year, dt.month, dt.day));
    }
    // 60 is a leap second, which some loggers write.
    if (dt.hour > 23 || dt.minute > 59 || dt.second > 60) {
      return bad(timeField.value_or(*dateField),
                 fmt::format("is the time {:02}:{:02}:{:02}, which does not exist", dt.hour,
                             dt.minute, dt.second));
    }
    std::int64_t seconds = 0;
    if (profile.zone == LineProfile::Zone::kLocal) {
      auto local = localToEpochSeconds(dt);
      if (!local) {
        return fail(
            "svp.bad_line",
            fmt::format("profile {}: {:04}-{:02}-{:02} {:02}:{:02} cannot be "
                        "represented in the machine's local time",
                        quote(profile.name), dt.year, dt.month, dt.day, dt.hour, dt.minute));
      }
      seconds = *local;
    } else {
      seconds = static_cast<std::int64_t>(sys_days(ymd).time_since_epoch().count()) * 86400 +
                dt.hour * 3600 + dt.minute * 60 + dt.second - profile.utcOffsetSeconds;
    }
    ev.occurredMs = seconds * 1000;
  }
  return {};
}

}  // namespace

Result<CollectedEvent> parseSimLine(const LineProfile& profile, std::string_view line) {
  // One named result, returned on every path, so that it is built where the caller wants it.
  Result<CollectedEvent> out{std::in_place};
  std::string decoded;
  if (auto s = parseInto(profile, asUtf8(line, profile.encoding, decoded), *out); !s) {
    out = std::unexpected(std::move(s.error()));
    return out;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  out->setRaw(line, profile.encoding);
  return out;
}

}  // namespace pass::hitachi_svp
