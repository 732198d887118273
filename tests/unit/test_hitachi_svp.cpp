#include <stdlib.h>  // setenv, tzset: the local-time test sets TZ

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "collectors/hitachi_svp/sim.hpp"
#include "collectors/hitachi_svp/tail.hpp"
#include "pass/collector.hpp"
#include "pass/payload.hpp"
#include "pass/text.hpp"
#include "platform/fs.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using pass::FileId;
using pass::FileSystem;
using pass::hitachi_svp::LineProfile;
using pass::hitachi_svp::TailBatch;
using pass::hitachi_svp::TailOptions;
using pass::hitachi_svp::TailState;
using pass::test::errorText;
using pass::test::TempDir;

namespace {

constexpr std::string_view kPublicSsb =
    "00 90 10 00 00 00 8F E0 44 10 00 04 00 80 04 0C 69 00 00 00 00 02 30 70 05 10 42 C0 F1 00 02 "
    "00";

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

/// The SSB of the public example with byte `index` replaced by `value` (two hex digits).
std::string ssbWith(std::size_t index, std::string_view value) {
  std::string s(kPublicSsb);
  s.replace(index * 3, 2, value);
  return s;
}

json csvProfile() {
  return {{"name", "t"},
          {"separator", ","},
          {"fields", {"date", "time", "refcode", "severity", "part", "description"}},
          {"date_format", "%Y/%m/%d"},
          {"time_format", "%H:%M:%S"},
          {"comment_prefix", "#"},
          {"timezone", "utc"},
          {"severity_map", {{"Moderate", "moderate"}, {"Acute", "acute"}, {"SIM-4", "service"}}}};
}

pass::Result<std::vector<LineProfile>> parseOne(const json& profile) {
  return pass::hitachi_svp::parseProfiles(json{{"profiles", json::array({profile})}}.dump(),
                                          "test.json");
}

LineProfile profileOf(const json& profile) {
  auto r = parseOne(profile);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  REQUIRE(r->size() == 1);
  return r->front();
}

/// Milliseconds of a UTC calendar time, computed independently of the code under test.
std::int64_t utcMs(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
  using namespace std::chrono;
  auto days = sys_days(year{y} / month{m} / day{d}).time_since_epoch().count();
  return (static_cast<std::int64_t>(days) * 86400 + hh * 3600 + mm * 60 + ss) * 1000;
}

std::string lineError(const LineProfile& p, std::string_view line) {
  auto r = pass::hitachi_svp::parseSimLine(p, line);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "svp.bad_line");
  return r.error().message;
}

// ---- a file system in memory -----------------------------------------------------------------

/// One directory of files with identities, supporting what log writers do to their files.
class FakeFs final : public FileSystem {
 public:
  struct File {
    std::string data;
    FileId id;
  };

  pass::Result<std::vector<Entry>> list(const fs::path& dir) override {
    ++lists;
    if (!dirExists || dir != kDir) return pass::fail("not_found", "no such directory");
    std::vector<Entry> out;
    for (const auto& [name, f] : files) out.push_back(Entry{name, f.id, f.data.size()});
    // The interface promises no order; reversing catches code that relies on one.
    std::reverse(out.begin(), out.end());
    return out;
  }

  pass::Result<std::string> read(const fs::path& file, std::uint64_t offset,
                                 std::size_t maxBytes) override {
    ++reads;
    if (onRead) onRead();
    auto name = file.filename().string();
    if (file.parent_path() != kDir) return pass::fail("not_found", "wrong directory");
    if (failing.contains(name)) return pass::fail("io_error", "permission denied: " + name);
    auto it = files.find(name);
    if (it == files.end()) return pass::fail("not_found", "no such file: " + name);
    const auto& d = it->second.data;
    if (offset >= d.size()) return std::string();
    return d.substr(static_cast<std::size_t>(offset), maxBytes);
  }

  void create(const std::string& name, std::string data = {}) {
    files[name] = File{std::move(data), FileId{7, nextIndex++}};
  }
  void append(const std::string& name, std::string_view data) {
    if (!files.contains(name)) create(name);
    files[name].data += data;
  }
  void rename(const std::string& from, const std::string& to) {
    auto f = files.at(from);
    files.erase(from);
    files[to] = f;
  }
  void remove(const std::string& name) { files.erase(name); }
  void truncate(const std::string& name, std::size_t size = 0) { files.at(name).data.resize(size); }
  void copy(const std::string& from, const std::string& to) { create(to, files.at(from).data); }
  /// Deletes `name` and creates a new file there that gets the old one's identity, as a file
  /// system reuses a freed inode.
  void recreateSameId(const std::string& name, std::string data) {
    auto id = files.at(name).id;
    files[name] = File{std::move(data), id};
  }
  const std::string& data(const std::string& name) const { return files.at(name).data; }

  static inline const fs::path kDir = "/logs";
  std::map<std::string, File> files;
  std::set<std::string> failing;
  std::function<void()> onRead;
  bool dirExists = true;
  int lists = 0;
  int reads = 0;
  std::uint64_t nextIndex = 100;
};

/// Runs the tailer and, like a caller that stored the lines, keeps the next state.
struct Follower {
  explicit Follower(FakeFs& files) : fs(files) {}
  FakeFs& fs;
  std::string pattern = "sim*.log";
  TailState state;
  TailOptions options;

  TailBatch run() {
    auto r = pass::hitachi_svp::readNew(fs, FakeFs::kDir, pattern, state, options);
    REQUIRE_MESSAGE(r.has_value(), errorText(r));
    state = r->next;
    return *r;
  }
  std::vector<std::string> texts() {
    std::vector<std::string> out;
    for (const auto& l : run().lines) out.push_back(l.text);
    return out;
  }
};

using Texts = std::vector<std::string>;

bool anyNoteContains(const TailBatch& b, std::string_view part) {
  return std::any_of(b.notes.begin(), b.notes.end(),
                     [&](const std::string& n) { return contains(n, part); });
}

}  // namespace

// ---- SSB ---------------------------------------------------------------------------------------

TEST_CASE("decodeSsb: the public example (HP XP24000 CAJ guide, Fig. 71) is RC 307080, a DKC SIM") {
  auto r = pass::hitachi_svp::decodeSsb(kPublicSsb);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->referenceCode == "307080");
  CHECK(r->simType == "F1");
  CHECK(r->simTypeName == "DKC SIM");
}

TEST_CASE("decodeSsb: lower case, no separators and tabs read the same") {
  std::string compact;
  for (char c : kPublicSsb) {
    if (c != ' ') compact += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  auto r = pass::hitachi_svp::decodeSsb(compact);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->referenceCode == "307080");
  std::string tabs(kPublicSsb);
  std::replace(tabs.begin(), tabs.end(), ' ', '\t');
  auto t = pass::hitachi_svp::decodeSsb("  " + tabs + " ");
  REQUIRE_MESSAGE(t.has_value(), errorText(t));
  CHECK(t->simType == "F1");
}

TEST_CASE("decodeSsb: reference code bytes are 22, 23 and 13, in that order") {
  auto s = ssbWith(22, "dc");
  s = s.substr(0, 23 * 3) + "1A" + s.substr(23 * 3 + 2);
  s = s.substr(0, 13 * 3) + "07" + s.substr(13 * 3 + 2);
  auto r = pass::hitachi_svp::decodeSsb(s);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->referenceCode == "DC1A07");
}

TEST_CASE("decodeSsb: SIM types by byte 28") {
  const std::map<std::string, std::string> names = {
      {"F1", "DKC SIM"},   {"F2", "CACHE SIM"},        {"FE", "DEVICE SIM"},
      {"FF", "MEDIA SIM"}, {"F3", "unknown SIM type"}, {"00", "unknown SIM type"}};
  for (const auto& [type, name] : names) {
    CAPTURE(type);
    auto r = pass::hitachi_svp::decodeSsb(ssbWith(28, type));
    REQUIRE_MESSAGE(r.has_value(), errorText(r));
    CHECK(r->simType == type);
    CHECK(r->simTypeName == name);
  }
}

TEST_CASE("decodeSsb: errors say what is wrong and where") {
  struct Case {
    std::string input;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {ssbWith(1, "9G"), {"character 5", "'G'", "not a hex digit"}},
      {ssbWith(0, "x0"), {"character 1", "'x'"}},
      {std::string(kPublicSsb.substr(0, 31 * 3 - 1)), {"31 bytes instead of 32"}},
      {std::string(kPublicSsb) + " 00", {"33 bytes instead of 32"}},
      {"", {"0 bytes instead of 32"}},
      {"00 9 10", {"byte 2", "one hex digit"}},
      {std::string(kPublicSsb) + "0", {"byte 33", "one hex digit"}},
      {"00,90", {"character 3", "','"}},
      {"00\x01", {"character 3", "\\x01"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto r = pass::hitachi_svp::decodeSsb(c.input);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "svp.bad_ssb");
    for (const auto& part : c.parts) {
      CHECK_MESSAGE(contains(r.error().message, part), r.error().message, " lacks ", part);
    }
  }
}

// ---- profiles ----------------------------------------------------------------------------------

TEST_CASE("parseProfiles: the shipped profiles load and read their own examples") {
  auto path = fs::path(PASS_SOURCE_DIR) / "vendor-codes/hitachi_svp/sim-log-profiles.json";
  auto text = pass::platform::readFile(path);
  REQUIRE_MESSAGE(text.has_value(), errorText(text));
  auto profiles = pass::hitachi_svp::parseProfiles(*text, path.string());
  REQUIRE_MESSAGE(profiles.has_value(), errorText(profiles));
  REQUIRE(profiles->size() >= 2);

  const auto* csv = pass::hitachi_svp::findProfile(*profiles, "pass-csv");
  REQUIRE(csv != nullptr);
  CHECK(csv->separator == ',');
  CHECK_FALSE(csv->source.empty());
  auto ev = pass::hitachi_svp::parseSimLine(
      *csv, "2026/11/27,14:10:10,307080,Moderate,DKC,Processor failure");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "307080");
  CHECK(ev->severity == "moderate");
  CHECK(ev->component == "DKC");
  CHECK(ev->text == "Processor failure");
  CHECK(ev->occurredMs.has_value());

  const auto* tsv = pass::hitachi_svp::findProfile(*profiles, "pass-ssb-tsv");
  REQUIRE(tsv != nullptr);
  CHECK(tsv->separator == '\t');
  CHECK_FALSE(tsv->note.empty());
  auto ssb = pass::hitachi_svp::parseSimLine(
      *tsv, fmt::format("2026/11/27\t14:10:10\tSerious\tCACHE\t{}\tCache failure", kPublicSsb));
  REQUIRE_MESSAGE(ssb.has_value(), errorText(ssb));
  CHECK(ssb->code == "307080");
  CHECK(ssb->severity == "serious");
  CHECK(ssb->component == "CACHE");
  CHECK(ssb->text == "Cache failure");

  CHECK(pass::hitachi_svp::findProfile(*profiles, "nope") == nullptr);
}

TEST_CASE("parseProfiles: every key is read") {
  auto p = csvProfile();
  p["separator"] = "|";
  p["fields"] = {"skip", "date", "time", "ssb", "severity", "description"};
  p["date_format"] = "%d.%m.%y";
  p["time_format"] = "%H%M";
  p["comment_prefix"] = "//";
  p["timezone"] = "-05:30";
  p["source"] = "lab capture";
  p["note"] = "n";
  auto profile = profileOf(p);
  CHECK(profile.name == "t");
  CHECK(profile.source == "lab capture");
  CHECK(profile.note == "n");
  CHECK(profile.separator == '|');
  CHECK(profile.fields.size() == 6);
  CHECK(profile.commentPrefix == "//");
  CHECK(profile.zone == LineProfile::Zone::kFixed);
  CHECK(profile.utcOffsetSeconds == -(5 * 3600 + 30 * 60));
  CHECK(profile.severityMap.size() == 3);
  auto ev = pass::hitachi_svp::parseSimLine(
      profile, fmt::format("x|27.11.26|1410|{}|acute|Processor failure | on CL1", kPublicSsb));
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "307080");
  CHECK(ev->severity == "acute");
  CHECK(ev->text == "Processor failure | on CL1");
  CHECK(ev->occurredMs == utcMs(2026, 11, 27, 14 + 5, 10 + 30, 0));
}

TEST_CASE("parseProfiles: errors name the file, the profile and the key") {
  struct Case {
    std::string what;
    std::function<void(json&)> change;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"unknown key", [](json& p) { p["seperator"] = ","; }, {"'seperator'", "not a profile key"}},
      {"no name", [](json& p) { p.erase("name"); }, {"profile #1", "'name' is missing"}},
      {"empty name", [](json& p) { p["name"] = ""; }, {"'name' must not be empty"}},
      {"name not text", [](json& p) { p["name"] = 5; }, {"'name' must be a string"}},
      {"no separator", [](json& p) { p.erase("separator"); }, {"'separator' is missing"}},
      {"long separator",
       [](json& p) { p["separator"] = ",,"; },
       {"'separator'", "one character", "',,'"}},
      {"newline separator", [](json& p) { p["separator"] = "\n"; }, {"'separator'", "line break"}},
      {"no fields", [](json& p) { p.erase("fields"); }, {"'fields' is missing"}},
      {"empty fields",
       [](json& p) { p["fields"] = json::array(); },
       {"'fields'", "non-empty list"}},
      {"unknown field",
       [](json& p) { p["fields"][2] = "code"; },
       {"'fields'", "entry 3", "\"code\""}},
      {"field not text", [](json& p) { p["fields"][0] = 1; }, {"'fields'", "entry 1"}},
      {"field twice",
       [](json& p) { p["fields"][4] = "severity"; },
       {"'fields'", "'severity' twice"}},
      {"no code", [](json& p) { p["fields"][2] = "skip"; }, {"'fields'", "'refcode' or an 'ssb'"}},
      {"time without date",
       [](json& p) { p["fields"][0] = "skip"; },
       {"'fields'", "'time' without 'date'"}},
      {"too many fields",
       [](json& p) {
         for (int i = 0; i < 40; ++i) p["fields"].push_back("skip");
       },
       {"'fields'", "at most 32"}},
      {"no date_format", [](json& p) { p.erase("date_format"); }, {"'date_format' is missing"}},
      {"bad conversion", [](json& p) { p["date_format"] = "%Y/%m/%e"; }, {"'date_format'", "'%e'"}},
      {"lone percent",
       [](json& p) { p["date_format"] = "%Y/%m/%d%"; },
       {"'date_format'", "lone '%'"}},
      {"date without day",
       [](json& p) { p["date_format"] = "%Y/%m"; },
       {"'date_format'", "a day (%d)"}},
      {"no time_format", [](json& p) { p.erase("time_format"); }, {"'time_format' is missing"}},
      {"time without hour",
       [](json& p) { p["time_format"] = "%M:%S"; },
       {"'time_format'", "an hour"}},
      {"no timezone", [](json& p) { p.erase("timezone"); }, {"'timezone' is missing"}},
      {"bad timezone",
       [](json& p) { p["timezone"] = "Asia/Tokyo"; },
       {"'timezone'", "'Asia/Tokyo'", "+09:00"}},
      {"offset too big", [](json& p) { p["timezone"] = "+15:00"; }, {"'timezone'"}},
      {"offset minutes", [](json& p) { p["timezone"] = "+09:60"; }, {"'timezone'"}},
      {"no severity_map", [](json& p) { p.erase("severity_map"); }, {"'severity_map' is missing"}},
      {"empty severity_map",
       [](json& p) { p["severity_map"] = json::object(); },
       {"'severity_map'", "non-empty"}},
      {"bad severity",
       [](json& p) { p["severity_map"]["Warn"] = "warning"; },
       {"'severity_map'", "'Warn'", "\"warning\""}},
      {"severity twice",
       [](json& p) { p["severity_map"]["MODERATE"] = "serious"; },
       {"'severity_map'", "twice"}},
      {"comment not text",
       [](json& p) { p["comment_prefix"] = 1; },
       {"'comment_prefix' must be a string"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto p = csvProfile();
    c.change(p);
    auto r = parseOne(p);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "svp.bad_profile");
    CHECK_MESSAGE(contains(r.error().message, "test.json: profile "), r.error().message);
    if (p.contains("name") && p["name"] == "t") {
      CHECK_MESSAGE(contains(r.error().message, "profile 't' (#1)"), r.error().message);
    }
    for (const auto& part : c.parts) {
      CHECK_MESSAGE(contains(r.error().message, part), r.error().message, " lacks ", part);
    }
  }
}

TEST_CASE("parseProfiles: file-level errors") {
  auto bad = [](std::string_view text, std::string_view part) {
    CAPTURE(text);
    auto r = pass::hitachi_svp::parseProfiles(text, "p.json");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "svp.bad_profile");
    CHECK_MESSAGE(contains(r.error().message, "p.json: "), r.error().message);
    CHECK_MESSAGE(contains(r.error().message, part), r.error().message, " lacks ", part);
  };
  bad("{\"profiles\": [", "not valid JSON");
  bad("[]", "JSON object");
  bad("{}", "'profiles' must be a non-empty list");
  bad("{\"profiles\": []}", "'profiles' must be a non-empty list");
  bad("{\"profiles\": [1]}", "profile #1 must be a JSON object");
  bad("{\"profile\": []}", "'profile' is not a top-level key");
  bad("{\"schema\": 2, \"profiles\": []}", "'schema' is 2");
  bad("{\"note\": 1, \"profiles\": []}", "'note' must be a string");
  auto twice = json{{"profiles", json::array({csvProfile(), csvProfile()})}}.dump();
  bad(twice, "profile 't' (#2): 'name' is used by an earlier profile");
}

TEST_CASE("parseProfiles: a profile without severity or date is allowed") {
  json p = {{"name", "codes"}, {"separator", ";"}, {"fields", {"refcode", "description"}}};
  auto profile = profileOf(p);
  auto ev = pass::hitachi_svp::parseSimLine(profile, "2180A1;Logical path blocked");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "2180A1");
  CHECK(ev->severity.empty());
  CHECK_FALSE(ev->occurredMs.has_value());
  CHECK(ev->text == "Logical path blocked");
}

// ---- lines -------------------------------------------------------------------------------------

TEST_CASE("parseSimLine: a comma-separated line becomes an event") {
  auto p = profileOf(csvProfile());
  std::string line = "2026/11/27,14:10:10,307080,Moderate,DKC,Processor failure";
  auto ev = pass::hitachi_svp::parseSimLine(p, line);
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->id.empty());
  CHECK(ev->kind == "alert");
  CHECK(ev->code == "307080");
  CHECK(ev->severity == "moderate");
  CHECK(ev->occurredMs == utcMs(2026, 11, 27, 14, 10, 10));
  CHECK(ev->component == "DKC");
  CHECK(ev->text == "Processor failure");
  CHECK(ev->raw == line);
}

TEST_CASE("parseSimLine: trailing CR, spaces around fields, case and separators in the text") {
  auto p = profileOf(csvProfile());
  auto ev = pass::hitachi_svp::parseSimLine(
      p, " 2026/1/5 , 4:05:09 ,dc1a07, MODERATE ,  CL1-A , Path blocked, port 1A \r");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "DC1A07");
  CHECK(ev->severity == "moderate");
  CHECK(ev->occurredMs == utcMs(2026, 1, 5, 4, 5, 9));
  CHECK(ev->component == "CL1-A");
  CHECK(ev->text == "Path blocked, port 1A");
  CHECK(ev->raw == " 2026/1/5 , 4:05:09 ,dc1a07, MODERATE ,  CL1-A , Path blocked, port 1A ");
}

TEST_CASE("parseSimLine: empty part and description are kept empty") {
  auto p = profileOf(csvProfile());
  auto ev = pass::hitachi_svp::parseSimLine(p, "2026/11/27,14:10:10,307080,Acute,,");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->severity == "acute");
  CHECK(ev->component.empty());
  CHECK(ev->text.empty());
}

TEST_CASE("parseSimLine: a byte order mark before the first line is ignored") {
  auto p = profileOf(csvProfile());
  auto ev = pass::hitachi_svp::parseSimLine(p,
                                            "\xEF\xBB\xBF"
                                            "2026/11/27,14:10:10,307080,Acute,DKC,x");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->occurredMs == utcMs(2026, 11, 27, 14, 10, 10));
}

TEST_CASE("parseSimLine: blank and comment lines are skipped, not errors") {
  auto p = profileOf(csvProfile());
  for (std::string_view line : {"", "   ", "\r", "# SIM log of 410123", "#"}) {
    CAPTURE(line);
    CHECK(pass::hitachi_svp::skipsLine(p, line));
    auto r = pass::hitachi_svp::parseSimLine(p, line);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "svp.skipped_line");
  }
  CHECK_FALSE(pass::hitachi_svp::skipsLine(p, "2026/11/27,14:10:10,307080,Acute,DKC,x"));
  auto noComments = csvProfile();
  noComments.erase("comment_prefix");
  CHECK_FALSE(pass::hitachi_svp::skipsLine(profileOf(noComments), "# text"));
}

TEST_CASE("parseSimLine: severity is mapped case-insensitively, an unmapped one is named") {
  auto p = profileOf(csvProfile());
  auto ev = pass::hitachi_svp::parseSimLine(p, "2026/11/27,14:10:10,307080,sim-4,DKC,x");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->severity == "service");
  auto msg = lineError(p, "2026/11/27,14:10:10,307080,Serious,DKC,x");
  CHECK_MESSAGE(contains(msg, "field 4 (severity)"), msg);
  CHECK_MESSAGE(contains(msg, "'Serious'"), msg);
  CHECK_MESSAGE(contains(msg, "severity_map"), msg);
  CHECK_MESSAGE(contains(lineError(p, "2026/11/27,14:10:10,307080,,DKC,x"), "''"),
                "empty severity");
}

TEST_CASE("parseSimLine: errors name the field and what was expected") {
  auto p = profileOf(csvProfile());
  struct Case {
    std::string line;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"2026/11/27,14:10:10,30708,Acute,DKC,x", {"field 3 (refcode)", "'30708'", "6 hex digits"}},
      {"2026/11/27,14:10:10,30708G,Acute,DKC,x", {"field 3 (refcode)", "'30708G'"}},
      {"2026/11/27,14:10:10,307080,Acute",
       {"field 5 (part) is missing", "4 field(s)", "expects 6"}},
      {"2026/11/27", {"field 2 (time) is missing", "1 field(s)"}},
      {"27/11/2026,14:10:10,307080,Acute,DKC,x", {"field 1 (date)", "'27/11/2026'", "'%Y/%m/%d'"}},
      {"2026/11/27x,14:10:10,307080,Acute,DKC,x", {"field 1 (date)"}},
      {"2026-11-27,14:10:10,307080,Acute,DKC,x", {"field 1 (date)"}},
      {"2026/11/27,14.10.10,307080,Acute,DKC,x", {"field 2 (time)", "'14.10.10'", "'%H:%M:%S'"}},
      {"2026/11/27,,307080,Acute,DKC,x", {"field 2 (time)", "''"}},
      {"2026/02/30,14:10:10,307080,Acute,DKC,x",
       {"field 1 (date)", "2026-02-30, which does not exist"}},
      {"2026/13/01,14:10:10,307080,Acute,DKC,x",
       {"field 1 (date)", "2026-13-01, which does not exist"}},
      {"2026/11/00,14:10:10,307080,Acute,DKC,x",
       {"field 1 (date)", "2026-11-00, which does not exist"}},
      {"2026/11/27,24:00:00,307080,Acute,DKC,x",
       {"field 2 (time)", "24:00:00, which does not exist"}},
      {"2026/11/27,14:60:00,307080,Acute,DKC,x",
       {"field 2 (time)", "14:60:00, which does not exist"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    auto msg = lineError(p, c.line);
    CHECK_MESSAGE(contains(msg, "profile 't'"), msg);
    for (const auto& part : c.parts) {
      CHECK_MESSAGE(contains(msg, part), msg, " lacks ", part);
    }
  }
}

TEST_CASE("parseSimLine: long or binary values are quoted short and escaped") {
  auto p = profileOf(csvProfile());
  auto msg = lineError(p, "2026/11/27,14:10:10,307080," + std::string(500, 'A') + ",DKC,x");
  CHECK(msg.size() < 200);
  CHECK(contains(msg, "'..."));
  msg = lineError(p, std::string("2026/11/27,14:10:10,3\x01", 22) + "7080,Acute,DKC,x");
  CHECK_MESSAGE(contains(msg, "\\x01"), msg);
}

TEST_CASE("parseSimLine: a leap second is accepted") {
  auto p = profileOf(csvProfile());
  auto ev = pass::hitachi_svp::parseSimLine(p, "2016/12/31,23:59:60,307080,Acute,DKC,x");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->occurredMs == utcMs(2017, 1, 1, 0, 0, 0));
}

TEST_CASE("parseSimLine: date formats with %y, %b, literals and %%") {
  auto p = csvProfile();
  p["date_format"] = "%d-%b-%Y";
  CHECK(pass::hitachi_svp::parseSimLine(profileOf(p), "27-Nov-2026,14:10:10,307080,Acute,DKC,x")
            ->occurredMs == utcMs(2026, 11, 27, 14, 10, 10));
  CHECK(pass::hitachi_svp::parseSimLine(profileOf(p), "01-JAN-2026,00:00:00,307080,Acute,DKC,x")
            ->occurredMs == utcMs(2026, 1, 1, 0, 0, 0));
  CHECK_MESSAGE(contains(lineError(profileOf(p), "27-Nob-2026,14:10:10,307080,Acute,DKC,x"),
                         "field 1 (date)"),
                "month name");
  p["date_format"] = "%y%m%d";
  CHECK(pass::hitachi_svp::parseSimLine(profileOf(p), "261127,14:10:10,307080,Acute,DKC,x")
            ->occurredMs == utcMs(2026, 11, 27, 14, 10, 10));
  CHECK(pass::hitachi_svp::parseSimLine(profileOf(p), "991231,14:10:10,307080,Acute,DKC,x")
            ->occurredMs == utcMs(1999, 12, 31, 14, 10, 10));
  p["date_format"] = "%%%Y/%m/%d";
  CHECK(pass::hitachi_svp::parseSimLine(profileOf(p), "%2026/11/27,14:10:10,307080,Acute,DKC,x")
            ->occurredMs == utcMs(2026, 11, 27, 14, 10, 10));
  p["date_format"] = "%Y/%m/%d";
  p["fields"] = {"date", "refcode", "severity", "part", "description"};
  p.erase("time_format");
  CHECK(
      pass::hitachi_svp::parseSimLine(profileOf(p), "2026/11/27,307080,Acute,DKC,x")->occurredMs ==
      utcMs(2026, 11, 27, 0, 0, 0));
}

TEST_CASE("parseSimLine: fixed offsets") {
  auto p = csvProfile();
  p["timezone"] = "+09:00";
  auto ev = pass::hitachi_svp::parseSimLine(profileOf(p), "2026/11/27,14:10:10,307080,Acute,DKC,x");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->occurredMs == utcMs(2026, 11, 27, 5, 10, 10));
}

// The test sets the zone through TZ with POSIX rules; Windows's C runtime reads TZ in a format
// of its own (no rules), and an SVP's local zone is the system's, so this runs on POSIX only.
#ifndef _WIN32
TEST_CASE("parseSimLine: the machine's local time") {
  auto p = csvProfile();
  // delfin's VSP trap test expects 1605852610000 for 2020/11/20 14:10:10 on a UTC+8 machine.
  const char* saved = ::getenv("TZ");
  std::string savedTz = saved ? saved : "";
  ::setenv("TZ", "CST-8", 1);
  ::tzset();
  p["timezone"] = "local";
  auto local = profileOf(p);
  auto cst = pass::hitachi_svp::parseSimLine(local, "2020/11/20,14:10:10,307080,Acute,DKC,x");
  // Another zone, another minute (results are cached per minute and the zone of a running
  // process does not change otherwise), with summer time: 2020-07-01 is CEST, UTC+2.
  ::setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
  ::tzset();
  auto cest = pass::hitachi_svp::parseSimLine(local, "2020/07/01,12:00:30,307080,Acute,DKC,x");
  if (saved) {
    ::setenv("TZ", savedTz.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  REQUIRE_MESSAGE(cst.has_value(), errorText(cst));
  CHECK(cst->occurredMs == 1605852610000);
  REQUIRE_MESSAGE(cest.has_value(), errorText(cest));
  CHECK(cest->occurredMs == utcMs(2020, 7, 1, 10, 0, 30));
}
#endif

TEST_CASE("parseSimLine: SSB lines take the code from the SSB, keep the description") {
  json p = {{"name", "ssb"},
            {"separator", "\t"},
            {"fields", {"date", "time", "ssb", "description"}},
            {"date_format", "%Y/%m/%d"},
            {"time_format", "%H:%M:%S"},
            {"timezone", "utc"}};
  auto profile = profileOf(p);
  auto ev = pass::hitachi_svp::parseSimLine(
      profile, fmt::format("2026/11/27\t14:10:10\t{}\tProcessor failure", kPublicSsb));
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "307080");
  CHECK(ev->text == "Processor failure");
  CHECK(ev->severity.empty());
  auto msg = lineError(profile, fmt::format("2026/11/27\t14:10:10\t{} 00\tx", kPublicSsb));
  CHECK_MESSAGE(contains(msg, "field 3 (ssb)"), msg);
  CHECK_MESSAGE(contains(msg, "33 bytes instead of 32"), msg);
}

TEST_CASE("parseSimLine: a refcode field wins over the SSB's code") {
  json p = {{"name", "both"}, {"separator", "|"}, {"fields", {"refcode", "ssb", "description"}}};
  auto ev = pass::hitachi_svp::parseSimLine(profileOf(p), fmt::format("218001|{}|x", kPublicSsb));
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "218001");
}

TEST_CASE("parseSimLine: skip fields are not read") {
  json p = {{"name", "s"}, {"separator", ","}, {"fields", {"skip", "refcode", "skip", "part"}}};
  auto ev = pass::hitachi_svp::parseSimLine(profileOf(p), "anything at all,307080,??,CTL01");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "307080");
  CHECK(ev->component == "CTL01");
}

// ---- tailer ------------------------------------------------------------------------------------

TEST_CASE("tail: first sight records the ends, later lines are read") {
  FakeFs fs;
  fs.append("sim.log", "old 1\nold 2\n");
  fs.append("other.txt", "not ours\n");
  Follower f{fs};
  auto first = f.run();
  CHECK(first.lines.empty());
  CHECK(first.next.started);
  REQUIRE(first.next.files.size() == 1);
  CHECK(first.next.files[0].name == "sim.log");
  CHECK(first.next.files[0].offset == 12);
  fs.append("sim.log", "new 1\nnew 2\n");
  auto second = f.run();
  REQUIRE(second.lines.size() == 2);
  CHECK(second.lines[0].text == "new 1");
  CHECK(second.lines[0].file == "sim.log");
  CHECK(second.lines[0].offset == 12);
  CHECK(second.lines[1].text == "new 2");
  CHECK(second.lines[1].offset == 18);
  CHECK(second.lines[0].id == pass::hitachi_svp::lineId(12, "new 1"));
  CHECK(f.texts().empty());
}

TEST_CASE("tail: line ids tell identical lines apart by offset, and nothing else") {
  // A storm writes the same SIM twice in one second: two records.
  FakeFs fs;
  Follower f{fs};
  f.run();
  fs.append("sim.log",
            "2026/11/27,14:10:10,307080,Moderate,DKC,x\n"
            "2026/11/27,14:10:10,307080,Moderate,DKC,x\n");
  auto b = f.run();
  REQUIRE(b.lines.size() == 2);
  CHECK(b.lines[0].text == b.lines[1].text);
  CHECK(b.lines[0].id != b.lines[1].id);
  CHECK(b.lines[0].id.size() == 32);
  // The same bytes at the same offset in another file (a copy) are the same record.
  fs.copy("sim.log", "sim.log.copy");
  f.pattern = "sim.log*";
  auto copy = f.run();
  REQUIRE(copy.lines.size() == 2);
  CHECK(copy.lines[0].file == "sim.log.copy");
  CHECK(copy.lines[0].id == b.lines[0].id);
  CHECK(copy.lines[1].id == b.lines[1].id);
  CHECK(pass::hitachi_svp::lineId(0, "a") != pass::hitachi_svp::lineId(0, "b"));
}

TEST_CASE("tail: first sight from the end keeps an unfinished last line") {
  FakeFs fs;
  fs.append("sim.log", "old 1\nhalf");
  Follower f{fs};
  CHECK(f.texts().empty());
  fs.append("sim.log", " done\n");
  CHECK(f.texts() == Texts{"half done"});
  FakeFs single;
  single.append("sim.log", "only a start");
  Follower g{single};
  CHECK(g.texts().empty());
  single.append("sim.log", "\n");
  CHECK(g.texts() == Texts{"only a start"});
}

TEST_CASE("tail: first sight from the head reads everything") {
  FakeFs fs;
  fs.append("sim1.log", "a\nb\n");
  fs.append("sim2.log", "c\n");
  Follower f{fs};
  f.options.fromHead = true;
  CHECK(f.texts() == Texts{"a", "b", "c"});
  CHECK(f.texts().empty());
}

TEST_CASE("tail: an empty or missing directory") {
  FakeFs fs;
  Follower f{fs};
  CHECK(f.run().lines.empty());
  CHECK(f.state.started);
  fs.append("sim.log", "first\n");
  CHECK(f.texts() == Texts{"first"});  // a file that appears later is read from its start

  fs.dirExists = false;
  auto r = pass::hitachi_svp::readNew(fs, FakeFs::kDir, "*", f.state, {});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "not_found");
}

TEST_CASE("tail: a partial line waits for its end") {
  FakeFs fs;
  Follower f{fs};
  f.run();
  fs.append("sim.log", "one\ntw");
  CHECK(f.texts() == Texts{"one"});
  CHECK(f.state.files[0].offset == 4);
  CHECK(f.texts().empty());
  fs.append("sim.log", "o\r\nthree");
  auto b = f.run();
  REQUIRE(b.lines.size() == 1);
  CHECK(b.lines[0].text == "two\r");
  CHECK(b.lines[0].offset == 4);
  fs.append("sim.log", "\n");
  CHECK(f.texts() == Texts{"three"});
}

TEST_CASE("tail: rename rotation reads the old file's rest, then the new file") {
  FakeFs fs;
  Follower f{fs};
  f.pattern = "sim.log*";
  f.run();
  fs.append("sim.log", "1\n2\n");
  CHECK(f.texts() == Texts{"1", "2"});
  fs.append("sim.log", "3\n4");
  fs.rename("sim.log", "sim.log.1");
  fs.append("sim.log.1", "\n");  // the writer finishes its line after the rename
  fs.append("sim.log", "5\n");
  auto b = f.run();
  REQUIRE(b.lines.size() == 3);
  CHECK(b.lines[0].text == "3");
  CHECK(b.lines[0].file == "sim.log.1");
  CHECK(b.lines[1].text == "4");
  CHECK(b.lines[2].text == "5");
  CHECK(b.lines[2].file == "sim.log");
  CHECK(b.notes.empty());
  REQUIRE(b.next.files.size() == 2);
  CHECK(b.next.files[0].name == "sim.log.1");
  CHECK(b.next.files[1].name == "sim.log");
  // A second rotation: the rotated file moves on, the oldest is deleted after it was read.
  fs.remove("sim.log.1");
  fs.rename("sim.log", "sim.log.1");
  fs.append("sim.log.1", "6\n");
  fs.append("sim.log", "7\n");
  b = f.run();
  CHECK(b.notes.empty());
  REQUIRE(b.lines.size() == 2);
  CHECK(b.lines[0].text == "6");
  CHECK(b.lines[1].text == "7");
  CHECK(b.next.files.size() == 2);
}

TEST_CASE("tail: a file rotated out of the pattern is finished, then forgotten") {
  FakeFs fs;
  Follower f{fs};
  f.pattern = "sim.log";
  f.run();
  fs.append("sim.log", "1\n");
  CHECK(f.texts() == Texts{"1"});
  fs.append("sim.log", "2\n");
  fs.rename("sim.log", "archive-0001.txt");
  fs.append("sim.log", "3\n");
  CHECK(f.texts() == Texts{"2", "3"});
  CHECK(f.state.files.size() == 2);
  fs.append("archive-0001.txt", "late\n");
  CHECK(f.texts() == Texts{"late"});
  CHECK(f.state.files.size() == 2);
  CHECK(f.texts().empty());
  REQUIRE(f.state.files.size() == 1);  // nothing new in the archive: dropped
  CHECK(f.state.files[0].name == "sim.log");
}

TEST_CASE("tail: copy-truncate repeats lines with their ids and loses none") {
  FakeFs fs;
  Follower f{fs};
  f.pattern = "sim.log*";
  f.run();
  fs.append("sim.log", "a\nb\n");
  auto first = f.run();
  REQUIRE(first.lines.size() == 2);
  fs.append("sim.log", "c\n");  // written after our read, before the copy
  fs.copy("sim.log", "sim.log.1");
  fs.truncate("sim.log");
  fs.append("sim.log", "d\n");
  auto b = f.run();
  CHECK(anyNoteContains(b, "sim.log: truncated to 2 bytes (read up to 4)"));
  std::vector<std::string> texts;
  for (const auto& l : b.lines) texts.push_back(l.text);
  // The copy's data is older than what the truncated file holds now.
  CHECK(texts == Texts{"a", "b", "c", "d"});
  REQUIRE(b.lines.size() == 4);
  CHECK(b.lines[0].id == first.lines[0].id);  // the same record, so the home drops the repeat
  CHECK(b.lines[1].id == first.lines[1].id);
  CHECK(b.lines[3].id != first.lines[0].id);
  REQUIRE(b.next.files.size() == 2);
  CHECK(b.next.files[0].name == "sim.log.1");
  CHECK(b.next.files[1].name == "sim.log");
}

TEST_CASE("tail: truncation in place reads from the start and says so") {
  FakeFs fs;
  Follower f{fs};
  f.run();
  fs.append("sim.log", "first line\nsecond line\n");
  CHECK(f.texts().size() == 2);
  fs.truncate("sim.log");
  fs.append("sim.log", "x\n");
  auto b = f.run();
  REQUIRE(b.lines.size() == 1);
  CHECK(b.lines[0].text == "x");
  CHECK(b.lines[0].offset == 0);
  CHECK(anyNoteContains(b, "sim.log: truncated to 2 bytes (read up to 23)"));
  CHECK(f.run().notes.empty());
}

TEST_CASE("tail: a rewrite that outgrows the old offset is found by its first line") {
  FakeFs fs;
  Follower f{fs};
  f.run();
  fs.append("sim.log", "2026/11/27 a\n");
  CHECK(f.texts().size() == 1);
  fs.truncate("sim.log");
  fs.append("sim.log", "2026/11/28 b\n2026/11/28 c\n");
  auto b = f.run();
  CHECK(anyNoteContains(b, "sim.log: its first line changed"));
  std::vector<std::string> texts;
  for (const auto& l : b.lines) texts.push_back(l.text);
  CHECK(texts == Texts{"2026/11/28 b", "2026/11/28 c"});
}

TEST_CASE("tail: a reused identity with another first line is a new file") {
  FakeFs fs;
  Follower f{fs};
  f.run();
  fs.append("sim.log", "old first\nold second\n");
  CHECK(f.texts().size() == 2);
  auto id = fs.files.at("sim.log").id;
  fs.recreateSameId("sim.log", "new first\nnew second\nnew third\n");
  REQUIRE(fs.files.at("sim.log").id == id);
  auto b = f.run();
  CHECK(anyNoteContains(b, "first line changed"));
  REQUIRE(b.lines.size() == 3);
  CHECK(b.lines[0].text == "new first");
  CHECK(b.lines[2].text == "new third");
  // The same first line and longer: taken for the same file, as the state cannot tell.
  fs.recreateSameId("sim.log", fs.data("sim.log") + "appended\n");
  CHECK(f.texts() == Texts{"appended"});
}

TEST_CASE("tail: a deleted file is dropped, unread bytes are reported") {
  FakeFs fs;
  Follower f{fs};
  f.options.maxBytes = 4;
  f.run();
  fs.append("sim1.log", "a\nb\n");
  fs.append("sim2.log", "c\nd\n");
  auto b = f.run();
  CHECK(b.more);
  CHECK(b.lines.size() == 2);
  fs.remove("sim1.log");
  fs.remove("sim2.log");
  b = f.run();
  CHECK(b.lines.empty());
  CHECK(b.next.files.empty());
  CHECK_FALSE(anyNoteContains(b, "sim1.log"));  // read to its end: nothing to report
  CHECK(anyNoteContains(b, "sim2.log: deleted with 4 bytes not read"));
}

TEST_CASE("tail: maxBytes bounds each run, the rest comes next time, in order") {
  FakeFs fs;
  Follower f{fs};
  f.options.fromHead = true;
  f.options.maxBytes = 25;
  std::vector<std::string> written;
  for (int i = 0; i < 40; ++i) {
    written.push_back(fmt::format("line {:03}", i));  // 9 bytes: 2 lines per run, the third waits
    fs.append(i < 20 ? "sim1.log" : "sim2.log", written.back() + "\n");
  }
  std::vector<std::string> read;
  int runs = 0;
  for (;;) {
    auto b = f.run();
    ++runs;
    std::size_t bytes = 0;
    for (const auto& l : b.lines) {
      read.push_back(l.text);
      bytes += l.text.size() + 1;
    }
    CHECK(bytes <= 25);
    if (!b.more) break;
    REQUIRE(runs < 100);
  }
  CHECK(read == written);
  CHECK(runs == 20);
}

TEST_CASE("tail: an over-long line comes in pieces so the file moves on") {
  FakeFs fs;
  Follower f{fs};
  f.options.maxLineBytes = 10;
  f.run();
  fs.append("sim.log", std::string(25, 'x') + "\nok\n");
  std::vector<std::string> texts;
  std::vector<std::string> notes;
  for (int i = 0; i < 3; ++i) {
    auto b = f.run();
    for (const auto& l : b.lines) texts.push_back(l.text);
    notes.insert(notes.end(), b.notes.begin(), b.notes.end());
  }
  CHECK(texts == Texts{std::string(10, 'x'), std::string(10, 'x'), std::string(5, 'x'), "ok"});
  REQUIRE(notes.size() == 1);
  CHECK(contains(notes[0], "longer than 10 bytes"));
}

TEST_CASE("tail: a partial line does not starve a later file") {
  FakeFs fs;
  Follower f{fs};
  f.options.maxBytes = 10;
  f.run();
  fs.append("sim1.log", "123456789");  // unfinished, nearly the whole budget
  fs.append("sim2.log", "ab\ncd\n");
  auto b = f.run();
  CHECK(b.lines.size() == 2);
  CHECK_FALSE(b.more);
}

TEST_CASE("tail: an unreadable file keeps its place, the others are read") {
  FakeFs fs;
  Follower f{fs};
  f.run();
  fs.append("sim1.log", "a\n");
  fs.append("sim2.log", "b\n");
  CHECK(f.texts() == Texts{"a", "b"});
  fs.append("sim1.log", "c\n");
  fs.append("sim2.log", "d\n");
  fs.failing.insert("sim1.log");
  auto b = f.run();
  REQUIRE(b.lines.size() == 1);
  CHECK(b.lines[0].text == "d");
  CHECK(anyNoteContains(b, "sim1.log: not read this time: permission denied"));
  REQUIRE(b.next.files.size() == 2);
  CHECK(b.next.files[0].offset == 2);
  fs.failing.clear();
  CHECK(f.texts() == Texts{"c"});
}

TEST_CASE("tail: a rotation between listing and reading is noticed and the run repeated") {
  FakeFs fs;
  Follower f{fs};
  f.pattern = "sim.log*";
  f.run();
  fs.append("sim.log", "1\n");
  CHECK(f.texts() == Texts{"1"});
  fs.append("sim.log", "2\n");
  bool rotated = false;
  fs.onRead = [&] {
    if (rotated) return;
    rotated = true;
    fs.rename("sim.log", "sim.log.1");
    fs.append("sim.log", "new file, longer than the old one\n");
  };
  auto lists = fs.lists;
  auto b = f.run();
  CHECK(fs.lists - lists == 4);  // two attempts, each listing before and after
  std::vector<std::string> texts;
  for (const auto& l : b.lines) texts.push_back(l.text);
  CHECK(texts == Texts{"2", "new file, longer than the old one"});

  fs.onRead = [&] {
    fs.rename("sim.log", fmt::format("sim.log.{}", fs.nextIndex));
    fs.append("sim.log", "again\n");
  };
  fs.append("sim.log", "more\n");
  auto r = pass::hitachi_svp::readNew(fs, FakeFs::kDir, "sim.log*", f.state, {});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "svp.tail_unstable");
  CHECK(contains(r.error().message, "/logs"));
}

TEST_CASE("tail: names match the pattern with * and ?, ignoring ASCII case") {
  using pass::hitachi_svp::globMatch;
  CHECK(globMatch("*", "anything"));
  CHECK(globMatch("*", ""));
  CHECK(globMatch("sim*.log", "sim.log"));
  CHECK(globMatch("sim*.log", "SIM_20261127.LOG"));
  CHECK(globMatch("sim?.log", "sim1.log"));
  CHECK_FALSE(globMatch("sim?.log", "sim.log"));
  CHECK_FALSE(globMatch("sim*.log", "sim.log.1"));
  CHECK(globMatch("sim.log*", "sim.log.1"));
  CHECK(globMatch("*a*b*c", "xaybzc"));
  CHECK_FALSE(globMatch("*a*b*c", "xaybz"));
  CHECK(globMatch("a**b", "ab"));
  CHECK_FALSE(globMatch("", "a"));
  CHECK_FALSE(globMatch("sim.log", "sim.log2"));
}

TEST_CASE("tail: state survives JSON") {
  TailState s;
  s.started = true;
  s.files.push_back(
      {FileId{0xffffffffffffffffULL, 42}, "sim.log.1", 120, 130, 40, std::string(64, 'a')});
  s.files.push_back({FileId{1, 0x8000000000000001ULL}, "sim.log", 0, 0, 0, ""});
  auto text = pass::hitachi_svp::toJson(s);
  auto back = pass::hitachi_svp::parseTailState(text);
  REQUIRE_MESSAGE(back.has_value(), errorText(back));
  CHECK(back->started);
  REQUIRE(back->files.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(back->files[i].id == s.files[i].id);
    CHECK(back->files[i].name == s.files[i].name);
    CHECK(back->files[i].offset == s.files[i].offset);
    CHECK(back->files[i].size == s.files[i].size);
    CHECK(back->files[i].fingerprintLength == s.files[i].fingerprintLength);
    CHECK(back->files[i].fingerprint == s.files[i].fingerprint);
  }
  CHECK(pass::hitachi_svp::toJson(*back) == text);

  auto fresh = pass::hitachi_svp::parseTailState("");
  REQUIRE(fresh.has_value());
  CHECK_FALSE(fresh->started);
  CHECK(fresh->files.empty());

  auto bad = [](std::string_view input, std::string_view part) {
    CAPTURE(input);
    auto r = pass::hitachi_svp::parseTailState(input);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "svp.bad_tail_state");
    CHECK_MESSAGE(contains(r.error().message, part), r.error().message);
  };
  bad("{", "not a JSON object");
  bad("{\"started\":true,\"files\":[]}", "'version' is missing");
  bad("{\"version\":2,\"started\":true,\"files\":[]}", "version 2");
  bad("{\"version\":1,\"started\":\"yes\",\"files\":[]}", "'started' has the wrong type");
  bad("{\"version\":1,\"started\":true,\"files\":[{\"device\":1}]}", "files[0].'index' is missing");
  bad("{\"version\":1,\"started\":true,\"files\":[{\"device\":-1,\"index\":1,\"name\":\"a\","
      "\"offset\":0,"
      "\"size\":0,\"fingerprint_length\":0,\"fingerprint\":\"\"}]}",
      "files[0].'device' has the wrong type");
  bad("{\"version\":1,\"started\":true,\"files\":[3]}", "files[0] is not an object");
}

TEST_CASE("tail: the state written after one run serves the next") {
  FakeFs fs;
  TailState state;
  auto run = [&] {
    auto r = pass::hitachi_svp::readNew(fs, FakeFs::kDir, "*", state, {});
    REQUIRE_MESSAGE(r.has_value(), errorText(r));
    auto back = pass::hitachi_svp::parseTailState(pass::hitachi_svp::toJson(r->next));
    REQUIRE_MESSAGE(back.has_value(), errorText(back));
    state = *back;
    return r->lines.size();
  };
  fs.append("sim.log", "history\n");
  CHECK(run() == 0);
  fs.append("sim.log", "a\nb\n");
  CHECK(run() == 2);
  CHECK(run() == 0);
}

namespace {

/// A SIM log writer that rotates by rename (and, when asked, by copy-truncate), and a caller
/// that crashes now and then before saving the state. Records are numbered so that what was
/// delivered can be checked against what was written.
struct Simulation {
  explicit Simulation(bool copyTruncate) : copyTruncate_(copyTruncate) {
    follower.pattern = "sim.log*";
  }

  void step() {
    int op = static_cast<int>(rng() % 100);
    if (op < 45) {
      writeRecords(1 + rng() % 4);
    } else if (op < 55) {
      writePartial();
    } else if (op < 62) {
      rotate();
    } else {
      run(rng() % 5 == 0);
    }
  }

  void writeRecords(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      finishPartial();
      fs.append("sim.log", recordText(next++) + "\n");
    }
  }
  std::string recordText(int n) {
    return fmt::format("2026/11/27,14:10:10,307080,Moderate,DKC,record {:06} {}", n,
                       std::string(rng() % 40, 'x'));
  }
  void writePartial() {
    if (!pending.empty()) return;
    pending = recordText(next++) + "\n";
    auto cut = 1 + rng() % (pending.size() - 1);
    fs.append("sim.log", pending.substr(0, cut));
    pending.erase(0, cut);
  }
  void finishPartial() {
    if (pending.empty()) return;
    fs.append("sim.log", pending);
    pending.clear();
  }
  /// sim.log → sim.log.1 → sim.log.2 → sim.log.3; the oldest is deleted only when the saved
  /// state has read it to its end, as a retention much longer than the run interval does.
  void rotate() {
    if (!fs.files.contains("sim.log")) return;
    finishPartial();
    if (fs.files.contains("sim.log.3")) {
      auto id = fs.files.at("sim.log.3").id;
      auto read = std::any_of(
          follower.state.files.begin(), follower.state.files.end(),
          [&](const auto& st) { return st.id == id && st.offset == fs.data("sim.log.3").size(); });
      if (!read) return;
      fs.remove("sim.log.3");
    }
    for (int i = 2; i >= 1; --i) {
      auto from = fmt::format("sim.log.{}", i);
      if (fs.files.contains(from)) fs.rename(from, fmt::format("sim.log.{}", i + 1));
    }
    if (copyTruncate_ && rng() % 2 == 0) {
      fs.copy("sim.log", "sim.log.1");
      fs.truncate("sim.log");
      ++copyTruncates;
    } else {
      fs.rename("sim.log", "sim.log.1");
      fs.create("sim.log");
    }
    ++rotations;
  }

  void run(bool crash) {
    // Above the longest record (93 bytes), which would otherwise come in pieces.
    follower.options.maxBytes = 100 + rng() % 1500;
    auto r = pass::hitachi_svp::readNew(fs, FakeFs::kDir, follower.pattern, follower.state,
                                        follower.options);
    REQUIRE_MESSAGE(r.has_value(), errorText(r));
    if (crash) {
      for (const auto& l : r->lines) repeated.push_back(l);
      return;  // the state is not saved: the next run reads the same lines again
    }
    for (const auto& l : r->lines) delivered.push_back(l);
    follower.state = r->next;
    ++runs;
  }

  void drain() {
    finishPartial();
    for (int i = 0; i < 1000; ++i) {
      follower.options.maxBytes = 1000;
      auto r = pass::hitachi_svp::readNew(fs, FakeFs::kDir, follower.pattern, follower.state,
                                          follower.options);
      REQUIRE_MESSAGE(r.has_value(), errorText(r));
      for (const auto& l : r->lines) delivered.push_back(l);
      follower.state = r->next;
      if (r->lines.empty() && !r->more) return;
    }
    FAIL("the tailer did not come to rest");
  }

  static int recordOf(const std::string& text) {
    auto at = text.find("record ");
    REQUIRE(at != std::string::npos);
    return std::stoi(text.substr(at + 7, 6));
  }

  FakeFs fs;
  Follower follower{fs};
  std::mt19937 rng{20261127};
  std::string pending;
  int next = 0;
  int runs = 0;
  int rotations = 0;
  int copyTruncates = 0;
  std::vector<pass::hitachi_svp::TailLine> delivered;
  std::vector<pass::hitachi_svp::TailLine> repeated;
  bool copyTruncate_;
};

}  // namespace

TEST_CASE("tail: randomized rename rotations: every record exactly once") {
  Simulation sim(false);
  sim.follower.run();  // first sight of an empty directory
  for (int i = 0; i < 20000; ++i) sim.step();
  sim.drain();
  REQUIRE(sim.next > 1000);
  CHECK(sim.runs > 500);
  CHECK(sim.rotations > 200);
  std::vector<int> seen(static_cast<std::size_t>(sim.next), 0);
  std::map<std::string, int> idToRecord;
  for (const auto& l : sim.delivered) {
    int n = Simulation::recordOf(l.text);
    ++seen[static_cast<std::size_t>(n)];
    CHECK(idToRecord.emplace(l.id, n).second);  // ids are unique
  }
  int missing = 0, twice = 0;
  for (int count : seen) {
    missing += count == 0;
    twice += count > 1;
  }
  CHECK(missing == 0);
  CHECK(twice == 0);
  // A line read again after a crash has the id it is delivered with.
  REQUIRE(!sim.repeated.empty());
  for (const auto& l : sim.repeated) {
    auto it = idToRecord.find(l.id);
    REQUIRE(it != idToRecord.end());
    CHECK(it->second == Simulation::recordOf(l.text));
  }
}

TEST_CASE(
    "tail: randomized with copy-truncate too: every record once after dropping repeated ids") {
  Simulation sim(true);
  sim.follower.run();
  for (int i = 0; i < 20000; ++i) sim.step();
  sim.drain();
  REQUIRE(sim.copyTruncates > 100);
  std::map<std::string, int> idToRecord;
  std::vector<int> seen(static_cast<std::size_t>(sim.next), 0);
  std::size_t repeats = 0;
  for (const auto& l : sim.delivered) {
    int n = Simulation::recordOf(l.text);
    auto [it, inserted] = idToRecord.emplace(l.id, n);
    if (!inserted) {
      CHECK(it->second == n);  // a repeat is the same record
      ++repeats;
      continue;
    }
    ++seen[static_cast<std::size_t>(n)];
  }
  CHECK(repeats > 0);
  CHECK(std::count(seen.begin(), seen.end(), 0) == 0);
  CHECK(std::count_if(seen.begin(), seen.end(), [](int c) { return c > 1; }) == 0);
}

// ---- the machine's file system -----------------------------------------------------------------

TEST_CASE("realFileSystem: identity survives a rename, reads at offsets") {
  TempDir dir;
  auto& real = pass::realFileSystem();
  { std::ofstream(dir / "a.log", std::ios::binary) << "one\ntwo\n"; }
  fs::create_directory(dir / "subdir");
  auto before = real.list(dir.path());
  REQUIRE_MESSAGE(before.has_value(), errorText(before));
  REQUIRE(before->size() == 1);  // directories are not listed
  CHECK((*before)[0].name == "a.log");
  CHECK((*before)[0].size == 8);
  CHECK((*before)[0].id.index != 0);

  fs::rename(dir / "a.log", dir / "b.log");
  { std::ofstream(dir / "a.log", std::ios::binary) << "new\n"; }
  auto after = real.list(dir.path());
  REQUIRE_MESSAGE(after.has_value(), errorText(after));
  REQUIRE(after->size() == 2);
  std::map<std::string, FileSystem::Entry> byName;
  for (const auto& e : *after) byName[e.name] = e;
  CHECK(byName.at("b.log").id == (*before)[0].id);
  CHECK_FALSE(byName.at("a.log").id == (*before)[0].id);

  auto part = real.read(dir / "b.log", 4, 3);
  REQUIRE_MESSAGE(part.has_value(), errorText(part));
  CHECK(*part == "two");
  CHECK(real.read(dir / "b.log", 4, 100).value() == "two\n");
  CHECK(real.read(dir / "b.log", 100, 10).value().empty());

  auto missing = real.read(dir / "nope.log", 0, 10);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == "not_found");
  CHECK(contains(missing.error().message, "nope.log"));
  auto noDir = real.list(dir / "nope");
  REQUIRE_FALSE(noDir.has_value());
  CHECK(noDir.error().code == "not_found");

  // And the tailer over it, across a rename rotation.
  TailState state;
  auto run = [&] {
    auto r = pass::hitachi_svp::readNew(real, dir.path(), "a.log*", state, {});
    REQUIRE_MESSAGE(r.has_value(), errorText(r));
    state = r->next;
    std::vector<std::string> texts;
    for (const auto& l : r->lines) texts.push_back(l.text);
    return texts;
  };
  CHECK(run().empty());
  std::ofstream(dir / "a.log", std::ios::binary | std::ios::app) << "four\nfive";
  CHECK(run() == Texts{"four"});
  fs::rename(dir / "a.log", dir / "a.log.1");
  std::ofstream(dir / "a.log.1", std::ios::binary | std::ios::app) << "\n";
  std::ofstream(dir / "a.log", std::ios::binary) << "six\n";
  CHECK(run() == Texts{"five", "six"});
}

// ---- bytes that are not UTF-8 (issue 17) -------------------------------------------------------

namespace {

const std::string kFffd(pass::kReplacement);

pass::ArrayConfig svpArray(const fs::path& simDir, std::string encoding = {}) {
  pass::ArrayConfig a;
  a.family = "hitachi_svp";
  a.serial = "470849";
  a.name = "VSP-1";
  a.where = "agent.xml:7";
  a.settings = {{"sim-dir", simDir.string()},      {"pattern", "*.log"},
                {"profile", "pass-csv"},           {"from-head", "true"},
                {"max-bytes-per-run", "16777216"}, {"encoding", std::move(encoding)}};
  return a;
}

pass::Collector::Outcome collectSvp(const pass::ArrayConfig& array) {
  auto collector = pass::createCollector(array);
  REQUIRE_MESSAGE(collector.has_value(), errorText(collector));
  return pass::test::collectOnce(**collector);
}

}  // namespace

TEST_CASE("parseSimLine: bytes that are not UTF-8 are U+FFFD, the line's bytes are kept") {
  auto p = profileOf(csvProfile());
  const std::string line =
      "2026/11/27,14:10:10,307080,Moderate,L\xfc"
      "fter 1,L\xfc"
      "fter failed";
  auto ev = pass::hitachi_svp::parseSimLine(p, line + "\r");
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->code == "307080");
  CHECK(ev->component == "L" + kFffd + "fter 1");
  CHECK(ev->text == "L" + kFffd + "fter failed");
  CHECK(ev->raw ==
        "2026/11/27,14:10:10,307080,Moderate,L" + kFffd + "fter 1,L" + kFffd + "fter failed");
  CHECK(ev->rawBytes == line);
  CHECK(pass::isCleanUtf8(ev->raw));

  // NUL bytes, which some writers leave after a crash, are no text either.
  const std::string withNul =
      std::string("2026/11/27,14:10:10,307080,Moderate,DKC,fan") + '\0' + '\0';
  ev = pass::hitachi_svp::parseSimLine(p, withNul);
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->text == "fan" + kFffd + kFffd);
  CHECK(ev->rawBytes == withNul);

  // Clean lines carry no copy of their bytes.
  ev = pass::hitachi_svp::parseSimLine(p, "2026/11/27,14:10:10,307080,Moderate,DKC,Processor");
  REQUIRE(ev.has_value());
  CHECK_FALSE(ev->rawBytes.has_value());
}

TEST_CASE("parseSimLine: a profile in Shift-JIS (cp932) reads Japanese text and severities") {
  auto profile = csvProfile();
  profile["encoding"] = "shift_jis";
  profile["severity_map"]["\xe9\x87\x8d\xe5\xba\xa6"] = "serious";  // 重度, as UTF-8 in the JSON
  auto p = profileOf(profile);
  CHECK(p.encoding.name() == "cp932");
  // 重度 and ファン障害 (fan failure) as an SVP on Japanese Windows writes them.
  const std::string line =
      "2026/11/27,14:10:10,307080,\x8f\x64\x93\x78,DKC,\x83\x74\x83\x40\x83\x93\x8f\xe1\x8a\x51";
  auto ev = pass::hitachi_svp::parseSimLine(p, line);
  REQUIRE_MESSAGE(ev.has_value(), errorText(ev));
  CHECK(ev->severity == "serious");
  CHECK(ev->text == "\xe3\x83\x95\xe3\x82\xa1\xe3\x83\xb3\xe9\x9a\x9c\xe5\xae\xb3");
  CHECK(ev->raw ==
        "2026/11/27,14:10:10,307080,\xe9\x87\x8d\xe5\xba\xa6,DKC,"
        "\xe3\x83\x95\xe3\x82\xa1\xe3\x83\xb3\xe9\x9a\x9c\xe5\xae\xb3");
  CHECK(ev->rawBytes == line);

  profile["encoding"] = "ebcdic";
  auto bad = parseOne(profile);
  REQUIRE_FALSE(bad.has_value());
  CHECK(contains(bad.error().message, "'encoding'"));
  CHECK(contains(bad.error().message, "ebcdic"));
}

TEST_CASE("parseSimLine: an error quoting a value never cuts a character in two") {
  auto p = profileOf(csvProfile());
  // 20 three-byte characters: the 40-byte quote limit falls inside the 14th.
  std::string part;
  for (int i = 0; i < 20; ++i) part += "\xe3\x83\x95";
  auto r = pass::hitachi_svp::parseSimLine(p, "2026/11/27,14:10:10,307080," + part + ",DKC,x");
  REQUIRE_FALSE(r.has_value());
  CHECK(pass::isCleanUtf8(r.error().message));
}

TEST_CASE("collector: invalid UTF-8, NULs and a 2 MiB line cost nothing but their own text") {
  TempDir dir;
  std::string log = "2026/11/27,14:10:10,100001,Moderate,DKC,before\n";
  log +=
      "2026/11/27,14:10:11,100002,Moderate,L\xfc"
      "fter,L\xfc"
      "fter 1 failed\n";
  log += std::string("2026/11/27,14:10:12,100003,Moderate,DKC,nul") + '\0' + "here\n";
  log += std::string(2 << 20, '\xfc') + "\n";
  log += "2026/11/27,14:10:13,100004,Moderate,DKC,after\n";
  { std::ofstream(dir / "sim.log", std::ios::binary) << log; }

  auto outcome = collectSvp(svpArray(dir.path()));
  REQUIRE_MESSAGE(outcome.result.has_value(), errorText(outcome.result));
  CHECK(outcome.status.state == "ok");
  const auto& events = outcome.result->events;
  std::vector<std::string> codes;
  for (const auto& e : events) {
    if (codes.empty() || codes.back() != e.code) codes.push_back(e.code);
    CHECK(pass::isCleanUtf8(e.raw));
    CHECK(pass::isCleanUtf8(e.text));
  }
  CHECK(codes == std::vector<std::string>{"100001", "100002", "100003", "unparsed", "100004"});
  CHECK(events[1].component == "L" + kFffd + "fter");
  CHECK(events[1].rawBytes ==
        "2026/11/27,14:10:11,100002,Moderate,L\xfc"
        "fter,L\xfc"
        "fter 1 failed");
  CHECK(events[2].text == "nul" + kFffd + "here");
  // The long line comes in pieces (the tailer's maxLineBytes), each with its bytes.
  std::size_t longBytes = 0;
  for (const auto& e : events) {
    if (e.code == "unparsed") longBytes += e.rawBytes.value_or(e.raw).size();
  }
  CHECK(longBytes == 2u << 20);
  // And all of it goes into reports that the home accepts.
  for (const auto& r : pass::payload::reports(1, svpArray(dir.path()), events)) {
    CHECK(r.size() <= pass::payload::kReportBytes + 1024);
    CHECK_FALSE(nlohmann::json::parse(r, nullptr, false).is_discarded());
  }
}

TEST_CASE("collector: the array's encoding setting replaces the profile's") {
  TempDir dir;
  {
    std::ofstream(dir / "sim.log", std::ios::binary) << "2026/11/27,14:10:10,100001,Moderate,L\xfc"
                                                        "fter,x\n";
  }
  auto outcome = collectSvp(svpArray(dir.path(), "windows-1252"));
  REQUIRE_MESSAGE(outcome.result.has_value(), errorText(outcome.result));
  REQUIRE(outcome.result->events.size() == 1);
  CHECK(outcome.result->events[0].component ==
        "L\xc3\xbc"
        "fter");

  auto bad = pass::createCollector(svpArray(dir.path(), "klingon"));
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == "config");
  CHECK(contains(bad.error().message, "agent.xml:7"));
  CHECK(contains(bad.error().message, "klingon"));
}
