// The on-call schedule from an iCalendar file. libical parses the file and expands the
// recurrence rules; this is the only file that calls ical* (RAII types below). IANA time zones
// come from date/tz, VTIMEZONEs in the file from libical; both go through oncall_time.hpp so
// that wall-clock times resolve the same way. docs/on-call.md describes the format.

#include "pass/home/oncall.hpp"

#include <algorithm>
#include <cctype>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <date/date.h>
#include <date/tz.h>
#include <fmt/format.h>
#include <libical/ical.h>

#include "oncall/oncall_detail.hpp"

namespace pass::home {
namespace {

using oncall::LocalSeconds;
using oncall::lower;
using oncall::SysSeconds;
using oncall::trim;
using oncall::upper;
using std::chrono::seconds;

constexpr std::string_view kCode = "oncall";
constexpr std::uintmax_t kMaxFileBytes = 16 * 1024 * 1024;
// A recurrence is expanded (and cached) from its DTSTART up to the instant asked about; this
// bounds the cache of one RRULE (an hourly rule reaches it after about 23 years).
constexpr std::size_t kMaxOccurrences = 200'000;
constexpr unsigned kMaxLevel = 99;

// ---------------------------------------------------------------------------------------------
// libical, wrapped once.

struct ComponentDeleter {
  void operator()(icalcomponent* c) const noexcept { icalcomponent_free(c); }
};
using ComponentPtr = std::unique_ptr<icalcomponent, ComponentDeleter>;

struct IteratorDeleter {
  void operator()(icalrecur_iterator* i) const noexcept { icalrecur_iterator_free(i); }
};
using IteratorPtr = std::unique_ptr<icalrecur_iterator, IteratorDeleter>;

// Iterating with icalcomponent_get_first/next_* uses a cursor inside the component, so these
// collect into vectors before anything else touches the component.
std::vector<icalproperty*> propertiesOf(icalcomponent* c, icalproperty_kind kind) {
  std::vector<icalproperty*> out;
  for (icalproperty* p = icalcomponent_get_first_property(c, kind); p != nullptr;
       p = icalcomponent_get_next_property(c, kind)) {
    out.push_back(p);
  }
  return out;
}

std::vector<icalcomponent*> childrenOf(icalcomponent* c, icalcomponent_kind kind) {
  std::vector<icalcomponent*> out;
  for (icalcomponent* child = icalcomponent_get_first_component(c, kind); child != nullptr;
       child = icalcomponent_get_next_component(c, kind)) {
    out.push_back(child);
  }
  return out;
}

std::string text(const char* s) { return s == nullptr ? std::string() : std::string(s); }

std::string propertyName(const icalproperty* p) {
  return upper(text(icalproperty_get_property_name(p)));
}

std::string valueText(icalproperty* p) { return text(icalproperty_get_value_as_string(p)); }

/// The X-parameter `name` of `p`, if present.
std::optional<std::string> xParameter(icalproperty* p, std::string_view name) {
  for (icalparameter* param = icalproperty_get_first_parameter(p, ICAL_X_PARAMETER);
       param != nullptr; param = icalproperty_get_next_parameter(p, ICAL_X_PARAMETER)) {
    if (upper(text(icalparameter_get_xname(param))) == name) {
      return text(icalparameter_get_xvalue(param));
    }
  }
  return std::nullopt;
}

std::vector<icalproperty*> xProperties(icalcomponent* c, std::string_view name) {
  std::vector<icalproperty*> out;
  for (icalproperty* p : propertiesOf(c, ICAL_X_PROPERTY)) {
    if (upper(text(icalproperty_get_x_name(p))) == name) out.push_back(p);
  }
  return out;
}

/// What a valid value of `property` looks like, for error messages.
std::string_view exampleFor(std::string_view property) {
  static const std::unordered_map<std::string_view, std::string_view> kExamples = {
      {"DTSTART",
       "write DTSTART;TZID=Europe/Berlin:20240304T090000, DTSTART:20240304T080000Z or, for a "
       "whole day, DTSTART;VALUE=DATE:20240304"},
      {"DTEND",
       "write DTEND;TZID=Europe/Berlin:20240311T090000, DTEND:20240311T080000Z or "
       "DTEND;VALUE=DATE:20240305"},
      {"DURATION", "write DURATION:P1W, DURATION:P1D or DURATION:PT12H"},
      {"RRULE", "write RRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=MO or RRULE:FREQ=DAILY;COUNT=10"},
      {"EXDATE", "write EXDATE;TZID=Europe/Berlin:20240318T090000"},
      {"RDATE", "write RDATE;TZID=Europe/Berlin:20240318T090000"},
      {"RECURRENCE-ID",
       "write RECURRENCE-ID;TZID=Europe/Berlin:20240318T090000, the start of the shift replaced"},
      {"ATTENDEE",
       "write ATTENDEE;CN=Alice Example;X-PASS-PHONE=+4930123456:mailto:alice@example.com or "
       "ATTENDEE;CN=Alice Example:tel:+4930123456"},
      {"X-PASS-LEVEL", "write X-PASS-LEVEL:1 for the first line, X-PASS-LEVEL:2 for its backup"},
      {"X-PASS-PHONE", "write X-PASS-PHONE:+4930123456 (international form)"},
      {"X-WR-TIMEZONE", "write X-WR-TIMEZONE:Europe/Berlin"},
      {"TZOFFSETFROM", "write TZOFFSETFROM:+0100"},
      {"TZOFFSETTO", "write TZOFFSETTO:+0200"},
      {"UID", "write UID:rotation-2024@example.com"},
  };
  const auto it = kExamples.find(property);
  return it == kExamples.end() ? std::string_view("see RFC 5545") : it->second;
}

// Properties this file reads: libical's complaints about any other property do not matter.
bool isRead(std::string_view property) {
  static const std::set<std::string_view> kRead = {
      "DTSTART",  "DTEND",  "DURATION",      "RRULE", "EXDATE",       "RDATE",     "UID",
      "ATTENDEE", "STATUS", "RECURRENCE-ID", "TZID",  "TZOFFSETFROM", "TZOFFSETTO"};
  return kRead.contains(property);
}

// ---------------------------------------------------------------------------------------------
// Where things are in the file. libical keeps no line numbers and gives up without a word on
// unbalanced BEGIN/END, so the text is scanned for its structure first: content lines
// (unfolded), their property names and the component tree. Values are left to libical.

struct SourceProperty {
  int line = 0;
  std::string name;
};

struct SourceComponent {
  std::string name;
  int line = 0;
  std::vector<SourceProperty> properties;
  std::vector<std::size_t> children;
};

struct SourceMap {
  std::string text;                         // what libical parses: the file without a BOM
  std::vector<SourceComponent> components;  // [0] is the VCALENDAR
};

Error structureError(std::string_view file, int line, std::string_view what) {
  return Error{std::string(kCode), line > 0 ? fmt::format("{}:{}: {}", file, line, what)
                                            : fmt::format("{}: {}", file, what)};
}

Result<SourceMap> scanSource(std::string_view input, std::string_view file) {
  if (input.starts_with("\xEF\xBB\xBF")) input.remove_prefix(3);
  SourceMap map;
  map.text.assign(input);
  std::vector<std::size_t> open;
  bool closed = false;

  auto content = [&](const std::string& line, int number) -> Status {
    if (trim(line).empty()) return {};
    const std::string name = upper(trim(line.substr(0, line.find_first_of(";:"))));
    const auto colon = line.find(':');
    const std::string value =
        colon == std::string::npos ? std::string() : upper(trim(line.substr(colon + 1)));
    if (closed) {
      return std::unexpected(structureError(
          file, number, "text after END:VCALENDAR; a schedule file holds one calendar"));
    }
    if (name == "BEGIN") {
      if (open.empty() && value != "VCALENDAR") {
        return std::unexpected(structureError(
            file, number,
            fmt::format("BEGIN:{} outside a calendar; the file must start with BEGIN:VCALENDAR",
                        value)));
      }
      map.components.push_back(SourceComponent{value, number, {}, {}});
      if (!open.empty()) map.components[open.back()].children.push_back(map.components.size() - 1);
      open.push_back(map.components.size() - 1);
      return {};
    }
    if (open.empty()) {
      return std::unexpected(structureError(
          file, number,
          fmt::format("\"{}\" outside BEGIN:VCALENDAR ... END:VCALENDAR; is this an iCalendar "
                      "(.ics) file?",
                      line.substr(0, 60))));
    }
    if (name == "END") {
      const SourceComponent& top = map.components[open.back()];
      if (top.name != value) {
        return std::unexpected(structureError(
            file, number,
            fmt::format("END:{} does not close BEGIN:{} from line {}; write END:{} first", value,
                        top.name, top.line, top.name)));
      }
      open.pop_back();
      closed = open.empty();
      return {};
    }
    map.components[open.back()].properties.push_back(SourceProperty{number, name});
    return {};
  };

  // RFC 5545 3.1: a line starting with a space or tab continues the previous one.
  std::string logical;
  int logicalLine = 0;
  int number = 0;
  std::size_t pos = 0;
  while (pos < input.size()) {
    auto end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    std::string_view physical = input.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (physical.ends_with('\r')) physical.remove_suffix(1);
    if (!physical.empty() && (physical.front() == ' ' || physical.front() == '\t') &&
        logicalLine > 0) {
      logical.append(physical.substr(1));
      continue;
    }
    if (logicalLine > 0) {
      if (auto status = content(logical, logicalLine); !status) {
        return std::unexpected(status.error());
      }
    }
    logical.assign(physical);
    logicalLine = number;
  }
  if (logicalLine > 0) {
    if (auto status = content(logical, logicalLine); !status) {
      return std::unexpected(status.error());
    }
  }
  if (map.components.empty()) {
    return std::unexpected(
        structureError(file, 0, "no BEGIN:VCALENDAR; this is not an iCalendar (.ics) file"));
  }
  if (!open.empty()) {
    const SourceComponent& top = map.components[open.back()];
    return std::unexpected(structureError(
        file, top.line,
        fmt::format("BEGIN:{} has no END:{}; the file is cut short or an END line is missing",
                    top.name, top.name)));
  }
  return map;
}

/// The property libical names in a value error ("... in EXDATE property. ...", "No value for
/// DESCRIPTION property. ..."), or "".
std::string propertyInError(icalproperty* p) {
  const std::string said = text(icalproperty_get_xlicerror(p));
  const auto end = said.find(" property");
  if (end == std::string::npos) return {};
  const auto begin = said.rfind(' ', end - 1);
  return upper(said.substr(begin == std::string::npos ? 0 : begin + 1,
                           end - (begin == std::string::npos ? 0 : begin + 1)));
}

bool isParameterError(icalproperty* p) {
  icalparameter* type = icalproperty_get_first_parameter(p, ICAL_XLICERRORTYPE_PARAMETER);
  if (type == nullptr) return false;
  const auto kind = icalparameter_get_xlicerrortype(type);
  return kind == ICAL_XLICERRORTYPE_PARAMETERNAMEPARSEERROR ||
         kind == ICAL_XLICERRORTYPE_PARAMETERVALUEPARSEERROR;
}

/// Lines of libical's components and properties, found by walking libical's tree beside the
/// scanned one. libical drops components it does not know (with their lines), splits
/// multi-valued lines (EXDATE:a,b) into several properties, puts an X-LIC-ERROR where it
/// dropped a property, and appends one after a property with a bad parameter.
class LineMap {
 public:
  LineMap(icalcomponent* calendar, const SourceMap& source) { map(calendar, source, 0); }

  int of(const icalcomponent* c) const {
    const auto it = components_.find(c);
    return it == components_.end() ? 0 : it->second;
  }
  int of(const icalproperty* p) const {
    const auto it = properties_.find(p);
    return it == properties_.end() ? 0 : it->second;
  }
  /// For an X-LIC-ERROR: the name of the property on the line it stands for.
  std::string subjectOf(const icalproperty* p) const {
    const auto it = subjects_.find(p);
    return it == subjects_.end() ? std::string() : it->second;
  }

 private:
  void map(icalcomponent* c, const SourceMap& source, std::size_t index) {
    const SourceComponent& record = source.components[index];
    components_[c] = record.line;
    const auto& lines = record.properties;
    std::size_t cursor = 0;
    int previousLine = record.line;
    std::string previousName;
    for (icalproperty* p : propertiesOf(c, ICAL_ANY_PROPERTY)) {
      const std::string name = propertyName(p);
      int line = record.line;
      std::string subject = name;
      if (icalproperty_isa(p) == ICAL_XLICERROR_PROPERTY) {
        const std::string named = propertyInError(p);
        if (isParameterError(p)) {
          line = previousLine;
          subject = previousName;
        } else if (!named.empty() && named == previousName &&
                   (cursor >= lines.size() || lines[cursor].name != named)) {
          line = previousLine;  // a bad value in a multi-valued line libical split
          subject = named;
        } else if (cursor < lines.size()) {
          line = lines[cursor].line;
          subject = lines[cursor].name;
          ++cursor;
        }
        subjects_[p] = subject;
      } else if (cursor < lines.size() && lines[cursor].name == name) {
        line = lines[cursor++].line;
      } else if (name == previousName) {
        line = previousLine;
      } else {
        for (std::size_t j = cursor; j < lines.size(); ++j) {
          if (lines[j].name != name) continue;
          line = lines[j].line;
          cursor = j + 1;
          break;
        }
      }
      properties_[p] = line;
      previousLine = line;
      previousName = subject;
    }
    std::size_t next = 0;
    for (icalcomponent* child : childrenOf(c, ICAL_ANY_COMPONENT)) {
      const std::string kind = text(icalcomponent_kind_to_string(icalcomponent_isa(child)));
      while (next < record.children.size() &&
             source.components[record.children[next]].name != kind) {
        ++next;
      }
      if (next == record.children.size()) return;
      map(child, source, record.children[next++]);
    }
  }

  std::unordered_map<const icalcomponent*, int> components_;
  std::unordered_map<const icalproperty*, int> properties_;
  std::unordered_map<const icalproperty*, std::string> subjects_;
};

// ---------------------------------------------------------------------------------------------
// Time zones and times.

std::optional<LocalSeconds> localOf(const icaltimetype& t) {
  if (t.year < 1 || t.month < 1 || t.day < 1) return std::nullopt;
  const date::year_month_day ymd{date::year{t.year}, date::month{static_cast<unsigned>(t.month)},
                                 date::day{static_cast<unsigned>(t.day)}};
  if (!ymd.ok()) return std::nullopt;
  const LocalSeconds midnight{date::local_days{ymd}};
  if (t.is_date) return midnight;
  if (t.hour < 0 || t.hour > 23 || t.minute < 0 || t.minute > 59 || t.second < 0 || t.second > 59) {
    return std::nullopt;
  }
  return midnight + std::chrono::hours(t.hour) + std::chrono::minutes(t.minute) + seconds(t.second);
}

icaltimetype icalOf(LocalSeconds local, bool isDate) {
  const auto day = date::floor<date::days>(local);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<seconds> clock{local - day};
  icaltimetype t = icaltime_null_time();
  t.year = static_cast<int>(ymd.year());
  t.month = static_cast<int>(static_cast<unsigned>(ymd.month()));
  t.day = static_cast<int>(static_cast<unsigned>(ymd.day()));
  t.is_date = isDate ? 1 : 0;
  if (!isDate) {
    t.hour = static_cast<int>(clock.hours().count());
    t.minute = static_cast<int>(clock.minutes().count());
    t.second = static_cast<int>(clock.seconds().count());
  }
  return t;
}

/// UTC, an IANA zone (date/tz) or a VTIMEZONE of the file (libical, owned by the calendar).
class Zone {
 public:
  static Zone utc() { return Zone("UTC", nullptr, nullptr); }
  static Zone iana(const date::time_zone* tz) { return Zone(std::string(tz->name()), tz, nullptr); }
  static Zone vtimezone(std::string tzid, icaltimezone* tz) {
    return Zone(std::move(tzid), nullptr, tz);
  }

  const std::string& name() const { return name_; }

  seconds offsetAt(SysSeconds at) const {
    if (tz_ != nullptr) return tz_->get_info(at).offset;
    if (ical_ == nullptr) return seconds(0);
    icaltimetype t = icalOf(LocalSeconds{at.time_since_epoch()}, false);
    t.zone = icaltimezone_get_utc_timezone();
    int daylight = 0;
    return seconds(icaltimezone_get_utc_offset_of_utc_time(ical_, &t, &daylight));
  }

  SysSeconds toSys(LocalSeconds local) const {
    return oncall::localToSys(local, [this](SysSeconds t) { return offsetAt(t); });
  }

  LocalSeconds toLocal(SysSeconds at) const {
    return LocalSeconds{(at + offsetAt(at)).time_since_epoch()};
  }

 private:
  Zone(std::string name, const date::time_zone* tz, icaltimezone* ical)
      : name_(std::move(name)), tz_(tz), ical_(ical) {}
  std::string name_;
  const date::time_zone* tz_;
  icaltimezone* ical_;
};

/// A DATE or DATE-TIME value; `zone` is null for a floating time.
struct TimeValue {
  LocalSeconds local{};
  bool isDate = false;
  const Zone* zone = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Shifts.

struct Recurrence {
  icalrecurrencetype rule{};  // UNTIL removed: it is compared as an instant here
  std::optional<SysSeconds> until;
  std::optional<date::local_days> untilDay;
  IteratorPtr iterator;
  std::vector<LocalSeconds> starts;  // expanded so far, ascending
  bool done = false;
};

struct Shift {
  int line = 0;
  std::string uid;
  unsigned level = 1;
  bool levelGiven = false;
  bool cancelled = false;
  std::vector<OnCallPerson> people;
  const Zone* zone = nullptr;  // wall-clock times of the shift are in this zone
  LocalSeconds start{};
  bool allDay = false;
  // An occurrence starting at local time L ends at zone->toSys(L + wall) + exact: days and
  // DTEND in the same zone keep wall-clock time across a DST change, hours of a DURATION are
  // exact (RFC 5545 3.3.6).
  seconds wall{0};
  seconds exact{0};
  std::vector<Recurrence> rules;
  std::vector<LocalSeconds> dates;   // DTSTART when there is no RRULE, and RDATEs; ascending
  std::vector<SysSeconds> excluded;  // EXDATE and overridden instances; ascending
  std::vector<date::local_days> excludedDays;
  std::optional<TimeValue> recurrenceId;
  std::optional<std::size_t> master;  // an override: the series it replaces an instance of
};

void expand(const Shift& shift, Recurrence& r, LocalSeconds horizon) {
  while (!r.done && (r.starts.empty() || r.starts.back() <= horizon)) {
    const icaltimetype next = icalrecur_iterator_next(r.iterator.get());
    const auto local = icaltime_is_null_time(next) ? std::nullopt : localOf(next);
    if (!local || r.starts.size() >= kMaxOccurrences ||
        (r.untilDay && date::floor<date::days>(*local) > *r.untilDay) ||
        (r.until && shift.zone->toSys(*local) > *r.until)) {
      r.done = true;
      r.iterator.reset();
      break;
    }
    r.starts.push_back(*local);
  }
}

bool isExcluded(const Shift& shift, LocalSeconds local, SysSeconds start) {
  return std::binary_search(shift.excluded.begin(), shift.excluded.end(), start) ||
         std::binary_search(shift.excludedDays.begin(), shift.excludedDays.end(),
                            date::floor<date::days>(local));
}

/// Whether an occurrence of `shift` covers `at`; expands its recurrences as far as needed.
bool covers(Shift& shift, std::chrono::system_clock::time_point at) {
  const SysSeconds atSeconds = date::floor<seconds>(at);
  const LocalSeconds localAt = shift.zone->toLocal(atSeconds);
  // Two days of slack absorb any difference between UTC offsets.
  constexpr seconds kSlack = std::chrono::hours(48);
  const LocalSeconds from = localAt - shift.wall - shift.exact - kSlack;
  const LocalSeconds to = localAt + kSlack;
  auto anyCovers = [&](const std::vector<LocalSeconds>& starts) {
    for (auto it = std::lower_bound(starts.begin(), starts.end(), from);
         it != starts.end() && *it <= to; ++it) {
      const SysSeconds begin = shift.zone->toSys(*it);
      if (atSeconds < begin || isExcluded(shift, *it, begin)) continue;
      const SysSeconds end = shift.zone->toSys(*it + shift.wall) + shift.exact;
      if (atSeconds < end) return true;
    }
    return false;
  };
  if (anyCovers(shift.dates)) return true;
  for (auto& rule : shift.rules) {
    expand(shift, rule, to);
    if (anyCovers(rule.starts)) return true;
  }
  return false;
}

std::string personKey(const OnCallPerson& p) {
  if (!p.email.empty()) return "e:" + lower(p.email);
  if (!p.phone.empty()) return "p:" + p.phone;
  return "n:" + lower(p.name);
}

/// Phone numbers lose their visual separators; what is left is an optional '+' and digits.
std::optional<std::string> normalisePhone(std::string_view raw) {
  std::string out;
  for (char c : trim(raw)) {
    if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/') continue;
    if (c == '+' && out.empty()) {
      out.push_back(c);
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    out.push_back(c);
  }
  const std::size_t digits = out.size() - (out.starts_with('+') ? 1 : 0);
  if (digits < 3 || digits > 15) return std::nullopt;
  return out;
}

bool isEmail(std::string_view s) {
  const auto at = s.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= s.size()) return false;
  if (s.find('@', at + 1) != std::string_view::npos) return false;
  return std::none_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isspace(c) || c == ',' || c == ';' || c == '<' || c == '>' || c == ':';
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct OnCallSchedule::Impl {
  ComponentPtr calendar;   // owns the VTIMEZONEs that zones point into
  std::deque<Zone> zones;  // stable addresses; [0] is UTC
  std::vector<Shift> shifts;
  unsigned levels = 1;
  // Expanding recurrences fills caches, and libical fills its own per-VTIMEZONE caches on
  // conversions: queries are serialised.
  std::mutex mutex;
};

namespace {

class Loader {
 public:
  Loader(std::string_view file, OnCallSchedule::Impl& out) : file_(file), out_(out) {}

  Status run(const SourceMap& source) {
    out_.calendar.reset(icalparser_parse_string(source.text.c_str()));
    if (!out_.calendar || icalcomponent_isa(out_.calendar.get()) != ICAL_VCALENDAR_COMPONENT) {
      return fail(std::string(kCode),
                  fmt::format("{}: libical could not read the calendar; check it opens in a "
                              "calendar program",
                              file_));
    }
    icalcomponent* calendar = out_.calendar.get();
    lines_.emplace(calendar, source);
    if (auto status = checkLibicalErrors(calendar); !status) return status;

    out_.zones.push_back(Zone::utc());
    calendarZone_ = &out_.zones.front();
    for (icalproperty* p : xProperties(calendar, "X-WR-TIMEZONE")) {
      auto zone = zoneNamed(trim(text(icalproperty_get_x(p))), p, "X-WR-TIMEZONE");
      if (!zone) return std::unexpected(zone.error());
      calendarZone_ = *zone;
    }
    for (icalproperty* p : xProperties(calendar, "X-PASS-LEVEL")) {
      auto level = levelOf(p);
      if (!level) return std::unexpected(level.error());
      defaultLevel_ = *level;
    }

    for (icalcomponent* event : childrenOf(calendar, ICAL_VEVENT_COMPONENT)) {
      auto shift = shiftOf(event);
      if (!shift) return std::unexpected(shift.error());
      out_.shifts.push_back(std::move(*shift));
    }
    linkOverrides();
    if (std::all_of(out_.shifts.begin(), out_.shifts.end(),
                    [](const Shift& s) { return s.cancelled; })) {
      return fail(std::string(kCode),
                  fmt::format("{}: no shifts: the calendar holds no VEVENT; export the on-call "
                              "calendar itself, not an empty or other one",
                              file_));
    }
    out_.levels = 1;
    for (const Shift& s : out_.shifts) {
      if (!s.cancelled) out_.levels = std::max(out_.levels, s.level);
    }
    return {};
  }

 private:
  std::unexpected<Error> error(int line, std::string_view property, std::string_view what) const {
    const std::string where = line > 0 ? fmt::format("{}:{}", file_, line) : file_;
    if (property.empty()) return fail(std::string(kCode), fmt::format("{}: {}", where, what));
    return fail(std::string(kCode), fmt::format("{}: {}: {}", where, property, what));
  }
  std::unexpected<Error> error(icalproperty* p, std::string_view what) const {
    return error(lines_->of(p), propertyName(p), what);
  }

  // libical marks what it could not read with X-LIC-ERROR properties and goes on; those about
  // properties this schedule reads, and unreadable lines, are errors.
  Status checkLibicalErrors(icalcomponent* c) {
    const auto kind = icalcomponent_isa(c);
    if (kind != ICAL_VCALENDAR_COMPONENT && kind != ICAL_VEVENT_COMPONENT &&
        kind != ICAL_VTIMEZONE_COMPONENT && kind != ICAL_XSTANDARD_COMPONENT &&
        kind != ICAL_XDAYLIGHT_COMPONENT) {
      return {};
    }
    for (icalproperty* p : propertiesOf(c, ICAL_XLICERROR_PROPERTY)) {
      icalparameter* typeParam = icalproperty_get_first_parameter(p, ICAL_XLICERRORTYPE_PARAMETER);
      const auto type = typeParam == nullptr ? ICAL_XLICERRORTYPE_NONE
                                             : icalparameter_get_xlicerrortype(typeParam);
      const std::string subject = lines_->subjectOf(p);
      const std::string said = text(icalproperty_get_xlicerror(p));
      const int line = lines_->of(p);
      switch (type) {
        case ICAL_XLICERRORTYPE_VALUEPARSEERROR:
          if (!isRead(subject)) continue;
          return error(
              line, subject,
              fmt::format("cannot read the value (libical: {}); {}", said, exampleFor(subject)));
        case ICAL_XLICERRORTYPE_PARAMETERNAMEPARSEERROR:
        case ICAL_XLICERRORTYPE_PARAMETERVALUEPARSEERROR:
          if (!isRead(subject)) continue;
          return error(line, subject,
                       fmt::format("bad parameter (libical: {}); {}", said, exampleFor(subject)));
        case ICAL_XLICERRORTYPE_PROPERTYPARSEERROR:
          return error(line, "",
                       fmt::format("unknown property \"{}\" (libical: {}); a property is an "
                                   "iCalendar name such as DTSTART or starts with X-",
                                   subject, said));
        case ICAL_XLICERRORTYPE_COMPONENTPARSEERROR:
          return error(line, "",
                       fmt::format("not a property line (libical: {}); a line is NAME:value or "
                                   "NAME;PARAM=value:value, a continued line starts with a space",
                                   said));
        default:
          return error(line, subject, fmt::format("libical: {}", said));
      }
    }
    for (icalcomponent* child : childrenOf(c, ICAL_ANY_COMPONENT)) {
      if (auto status = checkLibicalErrors(child); !status) return status;
    }
    return {};
  }

  Result<unsigned> levelOf(icalproperty* p) const {
    const std::string value(trim(text(icalproperty_get_x(p))));
    unsigned level = 0;
    const bool digits = !value.empty() && value.size() <= 2 &&
                        std::all_of(value.begin(), value.end(),
                                    [](unsigned char c) { return std::isdigit(c) != 0; });
    if (digits) level = static_cast<unsigned>(std::stoul(value));
    if (level < 1 || level > kMaxLevel) {
      return error(p, fmt::format("\"{}\" is not an escalation level (a whole number from 1 to "
                                  "{}); {}",
                                  value, kMaxLevel, exampleFor("X-PASS-LEVEL")));
    }
    return level;
  }

  /// A TZID: a VTIMEZONE of the file first (RFC 5545 makes it authoritative), else an IANA
  /// name, also behind a vendor prefix such as "/mozilla.org/20050126_1/Europe/Berlin".
  Result<const Zone*> zoneNamed(std::string_view tzid, icalproperty* p, std::string_view property) {
    const std::string key(tzid);
    if (const auto it = zonesByTzid_.find(key); it != zonesByTzid_.end()) return it->second;
    const Zone* zone = nullptr;
    if (icaltimezone* tz = icalcomponent_get_timezone(out_.calendar.get(), key.c_str())) {
      out_.zones.push_back(Zone::vtimezone(key, tz));
      zone = &out_.zones.back();
    }
    for (std::size_t from = 0; zone == nullptr && from < key.size();) {
      try {
        out_.zones.push_back(Zone::iana(date::locate_zone(key.substr(from))));
        zone = &out_.zones.back();
      } catch (const std::exception&) {
        const auto slash = key.find('/', from);
        if (slash == std::string::npos) break;
        from = slash + 1;
      }
    }
    if (zone == nullptr) {
      return error(lines_->of(p), property,
                   fmt::format("unknown time zone \"{}\": the file has no VTIMEZONE with that "
                               "TZID and it is no IANA zone name; export the calendar with its "
                               "time zones or write an IANA name such as Europe/Berlin",
                               tzid));
    }
    zonesByTzid_.emplace(key, zone);
    return zone;
  }

  /// A DATE or DATE-TIME property value; a floating time gets `floating` (may be null).
  Result<TimeValue> timeOf(icalproperty* p, const icaltimetype& t, const Zone* floating) {
    const std::string name = propertyName(p);
    const auto local = localOf(t);
    if (!local) {
      return error(p, fmt::format("\"{}\" is not a valid date or date-time; {}", valueText(p),
                                  exampleFor(name)));
    }
    TimeValue value{*local, t.is_date != 0, floating};
    if (icaltime_is_utc(t)) {
      value.zone = &out_.zones.front();
      return value;
    }
    if (icalparameter* tzid = icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER)) {
      auto zone = zoneNamed(trim(text(icalparameter_get_tzid(tzid))), p, name);
      if (!zone) return std::unexpected(zone.error());
      value.zone = *zone;
    }
    return value;
  }

  Result<icalproperty*> single(icalcomponent* event, icalproperty_kind kind) const {
    const auto all = propertiesOf(event, kind);
    if (all.size() > 1) {
      return error(all[1], fmt::format("appears more than once in the VEVENT of line {}; a "
                                       "shift has one",
                                       lines_->of(event)));
    }
    return all.empty() ? nullptr : all.front();
  }

  Result<Shift> shiftOf(icalcomponent* event) {
    Shift shift;
    shift.line = lines_->of(event);
    for (auto kind : {ICAL_DTEND_PROPERTY, ICAL_DURATION_PROPERTY, ICAL_UID_PROPERTY}) {
      if (auto once = single(event, kind); !once) return std::unexpected(once.error());
    }
    shift.uid = text(icalcomponent_get_uid(event));
    shift.cancelled = icalcomponent_get_status(event) == ICAL_STATUS_CANCELLED;

    auto ridProperty = single(event, ICAL_RECURRENCEID_PROPERTY);
    if (!ridProperty) return std::unexpected(ridProperty.error());
    if (*ridProperty != nullptr) {
      icalproperty* rid = *ridProperty;
      if (icalparameter* range = icalproperty_get_first_parameter(rid, ICAL_RANGE_PARAMETER);
          range != nullptr && icalparameter_get_range(range) == ICAL_RANGE_THISANDFUTURE) {
        return error(rid,
                     "RANGE=THISANDFUTURE is not supported; end the series with UNTIL and "
                     "start a new one");
      }
      if (shift.uid.empty()) {
        return error(rid, "an override needs the UID of the series it changes; add UID:...");
      }
      auto value = timeOf(rid, icalproperty_get_recurrenceid(rid), nullptr);
      if (!value) return std::unexpected(value.error());
      shift.recurrenceId = *value;
    }
    // A cancelled instance only removes its occurrence from the series.
    if (shift.cancelled) return shift;

    auto startProperty = single(event, ICAL_DTSTART_PROPERTY);
    if (!startProperty) return std::unexpected(startProperty.error());
    if (*startProperty == nullptr) {
      return error(
          shift.line, "DTSTART",
          fmt::format("missing in the VEVENT; every shift has a start; {}", exampleFor("DTSTART")));
    }
    auto start = timeOf(*startProperty, icalproperty_get_dtstart(*startProperty), calendarZone_);
    if (!start) return std::unexpected(start.error());
    shift.zone = start->zone;
    shift.start = start->local;
    shift.allDay = start->isDate;

    if (auto status = endOf(event, *startProperty, shift); !status) {
      return std::unexpected(status.error());
    }
    if (auto status = recurrenceOf(event, shift); !status) return std::unexpected(status.error());
    if (auto status = levelAndPeople(event, shift); !status) {
      return std::unexpected(status.error());
    }
    return shift;
  }

  Status endOf(icalcomponent* event, icalproperty* startProperty, Shift& shift) {
    icalproperty* endProperty = icalcomponent_get_first_property(event, ICAL_DTEND_PROPERTY);
    icalproperty* durationProperty =
        icalcomponent_get_first_property(event, ICAL_DURATION_PROPERTY);
    if (endProperty != nullptr && durationProperty != nullptr) {
      return error(durationProperty, "a shift has DTEND or DURATION, not both");
    }
    if (endProperty != nullptr) {
      auto end = timeOf(endProperty, icalproperty_get_dtend(endProperty), shift.zone);
      if (!end) return std::unexpected(end.error());
      if (end->zone == shift.zone) {
        shift.wall = end->local - shift.start;
      } else {
        shift.exact = end->zone->toSys(end->local) - shift.zone->toSys(shift.start);
      }
      if (shift.wall + shift.exact <= seconds(0)) {
        return error(endProperty,
                     fmt::format("{} is not after DTSTART {} (line {})", valueText(endProperty),
                                 valueText(startProperty), lines_->of(startProperty)));
      }
      return {};
    }
    if (durationProperty != nullptr) {
      const icaldurationtype d = icalproperty_get_duration(durationProperty);
      shift.wall = date::days(d.weeks * 7 + d.days);
      shift.exact =
          std::chrono::hours(d.hours) + std::chrono::minutes(d.minutes) + seconds(d.seconds);
      if (d.is_neg != 0 || shift.wall + shift.exact <= seconds(0)) {
        return error(durationProperty,
                     fmt::format("\"{}\" is not a positive duration; {}",
                                 valueText(durationProperty), exampleFor("DURATION")));
      }
      return {};
    }
    if (shift.allDay) {
      shift.wall = date::days(1);  // RFC 5545 3.6.1: a DATE start alone lasts one day
      return {};
    }
    return error(shift.line, "DTEND",
                 fmt::format("missing: a shift starting at a time needs DTEND or DURATION; {}",
                             exampleFor("DTEND")));
  }

  Status recurrenceOf(icalcomponent* event, Shift& shift) {
    for (icalproperty* p : propertiesOf(event, ICAL_RRULE_PROPERTY)) {
      Recurrence r;
      r.rule = icalproperty_get_rrule(p);
      if (r.rule.freq == ICAL_NO_RECURRENCE) {
        return error(p, fmt::format("\"{}\" has no FREQ; {}", valueText(p), exampleFor("RRULE")));
      }
      if (r.rule.freq == ICAL_SECONDLY_RECURRENCE || r.rule.freq == ICAL_MINUTELY_RECURRENCE) {
        return error(p, fmt::format("\"{}\" repeats every second or minute; shifts repeat at "
                                    "most hourly; {}",
                                    valueText(p), exampleFor("RRULE")));
      }
      if (!icaltime_is_null_time(r.rule.until)) {
        const auto until = localOf(r.rule.until);
        if (!until) {
          return error(p, fmt::format("UNTIL in \"{}\" is not a valid date or date-time; {}",
                                      valueText(p), exampleFor("RRULE")));
        }
        if (r.rule.until.is_date != 0) {
          r.untilDay = date::floor<date::days>(*until);
        } else {
          const Zone* zone = icaltime_is_utc(r.rule.until) ? &out_.zones.front() : shift.zone;
          r.until = zone->toSys(*until);
        }
        r.rule.until = icaltime_null_time();
      }
      r.iterator.reset(icalrecur_iterator_new(r.rule, icalOf(shift.start, shift.allDay)));
      if (!r.iterator) {
        return error(p, fmt::format("libical cannot expand \"{}\" from DTSTART; {}", valueText(p),
                                    exampleFor("RRULE")));
      }
      shift.rules.push_back(std::move(r));
    }
    if (shift.rules.empty()) shift.dates.push_back(shift.start);

    for (icalproperty* p : propertiesOf(event, ICAL_RDATE_PROPERTY)) {
      const icaldatetimeperiodtype rdate = icalproperty_get_rdate(p);
      if (icaltime_is_null_time(rdate.time)) {
        return error(p, fmt::format("\"{}\": RDATE periods are not supported; give the start "
                                    "only (the shift keeps its length) or add a VEVENT; {}",
                                    valueText(p), exampleFor("RDATE")));
      }
      auto value = timeOf(p, rdate.time, shift.zone);
      if (!value) return std::unexpected(value.error());
      shift.dates.push_back(value->zone == shift.zone
                                ? value->local
                                : shift.zone->toLocal(value->zone->toSys(value->local)));
    }
    std::sort(shift.dates.begin(), shift.dates.end());
    shift.dates.erase(std::unique(shift.dates.begin(), shift.dates.end()), shift.dates.end());

    for (icalproperty* p : propertiesOf(event, ICAL_EXDATE_PROPERTY)) {
      auto value = timeOf(p, icalproperty_get_exdate(p), shift.zone);
      if (!value) return std::unexpected(value.error());
      exclude(shift, *value);
    }
    return {};
  }

  static void exclude(Shift& shift, const TimeValue& value) {
    if (value.isDate) {
      shift.excludedDays.push_back(date::floor<date::days>(value.local));
      return;
    }
    const Zone* zone = value.zone == nullptr ? shift.zone : value.zone;
    shift.excluded.push_back(zone->toSys(value.local));
  }

  Status levelAndPeople(icalcomponent* event, Shift& shift) {
    const auto levels = xProperties(event, "X-PASS-LEVEL");
    if (levels.size() > 1) return error(levels[1], "appears more than once in the VEVENT");
    shift.level = defaultLevel_;
    if (!levels.empty()) {
      auto level = levelOf(levels.front());
      if (!level) return std::unexpected(level.error());
      shift.level = *level;
      shift.levelGiven = true;
    }

    const auto attendees = propertiesOf(event, ICAL_ATTENDEE_PROPERTY);
    for (icalproperty* p : attendees) {
      auto person = attendeeOf(p);
      if (!person) return std::unexpected(person.error());
      if (person->has_value()) shift.people.push_back(std::move(**person));
    }
    if (attendees.empty()) {
      const std::string summary(trim(text(icalcomponent_get_summary(event))));
      if (summary.empty()) {
        return error(shift.line, "",
                     fmt::format("a shift without ATTENDEE and without SUMMARY names nobody to "
                                 "call; add a SUMMARY with the person's name or {}",
                                 exampleFor("ATTENDEE")));
      }
      shift.people.push_back(OnCallPerson{summary, "", ""});
    }

    const auto phones = xProperties(event, "X-PASS-PHONE");
    if (phones.size() > 1) return error(phones[1], "appears more than once in the VEVENT");
    if (phones.empty()) return {};
    icalproperty* phoneProperty = phones.front();
    const auto phone = normalisePhone(text(icalproperty_get_x(phoneProperty)));
    if (!phone) {
      return error(phoneProperty, fmt::format("\"{}\" is not a phone number; {}",
                                              text(icalproperty_get_x(phoneProperty)),
                                              exampleFor("X-PASS-PHONE")));
    }
    if (shift.people.size() > 1) {
      return error(phoneProperty,
                   fmt::format("the shift has {} people, so whose phone this is is unclear; "
                               "put X-PASS-PHONE=... on each ATTENDEE instead",
                               shift.people.size()));
    }
    if (shift.people.size() == 1 && shift.people.front().phone.empty()) {
      shift.people.front().phone = *phone;
    }
    return {};
  }

  /// A person from an ATTENDEE, or nothing for one who declined, does not take part or is a
  /// room or resource.
  Result<std::optional<OnCallPerson>> attendeeOf(icalproperty* p) const {
    if (icalparameter* s = icalproperty_get_first_parameter(p, ICAL_PARTSTAT_PARAMETER);
        s != nullptr && icalparameter_get_partstat(s) == ICAL_PARTSTAT_DECLINED) {
      return std::nullopt;
    }
    if (icalparameter* r = icalproperty_get_first_parameter(p, ICAL_ROLE_PARAMETER);
        r != nullptr && icalparameter_get_role(r) == ICAL_ROLE_NONPARTICIPANT) {
      return std::nullopt;
    }
    if (icalparameter* t = icalproperty_get_first_parameter(p, ICAL_CUTYPE_PARAMETER);
        t != nullptr && (icalparameter_get_cutype(t) == ICAL_CUTYPE_ROOM ||
                         icalparameter_get_cutype(t) == ICAL_CUTYPE_RESOURCE)) {
      return std::nullopt;
    }
    OnCallPerson person;
    const std::string address(trim(text(icalproperty_get_attendee(p))));
    const std::string scheme = lower(address.substr(0, address.find(':') + 1));
    if (scheme == "mailto:") {
      person.email = trim(std::string_view(address).substr(7));
    } else if (scheme == "tel:") {
      const std::string_view number = std::string_view(address).substr(4);
      const auto phone = normalisePhone(number.substr(0, number.find(';')));
      if (!phone) {
        return error(
            p, fmt::format("\"{}\" is not a phone number; {}", address, exampleFor("ATTENDEE")));
      }
      person.phone = *phone;
    } else if (scheme.empty() && isEmail(address)) {
      person.email = address;
    } else {
      return error(p, fmt::format("\"{}\" is neither mailto:an-email-address nor "
                                  "tel:a-phone-number; {}",
                                  address, exampleFor("ATTENDEE")));
    }
    if (!person.email.empty() && !isEmail(person.email)) {
      return error(
          p, fmt::format("\"{}\" is not an email address; {}", address, exampleFor("ATTENDEE")));
    }
    if (const auto phone = xParameter(p, "X-PASS-PHONE")) {
      const auto normal = normalisePhone(*phone);
      if (!normal) {
        return error(p, fmt::format("X-PASS-PHONE=\"{}\" is not a phone number; {}", *phone,
                                    exampleFor("ATTENDEE")));
      }
      person.phone = *normal;
    }
    if (icalparameter* cn = icalproperty_get_first_parameter(p, ICAL_CN_PARAMETER)) {
      person.name = trim(text(icalparameter_get_cn(cn)));
    }
    if (person.name.empty()) person.name = person.email.empty() ? person.phone : person.email;
    return person;
  }

  /// Overrides (RECURRENCE-ID) take their instance out of their series and, unless they say
  /// otherwise, keep the series' level.
  void linkOverrides() {
    std::unordered_map<std::string, std::size_t> series;
    for (std::size_t i = 0; i < out_.shifts.size(); ++i) {
      const Shift& s = out_.shifts[i];
      if (!s.recurrenceId && !s.uid.empty()) series.emplace(s.uid, i);
    }
    for (std::size_t i = 0; i < out_.shifts.size(); ++i) {
      Shift& instance = out_.shifts[i];
      if (!instance.recurrenceId) continue;
      const auto it = series.find(instance.uid);
      if (it == series.end()) continue;  // the series is not in this file: a shift of its own
      Shift& master = out_.shifts[it->second];
      instance.master = it->second;
      if (!instance.levelGiven) instance.level = master.level;
      if (master.zone != nullptr) exclude(master, *instance.recurrenceId);
    }
    for (Shift& s : out_.shifts) {
      std::sort(s.excluded.begin(), s.excluded.end());
      std::sort(s.excludedDays.begin(), s.excludedDays.end());
    }
  }

  std::string file_;
  OnCallSchedule::Impl& out_;
  std::optional<LineMap> lines_;
  const Zone* calendarZone_ = nullptr;
  unsigned defaultLevel_ = 1;
  std::unordered_map<std::string, const Zone*> zonesByTzid_;
};

}  // namespace

Result<OnCallSchedule> OnCallSchedule::parse(std::string_view text, std::string_view fileName) {
  auto source = scanSource(text, fileName);
  if (!source) return std::unexpected(source.error());
  auto impl = std::make_shared<Impl>();
  if (auto status = Loader(fileName, *impl).run(*source); !status) {
    return std::unexpected(status.error());
  }
  return OnCallSchedule(std::move(impl));
}

Result<OnCallSchedule> OnCallSchedule::load(const std::filesystem::path& ics) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(ics, ec);
  if (ec) {
    return fail(std::string(kCode), fmt::format("{}: cannot read the on-call schedule: {}",
                                                ics.string(), ec.message()));
  }
  if (size > kMaxFileBytes) {
    return fail(std::string(kCode),
                fmt::format("{}: {} bytes is more than an on-call schedule can be ({} MiB); "
                            "export only the on-call calendar",
                            ics.string(), size, kMaxFileBytes / (1024 * 1024)));
  }
  std::ifstream in(ics, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in) {
    return fail(std::string(kCode),
                fmt::format("{}: cannot read the on-call schedule", ics.string()));
  }
  return parse(content.str(), ics.string());
}

std::vector<OnCallPerson> OnCallSchedule::onCall(std::chrono::system_clock::time_point at,
                                                 unsigned level) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::size_t> active;
  for (std::size_t i = 0; i < impl_->shifts.size(); ++i) {
    Shift& s = impl_->shifts[i];
    if (s.level == level && !s.cancelled && covers(s, at)) active.push_back(i);
  }
  // An override wins over its own series where both cover the instant.
  std::set<std::size_t> overridden;
  for (std::size_t i : active) {
    if (impl_->shifts[i].master) overridden.insert(*impl_->shifts[i].master);
  }
  std::vector<OnCallPerson> people;
  std::set<std::string> seen;
  for (std::size_t i : active) {
    if (overridden.contains(i)) continue;
    for (const OnCallPerson& p : impl_->shifts[i].people) {
      if (seen.insert(personKey(p)).second) people.push_back(p);
    }
  }
  return people;
}

unsigned OnCallSchedule::levels() const { return impl_->levels; }

}  // namespace pass::home
