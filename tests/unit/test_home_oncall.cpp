// On-call schedules from iCalendar files and quiet hours (home/src/oncall/oncall.cpp,
// home/src/oncall/quiet_hours.cpp). Data: tests/data/oncall/.

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pass/home/oncall.hpp"

using namespace pass;
using namespace pass::home;

namespace {

using Clock = std::chrono::system_clock;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

Clock::time_point utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  const std::chrono::sys_days day{std::chrono::year{y} / mo / d};
  return Clock::time_point{day} + hours(h) + minutes(mi) + seconds(s);
}

std::filesystem::path dataFile(const char* name) {
  return std::filesystem::path(PASS_SOURCE_DIR) / "tests" / "data" / "oncall" / name;
}

OnCallSchedule loadData(const char* name) {
  auto schedule = OnCallSchedule::load(dataFile(name));
  REQUIRE_MESSAGE(schedule.has_value(), (schedule ? "" : schedule.error().message));
  return std::move(*schedule);
}

OnCallSchedule parseText(const std::string& text) {
  auto schedule = OnCallSchedule::parse(text, "inline.ics");
  REQUIRE_MESSAGE(schedule.has_value(), (schedule ? "" : schedule.error().message));
  return std::move(*schedule);
}

/// The error parsing `text` gives; fails the test when it parses.
Error parseError(const std::string& text) {
  auto schedule = OnCallSchedule::parse(text, "inline.ics");
  REQUIRE_FALSE(schedule.has_value());
  CHECK(schedule.error().code == "oncall");
  return schedule.error();
}

std::vector<std::string> names(const std::vector<OnCallPerson>& people) {
  std::vector<std::string> out;
  for (const auto& p : people) out.push_back(p.name);
  return out;
}

using Names = std::vector<std::string>;

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

QuietHours quiet(const char* spec, const char* zone) {
  auto q = QuietHours::parse(spec, zone);
  REQUIRE_MESSAGE(q.has_value(), (q ? "" : q.error().message));
  return *q;
}

}  // namespace

TEST_CASE("a weekly rotation of three hands over at 09:00 Berlin time on both sides of DST") {
  const auto schedule = loadData("rotation_outlook.ics");
  CHECK(schedule.levels() == 2);

  // 2024-03-04 09:00 CET is 08:00 UTC.
  CHECK(schedule.onCall(utc(2024, 3, 4, 7, 59, 59), 1).empty());
  const auto first = schedule.onCall(utc(2024, 3, 4, 8), 1);
  REQUIRE(first.size() == 1);  // Mia declined her invitation
  CHECK(first[0] == OnCallPerson{"Alice Example", "alice@example.com", "+49301111111"});

  CHECK(names(schedule.onCall(utc(2024, 3, 11, 7, 59, 59), 1)) == Names{"Alice Example"});
  const auto bob = schedule.onCall(utc(2024, 3, 11, 8), 1);
  REQUIRE(bob.size() == 1);
  CHECK(bob[0] == OnCallPerson{"Bob Builder", "bob@example.com", "+49302222222"});

  const auto carol = schedule.onCall(utc(2024, 3, 18, 8), 1);
  REQUIRE(carol.size() == 1);
  CHECK(carol[0] == OnCallPerson{"Carol Chen", "carol@example.com", "+49303333333"});

  // Summer time from 2024-03-31: 09:00 CEST is 07:00 UTC. Alice's shift of 03-25 (started
  // 08:00 UTC) ends at 09:00 local, not after 7 x 24 hours.
  CHECK(names(schedule.onCall(utc(2024, 4, 1, 6, 59, 59), 1)) == Names{"Alice Example"});
  // Bob's shift of 04-01 was swapped to Carol (RECURRENCE-ID).
  CHECK(names(schedule.onCall(utc(2024, 4, 1, 7), 1)) == Names{"Carol Chen"});
  CHECK(names(schedule.onCall(utc(2024, 4, 3, 12), 1)) == Names{"Carol Chen"});
  CHECK(names(schedule.onCall(utc(2024, 4, 8, 7), 1)) == Names{"Carol Chen"});
  CHECK(names(schedule.onCall(utc(2024, 4, 15, 6, 59, 59), 1)) == Names{"Carol Chen"});
  CHECK(names(schedule.onCall(utc(2024, 4, 15, 7), 1)) == Names{"Alice Example"});
  CHECK(names(schedule.onCall(utc(2024, 4, 22, 7), 1)) == Names{"Bob Builder"});

  // Back to winter time on 2024-10-27: the 10-28 handover is at 09:00 CET = 08:00 UTC.
  CHECK(names(schedule.onCall(utc(2024, 10, 28, 7, 30), 1)) == Names{"Alice Example"});
  CHECK(names(schedule.onCall(utc(2024, 10, 28, 8), 1)) == Names{"Bob Builder"});
  // Years later the rotation still runs (the expansion reaches that far).
  CHECK(names(schedule.onCall(utc(2030, 1, 7, 12), 1)).size() == 1);
}

TEST_CASE("the level 2 backup: EXDATE leaves a week to someone else, UNTIL ends the series") {
  const auto schedule = loadData("rotation_outlook.ics");
  const auto dave = schedule.onCall(utc(2024, 3, 12, 12), 2);
  REQUIRE(dave.size() == 1);
  CHECK(dave[0] == OnCallPerson{"Dave Doe", "", "+12025550142"});
  CHECK(names(schedule.onCall(utc(2024, 3, 18, 7, 59, 59), 2)) == Names{"Dave Doe"});
  CHECK(names(schedule.onCall(utc(2024, 3, 19, 12), 2)) == Names{"Erin Example"});
  CHECK(schedule.onCall(utc(2024, 3, 23, 12), 2).empty());  // Erin ends Friday, Dave excluded
  CHECK(names(schedule.onCall(utc(2024, 3, 26, 12), 2)) == Names{"Dave Doe"});
  // UNTIL=20240610T070000Z includes the shift starting exactly then (09:00 CEST).
  CHECK(names(schedule.onCall(utc(2024, 6, 12, 12), 2)) == Names{"Dave Doe"});
  CHECK(schedule.onCall(utc(2024, 6, 18, 12), 2).empty());
  CHECK(schedule.onCall(utc(2024, 3, 12, 12), 3).empty());
  CHECK(schedule.onCall(utc(2024, 3, 12, 12), 0).empty());
}

TEST_CASE("a bare IANA TZID, COUNT, UNTIL and exact DURATION across New York's DST change") {
  const auto schedule = loadData("iana_new_york.ics");
  CHECK(schedule.levels() == 1);
  // 2024-03-08 08:00 EST = 13:00 UTC.
  CHECK(schedule.onCall(utc(2024, 3, 8, 12, 59, 59), 1).empty());
  const auto pat = schedule.onCall(utc(2024, 3, 8, 13), 1);
  REQUIRE(pat.size() == 1);
  CHECK(pat[0] == OnCallPerson{"Pat Day", "", "+12025550100"});
  // The night shift started 03-09 20:00 EST and lasts PT12H exactly (RFC 5545: hours are
  // exact), so across the spring-forward night it ends 09:00 EDT = 13:00 UTC, an hour into
  // Pat's day shift, which starts 08:00 EDT = 12:00 UTC.
  CHECK(names(schedule.onCall(utc(2024, 3, 10, 11, 59, 59), 1)) == Names{"Sam Night"});
  CHECK(names(schedule.onCall(utc(2024, 3, 10, 12, 30), 1)) == Names{"Pat Day", "Sam Night"});
  CHECK(names(schedule.onCall(utc(2024, 3, 10, 13), 1)) == Names{"Pat Day"});
  // COUNT=5: 03-08 ... 03-12.
  CHECK(names(schedule.onCall(utc(2024, 3, 12, 12), 1)) == Names{"Pat Day"});
  CHECK(schedule.onCall(utc(2024, 3, 13, 12), 1).empty());
  // UNTIL=20240311T000000Z includes the night shift starting 03-10 20:00 EDT = 00:00 UTC.
  CHECK(names(schedule.onCall(utc(2024, 3, 11, 5), 1)) == Names{"Sam Night"});
  CHECK(schedule.onCall(utc(2024, 3, 12, 5), 1).empty());
}

TEST_CASE("all-day shifts run midnight to midnight in the calendar's X-WR-TIMEZONE") {
  const auto schedule = loadData("allday_london.ics");
  // 2024-07-06 00:00 BST = 07-05 23:00 UTC; two days to 07-08 00:00 BST.
  CHECK(schedule.onCall(utc(2024, 7, 5, 22, 59, 59), 1).empty());
  const auto quinn = schedule.onCall(utc(2024, 7, 5, 23), 1);
  REQUIRE(quinn.size() == 1);
  CHECK(quinn[0] == OnCallPerson{"Quinn", "", ""});
  CHECK(names(schedule.onCall(utc(2024, 7, 7, 22, 59, 59), 1)) == Names{"Quinn"});
  CHECK(schedule.onCall(utc(2024, 7, 7, 23), 1).empty());
  CHECK(names(schedule.onCall(utc(2024, 7, 27, 12), 1)) == Names{"Quinn"});  // 4th of COUNT=4
  CHECK(schedule.onCall(utc(2024, 8, 3, 12), 1).empty());
  // A DATE start without an end lasts one day.
  CHECK(schedule.onCall(utc(2024, 7, 9, 22, 59, 59), 1).empty());
  CHECK(names(schedule.onCall(utc(2024, 7, 9, 23), 1)) == Names{"Rory"});
  CHECK(names(schedule.onCall(utc(2024, 7, 10, 22, 59, 59), 1)) == Names{"Rory"});
  CHECK(schedule.onCall(utc(2024, 7, 10, 23), 1).empty());
}

TEST_CASE("UNTIL as a date ends an all-day series on that day") {
  const auto schedule = parseText(
      "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:a\nSUMMARY:Alice\n"
      "DTSTART;VALUE=DATE:20240301\nRRULE:FREQ=DAILY;UNTIL=20240305\nEND:VEVENT\n"
      "END:VCALENDAR\n");
  CHECK(names(schedule.onCall(utc(2024, 3, 5, 23, 59, 59), 1)) == Names{"Alice"});
  CHECK(schedule.onCall(utc(2024, 3, 6, 0), 1).empty());
}

TEST_CASE("a VTIMEZONE in the file wins over the IANA zone of the same name") {
  // A made-up zone called Europe/Berlin that is always UTC+5.
  const auto schedule = parseText(
      "BEGIN:VCALENDAR\nVERSION:2.0\n"
      "BEGIN:VTIMEZONE\nTZID:Europe/Berlin\n"
      "BEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+0500\nTZOFFSETTO:+0500\n"
      "END:STANDARD\nEND:VTIMEZONE\n"
      "BEGIN:VEVENT\nUID:a\nSUMMARY:Alice\n"
      "DTSTART;TZID=Europe/Berlin:20240701T090000\nDTEND;TZID=Europe/Berlin:20240701T100000\n"
      "END:VEVENT\nEND:VCALENDAR\n");
  CHECK(names(schedule.onCall(utc(2024, 7, 1, 4, 30), 1)) == Names{"Alice"});
  CHECK(schedule.onCall(utc(2024, 7, 1, 7, 30), 1).empty());  // 09:30 CEST
}

TEST_CASE("floating times use X-WR-TIMEZONE, or UTC without it") {
  const std::string event =
      "BEGIN:VEVENT\nUID:a\nSUMMARY:Alice\nDTSTART:20240301T090000\nDTEND:20240301T170000\n"
      "END:VEVENT\nEND:VCALENDAR\n";
  const auto plain = parseText("BEGIN:VCALENDAR\nVERSION:2.0\n" + event);
  CHECK(plain.onCall(utc(2024, 3, 1, 8, 59, 59), 1).empty());
  CHECK(names(plain.onCall(utc(2024, 3, 1, 9), 1)) == Names{"Alice"});
  CHECK(names(plain.onCall(utc(2024, 3, 1, 16, 59, 59), 1)) == Names{"Alice"});
  const auto tokyo = parseText("BEGIN:VCALENDAR\nVERSION:2.0\nX-WR-TIMEZONE:Asia/Tokyo\n" + event);
  CHECK(names(tokyo.onCall(utc(2024, 3, 1, 0), 1)) == Names{"Alice"});  // 09:00 JST
  CHECK(tokyo.onCall(utc(2024, 3, 1, 9), 1).empty());
}

TEST_CASE("an override wins over its series where they overlap; a cancelled instance is gone") {
  const auto schedule = parseText(
      "BEGIN:VCALENDAR\nVERSION:2.0\n"
      "BEGIN:VEVENT\nUID:s\nSUMMARY:Alice\nDTSTART:20240301T090000Z\nDTEND:20240301T170000Z\n"
      "RRULE:FREQ=DAILY\nEND:VEVENT\n"
      // The 03-02 shift moves to 12:00 and runs into 03-03.
      "BEGIN:VEVENT\nUID:s\nRECURRENCE-ID:20240302T090000Z\nSUMMARY:Bob\n"
      "DTSTART:20240302T120000Z\nDTEND:20240303T120000Z\nEND:VEVENT\n"
      "BEGIN:VEVENT\nUID:s\nRECURRENCE-ID:20240304T090000Z\nSTATUS:CANCELLED\nEND:VEVENT\n"
      "BEGIN:VEVENT\nUID:other\nSUMMARY:Carol\nDTSTART:20240303T100000Z\n"
      "DTEND:20240303T110000Z\nEND:VEVENT\n"
      "END:VCALENDAR\n");
  CHECK(names(schedule.onCall(utc(2024, 3, 1, 10), 1)) == Names{"Alice"});
  CHECK(schedule.onCall(utc(2024, 3, 2, 10), 1).empty());
  CHECK(names(schedule.onCall(utc(2024, 3, 2, 13), 1)) == Names{"Bob"});
  // Alice's 03-03 shift overlaps Bob's moved one: Bob wins; Carol's own shift does not.
  CHECK(names(schedule.onCall(utc(2024, 3, 3, 10, 30), 1)) == Names{"Bob", "Carol"});
  CHECK(names(schedule.onCall(utc(2024, 3, 3, 13), 1)) == Names{"Alice"});
  CHECK(schedule.onCall(utc(2024, 3, 4, 10), 1).empty());
  CHECK(names(schedule.onCall(utc(2024, 3, 5, 10), 1)) == Names{"Alice"});
}

TEST_CASE("the same person in overlapping shifts is listed once") {
  const auto schedule = parseText(
      "BEGIN:VCALENDAR\nVERSION:2.0\n"
      "BEGIN:VEVENT\nUID:a\nATTENDEE;CN=Alice:mailto:alice@example.com\n"
      "ATTENDEE;CN=Bob:mailto:bob@example.com\n"
      "DTSTART:20240301T090000Z\nDURATION:PT8H\nEND:VEVENT\n"
      "BEGIN:VEVENT\nUID:b\nATTENDEE;CN=Alice E.:mailto:ALICE@example.com\n"
      "ATTENDEE;CUTYPE=ROOM;CN=War room:mailto:room@example.com\n"
      "ATTENDEE;ROLE=NON-PARTICIPANT;CN=Mia:mailto:mia@example.com\n"
      "DTSTART:20240301T100000Z\nDURATION:PT1H\nEND:VEVENT\n"
      "END:VCALENDAR\n");
  CHECK(names(schedule.onCall(utc(2024, 3, 1, 10, 30), 1)) == Names{"Alice", "Bob"});
}

TEST_CASE("a shift ending past what the system clock can count still answers (fuzz finding)") {
  // The system clock counts nanoseconds and ends in 2262; calendar times run to 9999. A shift
  // from 2024 to 4048 once overflowed when compared with the instant asked about.
  const auto schedule = parseText(
      "BEGIN:VCALENDAR\nVERSION:2.0\n"
      "BEGIN:VEVENT\nUID:a\nATTENDEE;CN=Alice:mailto:alice@example.com\n"
      "DTSTART:20240301T090000Z\nDTEND:40480301T090000Z\nEND:VEVENT\n"
      "END:VCALENDAR\n");
  CHECK(names(schedule.onCall(utc(2027, 1, 1), 1)) == Names{"Alice"});
  CHECK(schedule.onCall(utc(2024, 3, 1, 8, 59, 59), 1).empty());
}

TEST_CASE("a component libical cannot name is an answer, not an exception (fuzz finding)") {
  // "BEGIN;:VEVENT" makes libical open a component whose kind has no name.
  const std::string text =
      readFile(PASS_SOURCE_DIR "/tests/fuzz/seeds/fuzz_oncall/null_string.ics");
  CHECK_NOTHROW((void)OnCallSchedule::parse(text, "fuzz.ics"));
}

TEST_CASE("CRLF line ends and a byte order mark read the same") {
  std::string text = readFile(dataFile("rotation_outlook.ics"));
  std::string crlf = "\xEF\xBB\xBF";
  for (char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  const auto schedule = parseText(crlf);
  CHECK(names(schedule.onCall(utc(2024, 4, 1, 7), 1)) == Names{"Carol Chen"});
  CHECK(schedule.onCall(utc(2024, 3, 4, 8), 1).at(0).phone == "+49301111111");
}

TEST_CASE("copies share the schedule and may be asked from several threads") {
  const auto schedule = loadData("rotation_outlook.ics");
  std::vector<std::thread> threads;
  std::vector<int> right(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([copy = schedule, &right, t] {
      for (int week = 0; week < 30; ++week) {
        const auto at = utc(2024, 3, 4, 12) + hours(24 * 7 * week);
        const auto people = copy.onCall(at, 1);
        if (people.size() == 1) ++right[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(right == std::vector<int>(4, 30));
}

TEST_CASE("errors name the file, the line and the property") {
  SUBCASE("a bad RRULE in a file") {
    const auto schedule = OnCallSchedule::load(dataFile("malformed.ics"));
    REQUIRE_FALSE(schedule.has_value());
    CHECK(schedule.error().code == "oncall");
    CHECK_MESSAGE(schedule.error().message.find("malformed.ics:9: RRULE:") != std::string::npos,
                  schedule.error().message);
    CHECK(schedule.error().message.find("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO") != std::string::npos);
  }
  SUBCASE("a missing file") {
    const auto schedule = OnCallSchedule::load(dataFile("no-such.ics"));
    REQUIRE_FALSE(schedule.has_value());
    CHECK(schedule.error().code == "oncall");
    CHECK(schedule.error().message.find("no-such.ics") != std::string::npos);
  }
  const std::string head = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:a\nSUMMARY:Alice\n";
  const std::string tail = "END:VEVENT\nEND:VCALENDAR\n";
  SUBCASE("a date that does not exist") {
    const auto e = parseError(head + "DTSTART:20240229T090000Z\nDTEND:20240230T090000Z\n" + tail);
    CHECK_MESSAGE(e.message.find("inline.ics:7: DTEND: \"20240230T090000Z\" is not a valid") !=
                      std::string::npos,
                  e.message);
  }
  SUBCASE("an unknown time zone") {
    const auto e =
        parseError(head + "DTSTART;TZID=Mars/Olympus:20240301T090000\nDURATION:PT1H\n" + tail);
    CHECK_MESSAGE(e.message.find("inline.ics:6: DTSTART: unknown time zone \"Mars/Olympus\"") !=
                      std::string::npos,
                  e.message);
  }
  SUBCASE("no end") {
    const auto e = parseError(head + "DTSTART:20240301T090000Z\n" + tail);
    CHECK_MESSAGE(e.message.find("inline.ics:3: DTEND: missing") != std::string::npos, e.message);
  }
  SUBCASE("an end before the start") {
    const auto e = parseError(head + "DTSTART:20240301T090000Z\nDTEND:20240301T080000Z\n" + tail);
    CHECK_MESSAGE(e.message.find("inline.ics:7: DTEND: 20240301T080000Z is not after DTSTART") !=
                      std::string::npos,
                  e.message);
  }
  SUBCASE("a misspelt property") {
    const auto e = parseError(head + "DTSTRAT:20240301T090000Z\nDURATION:PT1H\n" + tail);
    CHECK_MESSAGE(e.message.find("inline.ics:6: unknown property \"DTSTRAT\"") != std::string::npos,
                  e.message);
  }
  SUBCASE("an attendee that is no address, after a folded line") {
    const auto e = parseError(
        "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:a\nDESCRIPTION:a long\n  text\n"
        "ATTENDEE;CN=Bob:bob\nDTSTART:20240301T090000Z\nDURATION:PT1H\n" +
        tail);
    CHECK_MESSAGE(
        e.message.find("inline.ics:7: ATTENDEE: \"bob\" is neither mailto:") != std::string::npos,
        e.message);
  }
  SUBCASE("a bad value among several on one line") {
    const auto e = parseError(head +
                              "DTSTART:20240301T090000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY\n"
                              "EXDATE:20240302T090000Z,2024030\nUID:b\n" +
                              tail);
    CHECK_MESSAGE(
        e.message.find("inline.ics:9: EXDATE: cannot read the value") != std::string::npos,
        e.message);
  }
  SUBCASE("a bad phone number") {
    const auto e = parseError(head +
                              "ATTENDEE;CN=Bob;X-PASS-PHONE=call me:mailto:bob@example.com\n"
                              "DTSTART:20240301T090000Z\nDURATION:PT1H\n" +
                              tail);
    CHECK_MESSAGE(
        e.message.find("inline.ics:6: ATTENDEE: X-PASS-PHONE=\"call me\"") != std::string::npos,
        e.message);
  }
  SUBCASE("a phone for a shift of two") {
    const auto e =
        parseError(head +
                   "ATTENDEE:mailto:a@example.com\nATTENDEE:mailto:b@example.com\n"
                   "X-PASS-PHONE:+4930123456\nDTSTART:20240301T090000Z\nDURATION:PT1H\n" +
                   tail);
    CHECK_MESSAGE(
        e.message.find("inline.ics:8: X-PASS-PHONE: the shift has 2 people") != std::string::npos,
        e.message);
  }
  SUBCASE("a level that is no number") {
    const auto e =
        parseError(head + "X-PASS-LEVEL:second\nDTSTART:20240301T090000Z\nDURATION:PT1H\n" + tail);
    CHECK_MESSAGE(e.message.find("inline.ics:6: X-PASS-LEVEL: \"second\" is not an escalation") !=
                      std::string::npos,
                  e.message);
  }
  SUBCASE("a shift with nobody") {
    const auto e = parseError(
        "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:a\nDTSTART:20240301T090000Z\n"
        "DURATION:PT1H\n" +
        tail);
    CHECK_MESSAGE(e.message.find("inline.ics:3: a shift without ATTENDEE and without SUMMARY") !=
                      std::string::npos,
                  e.message);
  }
  SUBCASE("a VEVENT that is never closed") {
    const auto e = parseError(head + "DTSTART:20240301T090000Z\nDURATION:PT1H\nEND:VCALENDAR\n");
    CHECK_MESSAGE(e.message.find("inline.ics:8: END:VCALENDAR does not close BEGIN:VEVENT from "
                                 "line 3") != std::string::npos,
                  e.message);
  }
  SUBCASE("a file cut short") {
    const auto e = parseError(head + "DTSTART:20240301T090000Z\n");
    CHECK_MESSAGE(
        e.message.find("inline.ics:3: BEGIN:VEVENT has no END:VEVENT") != std::string::npos,
        e.message);
  }
  SUBCASE("not a calendar") {
    const auto e = parseError("<html><body>Sign in</body></html>\n");
    CHECK_MESSAGE(e.message.find("inline.ics:1:") != std::string::npos, e.message);
  }
  SUBCASE("no shifts") {
    const auto e = parseError("BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n");
    CHECK_MESSAGE(e.message.find("no shifts") != std::string::npos, e.message);
  }
  SUBCASE("libical's complaint about an unread property is no error") {
    // Google Calendar exports empty DESCRIPTION and LOCATION lines, which libical reports.
    const auto schedule = OnCallSchedule::parse(
        head + "DESCRIPTION:\nLOCATION:\nDTSTART:20240301T090000Z\nDURATION:PT1H\n" + tail,
        "inline.ics");
    CHECK_MESSAGE(schedule.has_value(), (schedule ? "" : schedule.error().message));
  }
}

TEST_CASE("quiet hours wrap midnight in local time") {
  const auto q = quiet("22:00-07:00", "Europe/Berlin");
  // Berlin is UTC+1 in January.
  CHECK_FALSE(q.contains(utc(2024, 1, 10, 20, 59, 59)));
  CHECK(q.contains(utc(2024, 1, 10, 21)));
  CHECK(q.contains(utc(2024, 1, 10, 23, 30)));
  CHECK(q.contains(utc(2024, 1, 11, 5, 59, 59)));
  CHECK_FALSE(q.contains(utc(2024, 1, 11, 6)));
  CHECK_FALSE(q.contains(utc(2024, 1, 11, 12)));
  CHECK(q.nextAllowed(utc(2024, 1, 10, 22)) == utc(2024, 1, 11, 6));
  CHECK(q.nextAllowed(utc(2024, 1, 11, 12)) == utc(2024, 1, 11, 12));
  const auto notRound = utc(2024, 1, 11, 12) + std::chrono::milliseconds(1);
  CHECK(q.nextAllowed(notRound) == notRound);
}

TEST_CASE("quiet hours on weekdays name the day a period starts") {
  const auto q = quiet("Mon-Fri 19:00-08:00", "UTC");
  // 2024-01-12 is a Friday.
  CHECK(q.contains(utc(2024, 1, 12, 20)));
  CHECK(q.contains(utc(2024, 1, 13, 7, 59)));  // Friday night runs into Saturday
  CHECK_FALSE(q.contains(utc(2024, 1, 13, 8)));
  CHECK_FALSE(q.contains(utc(2024, 1, 13, 20)));  // Saturday evening
  CHECK_FALSE(q.contains(utc(2024, 1, 15, 7)));   // Sunday is no start day
  CHECK(q.contains(utc(2024, 1, 15, 19)));
  CHECK_FALSE(q.contains(utc(2024, 1, 15, 18, 59)));

  const auto weekend = quiet("mon - fri 19:00-08:00; Sat,Sun 00:00-24:00", "UTC");
  CHECK(weekend.contains(utc(2024, 1, 13, 20)));
  CHECK(weekend.nextAllowed(utc(2024, 1, 12, 20)) == utc(2024, 1, 15, 0));
  const auto wrapDays = quiet("Fri-Mon 12:00-13:00", "UTC");
  CHECK(wrapDays.contains(utc(2024, 1, 14, 12, 30)));        // Sunday
  CHECK_FALSE(wrapDays.contains(utc(2024, 1, 16, 12, 30)));  // Tuesday
}

TEST_CASE("quiet hours keep local wall time on the nights clocks change") {
  const auto q = quiet("22:00-07:00", "Europe/Berlin");
  // Spring forward, 2024-03-31: 22:00 CET (21:00 UTC) to 07:00 CEST (05:00 UTC).
  CHECK_FALSE(q.contains(utc(2024, 3, 30, 20, 59, 59)));
  CHECK(q.contains(utc(2024, 3, 30, 21)));
  CHECK(q.contains(utc(2024, 3, 31, 4, 59, 59)));
  CHECK_FALSE(q.contains(utc(2024, 3, 31, 5)));
  CHECK(q.nextAllowed(utc(2024, 3, 31, 0)) == utc(2024, 3, 31, 5));
  // Fall back, 2024-10-27: 22:00 CEST (20:00 UTC) to 07:00 CET (06:00 UTC).
  CHECK_FALSE(q.contains(utc(2024, 10, 26, 19, 59, 59)));
  CHECK(q.contains(utc(2024, 10, 26, 20)));
  CHECK(q.contains(utc(2024, 10, 27, 5, 59, 59)));
  CHECK_FALSE(q.contains(utc(2024, 10, 27, 6)));
  CHECK(q.nextAllowed(utc(2024, 10, 27, 1, 30)) == utc(2024, 10, 27, 6));

  // A period ending in the hour that does not exist (New York, 2024-03-10 02:00 -> 03:00)
  // ends as late as RFC 5545 reads such a time: 02:30 is 03:30 EDT = 07:30 UTC.
  const auto ny = quiet("01:00-02:30", "America/New_York");
  CHECK(ny.contains(utc(2024, 3, 10, 7, 15)));
  CHECK(ny.nextAllowed(utc(2024, 3, 10, 6, 30)) == utc(2024, 3, 10, 7, 30));
  // On the night clocks go back, 01:30 comes twice; a period starting then starts the first
  // time (01:30 EDT = 05:30 UTC).
  const auto late = quiet("01:30-03:00", "America/New_York");
  CHECK_FALSE(late.contains(utc(2024, 11, 3, 5, 29)));
  CHECK(late.contains(utc(2024, 11, 3, 5, 30)));
}

TEST_CASE("quiet hours: errors say what is valid") {
  const auto error = [](const char* spec, const char* zone) {
    auto q = QuietHours::parse(spec, zone);
    REQUIRE_FALSE(q.has_value());
    CHECK(q.error().code == "quiet_hours");
    return q.error().message;
  };
  CHECK(error("22:00-07:00", "Europe/Berlinn").find("unknown time zone \"Europe/Berlinn\"") !=
        std::string::npos);
  CHECK(error("22:00-07:00", "").find("no time zone") != std::string::npos);
  CHECK(error("25:00-07:00", "UTC").find("\"25:00-07:00\" is not a time range") !=
        std::string::npos);
  CHECK(error("22:00", "UTC").find("HH:MM-HH:MM") != std::string::npos);
  CHECK(error("22:00-22:00", "UTC").find("00:00-24:00") != std::string::npos);
  CHECK(error("Moonday 22:00-07:00", "UTC").find("\"Moonday\" is not a day") != std::string::npos);
  CHECK(error("22:00-07:00;", "UTC").find("empty period") != std::string::npos);
  CHECK(error("Mon-Sun 00:00-24:00", "UTC").find("whole week") != std::string::npos);
  CHECK(error("12:00-24:00; 00:00-12:00", "UTC").find("whole week") != std::string::npos);
}
