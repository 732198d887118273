#pragma once
// Shared by the on-call schedule (home/src/oncall/oncall.cpp) and quiet hours
// (home/src/oncall/quiet_hours.cpp): ASCII text helpers, and wall-clock to UTC by the rule of RFC
// 5545 section 3.3.5. A local time that occurs twice (the night clocks go back) means the first of
// the two; a local time that does not exist (the night clocks go forward) is read with the
// offset in effect before the gap, so 02:30 becomes 03:30 when clocks jump from 02:00 to 03:00.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>
#include <string_view>

#include <date/date.h>

namespace pass::home::oncall {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

inline std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

using SysSeconds = date::sys_seconds;
using LocalSeconds = date::local_seconds;

/// `offsetAt(SysSeconds)` returns the zone's UTC offset (std::chrono::seconds) at an instant.
/// Assumes no two offset changes within two days of each other, which holds for every zone.
template <typename OffsetAt>
SysSeconds localToSys(LocalSeconds local, const OffsetAt& offsetAt) {
  constexpr auto kDay = std::chrono::seconds(std::chrono::hours(24));
  const SysSeconds asUtc{local.time_since_epoch()};
  const std::chrono::seconds before = offsetAt(asUtc - kDay);
  const std::chrono::seconds after = offsetAt(asUtc + kDay);
  const SysSeconds withBefore = asUtc - before;
  if (before == after) return withBefore;
  const SysSeconds withAfter = asUtc - after;
  const bool beforeFits = offsetAt(withBefore) == before;
  const bool afterFits = offsetAt(withAfter) == after;
  if (beforeFits && afterFits) return withBefore < withAfter ? withBefore : withAfter;
  if (afterFits) return withAfter;
  return withBefore;  // fits, or the local time is in the gap
}

}  // namespace pass::home::oncall
