#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "collectors/hpe_3par/parse.hpp"
#include "pass/collector.hpp"
#include "pass/payload.hpp"
#include "pass/vendor_codes.hpp"
#include "test_support.hpp"

using nlohmann::json;
using pass::CollectedEvent;
using pass::hpe_3par::AlertBlock;
using pass::hpe_3par::AlertCursor;
using pass::hpe_3par::builtinZones;
using pass::hpe_3par::followAlerts;
using pass::hpe_3par::followEventLog;
using pass::hpe_3par::normaliseMessageCode;
using pass::hpe_3par::parseAlertTime;
using pass::hpe_3par::parseEventLog;
using pass::hpe_3par::parseShowAlert;
using pass::test::errorText;

namespace {

/// delfin's test fixture for `showalert -d`, verbatim (keys unpadded, "Component:" unspaced).
constexpr std::string_view kDelfinBlock =
    "Id : 1\n"
    "State : New\n"
    "MessageCode : 0x2200de\n"
    "Time : 2015-07-17 20:14:29 PDT\n"
    "Severity : Degraded\n"
    "Type : Component state change\n"
    "Message : Node 0, Power Supply 1, Battery 0 Degraded\n"
    "Component: 100.118.18.100\n";

/// Milliseconds of a UTC calendar time, computed independently of the code under test.
std::int64_t utcMs(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
  using namespace std::chrono;
  auto days = sys_days(year{y} / month{m} / day{d}).time_since_epoch().count();
  return (static_cast<std::int64_t>(days) * 86400 + hh * 3600 + mm * 60 + ss) * 1000;
}

/// One padded block as the array prints it.
std::string block(int id, std::string_view state, std::string_view code = "0x2200de",
                  std::string_view severity = "Degraded", std::string_view message = "PS failed") {
  return "Id          : " + std::to_string(id) + "\nState       : " + std::string(state) +
         "\nMessageCode : " + std::string(code) +
         "\nTime        : 2015-07-17 20:14:29 PDT\nSeverity    : " + std::string(severity) +
         "\nType        : Component state change\nMessage     : " + std::string(message) +
         "\nComponent   : Node 0\n";
}

std::string join(const std::vector<std::string>& blocks) {
  std::string out;
  for (const auto& b : blocks) out += (out.empty() ? "" : "\n") + b;
  return out;
}

std::vector<AlertBlock> blocksOf(std::string_view text) {
  auto r = parseShowAlert(text, builtinZones());
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  return *r;
}

std::vector<std::string> ids(const std::vector<CollectedEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.id + "/" + e.kind);
  return out;
}

pass::ArrayConfig arrayWith(std::map<std::string, std::string, std::less<>> settings) {
  pass::ArrayConfig a;
  a.family = "hpe_3par";
  a.serial = "1234567";
  a.where = "agent.xml:7";
  std::map<std::string, std::string, std::less<>> defaults = {
      {"address", "127.0.0.1"}, {"user", "3paradm"},    {"source", "ssh"},
      {"ssh-port", "22"},       {"wsapi-port", "8080"}, {"timeout-seconds", "5"},
      {"password-file", ""},    {"key-file", ""},       {"zone-abbreviations", ""}};
  for (auto& [k, v] : settings) defaults[k] = v;
  a.settings = std::move(defaults);
  return a;
}

}  // namespace

TEST_CASE("showalert: delfin's verbatim block reads as one New alert") {
  auto blocks = blocksOf(kDelfinBlock);
  REQUIRE(blocks.size() == 1);
  const AlertBlock& b = blocks[0];
  CHECK(b.id == "1");
  CHECK(b.state == "New");
  CHECK(b.line == 1);
  CHECK(b.event.code == "0x02200de");
  CHECK(b.event.severity == "degraded");
  CHECK(b.event.component == "100.118.18.100");
  CHECK(b.event.text == "Node 0, Power Supply 1, Battery 0 Degraded");
  REQUIRE(b.event.occurredMs.has_value());
  CHECK(*b.event.occurredMs == utcMs(2015, 7, 18, 3, 14, 29));  // PDT is UTC-7
  CHECK(b.event.raw == std::string(kDelfinBlock.substr(0, kDelfinBlock.size() - 1)));
  CHECK(b.notes.empty());
}

TEST_CASE("showalert: padded keys, CRLF, several blocks and their first lines") {
  const std::string lf =
      "\n" + block(3, "New") + "\n\n" + block(4, "Acknowledged", "0x27001e", "Major");
  std::string text;
  for (char c : lf) text += c == '\n' ? std::string("\r\n") : std::string(1, c);
  auto blocks = blocksOf(text);
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0].id == "3");
  CHECK(blocks[0].line == 2);
  CHECK(blocks[1].id == "4");
  CHECK(blocks[1].state == "Acknowledged");
  CHECK(blocks[1].event.code == "0x027001e");
  CHECK(blocks[1].event.severity == "major");
  CHECK(blocks[1].line == 12);
  CHECK(blocks[1].event.raw.find('\r') == std::string::npos);
}

TEST_CASE("showalert: unknown keys are kept, indented lines continue the value") {
  std::string text = block(5, "New");
  text.insert(text.find("Component   :"),
              "    second line of the message\nNodeWwn     : 2FF70002AC\n");
  auto blocks = blocksOf(text);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].event.text == "PS failed second line of the message");
  CHECK(blocks[0].event.component == "Node 0");
  CHECK(blocks[0].event.raw.find("NodeWwn     : 2FF70002AC") != std::string::npos);
  REQUIRE(blocks[0].notes.size() == 1);
  CHECK(blocks[0].notes[0].find("NodeWwn") != std::string::npos);
}

TEST_CASE("showalert: a block without an Id is an unparsed event, garbage is an error") {
  auto blocks = blocksOf(block(1, "New") + "\nsomething the CLI said\nwithout any key\n");
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[1].id.empty());
  CHECK(blocks[1].event.code == "unparsed");
  CHECK(blocks[1].event.raw == "something the CLI said\nwithout any key");

  auto garbage = parseShowAlert("Error: Permission denied\nfor user x\n", builtinZones());
  REQUIRE_FALSE(garbage.has_value());
  CHECK(garbage.error().code == "hpe_3par.bad_output");
  CHECK(garbage.error().message.find("Error: Permission denied") != std::string::npos);
  CHECK(garbage.error().message.find("line 1") != std::string::npos);

  CHECK(blocksOf("No alerts.\n").empty());
  CHECK(blocksOf("").empty());
  CHECK(blocksOf("\n \n").empty());
}

TEST_CASE("showalert: an unreadable time or code is kept raw with a note") {
  std::string text = block(9, "New", "0xZZ");
  text.replace(text.find("PDT"), 3, "XYZT");
  auto blocks = blocksOf(text);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].event.code == "0xZZ");
  CHECK_FALSE(blocks[0].event.occurredMs.has_value());
  CHECK(blocks[0].event.raw.find("20:14:29 XYZT") != std::string::npos);
  CHECK(blocks[0].notes.size() == 2);
}

TEST_CASE("message codes: 0x%07x lower case, decimal trap form too") {
  CHECK(normaliseMessageCode("0x2200de") == "0x02200de");
  CHECK(normaliseMessageCode("0X2200DE") == "0x02200de");
  CHECK(normaliseMessageCode("2555934") == "0x027001e");  // delfin's trap test
  CHECK(normaliseMessageCode(" 0x0360002 ") == "0x0360002");
  CHECK(normaliseMessageCode("0x1234abcd") == "0x1234abcd");
  CHECK_FALSE(normaliseMessageCode("0x").has_value());
  CHECK_FALSE(normaliseMessageCode("2200de").has_value());
  CHECK_FALSE(normaliseMessageCode("").has_value());
}

TEST_CASE("alert times: zones by abbreviation, offset and override") {
  const auto base = utcMs(2015, 7, 17, 20, 14, 29);
  const auto& z = builtinZones();
  CHECK(parseAlertTime("2015-07-17 20:14:29 UTC", z) == base);
  CHECK(parseAlertTime("2015-07-17 20:14:29 GMT", z) == base);
  CHECK(parseAlertTime("2015-07-17 20:14:29 CEST", z) == base - 2 * 3600000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 JST", z) == base - 9 * 3600000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 EDT", z) == base + 4 * 3600000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 +0200", z) == base - 2 * 3600000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 -05:30", z) == base + 5 * 3600000 + 1800000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 UTC+2", z) == base - 2 * 3600000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 cst", z) == base + 6 * 3600000);
  CHECK_FALSE(parseAlertTime("2015-07-17 20:14:29 IST", z).has_value());  // ambiguous
  CHECK_FALSE(parseAlertTime("2015-07-17 20:14:29", z).has_value());
  CHECK_FALSE(parseAlertTime("2015-02-30 20:14:29 UTC", z).has_value());
  CHECK_FALSE(parseAlertTime("2015-07-17 24:14:29 UTC", z).has_value());
  CHECK_FALSE(parseAlertTime("2015-07-17T20:14:29 UTC", z).has_value());

  auto china = pass::hpe_3par::zonesWithOverrides("CST=+08:00, IST=+0530");
  REQUIRE_MESSAGE(china.has_value(), errorText(china));
  CHECK(parseAlertTime("2015-07-17 20:14:29 CST", *china) == base - 8 * 3600000);
  CHECK(parseAlertTime("2015-07-17 20:14:29 IST", *china) == base - 5 * 3600000 - 1800000);
  for (std::string_view bad : {"CST", "CST=8", "C5T=+08:00", "=+01:00", "CST=+25:00"}) {
    auto r = pass::hpe_3par::zonesWithOverrides(bad);
    CHECK_MESSAGE(!r.has_value(), bad);
    if (!r) CHECK(r.error().code == "config");
  }
}

TEST_CASE("follow: first run reports New alerts only and remembers all") {
  AlertCursor cursor;
  auto first = followAlerts(
      blocksOf(join({block(1, "New"), block(2, "Acknowledged"), block(3, "Fixed")})), cursor);
  CHECK(ids(first.events) == std::vector<std::string>{"1/alert"});
  CHECK(first.events[0].code == "0x02200de");
  CHECK(cursor.sshStarted);
  CHECK(cursor.alerts.size() == 3);
  bool noted = false;
  for (const auto& n : first.notes) noted = noted || n.starts_with("first run");
  CHECK(noted);

  auto again = followAlerts(
      blocksOf(join({block(1, "New"), block(2, "Acknowledged"), block(3, "Fixed")})), cursor);
  CHECK(again.events.empty());
}

TEST_CASE("follow: new Ids, Fixed turns into one recovery, removed Ids are forgotten") {
  AlertCursor cursor;
  followAlerts(blocksOf(join({block(1, "New"), block(2, "New")})), cursor);

  auto run2 = followAlerts(blocksOf(join({block(1, "New"), block(2, "Acknowledged"),
                                          block(7, "New"), block(8, "Fixed")})),
                           cursor);
  CHECK(ids(run2.events) == std::vector<std::string>{"7/alert", "8/alert", "8:fixed/recovery"});

  auto run3 = followAlerts(
      blocksOf(join({block(1, "Fixed"), block(2, "Fixed"), block(7, "New"), block(8, "Fixed")})),
      cursor);
  CHECK(ids(run3.events) == std::vector<std::string>{"1:fixed/recovery", "2:fixed/recovery"});
  CHECK(run3.events[0].code == "0x02200de");
  CHECK(run3.events[0].text == "PS failed");

  auto run4 = followAlerts(blocksOf(block(7, "New")), cursor);
  CHECK(run4.events.empty());
  CHECK(cursor.alerts.size() == 1);
  bool noted = false;
  for (const auto& n : run4.notes) noted = noted || n.find("3 alert Id(s)") != std::string::npos;
  CHECK(noted);
}

TEST_CASE("follow: an unparsed block is reported once while it stays listed") {
  AlertCursor cursor;
  const std::string text = join({block(1, "New"), "odd text from the CLI\n"});
  auto first = followAlerts(blocksOf(text), cursor);
  REQUIRE(first.events.size() == 2);
  CHECK(first.events[1].code == "unparsed");
  CHECK(first.events[1].id.starts_with("unparsed:"));
  CHECK(first.events[1].raw == "odd text from the CLI");
  CHECK(followAlerts(blocksOf(text), cursor).events.empty());
  CHECK(cursor.unparsed.size() == 1);
  followAlerts(blocksOf(block(1, "New")), cursor);
  CHECK(cursor.unparsed.empty());
}

TEST_CASE("follow: a duplicate Id counts once, with a note") {
  AlertCursor cursor;
  followAlerts(blocksOf(block(1, "New")), cursor);
  auto diff = followAlerts(blocksOf(join({block(5, "New"), block(5, "Fixed")})), cursor);
  CHECK(ids(diff.events) == std::vector<std::string>{"5/alert"});
  CHECK(cursor.alerts.at("5") == 'n');
}

TEST_CASE("cursor: survives JSON, damage is an error") {
  AlertCursor cursor;
  followAlerts(blocksOf(join({block(1, "New"), block(2, "Fixed"), "junk\n"})), cursor);
  cursor.wsapiStarted = true;
  cursor.wsapiSecs = 1655461650;
  cursor.wsapiIdsAtSecs = {"208293749"};
  auto text = pass::hpe_3par::toJson(cursor);
  auto back = pass::hpe_3par::parseCursor(text);
  REQUIRE_MESSAGE(back.has_value(), errorText(back));
  CHECK(back->alerts == cursor.alerts);
  CHECK(back->unparsed == cursor.unparsed);
  CHECK(back->sshStarted);
  CHECK(back->wsapiStarted);
  CHECK(back->wsapiSecs == 1655461650);
  CHECK(back->wsapiIdsAtSecs == cursor.wsapiIdsAtSecs);

  auto empty = pass::hpe_3par::parseCursor(R"({"schema":1})");
  REQUIRE(empty.has_value());
  CHECK_FALSE(empty->sshStarted);
  CHECK_FALSE(empty->wsapiStarted);

  for (std::string_view bad : {"", "[]", R"({"schema":2})", R"({"schema":1,"ssh":{"alerts":[]}})",
                               R"({"schema":1,"ssh":{"alerts":{"1":"new"},"unparsed":[]}})",
                               R"({"schema":1,"ssh":{"alerts":{},"unparsed":[1]}})",
                               R"({"schema":1,"wsapi":{"ids":[]}})"}) {
    auto r = pass::hpe_3par::parseCursor(bad);
    CHECK_MESSAGE(!r.has_value(), bad);
    if (!r) CHECK(r.error().code == "hpe_3par.bad_cursor");
  }
}

namespace {

/// Member shape of a real WSAPI eventlog answer (field names and types as printed in
/// peekjef72/httpapi_exporter's hp3par events collector; alertInfo per delfin's mock).
json member(std::string id, std::int64_t secs, int category, std::optional<json> alertInfo) {
  json m = {{"time", "2022-06-17T12:27:30+02:00"},
            {"timeSecs", secs},
            {"id", std::move(id)},
            {"category", category},
            {"class", 1},
            {"severity", 5},
            {"type", "Component state change"},
            {"isDataChanged", false},
            {"components", "hw_node:0"},
            {"resource", 0},
            {"componentName", "Node 0 Power Supply 1"},
            {"description", "Node 0, Power Supply 1, Battery 0 Degraded"}};
  if (alertInfo) m["alertInfo"] = *alertInfo;
  return m;
}

pass::hpe_3par::EventLogPage page(const json& members) {
  auto r = parseEventLog(json{{"total", members.size()}, {"members", members}}.dump());
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  return *r;
}

}  // namespace

TEST_CASE("eventlog: members become events with the CLI's ids and codes") {
  auto p = page(json::array(
      {member("208293749", 1655461650, 2, json{{"alertId", "17"}, {"messageCode", 2228446}}),
       member("208293750", 1655461651, 1, std::nullopt),
       member("208293751", 1655461652, 2,
              json{{"alertId", 17}, {"messageCode", "0x2200de"}, {"state", 3}}),
       "not an object"}));
  REQUIRE(p.entries.size() == 4);
  const auto& a = p.entries[0].event;
  CHECK(a.id == "17");
  CHECK(a.kind == "alert");
  CHECK(a.code == "0x02200de");
  CHECK(a.severity == "degraded");
  CHECK(a.component == "Node 0 Power Supply 1");
  CHECK(a.text == "Node 0, Power Supply 1, Battery 0 Degraded");
  CHECK(a.occurredMs == std::int64_t{1655461650} * 1000);
  CHECK(p.entries[1].event.id == "eventlog:208293750");
  CHECK(p.entries[2].event.id == "17:fixed");
  CHECK(p.entries[2].event.kind == "recovery");
  CHECK(p.entries[3].event.code == "unparsed");
  CHECK(p.total == 4);
}

TEST_CASE("eventlog: time from the ISO text when timeSecs is missing") {
  json m = member("1", 0, 2, json{{"alertId", "3"}, {"messageCode", 1}});
  m.erase("timeSecs");
  auto p = page(json::array({m}));
  CHECK(p.entries[0].timeSecs == utcMs(2022, 6, 17, 10, 27, 30) / 1000);
}

TEST_CASE("eventlog: garbage and wrong shapes are errors naming the path") {
  auto notJson = parseEventLog("<html>503</html>");
  REQUIRE_FALSE(notJson.has_value());
  CHECK(notJson.error().code == "hpe_3par.bad_output");
  CHECK(notJson.error().message.find("<html>") != std::string::npos);
  auto noMembers = parseEventLog(R"({"total": 3})");
  REQUIRE_FALSE(noMembers.has_value());
  CHECK(noMembers.error().message.find("$.members") != std::string::npos);
  CHECK_FALSE(parseEventLog("[1,2]").has_value());
}

TEST_CASE("eventlog follow: first run is a baseline, then alerts after the mark") {
  AlertCursor cursor;
  auto info = [](std::string id) { return json{{"alertId", std::move(id)}, {"messageCode", 1}}; };
  auto first = followEventLog(
      page(json::array({member("100", 1000, 2, info("1")), member("101", 1001, 1, {})})), cursor);
  CHECK(first.events.empty());
  CHECK(cursor.wsapiStarted);
  CHECK(cursor.wsapiSecs == 1001);

  auto second = followEventLog(
      page(json::array({member("100", 1000, 2, info("1")), member("101", 1001, 1, {}),
                        member("102", 1001, 2, info("2")), member("103", 1005, 1, {}),
                        member("104", 1005, 2, info("3"))})),
      cursor);
  CHECK(ids(second.events) == std::vector<std::string>{"2/alert", "3/alert"});
  CHECK(cursor.wsapiSecs == 1005);
  CHECK(cursor.wsapiIdsAtSecs == std::set<std::string, std::less<>>{"103", "104"});

  auto third = followEventLog(
      page(json::array({member("104", 1005, 2, info("3")), member("105", 1005, 2, info("4"))})),
      cursor);
  CHECK(ids(third.events) == std::vector<std::string>{"4/alert"});
}

TEST_CASE("code table: the built-in hpe_3par table decodes normalised codes") {
  const pass::CodeTable* table = pass::builtinCodeTable("hpe_3par");
  REQUIRE(table != nullptr);
  CHECK(table->entries().size() >= 544);
  for (std::string_view code : {"0x02200de", "0x027001e", "0x0010001", "0x0020001", "0x0030005",
                                "0x0040001", "0x0280005", "0x0360002"}) {
    const pass::CodeEntry* e = table->find(code);
    REQUIRE_MESSAGE(e != nullptr, code);
    CHECK_FALSE(e->source.empty());
  }
  CHECK(table->find("0x027001e")->meaning == "CPG growth non admin limit");
  CHECK(table->find("0x02200de")->meaning == "Component state change");
  CHECK(table->find("0x7ffffff") == nullptr);
}

TEST_CASE("collector: settings are checked when it is built") {
  const pass::CollectorInfo* info = pass::builtinCollectors().find("hpe_3par");
  REQUIRE(info != nullptr);
  CHECK(info->element == "hpe-3par");
  auto ok = info->create(arrayWith({{"key-file", "/k"}}));
  CHECK_MESSAGE(ok.has_value(), errorText(ok));

  auto check = [&](std::map<std::string, std::string, std::less<>> s, std::string_view part) {
    auto r = info->create(arrayWith(std::move(s)));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "config");
    CHECK_MESSAGE(r.error().message.find(part) != std::string::npos, r.error().message);
    CHECK(r.error().message.find("agent.xml:7") != std::string::npos);
  };
  check({}, "password-file or key-file");
  check({{"source", "wsapi"}, {"key-file", "/k"}}, "needs password-file");
  check({{"source", "both"}, {"key-file", "/k"}}, "needs password-file");
  check({{"source", "telnet"}, {"key-file", "/k"}}, "ssh, wsapi or both");
  check({{"ssh-port", "0"}, {"key-file", "/k"}}, "ssh-port");
  check({{"timeout-seconds", "0"}, {"key-file", "/k"}}, "timeout-seconds");
  check({{"zone-abbreviations", "CST"}, {"key-file", "/k"}}, "zone-abbreviations");
}

TEST_CASE("collector: an array that does not answer is unreachable and the cursor stays") {
  const pass::CollectorInfo* info = pass::builtinCollectors().find("hpe_3par");
  REQUIRE(info != nullptr);
  // Port 1 on the loopback: nothing listens, the connection is refused at once.
  auto collector = info->create(arrayWith({{"key-file", "/k"}, {"ssh-port", "1"}}));
  REQUIRE_MESSAGE(collector.has_value(), errorText(collector));
  pass::MemoryPinStore pins;
  pass::CollectContext ctx;
  ctx.clock = [] { return std::uint64_t{1}; };
  ctx.pins = &pins;
  ctx.cursor = R"({"schema":1})";
  auto outcome = (*collector)->collect(ctx);
  REQUIRE_FALSE(outcome.result.has_value());
  CHECK(outcome.status.state == "unreachable");
  CHECK(outcome.status.message.find("hpe_3par 1234567") != std::string::npos);
  CHECK(outcome.status.message.find("127.0.0.1:1") != std::string::npos);
  CHECK_FALSE(pins.find("ssh").has_value());

  ctx.cursor = "{broken";
  auto damaged = (*collector)->collect(ctx);
  REQUIRE_FALSE(damaged.result.has_value());
  CHECK(damaged.status.state == "error");
  CHECK(damaged.status.message.find("state/cursors/hpe_3par-1234567.json") != std::string::npos);
}

TEST_CASE("parse sources: showalert gives one event per block, a Fixed one as its recovery") {
  const pass::CollectorInfo* info = pass::builtinCollectors().find("hpe_3par");
  REQUIRE(info != nullptr);
  REQUIRE(info->sources.size() == 2);
  CHECK(info->sources[0].name == "showalert");
  CHECK(info->sources[1].name == "eventlog");
  pass::ArrayConfig array;
  array.family = "hpe_3par";
  auto events = info->sources[0].parse(join({block(1, "New"), block(2, "Fixed")}), array);
  REQUIRE_MESSAGE(events.has_value(), errorText(events));
  CHECK(ids(*events) == std::vector<std::string>{"1/alert", "2:fixed/recovery"});
  auto log = info->sources[1].parse(
      json{
          {"members", json::array({member("9", 5, 2, json{{"alertId", "4"}, {"messageCode", 1}})})}}
          .dump(),
      array);
  REQUIRE_MESSAGE(log.has_value(), errorText(log));
  CHECK(ids(*log) == std::vector<std::string>{"4/alert"});
}

TEST_CASE("showalert: invalid UTF-8, NULs and a 2 MiB line cost nothing but their own text") {
  const std::string f(pass::kReplacement);
  std::string text = block(5, "New", "0x2200de", "Degraded",
                           "L\xfc"
                           "fter 1");
  text += "\n" + block(6, "New", "0x2200de", "Degraded", std::string("fan") + '\0');
  text += "\n" + block(7, "New") + "Detail      : " + std::string(2 << 20, 'x') + "\n";
  auto blocks = blocksOf(text);
  REQUIRE(blocks.size() == 3);
  CHECK(blocks[0].id == "5");
  CHECK(blocks[0].event.text == "L" + f + "fter 1");
  REQUIRE(blocks[0].event.rawBytes.has_value());
  CHECK(blocks[0].event.rawBytes->find("L\xfc"
                                       "fter 1") != std::string::npos);
  CHECK(blocks[1].event.text == "fan" + f);
  CHECK(blocks[2].id == "7");
  CHECK(blocks[2].event.raw.size() > (2u << 20));
  for (const auto& b : blocks) CHECK(pass::isCleanUtf8(b.event.raw));
  // The home gets all three, each report within its limit.
  std::vector<CollectedEvent> events;
  for (const auto& b : blocks) events.push_back(b.event);
  for (const auto& r : pass::payload::reports(1, arrayWith({}), events)) {
    CHECK(r.size() <= pass::payload::kReportBytes + 1024);
  }
}

TEST_CASE("showalert: the encoding setting decodes a code page") {
  const std::string text = block(8, "New", "0x2200de", "Degraded",
                                 "L\xfc"
                                 "fter 1");
  auto r = parseShowAlert(text, builtinZones(), *pass::TextEncoding::named("windows-1252"));
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].event.text ==
        "L\xc3\xbc"
        "fter 1");
  CHECK((*r)[0].event.rawBytes == text.substr(0, text.size() - 1));
  CHECK_FALSE(pass::createCollector(arrayWith({{"encoding", "klingon"}})).has_value());
}

TEST_CASE("eventlog: a byte that is not UTF-8 costs its string, not the page") {
  // A member whose text the array wrote in Latin-1 inside its JSON.
  const std::string body =
      R"({"total":1,"members":[{"id":"208293749","timeSecs":1655461650,"category":2,)"
      R"("alertInfo":{"alertId":"17"},"description":"L)"
      "\xfc"
      R"(fter failed"}]})";
  auto r = parseEventLog(body);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  REQUIRE(r->entries.size() == 1);
  CHECK(r->entries[0].alertId == "17");
  CHECK(r->entries[0].event.text == "L" + std::string(pass::kReplacement) + "fter failed");
}
