#pragma once
/// Who is told, and when: the on-call schedule from an iCalendar (.ics) file and quiet hours
/// for non-urgent notifications. docs/on-call.md describes the file format users write.
///
/// libical and date/tz stay behind this header (home/src/oncall/oncall.cpp,
/// home/src/oncall/quiet_hours.cpp): callers see std::chrono and std::string only.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pass/result.hpp"

namespace pass::home {

/// One person on call. `email` and `phone` may be empty (a shift named only by its SUMMARY
/// carries a name and, with X-PASS-PHONE, a phone). Phones are normalised to "+4930123456" form
/// (visual separators removed).
struct OnCallPerson {
  std::string name;
  std::string email;
  std::string phone;

  bool operator==(const OnCallPerson&) const = default;
};

/// An on-call rotation read from one iCalendar file: each VEVENT is a shift at an escalation
/// level (X-PASS-LEVEL, default 1), its ATTENDEEs (or its SUMMARY) are the people on call.
/// Copies share the parsed calendar; all members are safe to call from several threads.
class OnCallSchedule {
 public:
  /// Parses and validates; errors (code "oncall") name the file, the line where possible,
  /// the property and what a valid value looks like.
  static Result<OnCallSchedule> load(const std::filesystem::path& ics);
  /// As load(), from text; `fileName` is only used in error messages.
  static Result<OnCallSchedule> parse(std::string_view text, std::string_view fileName);

  /// Who is on call at `at` at escalation level `level` (1 = first line, 2 = next, ...), in
  /// file order without duplicates. Empty when nobody is.
  std::vector<OnCallPerson> onCall(std::chrono::system_clock::time_point at, unsigned level) const;
  /// The highest level the schedule defines (at least 1).
  unsigned levels() const;

  struct Impl;  ///< Opaque; defined in home/src/oncall/oncall.cpp.

 private:
  explicit OnCallSchedule(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

/// Local wall-clock periods in one time zone during which non-urgent notifications wait.
class QuietHours {
 public:
  /// `spec` is one or more periods separated by ';', each "[DAYS ]HH:MM-HH:MM": "22:00-07:00"
  /// (may wrap midnight), "Mon-Fri 19:00-08:00", "Mon-Fri 19:00-08:00; Sat,Sun 00:00-24:00".
  /// DAYS name the days on which a period starts. `zone` is an IANA name ("Europe/Berlin").
  /// Errors (code "quiet_hours") say what is valid; an unknown zone, an empty period or
  /// periods covering the whole week are errors.
  static Result<QuietHours> parse(std::string_view spec, std::string_view zone);

  bool contains(std::chrono::system_clock::time_point at) const;
  /// The first instant at or after `at` that is outside quiet hours (when a deferred
  /// non-urgent notification may go out).
  std::chrono::system_clock::time_point nextAllowed(std::chrono::system_clock::time_point at) const;

 private:
  struct Impl;
  explicit QuietHours(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace pass::home
