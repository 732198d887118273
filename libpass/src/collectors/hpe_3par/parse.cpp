// hpe_3par: pure parsing of `showalert -d` and WSAPI eventlog pages, and the alert cursor.

#include "collectors/hpe_3par/parse.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pass::hpe_3par {

namespace {

using nlohmann::json;

constexpr std::string_view kBadOutput = "hpe_3par.bad_output";
constexpr std::string_view kUnparsedCode = "unparsed";
constexpr std::size_t kExcerpt = 80;

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlnum(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string toLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

std::string toUpper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), upper);
  return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

/// A short, printable quote of untrusted text for an error message.
std::string excerpt(std::string_view text) {
  std::string out;
  for (char c : cutUtf8(text, kExcerpt)) {
    if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (text.size() > kExcerpt) out += "...";
  return out;
}

template <typename T>
std::optional<T> parseNumber(std::string_view text, int base = 10) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

/// "+02:00", "+0200", "+02", "-0530" → seconds east of UTC.
std::optional<std::int32_t> parseOffset(std::string_view s) {
  if (s.size() < 2 || (s[0] != '+' && s[0] != '-')) return std::nullopt;
  const int sign = s[0] == '-' ? -1 : 1;
  s.remove_prefix(1);
  std::string digits;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ':' && i == 2) continue;
    if (!isDigit(s[i])) return std::nullopt;
    digits += s[i];
  }
  int hours = 0;
  int minutes = 0;
  if (digits.size() == 1 || digits.size() == 2) {
    hours = *parseNumber<int>(digits);
  } else if (digits.size() == 4) {
    hours = *parseNumber<int>(std::string_view(digits).substr(0, 2));
    minutes = *parseNumber<int>(std::string_view(digits).substr(2));
  } else {
    return std::nullopt;
  }
  if (hours > 14 || minutes > 59) return std::nullopt;
  return sign * (hours * 3600 + minutes * 60);
}

/// A zone token: an abbreviation from the table, a numeric offset, or UTC/GMT followed by one.
std::optional<std::int32_t> zoneOffset(std::string_view zone, const ZoneTable& zones) {
  if (zone.empty()) return std::nullopt;
  if (zone[0] == '+' || zone[0] == '-') return parseOffset(zone);
  const std::string upperZone = toUpper(zone);
  if (auto it = zones.find(upperZone); it != zones.end()) return it->second;
  for (std::string_view base : {"UTC", "GMT"}) {
    if (upperZone.size() > base.size() && upperZone.starts_with(base)) {
      return parseOffset(std::string_view(upperZone).substr(base.size()));
    }
  }
  return std::nullopt;
}

/// "YYYY-MM-DD" + sep + "HH:MM:SS" as seconds since the epoch for a UTC wall clock, and what
/// follows it.
std::optional<std::int64_t> parseWallClock(std::string_view s, char sep, std::string_view& rest) {
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || s[10] != sep || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  auto y = parseNumber<int>(s.substr(0, 4));
  auto mo = parseNumber<unsigned>(s.substr(5, 2));
  auto d = parseNumber<unsigned>(s.substr(8, 2));
  auto h = parseNumber<int>(s.substr(11, 2));
  auto mi = parseNumber<int>(s.substr(14, 2));
  auto se = parseNumber<int>(s.substr(17, 2));
  if (!y || !mo || !d || !h || !mi || !se) return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{year{*y}, month{*mo}, day{*d}};
  if (!date.ok() || *h > 23 || *mi > 59 || *se > 60) return std::nullopt;
  rest = s.substr(19);
  const auto days = sys_days(date).time_since_epoch().count();
  return static_cast<std::int64_t>(days) * 86400 + *h * 3600 + *mi * 60 + *se;
}

/// ISO 8601 as the WSAPI writes it: "2022-06-17T12:27:30+02:00" or "...Z"; fractions ignored.
std::optional<std::int64_t> parseIsoSeconds(std::string_view s) {
  std::string_view rest;
  auto secs = parseWallClock(s, 'T', rest);
  if (!secs) return std::nullopt;
  if (!rest.empty() && rest[0] == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && isDigit(rest[0])) rest.remove_prefix(1);
  }
  if (rest == "Z" || rest == "z") return secs;
  auto offset = parseOffset(rest);
  if (!offset) return std::nullopt;
  return *secs - *offset;
}

constexpr std::array<std::string_view, 8> kKnownKeys = {
    "Id", "State", "MessageCode", "Time", "Severity", "Type", "Message", "Component"};

std::optional<std::string_view> knownKey(std::string_view key) {
  for (auto k : kKnownKeys) {
    if (equalsIgnoreCase(k, key)) return k;
  }
  return std::nullopt;
}

/// The key of a "Key : value" line with its padding removed, or nullopt when the text before
/// the first colon is not a word (then the line is free text).
std::optional<std::string> lineKey(std::string_view line, std::string_view& value) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string key;
  for (char c : line.substr(0, colon)) {
    if (isSpace(c)) continue;
    if (!isAlnum(c)) return std::nullopt;
    key += c;
  }
  if (key.empty()) return std::nullopt;
  value = trim(line.substr(colon + 1));
  return key;
}

struct RawBlock {
  std::size_t firstLine = 0;
  std::vector<std::string_view> lines;
};

std::vector<RawBlock> splitBlocks(std::string_view text) {
  std::vector<RawBlock> blocks;
  RawBlock current;
  std::size_t lineNo = 0;
  for (std::size_t start = 0; start <= text.size();) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    ++lineNo;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) {
      if (!current.lines.empty()) blocks.push_back(std::move(current));
      current = RawBlock{};
    } else {
      if (current.lines.empty()) current.firstLine = lineNo;
      current.lines.push_back(line);
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  if (!current.lines.empty()) blocks.push_back(std::move(current));
  return blocks;
}

AlertBlock readBlock(const RawBlock& raw, const ZoneTable& zones, const TextEncoding& encoding) {
  AlertBlock block;
  block.line = raw.firstLine;
  std::map<std::string, std::string, std::less<>> values;
  std::string* previous = nullptr;
  std::string bytes;  // the block's lines as the CLI wrote them
  std::string decoded;
  for (std::size_t i = 0; i < raw.lines.size(); ++i) {
    if (i > 0) bytes += '\n';
    bytes += raw.lines[i];
    const std::string_view line = asUtf8(raw.lines[i], encoding, decoded);
    std::string_view value;
    auto key = lineKey(line, value);
    const bool indented = isSpace(line.front());
    std::optional<std::string_view> known = key ? knownKey(*key) : std::nullopt;
    if (!key || (!known && indented && previous != nullptr)) {
      // Free text: the continuation of a wrapped value (not documented, so read leniently).
      if (previous == nullptr) {
        block.notes.push_back(fmt::format("line {}: text before the first key: {}",
                                          raw.firstLine + i, excerpt(trim(line))));
        continue;
      }
      if (!previous->empty()) *previous += ' ';
      *previous += trim(line);
      continue;
    }
    std::string name = known ? std::string(*known) : *key;
    if (!known) {
      block.notes.push_back(
          fmt::format("line {}: unknown key \"{}\" kept in raw", raw.firstLine + i, name));
    }
    auto [it, inserted] = values.try_emplace(name, std::string(value));
    if (!inserted) {
      block.notes.push_back(
          fmt::format("line {}: {} repeated; the first one counts", raw.firstLine + i, name));
      previous = nullptr;
      continue;
    }
    previous = &it->second;
  }
  auto get = [&values](std::string_view k) -> std::string {
    auto it = values.find(k);
    return it == values.end() ? std::string() : it->second;
  };
  block.id = get("Id");
  block.state = get("State");
  CollectedEvent& e = block.event;
  e.setRaw(bytes, encoding);
  // An Id is a small number on the 3PAR; anything else cannot be followed safely as a name.
  const bool idOk = block.id.size() <= 32 &&
                    std::all_of(block.id.begin(), block.id.end(),
                                [](char c) { return isAlnum(c) || c == '-' || c == '.'; });
  if (!idOk) {
    block.notes.push_back(fmt::format("line {}: Id \"{}\" is not a plain alert number",
                                      raw.firstLine, excerpt(block.id)));
    block.id.clear();
  }
  if (block.id.empty()) {
    e.code = std::string(kUnparsedCode);
    e.text = fmt::format("a showalert block without an Id (line {})", raw.firstLine);
    return block;
  }
  const std::string code = get("MessageCode");
  if (auto normalised = normaliseMessageCode(code)) {
    e.code = *normalised;
  } else {
    e.code = code;
    if (!code.empty()) {
      block.notes.push_back(
          fmt::format("alert {}: MessageCode \"{}\" is not hexadecimal", block.id, excerpt(code)));
    }
  }
  e.severity = toLower(get("Severity"));
  e.component = get("Component");
  e.text = get("Message");
  const std::string time = get("Time");
  e.occurredMs = parseAlertTime(time, zones);
  if (!e.occurredMs && !time.empty()) {
    block.notes.push_back(fmt::format(
        "alert {}: time \"{}\" has no known zone (zone-abbreviations); kept in raw only", block.id,
        excerpt(time)));
  }
  return block;
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// A JSON scalar as text: strings as they are, integers in decimal; nullopt otherwise.
std::optional<std::string> scalarText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_unsigned()) return std::to_string(j.get<std::uint64_t>());
  if (j.is_number_integer()) return std::to_string(j.get<std::int64_t>());
  return std::nullopt;
}

std::optional<std::int64_t> integerOf(const json& j) {
  if (j.is_number_unsigned()) {
    auto v = j.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(v);
  }
  if (j.is_number_integer()) return j.get<std::int64_t>();
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (!(d >= -9.0e15 && d <= 9.0e15)) return std::nullopt;  // false for NaN too
    return static_cast<std::int64_t>(d);
  }
  if (j.is_string()) return parseNumber<std::int64_t>(j.get<std::string>());
  return std::nullopt;
}

const json* member(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string stringField(const json& obj, std::string_view key) {
  const json* j = member(obj, key);
  if (j == nullptr) return {};
  return scalarText(*j).value_or(std::string());
}

/// alertInfo.state: the WSAPI enum (1 new, 2 acknowledged, 3 fixed) or a word.
std::optional<char> alertStateOf(const json& j) {
  if (auto n = integerOf(j); n && !j.is_string()) {
    if (*n == 1) return 'n';
    if (*n == 2) return 'a';
    if (*n == 3) return 'f';
    return '?';
  }
  if (j.is_string()) return stateLetter(j.get<std::string>());
  return std::nullopt;
}

EventLogEntry readMember(const json& m, std::size_t index) {
  EventLogEntry entry;
  CollectedEvent& e = entry.event;
  e.raw = m.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!m.is_object()) {
    e.code = std::string(kUnparsedCode);
    e.id = unparsedId(e.raw);
    e.text = fmt::format("members[{}] is not an object", index);
    return entry;
  }
  entry.logId = stringField(m, "id");
  if (const json* secs = member(m, "timeSecs")) entry.timeSecs = integerOf(*secs).value_or(0);
  const std::string time = stringField(m, "time");
  if (entry.timeSecs == 0) entry.timeSecs = parseIsoSeconds(time).value_or(0);
  if (entry.timeSecs != 0) e.occurredMs = entry.timeSecs * 1000;
  if (const json* c = member(m, "category")) entry.category = integerOf(*c).value_or(0);
  if (const json* s = member(m, "severity")) {
    if (s->is_string()) {
      e.severity = toLower(s->get<std::string>());
    } else if (auto n = integerOf(*s)) {
      e.severity = wsapiSeverity(*n);
    }
  }
  if (const json* info = member(m, "alertInfo"); info != nullptr && info->is_object()) {
    entry.alertId = stringField(*info, "alertId");
    if (const json* code = member(*info, "messageCode")) {
      if (auto text = scalarText(*code)) {
        // A number is the decimal form the traps use; a string is "0x..." as the CLI prints.
        e.code = normaliseMessageCode(*text).value_or(*text);
      }
    }
    if (const json* state = member(*info, "state")) entry.alertState = alertStateOf(*state);
  }
  e.component = stringField(m, "componentName");
  if (e.component.empty()) e.component = stringField(m, "components");
  if (e.component.empty()) e.component = stringField(m, "resourceName");
  e.text = stringField(m, "description");
  if (e.text.empty()) e.text = stringField(m, "type");
  if (entry.logId.empty() && entry.alertId.empty()) {
    e.code = std::string(kUnparsedCode);
    e.id = unparsedId(e.raw);
    e.text = fmt::format("members[{}] has neither id nor alertInfo.alertId", index);
    return entry;
  }
  if (!entry.alertId.empty()) {
    e.id = entry.alertId;
    if (entry.alertState == 'f') {
      e.kind = "recovery";
      e.id += ":fixed";
    }
  } else {
    e.id = "eventlog:" + entry.logId;
  }
  return entry;
}

CollectedEvent recoveryOf(const CollectedEvent& alert, std::string_view id) {
  CollectedEvent r = alert;
  r.kind = "recovery";
  r.id = fmt::format("{}:fixed", id);
  return r;
}

}  // namespace

const ZoneTable& builtinZones() {
  static const ZoneTable zones = [] {
    constexpr std::int32_t h = 3600;
    return ZoneTable{
        {"UTC", 0},
        {"UT", 0},
        {"GMT", 0},
        {"Z", 0},
        {"HST", -10 * h},
        {"AKST", -9 * h},
        {"AKDT", -8 * h},
        {"PST", -8 * h},
        {"PDT", -7 * h},
        {"MST", -7 * h},
        {"MDT", -6 * h},
        {"CST", -6 * h},
        {"CDT", -5 * h},
        {"EST", -5 * h},
        {"EDT", -4 * h},
        {"WET", 0},
        {"WEST", 1 * h},
        {"CET", 1 * h},
        {"CEST", 2 * h},
        {"MET", 1 * h},
        {"MEST", 2 * h},
        {"EET", 2 * h},
        {"EEST", 3 * h},
        {"MSK", 3 * h},
        {"HKT", 8 * h},
        {"SGT", 8 * h},
        {"AWST", 8 * h},
        {"JST", 9 * h},
        {"KST", 9 * h},
        {"ACST", 9 * h + 1800},
        {"ACDT", 10 * h + 1800},
        {"AEST", 10 * h},
        {"AEDT", 11 * h},
        {"NZST", 12 * h},
        {"NZDT", 13 * h},
    };
  }();
  return zones;
}

Result<ZoneTable> zonesWithOverrides(std::string_view spec) {
  ZoneTable zones = builtinZones();
  while (!trim(spec).empty()) {
    auto comma = spec.find(',');
    std::string_view entry = trim(spec.substr(0, comma));
    spec.remove_prefix(comma == std::string_view::npos ? spec.size() : comma + 1);
    auto eq = entry.find('=');
    std::string_view name = trim(entry.substr(0, eq));
    const bool nameOk = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    });
    auto offset =
        parseOffset(eq == std::string_view::npos ? std::string_view() : trim(entry.substr(eq + 1)));
    if (!nameOk || !offset.has_value()) {
      return fail("config", fmt::format("\"{}\" is not ABBREVIATION=+HH:MM (e.g. CST=+08:00)",
                                        excerpt(entry)));
    }
    zones[toUpper(name)] = offset.value();
  }
  return zones;
}

std::optional<std::string> normaliseMessageCode(std::string_view code) {
  code = trim(code);
  std::uint64_t value = 0;
  if (code.size() > 2 && code[0] == '0' && lower(code[1]) == 'x') {
    auto v = parseNumber<std::uint64_t>(code.substr(2), 16);
    if (!v) return std::nullopt;
    value = *v;
  } else {
    auto v = parseNumber<std::uint64_t>(code, 10);
    if (!v) return std::nullopt;
    value = *v;
  }
  return fmt::format("0x{:07x}", value);
}

std::optional<std::int64_t> parseAlertTime(std::string_view text, const ZoneTable& zones) {
  text = trim(text);
  std::string_view rest;
  auto secs = parseWallClock(text, ' ', rest);
  if (!secs) return std::nullopt;
  if (rest.empty() || !isSpace(rest.front())) return std::nullopt;
  auto offset = zoneOffset(trim(rest), zones);
  if (!offset) return std::nullopt;
  return (*secs - *offset) * 1000;
}

char stateLetter(std::string_view state) {
  state = trim(state);
  if (equalsIgnoreCase(state, "New")) return 'n';
  if (equalsIgnoreCase(state, "Acknowledged")) return 'a';
  if (equalsIgnoreCase(state, "Fixed")) return 'f';
  return '?';
}

Result<std::vector<AlertBlock>> parseShowAlert(std::string_view text, const ZoneTable& zones,
                                               const TextEncoding& encoding) {
  std::vector<AlertBlock> blocks;
  bool anyId = false;
  for (const RawBlock& raw : splitBlocks(text)) {
    blocks.push_back(readBlock(raw, zones, encoding));
    anyId = anyId || !blocks.back().id.empty();
  }
  if (anyId) return blocks;
  const std::string_view trimmed = trim(text);
  auto startsNoAlert = [](std::string_view t) {
    t = trim(t);
    return t.size() >= 8 && equalsIgnoreCase(t.substr(0, 8), "No alert");
  };
  if (trimmed.empty() || startsNoAlert(trimmed)) return std::vector<AlertBlock>{};
  return fail(std::string(kBadOutput),
              fmt::format("showalert -d printed no alert block with an Id (line 1: \"{}\")",
                          excerpt(toUtf8(trimmed.substr(0, trimmed.find('\n')), encoding))));
}

std::string unparsedId(std::string_view raw) { return fmt::format("unparsed:{:016x}", fnv1a(raw)); }

std::string wsapiSeverity(std::int64_t value) {
  static constexpr std::array<std::string_view, 7> kNames = {
      "fatal", "critical", "major", "minor", "degraded", "informational", "debug"};
  if (value >= 1 && value <= 7) return std::string(kNames[static_cast<std::size_t>(value - 1)]);
  if (value == 99) return "unknown";
  return fmt::format("severity {}", value);
}

Result<EventLogPage> parseEventLog(std::string_view body) {
  std::string decoded;
  const std::string_view text = asUtf8(body, {}, decoded);
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    return fail(std::string(kBadOutput),
                fmt::format("the eventlog answer is not JSON: \"{}\"", excerpt(trim(text))));
  }
  if (!doc.is_object()) {
    return fail(
        std::string(kBadOutput),
        fmt::format("the eventlog answer is not a JSON object: \"{}\"", excerpt(trim(text))));
  }
  const json* members = member(doc, "members");
  if (members == nullptr || !members->is_array()) {
    return fail(std::string(kBadOutput),
                fmt::format("$.members: missing or not an array in \"{}\"", excerpt(trim(text))));
  }
  EventLogPage page;
  if (const json* total = member(doc, "total")) {
    auto n = integerOf(*total);
    if (n && *n >= 0) page.total = static_cast<std::uint64_t>(*n);
  }
  for (std::size_t i = 0; i < members->size(); ++i) {
    page.entries.push_back(readMember((*members)[i], i));
  }
  return page;
}

Result<AlertCursor> parseCursor(std::string_view text) {
  auto bad = [](std::string_view what) { return fail("hpe_3par.bad_cursor", std::string(what)); };
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  const json* schema = member(doc, "schema");
  if (schema == nullptr || !schema->is_number_integer() || schema->get<std::int64_t>() != 1) {
    return bad("schema is not 1");
  }
  AlertCursor cursor;
  if (const json* ssh = member(doc, "ssh")) {
    if (!ssh->is_object()) return bad("ssh is not an object");
    cursor.sshStarted = true;
    const json* alerts = member(*ssh, "alerts");
    if (alerts == nullptr || !alerts->is_object()) return bad("ssh.alerts is not an object");
    for (const auto& [id, state] : alerts->items()) {
      if (!state.is_string() || state.get<std::string>().size() != 1) {
        return bad(fmt::format("ssh.alerts.{} is not a state letter", excerpt(id)));
      }
      cursor.alerts.emplace(id, state.get<std::string>()[0]);
    }
    const json* unparsed = member(*ssh, "unparsed");
    if (unparsed == nullptr || !unparsed->is_array()) return bad("ssh.unparsed is not an array");
    for (const json& u : *unparsed) {
      if (!u.is_string()) return bad("ssh.unparsed holds a non-string");
      cursor.unparsed.insert(u.get<std::string>());
    }
  }
  if (const json* wsapi = member(doc, "wsapi")) {
    if (!wsapi->is_object()) return bad("wsapi is not an object");
    cursor.wsapiStarted = true;
    const json* secs = member(*wsapi, "secs");
    if (secs == nullptr || !secs->is_number_integer()) return bad("wsapi.secs is not an integer");
    cursor.wsapiSecs = secs->get<std::int64_t>();
    const json* ids = member(*wsapi, "ids");
    if (ids == nullptr || !ids->is_array()) return bad("wsapi.ids is not an array");
    for (const json& id : *ids) {
      if (!id.is_string()) return bad("wsapi.ids holds a non-string");
      cursor.wsapiIdsAtSecs.insert(id.get<std::string>());
    }
  }
  return cursor;
}

std::string toJson(const AlertCursor& cursor) {
  json doc = {{"schema", 1}};
  if (cursor.sshStarted) {
    json alerts = json::object();
    for (const auto& [id, state] : cursor.alerts) alerts[id] = std::string(1, state);
    doc["ssh"] = {{"alerts", alerts}, {"unparsed", cursor.unparsed}};
  }
  if (cursor.wsapiStarted) {
    doc["wsapi"] = {{"secs", cursor.wsapiSecs}, {"ids", cursor.wsapiIdsAtSecs}};
  }
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

AlertDiff followAlerts(const std::vector<AlertBlock>& blocks, AlertCursor& cursor) {
  AlertDiff diff;
  const bool first = !cursor.sshStarted;
  std::map<std::string, char, std::less<>> alerts;
  std::set<std::string, std::less<>> unparsed;
  std::size_t quiet = 0;
  for (const AlertBlock& block : blocks) {
    for (const auto& note : block.notes) diff.notes.push_back(note);
    if (block.id.empty()) {
      std::string id = unparsedId(block.event.raw);
      if (!cursor.unparsed.contains(id) && !unparsed.contains(id)) {
        CollectedEvent e = block.event;
        e.id = id;
        diff.events.push_back(std::move(e));
      }
      unparsed.insert(std::move(id));
      continue;
    }
    const char state = stateLetter(block.state);
    if (!alerts.try_emplace(block.id, state).second) {
      diff.notes.push_back(
          fmt::format("line {}: alert Id {} listed twice; the first counts", block.line, block.id));
      continue;
    }
    CollectedEvent alert = block.event;
    alert.id = block.id;
    auto known = cursor.alerts.find(block.id);
    if (first) {
      // History stays history: acknowledged and fixed alerts have had their attention.
      if (state == 'a' || state == 'f') {
        ++quiet;
        continue;
      }
      diff.events.push_back(std::move(alert));
      continue;
    }
    if (known == cursor.alerts.end()) {
      if (state == 'f') {
        diff.events.push_back(alert);
        diff.events.push_back(recoveryOf(alert, block.id));
        continue;
      }
      diff.events.push_back(std::move(alert));
      continue;
    }
    if (state == 'f' && known->second != 'f') diff.events.push_back(recoveryOf(alert, block.id));
  }
  std::size_t gone = 0;
  for (const auto& [id, state] : cursor.alerts) {
    if (!alerts.contains(id)) ++gone;
  }
  if (gone > 0) {
    diff.notes.push_back(
        fmt::format("{} alert Id(s) no longer listed by showalert (removed); forgotten", gone));
  }
  if (first) {
    diff.notes.push_back(fmt::format(
        "first run: {} alert(s) listed; the {} not New (acknowledged or fixed) are remembered "
        "but not reported",
        alerts.size(), quiet));
  }
  cursor.alerts = std::move(alerts);
  cursor.unparsed = std::move(unparsed);
  cursor.sshStarted = true;
  return diff;
}

AlertDiff followEventLog(const EventLogPage& page, AlertCursor& cursor) {
  AlertDiff diff;
  const bool first = !cursor.wsapiStarted;
  std::int64_t markSecs = cursor.wsapiSecs;
  std::set<std::string, std::less<>> markIds = cursor.wsapiIdsAtSecs;
  std::size_t alertsSeen = 0;
  for (const EventLogEntry& entry : page.entries) {
    const bool isAlert = entry.category == 2 || (entry.category == 0 && !entry.alertId.empty()) ||
                         entry.event.code == kUnparsedCode;
    const bool after =
        entry.timeSecs > cursor.wsapiSecs ||
        (entry.timeSecs == cursor.wsapiSecs && !cursor.wsapiIdsAtSecs.contains(entry.logId));
    if (entry.timeSecs > markSecs) {
      markSecs = entry.timeSecs;
      markIds.clear();
    }
    if (entry.timeSecs == markSecs && !entry.logId.empty()) markIds.insert(entry.logId);
    if (!isAlert) continue;
    ++alertsSeen;
    // An entry without a readable time cannot be placed against the mark: it is reported
    // every run and the home drops the repeats by its stable id.
    if (first || (!after && entry.timeSecs != 0)) continue;
    diff.events.push_back(entry.event);
  }
  if (page.total && *page.total > page.entries.size()) {
    diff.notes.push_back(fmt::format("the event log holds {} entries; this page has {}",
                                     *page.total, page.entries.size()));
  }
  if (first) {
    diff.notes.push_back(fmt::format(
        "first run: the WSAPI event log's {} alert entr{} are history and not reported; later "
        "ones will be",
        alertsSeen, alertsSeen == 1 ? "y" : "ies"));
  }
  cursor.wsapiSecs = markSecs;
  cursor.wsapiIdsAtSecs = std::move(markIds);
  cursor.wsapiStarted = true;
  return diff;
}

}  // namespace pass::hpe_3par
