// Vendor code tables: the checks at load time, pattern matching, and the built-in tables.

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "pass/vendor_codes.hpp"
#include "platform/fs.hpp"
#include "test_support.hpp"

using pass::CodeTable;
using pass::test::errorText;

namespace {

std::string table(const std::string& codes) {
  return R"({"schema": 1, "family": "f", "note": "n", "codes": [)" + codes + "]}";
}

}  // namespace

TEST_CASE("every built-in table in vendor-codes/ parses and names a source per entry") {
  namespace fs = std::filesystem;
  int tables = 0;
  for (const auto& dir : fs::directory_iterator(fs::path(PASS_SOURCE_DIR) / "vendor-codes")) {
    if (!dir.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (!file.path().string().ends_with("-codes.json")) continue;
      ++tables;
      auto text = pass::platform::readFile(file.path());
      REQUIRE(text.has_value());
      auto parsed = CodeTable::parse(*text, file.path().string());
      REQUIRE_MESSAGE(parsed.has_value(), errorText(parsed));
      CHECK(pass::builtinCodeTable(parsed->family()) != nullptr);
      // Each family names its scale, so that the home can rank severities (tickets issue).
      CHECK_MESSAGE(!parsed->severities().empty(), file.path().string());
      for (const auto& e : parsed->entries()) CHECK_FALSE(e.source.empty());
    }
  }
  CHECK(tables >= 1);
}

TEST_CASE("the most specific pattern wins, and unknown codes are not decoded") {
  const auto* svp = pass::builtinCodeTable("hitachi_svp");
  REQUIRE(svp != nullptr);
  const auto* blocked = svp->find("218012");
  REQUIRE(blocked != nullptr);
  CHECK(blocked->code == "2180xx");
  CHECK(blocked->severity == "moderate");
  CHECK(svp->find("2181ab")->code == "2181xx");  // lower-case hex in the code
  CHECK(svp->find("212051")->meaning == "Channel port blocking");
  CHECK(svp->find("999999") == nullptr);
  CHECK(svp->find("2180x") == nullptr);   // wrong length
  CHECK(svp->find("2180zz") == nullptr);  // not hex
  CHECK(pass::builtinCodeTable("no_such_family") == nullptr);

  auto t = CodeTable::parse(table(R"({"code": "21xxxx", "meaning": "wide", "source": "s"},
                                     {"code": "2180xx", "meaning": "narrow", "source": "s"},
                                     {"code": "218001", "meaning": "exact", "source": "s"})"),
                            "t.json");
  REQUIRE_MESSAGE(t.has_value(), errorText(t));
  CHECK(t->find("218001")->meaning == "exact");
  CHECK(t->find("218002")->meaning == "narrow");
  CHECK(t->find("219002")->meaning == "wide");
}

TEST_CASE("a 0x prefix is literal in hex tables, and name tables match whole words") {
  auto hex = CodeTable::parse(table(R"({"code": "0x02700xx", "meaning": "range", "source": "s"},
                                       {"code": "0x027001e", "meaning": "one", "source": "s"})"),
                              "t.json");
  REQUIRE_MESSAGE(hex.has_value(), errorText(hex));
  CHECK(hex->find("0x027001e")->meaning == "one");
  CHECK(hex->find("0X02700AB")->meaning == "range");
  CHECK(hex->find("027001e") == nullptr);  // the prefix is part of the code
  CHECK(hex->find("0x0270") == nullptr);   // wrong length

  auto names = CodeTable::parse(
      R"({"schema": 1, "family": "f", "code_syntax": "name", "codes": [
            {"code": "drive.alarm", "meaning": "a drive left Normal", "source": "s"},
            {"code": "fan.xx", "meaning": "no wildcard here", "source": "s"}]})",
      "n.json");
  REQUIRE_MESSAGE(names.has_value(), errorText(names));
  CHECK(names->find("DRIVE.Alarm")->meaning == "a drive left Normal");
  CHECK(names->find("fan.12") == nullptr);
  CHECK(names->find("drive.alarm2") == nullptr);
}

TEST_CASE("the built-in tables classify their scales for the home's default rules") {
  const pass::CodeTable* svp = pass::builtinCodeTable("hitachi_svp");
  REQUIRE(svp != nullptr);
  CHECK(svp->classify("acute") == pass::SeverityClass::kUrgent);
  CHECK(svp->classify("Serious") == pass::SeverityClass::kUrgent);
  CHECK(svp->classify("moderate") == pass::SeverityClass::kTicket);
  CHECK(svp->classify("service") == pass::SeverityClass::kRecord);
  CHECK(svp->classify("bogus") == pass::SeverityClass::kUnknown);
  const pass::CodeTable* threepar = pass::builtinCodeTable("hpe_3par");
  REQUIRE(threepar != nullptr);
  CHECK(threepar->classify("Major") == pass::SeverityClass::kUrgent);
  CHECK(threepar->classify("Minor") == pass::SeverityClass::kTicket);
  CHECK(threepar->classify("Degraded") == pass::SeverityClass::kTicket);
  CHECK(threepar->classify("Informational") == pass::SeverityClass::kRecord);
}

TEST_CASE("a bad table is refused with the file, the entry and the key") {
  auto refused = [](const std::string& json) {
    auto t = CodeTable::parse(json, "x-codes.json");
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().code == "codes.bad_table");
    CHECK(t.error().message.find("x-codes.json") != std::string::npos);
    return t.error().message;
  };
  CHECK(refused("[]").find("not a JSON object") != std::string::npos);
  CHECK(refused(R"({"schema": 2, "family": "f", "codes": []})").find("schema") !=
        std::string::npos);
  CHECK(refused(R"({"schema": 1, "codes": []})").find("family") != std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "codes": [], "extra": 1})").find("extra") !=
        std::string::npos);
  CHECK(refused(table(R"({"code": "2180xx", "meaning": "m"})")).find("codes[0]: \"source\"") !=
        std::string::npos);
  CHECK(refused(table(R"({"code": "21-0xx", "meaning": "m", "source": "s"})"))
            .find("codes[0].code") != std::string::npos);
  CHECK(refused(table(R"({"code": "0x", "meaning": "m", "source": "s"})")).find("codes[0].code") !=
        std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "severities": ["high", "low"],
                     "ticket_from": "low", "urgent_from": "high", "codes": [
                     {"code": "01", "meaning": "m", "source": "s", "severity": "mid"}]})")
            .find("codes[0].severity \"mid\"") != std::string::npos);
  // The default rules must name severities of the scale, urgent above ticket.
  CHECK(refused(R"({"schema": 1, "family": "f", "severities": ["high", "low"], "codes": []})")
            .find("\"ticket_from\" must name one of the severities (high, low)") !=
        std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "severities": ["high", "low"],
                     "ticket_from": "mid", "urgent_from": "high", "codes": []})")
            .find("\"ticket_from\": \"mid\" is not one of the severities") != std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "severities": ["high", "low"],
                     "ticket_from": "high", "urgent_from": "low", "codes": []})")
            .find("\"urgent_from\" must not be below") != std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "ticket_from": "high", "codes": []})")
            .find("\"ticket_from\" needs \"severities\"") != std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "severities": [], "codes": []})")
            .find("severities") != std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "code_syntax": "words", "codes": []})")
            .find("code_syntax") != std::string::npos);
  CHECK(refused(R"({"schema": 1, "family": "f", "code_syntax": "name", "codes": [
                     {"code": "a b", "meaning": "m", "source": "s"}]})")
            .find("codes[0].code \"a b\"") != std::string::npos);
  CHECK(refused(table(R"({"code": "2180xx", "meaning": "m", "source": "s", "sev": "x"})"))
            .find("unknown key \"sev\"") != std::string::npos);
  CHECK(refused(table(R"({"code": "2180xx", "meaning": 5, "source": "s"})"))
            .find("codes[0].meaning must be a string") != std::string::npos);
  CHECK(refused(table(R"({"code": "2180xx", "meaning": "m", "source": "s"},
                         {"code": "2180XX", "meaning": "m", "source": "s"})"))
            .find("codes[1].code \"2180XX\" is listed twice") != std::string::npos);
}

TEST_CASE("meaning_published marks a code whose meaning the vendor has not published") {
  auto parsed = CodeTable::parse(table(R"({"code": "01", "meaning": "m", "source": "s"},
      {"code": "02", "meaning": "a guide's example", "source": "s", "meaning_published": false},
      {"code": "03", "meaning": "m", "source": "s", "meaning_published": true})"),
                                 "x-codes.json");
  REQUIRE_MESSAGE(parsed.has_value(), errorText(parsed));
  CHECK(parsed->find("01")->meaningPublished);
  CHECK_FALSE(parsed->find("02")->meaningPublished);
  CHECK(parsed->find("03")->meaningPublished);
  auto bad = CodeTable::parse(
      table(R"({"code": "01", "meaning": "m", "source": "s", "meaning_published": "no"})"),
      "x-codes.json");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message.find("codes[0].meaning_published must be true or false") !=
        std::string::npos);
  // Hitachi's 307080 is known only as the user guides' SSB example.
  const auto* svp = pass::builtinCodeTable("hitachi_svp");
  REQUIRE(svp != nullptr);
  REQUIRE(svp->find("307080") != nullptr);
  CHECK_FALSE(svp->find("307080")->meaningPublished);
  CHECK(svp->find("DC0123")->meaningPublished);
}
