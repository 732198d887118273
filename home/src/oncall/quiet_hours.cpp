// Quiet hours: local wall-clock periods in an IANA time zone (date/tz on the OS tz database).

#include "pass/home/oncall.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <date/date.h>
#include <date/tz.h>
#include <fmt/format.h>

#include "oncall/oncall_detail.hpp"

namespace pass::home {

namespace {

using oncall::LocalSeconds;
using oncall::lower;
using oncall::SysSeconds;
using oncall::trim;
using std::chrono::minutes;

constexpr int kMinutesPerDay = 24 * 60;
constexpr const char* kValidForms =
    "valid: \"22:00-07:00\", \"Mon-Fri 19:00-08:00\" or several periods separated by ';' "
    "such as \"Mon-Fri 19:00-08:00; Sat,Sun 00:00-24:00\"";

struct Period {
  std::bitset<7> days;  // indexed by date::weekday::c_encoding(): 0 = Sunday
  int start = 0;        // minutes after local midnight of a day in `days`
  int end = 0;          // minutes after that same midnight; > start, at most 2 * 24 h
};

std::optional<unsigned> parseWeekday(std::string_view text) {
  static constexpr std::array<std::string_view, 7> kNames = {
      "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
  const std::string word = lower(trim(text));
  if (word.size() < 3) return std::nullopt;
  for (unsigned i = 0; i < kNames.size(); ++i) {
    if (kNames[i].starts_with(word)) return i;
  }
  return std::nullopt;
}

/// "HH:MM" (or "H:MM"); 24:00 only where `allow24`.
std::optional<int> parseClock(std::string_view text, bool allow24) {
  text = trim(text);
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 2 || text.size() != colon + 3) {
    return std::nullopt;
  }
  int hours = 0;
  int mins = 0;
  for (char c : text.substr(0, colon)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    hours = hours * 10 + (c - '0');
  }
  for (char c : text.substr(colon + 1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    mins = mins * 10 + (c - '0');
  }
  if (mins > 59) return std::nullopt;
  if (hours == 24 && mins == 0 && allow24) return kMinutesPerDay;
  if (hours > 23) return std::nullopt;
  return hours * 60 + mins;
}

Result<std::bitset<7>> parseDays(std::string_view text, std::string_view spec) {
  std::bitset<7> days;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const auto dash = item.find('-');
    const auto first = parseWeekday(item.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : parseWeekday(item.substr(dash + 1));
    if (!first || !last) {
      return fail("quiet_hours",
                  fmt::format("quiet hours \"{}\": \"{}\" is not a day or a range of days "
                              "(Mon, Tue, ... Sun, e.g. \"Mon-Fri\" or \"Sat,Sun\"); {}",
                              spec, item, kValidForms));
    }
    // A range may wrap the week: "Fri-Mon" is Friday to Monday.
    for (unsigned d = *first;; d = (d + 1) % 7) {
      days.set(d);
      if (d == *last) break;
    }
  }
  return days;
}

Result<Period> parsePeriod(std::string_view text, std::string_view spec) {
  text = trim(text);
  Period period;
  period.days.set();
  // Day names hold no digits, so the time range starts at the first digit.
  const auto digit = text.find_first_of("0123456789");
  if (digit != std::string_view::npos && !trim(text.substr(0, digit)).empty()) {
    auto days = parseDays(text.substr(0, digit), spec);
    if (!days) return std::unexpected(days.error());
    period.days = *days;
    text = trim(text.substr(digit));
  }
  const auto dash = text.find('-');
  const auto start =
      dash == std::string_view::npos ? std::nullopt : parseClock(text.substr(0, dash), false);
  const auto end =
      dash == std::string_view::npos ? std::nullopt : parseClock(text.substr(dash + 1), true);
  if (!start || !end) {
    return fail("quiet_hours",
                fmt::format("quiet hours \"{}\": \"{}\" is not a time range HH:MM-HH:MM "
                            "(00:00 to 23:59, the end may be 24:00); {}",
                            spec, text, kValidForms));
  }
  if (*start == *end) {
    return fail("quiet_hours",
                fmt::format("quiet hours \"{}\": \"{}\" starts and ends at the same time; for "
                            "a whole day write 00:00-24:00",
                            spec, text));
  }
  period.start = *start;
  period.end = *end > *start ? *end : *end + kMinutesPerDay;
  return period;
}

}  // namespace

struct QuietHours::Impl {
  const date::time_zone* zone = nullptr;
  std::vector<Period> periods;

  std::chrono::seconds offsetAt(SysSeconds at) const { return zone->get_info(at).offset; }

  SysSeconds toSys(LocalSeconds local) const {
    return oncall::localToSys(local, [this](SysSeconds t) { return offsetAt(t); });
  }

  /// The latest end among the periods containing `at`, if any does.
  std::optional<SysSeconds> containingEnd(std::chrono::system_clock::time_point at) const {
    const auto atSeconds = date::floor<std::chrono::seconds>(at);
    const LocalSeconds local{(atSeconds + offsetAt(atSeconds)).time_since_epoch()};
    const auto today = date::floor<date::days>(local);
    std::optional<SysSeconds> latest;
    // A period lasts at most a day of wall time, so only periods starting today or yesterday
    // (local) can hold `at`.
    for (const auto day : {today - date::days(1), today}) {
      const unsigned weekday = date::weekday(day).c_encoding();
      for (const auto& p : periods) {
        if (!p.days.test(weekday)) continue;
        const SysSeconds start = toSys(day + minutes(p.start));
        const SysSeconds end = toSys(day + minutes(p.end));
        if (at < start || at >= end) continue;
        if (!latest || end > *latest) latest = end;
      }
    }
    return latest;
  }
};

Result<QuietHours> QuietHours::parse(std::string_view spec, std::string_view zone) {
  auto impl = std::make_shared<Impl>();
  const std::string zoneName(trim(zone));
  if (zoneName.empty()) {
    return fail("quiet_hours", fmt::format("quiet hours \"{}\": no time zone given; write an "
                                           "IANA name such as \"Europe/Berlin\" or \"UTC\"",
                                           spec));
  }
  try {
    impl->zone = date::locate_zone(zoneName);
  } catch (const std::exception&) {
    return fail("quiet_hours",
                fmt::format("quiet hours: unknown time zone \"{}\"; write an IANA name such as "
                            "\"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
                            zoneName));
  }
  std::string_view rest = spec;
  while (true) {
    const auto semicolon = rest.find(';');
    const std::string_view item = rest.substr(0, semicolon);
    if (trim(item).empty()) {
      return fail("quiet_hours",
                  fmt::format("quiet hours \"{}\": an empty period; {}", spec, kValidForms));
    }
    auto period = parsePeriod(item, spec);
    if (!period) return std::unexpected(period.error());
    impl->periods.push_back(*period);
    if (semicolon == std::string_view::npos) break;
    rest = rest.substr(semicolon + 1);
  }
  // Quiet all week long would defer non-urgent notifications forever; nextAllowed() relies on
  // there being a gap.
  std::bitset<7 * kMinutesPerDay> week;
  for (const auto& p : impl->periods) {
    for (unsigned d = 0; d < 7; ++d) {
      if (!p.days.test(d)) continue;
      for (int m = p.start; m < p.end; ++m) week.set((d * kMinutesPerDay + m) % week.size());
    }
  }
  if (week.all()) {
    return fail("quiet_hours",
                fmt::format("quiet hours \"{}\" cover the whole week, so a non-urgent "
                            "notification would never be sent; leave a gap",
                            spec));
  }
  return QuietHours(std::move(impl));
}

bool QuietHours::contains(std::chrono::system_clock::time_point at) const {
  return impl_->containingEnd(at).has_value();
}

std::chrono::system_clock::time_point QuietHours::nextAllowed(
    std::chrono::system_clock::time_point at) const {
  // Adjacent periods ("Mon-Fri 19:00-08:00; Sat,Sun 00:00-24:00") chain; parse() guarantees a
  // gap in every week, so a week of chained periods is the most this walks.
  const std::size_t maxSteps = 8 * impl_->periods.size() + 8;
  for (std::size_t step = 0; step < maxSteps; ++step) {
    const auto end = impl_->containingEnd(at);
    if (!end) return at;
    at = std::chrono::time_point_cast<std::chrono::system_clock::duration>(*end);
  }
  return at;
}

}  // namespace pass::home
