// hitachi_df: the auparts parser and snapshot diff (pure), and the collector against fake SNM2
// commands (shell scripts in a temp directory).

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "collectors/hitachi_df/auparts.hpp"
#include "pass/collector.hpp"
#include "pass/vendor_codes.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using pass::CollectedEvent;
using pass::hitachi_df::Diff;
using pass::hitachi_df::Parts;
using pass::hitachi_df::Snapshot;
using pass::test::errorText;
using pass::test::TempDir;
using namespace std::chrono_literals;

namespace {

// `auparts -unit` of a HUS110, verbatim from a public capture used as a test oracle (delfin fork
// guankecheng/netapp, delfin/tests/unit/drivers/hitachi/hus/test_constans.py, STATUS_INFO).
constexpr std::string_view kPublicSample = R"(Controller
  CTL   Status
    0   Normal
    1   Normal

Cache
  CTL      Slot   Capacity(MB)   Status
    0         0           4096   Normal
    1         0           4096   Normal

Interface Board
  CTL       Interface Board  Type           Status
    0                     1  iSCSI          Normal
    1                     1  ---            Alarm

Battery
  Battery   Status
        0   Normal
        1   Normal

Host Connector
  Port  Status
    0A  Normal
    0B  Normal
    0C  Normal
    0D  Normal
    1A  Normal
    1B  Alarm
    1C  Normal
    1D  Normal

Fan
  Unit     Fan   Status

AC PS
  Unit   AC PS   Status
     0       0   Normal
     0       1   Normal

ENC
  Unit  ENC   Type                   Status

Unit
  Unit  Type              Serial Number
     0  StandardS         91110206)";

constexpr std::string_view kHealthy = R"(Controller
  CTL   Status
    0   Normal
    1   Normal

Fan
  Unit     Fan   Status
     0       0   Normal
     0       1   Normal
)";

Parts parse(std::string_view text) {
  auto p = pass::hitachi_df::parseAuparts(text);
  REQUIRE_MESSAGE(p.has_value(), errorText(p));
  return *p;
}

std::map<std::string, std::string> statuses(const Parts& parts) {
  std::map<std::string, std::string> out;
  for (const auto& r : parts.rows) out[r.key] = r.status;
  return out;
}

std::string replaced(std::string text, std::string_view from, std::string_view to) {
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

// ---- parsing ---------------------------------------------------------------------------------

TEST_CASE("auparts: the public HUS110 sample") {
  Parts p = parse(kPublicSample);
  CHECK(p.unparsed.empty());
  CHECK(p.sections == std::vector<std::string>{"Controller", "Cache", "Interface Board", "Battery",
                                               "Host Connector", "Fan", "AC PS", "ENC", "Unit"});
  auto s = statuses(p);
  CHECK(s.size() == 2 + 2 + 2 + 2 + 8 + 2);  // Fan and ENC are empty; Unit has no Status
  CHECK(s.at("Controller/CTL 1") == "Normal");
  CHECK(s.at("Cache/CTL 0/Slot 0") == "Normal");
  // Type is not part of the key: the failed board shows "---" where it showed "iSCSI".
  CHECK(s.at("Interface Board/CTL 1/Interface Board 1") == "Alarm");
  CHECK(s.at("Interface Board/CTL 0/Interface Board 1") == "Normal");
  CHECK(s.at("Host Connector/Port 1B") == "Alarm");
  CHECK(s.at("AC PS/Unit 0/AC PS 1") == "Normal");
  CHECK(s.at("Battery/Battery 0") == "Normal");
  const auto& board = p.rows[5];
  CHECK(board.key == "Interface Board/CTL 1/Interface Board 1");
  CHECK(board.section == "Interface Board");
  CHECK(board.line == 14);
  CHECK(board.raw == "    1                     1  ---            Alarm");
}

TEST_CASE("auparts: CRLF, trailing blanks, tabs and no final newline read the same") {
  std::string crlf;
  for (char c : kPublicSample) {
    if (c == '\n') crlf += "   \r";
    crlf += c;
  }
  CHECK(statuses(parse(crlf)) == statuses(parse(kPublicSample)));
  std::string withNewline = std::string(kPublicSample) + "\n\n\n";
  CHECK(statuses(parse(withNewline)) == statuses(parse(kPublicSample)));
  auto tabs = parse("Fan\n\tUnit\tFan\tStatus\n\t0\t1\tAlarm\n");
  REQUIRE(tabs.rows.size() == 1);
  CHECK(tabs.rows[0].key == "Fan/Unit 0/Fan 1");
}

TEST_CASE("auparts: the Status column is found by name, wherever it stands") {
  auto p = parse("Drive\n  Status    Unit  HDU  Vendor ID\n  Detached     0    3  HITACHI\n");
  REQUIRE(p.rows.size() == 1);
  CHECK(p.rows[0].key == "Drive/Unit 0/HDU 3");
  CHECK(p.rows[0].status == "Detached");
}

TEST_CASE("auparts: status words are not a fixed list, multi-word statuses stay whole") {
  auto p = parse("Host Connector\n  Port  Status\n    0A  Link Failure\n    0B  Blocked\n");
  auto s = statuses(p);
  CHECK(s.at("Host Connector/Port 0A") == "Link Failure");
  CHECK(s.at("Host Connector/Port 0B") == "Blocked");
}

TEST_CASE("auparts: values that touch when a column overflows are still read") {
  auto p = parse("Cache\n  CTL  Slot  Capacity(MB)  Status\n    0    0 123456789012 Normal\n");
  REQUIRE(p.rows.size() == 1);
  CHECK(p.unparsed.empty());
  CHECK(p.rows[0].key == "Cache/CTL 0/Slot 0");
}

TEST_CASE("auparts: a row that does not fit its header is unparsed, with its line") {
  auto p =
      parse("Controller\n  CTL   Status\n    0   Normal\n    1\n    2   Normal   extra junk\n");
  CHECK(p.rows.size() == 1);
  REQUIRE(p.unparsed.size() == 2);
  CHECK(p.unparsed[0].line == 4);
  CHECK(p.unparsed[0].section == "Controller");
  CHECK(p.unparsed[0].raw == "    1");
  CHECK(p.unparsed[0].why.find("1 value(s) under 2 column(s)") != std::string::npos);
  CHECK(p.unparsed[1].line == 5);
}

TEST_CASE("auparts: a lone line between sections is unparsed, not skipped") {
  auto p = parse(std::string(kHealthy) + "\nThe command completed with a warning.\n");
  REQUIRE(p.unparsed.size() == 1);
  CHECK(p.unparsed[0].raw == "The command completed with a warning.");
  CHECK(p.unparsed[0].section.empty());
  CHECK(p.rows.size() == 4);
}

TEST_CASE("auparts: rows no column tells apart get distinct keys") {
  auto p = parse("Fan\n  Type  Status\n   A   Normal\n   A   Alarm\n");
  REQUIRE(p.rows.size() == 2);
  CHECK(p.rows[0].key == "Fan");
  CHECK(p.rows[1].key == "Fan #2");
}

TEST_CASE("auparts: an answer that is no table at all is bad_output") {
  for (std::string_view text :
       {std::string_view(""), std::string_view("\n \r\n"),
        std::string_view("DMEC: cannot connect\n"), std::string_view("a\nb c\nd e f\n"),
        std::string_view("Unit\n  Unit  Type\n     0  StandardS\n")}) {
    auto p = pass::hitachi_df::parseAuparts(text);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error().code == "df.bad_output");
  }
  auto p = pass::hitachi_df::parseAuparts("%%% not auparts %%%\x01\n");
  REQUIRE_FALSE(p.has_value());
  CHECK(p.error().message.find("line 1: \"%%% not auparts %%%?\"") != std::string::npos);
}

TEST_CASE("auunitinfo: the serial number") {
  auto s = pass::hitachi_df::parseUnitSerial(
      "Array Unit Type             : HUS110\r\nSerial Number               : 91110206  \r\n"
      "Array ID                    : 91110206\r\n");
  REQUIRE(s.has_value());
  CHECK(*s == "91110206");
  auto none = pass::hitachi_df::parseUnitSerial("Array Unit Type : HUS110\n");
  REQUIRE_FALSE(none.has_value());
  CHECK(none.error().code == "df.bad_output");
  CHECK_FALSE(pass::hitachi_df::parseUnitSerial("Serial Number :  \n").has_value());
}

TEST_CASE("event codes are the section and status, normalised") {
  using pass::hitachi_df::eventCode;
  CHECK(eventCode("Host Connector", "Alarm") == "host_connector.alarm");
  CHECK(eventCode("AC PS", "Normal") == "ac_ps.normal");
  CHECK(eventCode("Interface Board", "Link Failure") == "interface_board.link_failure");
  CHECK(eventCode("ENC", pass::hitachi_df::kAbsent) == "enc.removed");
  CHECK(eventCode(" -- ", "???") == "unknown.unknown");
}

// ---- the diff ----------------------------------------------------------------------------------

TEST_CASE("diff: the first run reports what is not Normal, nothing else") {
  Diff d = pass::hitachi_df::diff(nullptr, parse(kPublicSample));
  REQUIRE(d.transitions.size() == 2);
  CHECK(d.transitions[0].key == "Interface Board/CTL 1/Interface Board 1");
  CHECK(d.transitions[0].from.empty());
  CHECK(d.transitions[0].to == "Alarm");
  CHECK_FALSE(d.transitions[0].recovery());
  CHECK(d.transitions[1].key == "Host Connector/Port 1B");
  CHECK(d.next.components.size() == 18);
  CHECK(d.next.generation == 1);
  CHECK(d.newNormal == 0);
}

TEST_CASE("diff: changes against the last snapshot") {
  const std::string healthy(kHealthy);
  Snapshot s0 = pass::hitachi_df::diff(nullptr, parse(healthy)).next;

  SUBCASE("the same answer again says nothing and keeps the generation") {
    Diff d = pass::hitachi_df::diff(&s0, parse(healthy));
    CHECK(d.transitions.empty());
    CHECK(d.next.generation == s0.generation);
    CHECK(d.next.components == s0.components);
  }
  SUBCASE("Normal to Alarm, Alarm to another fault, back to Normal") {
    Diff a = pass::hitachi_df::diff(
        &s0, parse(replaced(healthy, "0       1   Normal", "0       1   Alarm")));
    REQUIRE(a.transitions.size() == 1);
    CHECK(a.transitions[0].key == "Fan/Unit 0/Fan 1");
    CHECK(a.transitions[0].from == "Normal");
    CHECK(a.transitions[0].to == "Alarm");
    CHECK(a.next.generation == s0.generation + 1);

    Diff b = pass::hitachi_df::diff(
        &a.next, parse(replaced(healthy, "0       1   Normal", "0       1   Blocked")));
    REQUIRE(b.transitions.size() == 1);
    CHECK(b.transitions[0].from == "Alarm");
    CHECK(b.transitions[0].to == "Blocked");
    CHECK_FALSE(b.transitions[0].recovery());

    Diff c = pass::hitachi_df::diff(&b.next, parse(healthy));
    REQUIRE(c.transitions.size() == 1);
    CHECK(c.transitions[0].recovery());
    CHECK(c.transitions[0].from == "Blocked");
    CHECK(c.next.generation == s0.generation + 3);
  }
  SUBCASE("a component that disappears is said once, and its return is a recovery") {
    std::string without = replaced(healthy, "     0       1   Normal\n", "");
    Diff gone = pass::hitachi_df::diff(&s0, parse(without));
    REQUIRE(gone.transitions.size() == 1);
    CHECK(gone.transitions[0].to == pass::hitachi_df::kAbsent);
    CHECK(gone.transitions[0].from == "Normal");
    CHECK(gone.transitions[0].section == "Fan");

    Diff still = pass::hitachi_df::diff(&gone.next, parse(without));
    CHECK(still.transitions.empty());

    Diff back = pass::hitachi_df::diff(&still.next, parse(healthy));
    REQUIRE(back.transitions.size() == 1);
    CHECK(back.transitions[0].recovery());
    CHECK(back.transitions[0].from == pass::hitachi_df::kAbsent);
  }
  SUBCASE("a new component: silent when Normal, an alert when not") {
    std::string more =
        healthy + "\nBattery\n  Battery   Status\n        0   Normal\n        1   Alarm\n";
    Diff d = pass::hitachi_df::diff(&s0, parse(more));
    REQUIRE(d.transitions.size() == 1);
    CHECK(d.transitions[0].key == "Battery/Battery 1");
    CHECK(d.transitions[0].from.empty());
    CHECK(d.newNormal == 1);
  }
  SUBCASE("an unparsed row is reported once while it stays, again when it returns") {
    std::string odd = healthy + "\nOdd line\n";
    Diff a = pass::hitachi_df::diff(&s0, parse(odd));
    CHECK(a.newUnparsed.size() == 1);
    Diff b = pass::hitachi_df::diff(&a.next, parse(odd));
    CHECK(b.newUnparsed.empty());
    Diff c = pass::hitachi_df::diff(&b.next, parse(healthy));
    Diff e = pass::hitachi_df::diff(&c.next, parse(odd));
    CHECK(e.newUnparsed.size() == 1);
  }
}

TEST_CASE("snapshot: JSON round trip, and a damaged cursor is refused") {
  Snapshot s = pass::hitachi_df::diff(nullptr, parse(std::string(kPublicSample) + "\nodd\n")).next;
  s.serial = "91110206";
  auto back = pass::hitachi_df::parseSnapshot(pass::hitachi_df::toJson(s));
  REQUIRE_MESSAGE(back.has_value(), errorText(back));
  CHECK(back->components == s.components);
  CHECK(back->unparsed == s.unparsed);
  CHECK(back->generation == s.generation);
  CHECK(back->serial == "91110206");

  for (std::string_view bad :
       {std::string_view("{"), std::string_view("[]"), std::string_view(R"({"format": "x"})"),
        std::string_view(R"({"format": "hitachi_df.snapshot.v1", "generation": -1, "serial": "",
           "components": [], "unparsed": []})"),
        std::string_view(R"({"format": "hitachi_df.snapshot.v1", "generation": 1, "serial": "",
           "components": [{"key": "k", "section": 3, "status": "Normal"}], "unparsed": []})")}) {
    auto r = pass::hitachi_df::parseSnapshot(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "df.bad_cursor");
  }
}

TEST_CASE("snapshot: bytes that are not UTF-8 become U+FFFD and survive the cursor unchanged") {
  const std::string f(pass::kReplacement);
  Parts p = parse("Fan\n  Unit  Fan  Status\n  \xc3\xa9  \xf5\xf5\xb9\x01  Al\xe0\x80rm\n");
  REQUIRE(p.rows.size() == 1);
  CHECK(p.rows[0].key == "Fan/Unit \xc3\xa9/Fan " + f + f + f + "\x01");
  CHECK(p.rows[0].status == "Al" + f + f + "rm");
  CHECK(p.rows[0].bytes == "  \xc3\xa9  \xf5\xf5\xb9\x01  Al\xe0\x80rm");
  Snapshot s = pass::hitachi_df::diff(nullptr, p).next;
  auto back = pass::hitachi_df::parseSnapshot(pass::hitachi_df::toJson(s));
  REQUIRE(back.has_value());
  CHECK(back->components == s.components);
  CHECK(pass::hitachi_df::diff(&*back, p).transitions.empty());
}

TEST_CASE("the code table decodes what the collector emits for the known sections") {
  const pass::CodeTable* table = pass::builtinCodeTable("hitachi_df");
  REQUIRE(table != nullptr);
  for (std::string_view section : {"Controller", "Cache", "Interface Board", "Battery",
                                   "Host Connector", "Fan", "AC PS", "ENC"}) {
    for (std::string_view status :
         {std::string_view("Alarm"), std::string_view("Normal"), pass::hitachi_df::kAbsent}) {
      auto code = pass::hitachi_df::eventCode(section, status);
      const pass::CodeEntry* e = table->find(code);
      REQUIRE_MESSAGE(e != nullptr, code);
      CHECK_MESSAGE(!e->source.empty(), code);
      CHECK_MESSAGE(
          (e->severity == "serious" || e->severity == "moderate" || e->severity == "service"),
          code);
    }
  }
  CHECK(table->find("fan.alarm")->severity == "moderate");
  CHECK(table->find("controller.alarm")->severity == "serious");
  CHECK(table->find("fan.normal")->severity == "service");
  CHECK(table->find("unparsed") != nullptr);
}

// ---- the collector against fake SNM2 commands
// ----------------------------------------------------

namespace {

constexpr std::string_view kSerial = "91110206";
constexpr std::string_view kUnit = "HUS110_91110206";

/// An SNM2 folder whose auunitinfo and auparts print files the test writes, log their calls and
/// check the environment SNM2 needs.
class FakeSnm2 {
 public:
  FakeSnm2() {
    writeScript("auunitinfo", "unitinfo.txt");
    writeScript("auparts", "auparts.txt");
    setUnitInfo(
        fmt::format("Array Unit Type             : HUS110\nSerial Number               : "
                    "{}\n",
                    kSerial));
    setAuparts(std::string(kHealthy));
  }
  void setUnitInfo(const std::string& text) { write("unitinfo.txt", text); }
  void setAuparts(const std::string& text) { write("auparts.txt", text); }
  void setExit(int code) { write("exit", std::to_string(code)); }
  void setSlow(bool on) { write("slow", on ? "1" : ""); }
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    std::ifstream in(dir_ / "calls.log");
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  const fs::path& path() const { return dir_.path(); }

 private:
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  void writeScript(const std::string& name, const std::string& file) {
    auto d = dir_.path().string();
    write(name, fmt::format(R"(#!/bin/sh
echo "{0} $*" >> '{1}/calls.log'
[ "$STONAVM_HOME" = '{1}' ] && [ "$STONAVM_ACT" = on ] && [ "$STONAVM_RSP_PASS" = on ] || {{
  echo "{0}: environment not set" >&2; exit 7; }}
[ -s '{1}/slow' ] && sleep 30
code=$(cat '{1}/exit' 2>/dev/null || echo 0)
if [ "$code" != 0 ]; then echo "{0}: cannot communicate with the unit $2" >&2; exit "$code"; fi
cat '{1}/{2}'
)",
                            name, d, file));
    fs::permissions(dir_ / name, fs::perms::owner_all);
  }
  TempDir dir_;
};

pass::ArrayConfig dfArray(const fs::path& snm2Dir, std::string timeout = "20") {
  pass::ArrayConfig a;
  a.family = "hitachi_df";
  a.serial = std::string(kSerial);
  a.name = "HUS-1";
  a.where = "agent.xml:9";
  a.settings = {{"snm2-dir", snm2Dir.string()},
                {"unit", std::string(kUnit)},
                {"timeout-seconds", std::move(timeout)}};
  return a;
}

struct Run {
  pass::Collector::Outcome outcome;
  std::vector<CollectedEvent> events() const { return outcome.result->events; }
};

Run collect(const pass::ArrayConfig& array, std::optional<std::string> cursor) {
  auto collector = pass::createCollector(array);
  REQUIRE_MESSAGE(collector.has_value(), errorText(collector));
  return Run{pass::test::collectOnce(**collector, std::move(cursor))};
}

std::string cursorOf(const Run& r) {
  REQUIRE_MESSAGE(r.outcome.result.has_value(), errorText(r.outcome.result));
  REQUIRE(r.outcome.result->cursor.has_value());
  return *r.outcome.result->cursor;
}

}  // namespace

TEST_CASE("collector: first run, then only changes, the serial is checked once") {
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path());
  snm2.setAuparts(std::string(kPublicSample));
  Run first = collect(array, std::nullopt);
  REQUIRE_MESSAGE(first.outcome.result.has_value(), errorText(first.outcome.result));
  CHECK(first.outcome.status.state == "ok");
  auto events = first.events();
  REQUIRE(events.size() == 2);
  CHECK(events[0].code == "interface_board.alarm");
  CHECK(events[0].kind == "alert");
  CHECK(events[0].severity == "serious");
  CHECK(events[0].component == "Interface Board/CTL 1/Interface Board 1");
  CHECK(events[0].raw == "    1                     1  ---            Alarm");
  CHECK(events[1].code == "host_connector.alarm");
  CHECK(events[0].id.size() == 32);
  CHECK(events[0].id != events[1].id);
  bool notedFirstRun = false;
  for (const auto& n : first.outcome.result->notes) notedFirstRun |= n.starts_with("first run");
  CHECK(notedFirstRun);
  CHECK(snm2.calls() == std::vector<std::string>{fmt::format("auunitinfo -unit {}", kUnit),
                                                 fmt::format("auparts -unit {}", kUnit)});

  auto cursor = cursorOf(first);
  Run again = collect(array, cursor);
  CHECK(again.events().empty());
  CHECK(snm2.calls().size() == 3);  // auparts only

  // The array is repaired: two recoveries.
  snm2.setAuparts(replaced(
      replaced(std::string(kPublicSample), "---            Alarm", "iSCSI          Normal"),
      "1B  Alarm", "1B  Normal"));
  Run repaired = collect(array, cursorOf(again));
  auto rec = repaired.events();
  REQUIRE(rec.size() == 2);
  CHECK(rec[0].kind == "recovery");
  CHECK(rec[0].code == "interface_board.normal");
  CHECK(rec[0].severity == "service");
  CHECK(rec[0].text.find("Normal again (was Alarm)") != std::string::npos);

  // A crash before the cursor was saved: the same change read again has the same ids.
  Run repeated = collect(array, cursorOf(again));
  REQUIRE(repeated.events().size() == 2);
  CHECK(repeated.events()[0].id == rec[0].id);
  CHECK(repeated.events()[1].id == rec[1].id);

  // The same fault returning later is a new event.
  snm2.setAuparts(std::string(kPublicSample));
  Run back = collect(array, cursorOf(repaired));
  REQUIRE(back.events().size() == 2);
  CHECK(back.events()[0].code == "interface_board.alarm");
  CHECK(back.events()[0].id != events[0].id);
}

TEST_CASE("collector: an unknown status word takes its section's severity") {
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path());
  Run first = collect(array, std::nullopt);
  snm2.setAuparts(replaced(std::string(kHealthy), "0       1   Normal", "0       1   Blocked"));
  Run r = collect(array, cursorOf(first));
  REQUIRE(r.events().size() == 1);
  CHECK(r.events()[0].code == "fan.blocked");
  CHECK(r.events()[0].severity == "moderate");  // as fan.alarm
  CHECK(r.events()[0].text == "Fan/Unit 0/Fan 1 is Blocked");
}

TEST_CASE("collector: an unparsed row arrives once, with its raw text") {
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path());
  snm2.setAuparts(std::string(kHealthy) + "\nController\n  CTL   Status\n    7\n");
  Run r = collect(array, std::nullopt);
  REQUIRE(r.events().size() == 1);
  CHECK(r.events()[0].code == "unparsed");
  CHECK(r.events()[0].raw == "    7");
  CHECK(r.events()[0].text.find("line 13") != std::string::npos);
  CHECK(collect(array, cursorOf(r)).events().empty());
}

TEST_CASE("collector: a unit name that points at another array is a config error") {
  FakeSnm2 snm2;
  snm2.setUnitInfo("Serial Number               : 91110999\n");
  Run r = collect(dfArray(snm2.path()), std::nullopt);
  REQUIRE_FALSE(r.outcome.result.has_value());
  CHECK(r.outcome.status.state == "config");
  CHECK(r.outcome.result.error().message.find("agent.xml:9") != std::string::npos);
  CHECK(r.outcome.result.error().message.find("91110999") != std::string::npos);
  CHECK(snm2.calls().size() == 1);  // auparts was not even asked

  // A cursor from before a change of agent.xml's serial makes the check run again.
  FakeSnm2 other;
  auto array = dfArray(other.path());
  auto cursor = cursorOf(collect(array, std::nullopt));
  array.serial = "91110999";
  Run moved = collect(array, cursor);
  CHECK(moved.outcome.status.state == "config");
}

TEST_CASE("collector: failures are the array's status and give no cursor") {
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path());
  auto cursor = cursorOf(collect(array, std::nullopt));

  SUBCASE("the CLI fails: unreachable, quoting it") {
    snm2.setExit(1);
    Run r = collect(array, cursor);
    REQUIRE_FALSE(r.outcome.result.has_value());
    CHECK(r.outcome.status.state == "unreachable");
    CHECK(r.outcome.status.message.find("cannot communicate with the unit") != std::string::npos);
    CHECK(r.outcome.status.message.find("exit status 1") != std::string::npos);
    CHECK(r.outcome.status.message.find("hitachi_df 91110206") != std::string::npos);
  }
  SUBCASE("the CLI prints garbage: bad_output") {
    snm2.setAuparts("%%% not an answer\n");
    Run r = collect(array, cursor);
    CHECK(r.outcome.status.state == "bad_output");
    CHECK(r.outcome.status.message.find("not an answer") != std::string::npos);
  }
  SUBCASE("the CLI hangs: timeout, killed within the budget") {
    snm2.setSlow(true);
    auto started = std::chrono::steady_clock::now();
    Run r = collect(dfArray(snm2.path(), "1"), cursor);
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    CHECK(r.outcome.status.state == "timeout");
    CHECK(r.outcome.status.message.find("timeout-seconds (1 s)") != std::string::npos);
  }
  SUBCASE("no CLI there: config, naming snm2-dir") {
    Run r = collect(dfArray(snm2.path() / "nowhere"), cursor);
    CHECK(r.outcome.status.state == "config");
    CHECK(r.outcome.status.message.find("snm2-dir") != std::string::npos);
  }
  SUBCASE("a damaged cursor: error naming its file") {
    Run r = collect(array, std::string("{broken"));
    CHECK(r.outcome.status.state == "error");
    CHECK(r.outcome.status.message.find("state/cursors/hitachi_df-91110206.json") !=
          std::string::npos);
  }
}

TEST_CASE("collector: settings are checked when it is built") {
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path(), "0");
  auto c = pass::createCollector(array);
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code == "config");
  CHECK(c.error().message.find("timeout-seconds") != std::string::npos);
  array = dfArray(snm2.path());
  array.settings["unit"] = "-refer";
  auto d = pass::createCollector(array);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error().message.find("-refer") != std::string::npos);
}

TEST_CASE("parse source auparts: what a first run would report") {
  const pass::CollectorInfo* info = pass::builtinCollectors().find("hitachi_df");
  REQUIRE(info != nullptr);
  REQUIRE(info->sources.size() == 1);
  CHECK(info->sources[0].name == "auparts");
  pass::ArrayConfig array;
  array.family = "hitachi_df";
  auto events = info->sources[0].parse(kPublicSample, array);
  REQUIRE_MESSAGE(events.has_value(), errorText(events));
  REQUIRE(events->size() == 2);
  CHECK((*events)[1].code == "host_connector.alarm");
  CHECK((*events)[1].component == "Host Connector/Port 1B");
  auto bad = info->sources[0].parse("garbage", array);
  CHECK_FALSE(bad.has_value());
}

TEST_CASE("collector: invalid UTF-8, NULs and a 2 MiB line cost nothing but their own text") {
  const std::string f(pass::kReplacement);
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path());
  snm2.setAuparts(std::string(kHealthy) +
                  "\nL\xfc"
                  "fter\n  Unit  L\xfc"
                  "fter  Status\n" +
                  "     0  1\xfc  Alarm\n" + std::string("     0  2") + '\0' + "  Alarm\n" +
                  "     0  " + std::string(2 << 20, '\xfc') + "  Alarm\n");
  Run r = collect(array, std::nullopt);
  REQUIRE_MESSAGE(r.outcome.result.has_value(), errorText(r.outcome.result));
  auto events = r.events();
  REQUIRE(events.size() == 3);
  CHECK(events[0].component == "L" + f + "fter/Unit 0/L" + f + "fter 1" + f);
  CHECK(events[0].raw == "     0  1" + f + "  Alarm");
  CHECK(events[0].rawBytes == "     0  1\xfc  Alarm");
  CHECK(events[1].component == "L" + f + "fter/Unit 0/L" + f + "fter 2" + f);
  CHECK(events[2].code == "unparsed");
  CHECK(events[2].text.find("longer than 512 bytes") != std::string::npos);
  CHECK(events[2].rawBytes->size() == pass::hitachi_df::kMaxRawBytes);
  for (const auto& e : events) CHECK(pass::isCleanUtf8(e.raw));
  CHECK(collect(array, cursorOf(r)).events().empty());
}

TEST_CASE("collector: the encoding setting decodes a code page") {
  FakeSnm2 snm2;
  auto array = dfArray(snm2.path());
  array.settings["encoding"] = "cp932";
  // ファン (fan) as a Japanese SNM2 may print it.
  snm2.setAuparts(std::string(kHealthy) +
                  "\n\x83\x74\x83\x40\x83\x93\n  Unit  Status\n     7  Alarm\n");
  Run r = collect(array, std::nullopt);
  REQUIRE_MESSAGE(r.outcome.result.has_value(), errorText(r.outcome.result));
  REQUIRE(r.events().size() == 1);
  CHECK(r.events()[0].component == "\xe3\x83\x95\xe3\x82\xa1\xe3\x83\xb3/Unit 7");
  CHECK_FALSE(r.events()[0].rawBytes.has_value());  // the row itself is ASCII
}
