// pass::toUtf8 and friends (pass/text.hpp), and what the payload builders make of events whose
// bytes are not UTF-8 (pass/payload.hpp).

#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "pass/collector.hpp"
#include "pass/payload.hpp"
#include "pass/text.hpp"
#include "test_support.hpp"

using pass::TextEncoding;
using pass::toUtf8;

namespace {

const std::string kFffd(pass::kReplacement);

TextEncoding encoding(std::string_view name) {
  auto e = TextEncoding::named(name);
  REQUIRE_MESSAGE(e.has_value(), pass::test::errorText(e));
  return *e;
}

}  // namespace

TEST_CASE("toUtf8: clean UTF-8 is left as it is") {
  for (std::string_view s : {std::string_view(""), std::string_view("plain ASCII, tabs\tand\r\n"),
                             std::string_view("L\xc3\xbc"
                                              "fter \xe3\x83\x95\xe3\x82\xa1\xe3\x83\xb3"
                                              " \xf0\x9f\x94\xa5")}) {
    CHECK(toUtf8(s) == s);
    CHECK(pass::isCleanUtf8(s));
  }
}

TEST_CASE("toUtf8: every ill-formed subpart and every NUL becomes one U+FFFD") {
  // Latin-1 in a UTF-8 log: the byte of the issue.
  CHECK(toUtf8("L\xfc"
               "fter") == "L" + kFffd + "fter");
  CHECK_FALSE(
      pass::isCleanUtf8("L\xfc"
                        "fter"));
  // NUL is valid UTF-8 but no text: replaced, visibly.
  CHECK(toUtf8(std::string_view("a\0b", 3)) == "a" + kFffd + "b");
  CHECK_FALSE(pass::isCleanUtf8(std::string_view("a\0b", 3)));
  // Unicode's example of maximal subparts (The Unicode Standard, 3.9, Table 3-8).
  CHECK(toUtf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") ==
        "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d");
  // Overlong forms, UTF-16 surrogates and code points above U+10FFFF are not UTF-8.
  CHECK(toUtf8("\xC0\xAF") == kFffd + kFffd);
  CHECK(toUtf8("\xE0\x80\xAF") == kFffd + kFffd + kFffd);
  CHECK(toUtf8("\xED\xA0\x80") == kFffd + kFffd + kFffd);
  CHECK(toUtf8("\xF4\x90\x80\x80") == kFffd + kFffd + kFffd + kFffd);
  // A character cut off at the end.
  CHECK(toUtf8("ab\xE3\x83") == "ab" + kFffd);
  // Whatever the input, the output is clean.
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  CHECK(pass::isCleanUtf8(toUtf8(all)));
}

TEST_CASE("toUtf8: code pages are decoded by the system's converter") {
  // "ファン障害" (fan failure) as Japanese Windows writes it.
  CHECK(toUtf8("\x83\x74\x83\x40\x83\x93\x8f\xe1\x8a\x51", encoding("shift_jis")) ==
        "\xe3\x83\x95\xe3\x82\xa1\xe3\x83\xb3\xe9\x9a\x9c\xe5\xae\xb3");
  CHECK(toUtf8("L\xfc"
               "fter \x80",
               encoding("windows-1252")) ==
        "L\xc3\xbc"
        "fter \xe2\x82\xac");
  CHECK(toUtf8("L\xfc"
               "fter",
               encoding("latin1")) ==
        "L\xc3\xbc"
        "fter");
  // What is not a character of the code page is U+FFFD, the rest is kept; NUL too.
  CHECK(toUtf8("a\x81 b\x83", encoding("cp932")) == "a" + kFffd + " b" + kFffd);
  CHECK(toUtf8(std::string_view("\x83\x74\0", 3), encoding("cp932")) == "\xe3\x83\x95" + kFffd);
}

TEST_CASE("TextEncoding: names, aliases and an unknown name") {
  CHECK(TextEncoding().isUtf8());
  CHECK(encoding("UTF-8").isUtf8());
  CHECK(encoding("Shift_JIS").name() == "cp932");
  CHECK(encoding("windows-31j").name() == "cp932");
  CHECK(encoding("CP1252").name() == "windows-1252");
  auto bad = TextEncoding::named("ebcdic");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == "config");
  CHECK(bad.error().message.find("\"ebcdic\"") != std::string::npos);
  CHECK(bad.error().message.find("cp932") != std::string::npos);
}

TEST_CASE("cutUtf8 never cuts a character in two") {
  const std::string s = "ab\xe3\x83\x95";  // a, b, and a three-byte character
  CHECK(pass::cutUtf8(s, 10) == s);
  CHECK(pass::cutUtf8(s, 5) == s);
  CHECK(pass::cutUtf8(s, 4) == "ab");
  CHECK(pass::cutUtf8(s, 3) == "ab");
  CHECK(pass::cutUtf8(s, 2) == "ab");
}

TEST_CASE("CollectedEvent::setRaw keeps the exact bytes only when raw is not them") {
  pass::CollectedEvent e;
  e.setRaw("plain");
  CHECK(e.raw == "plain");
  CHECK_FALSE(e.rawBytes.has_value());
  e.setRaw(
      "L\xfc"
      "fter");
  CHECK(e.raw == "L" + kFffd + "fter");
  CHECK(e.rawBytes ==
        "L\xfc"
        "fter");
  e.setRaw(
      "L\xfc"
      "fter",
      encoding("windows-1252"));
  CHECK(e.raw ==
        "L\xc3\xbc"
        "fter");
  CHECK(e.rawBytes ==
        "L\xfc"
        "fter");
  e.setRaw("ASCII in a code page", encoding("cp932"));
  CHECK_FALSE(e.rawBytes.has_value());
}

TEST_CASE("payload: an event is always UTF-8; raw_b64 holds the bytes when raw is not them") {
  pass::ArrayConfig array;
  array.family = "hitachi_svp";
  array.serial = "470849";
  pass::CollectedEvent e;
  e.id = "1";
  e.code = "307080";
  e.text =
      "L\xfc"
      "fter";  // a collector that forgot to decode
  e.setRaw(
      "2026/11/27,14:10:10,307080,Moderate,DKC,L\xfc"
      "fter");
  auto j = pass::payload::event(array, e);
  CHECK(j["text"] == "L" + kFffd + "fter");
  CHECK(j["raw"] == "2026/11/27,14:10:10,307080,Moderate,DKC,L" + kFffd + "fter");
  // base64 of the line's bytes, as `base64` prints it.
  CHECK(j["raw_b64"] == "MjAyNi8xMS8yNywxNDoxMDoxMCwzMDcwODAsTW9kZXJhdGUsREtDLEz8ZnRlcg==");
  CHECK_FALSE(j.contains("raw_size"));
  CHECK_NOTHROW((void)j.dump());

  // Undecoded bytes put straight into raw still go out as UTF-8 with their bytes.
  e.raw = "a\xff";
  e.rawBytes.reset();
  j = pass::payload::event(array, e);
  CHECK(j["raw"] == "a" + kFffd);
  CHECK(j["raw_b64"] == "Yf8=");

  e.setRaw("clean");
  CHECK_FALSE(pass::payload::event(array, e).contains("raw_b64"));
}

TEST_CASE("payload: a 2 MiB record is cut, and reports stay far below the home's body limit") {
  pass::ArrayConfig array;
  array.family = "hitachi_svp";
  array.serial = "470849";
  std::vector<pass::CollectedEvent> events(8);
  for (std::size_t i = 0; i < events.size(); ++i) {
    events[i].id = std::to_string(i);
    events[i].text = std::string(2 << 20, 'x');
    events[i].setRaw(std::string(2 << 20, '\xfc'));
  }
  auto j = pass::payload::event(array, events[0]);
  CHECK(j["text"].get<std::string>().size() == pass::payload::kMaxTextBytes);
  CHECK(j["raw_size"] == 2 << 20);
  CHECK(j["raw_b64"].get<std::string>().size() == pass::payload::kMaxRawBytes / 3 * 4 + 4);

  auto reports = pass::payload::reports(1, array, events);
  CHECK(reports.size() > 1);
  std::size_t total = 0;
  for (const auto& r : reports) {
    CHECK(r.size() <= pass::payload::kReportBytes + 1024);
    total += nlohmann::json::parse(r)["events"].size();
  }
  CHECK(total == events.size());
}

// printable: agent and array text as a terminal may show it.

TEST_CASE("printable leaves ordinary text, UTF-8 and backslashes alone") {
  CHECK(pass::printable("DKC power supply failure (PS-1)") == "DKC power supply failure (PS-1)");
  CHECK(pass::printable("Lüfter ausgefallen, 電源") == "Lüfter ausgefallen, 電源");
  CHECK(pass::printable(R"(C:\ProgramData\PASS)") == R"(C:\ProgramData\PASS)");
  CHECK(pass::printable("") == "");
}

TEST_CASE("printable escapes C0 controls, DEL and C1 controls") {
  CHECK(pass::printable("\x1b]0;owned\x07") == R"(\x1B]0;owned\x07)");
  CHECK(pass::printable("a\nb\rc\td") == R"(a\nb\rc\td)");
  CHECK(pass::printable(std::string("nul\0byte", 8)) == R"(nul\x00byte)");
  CHECK(pass::printable("del\x7f") == R"(del\x7F)");
  CHECK(pass::printable("csi\u009b31m") == R"(csi\u009B31m)");
  CHECK(pass::printable("nel\u0085") == R"(nel\u0085)");
  CHECK(pass::printable("nbsp\u00a0") == "nbsp\u00a0");  // U+00A0 is not a control
}

TEST_CASE("printable shows bytes that are not UTF-8 as \\xNN and resumes after them") {
  CHECK(pass::printable("L\xfc"
                        "fter") == R"(L\xFCfter)");
  CHECK(pass::printable("\xc3") == R"(\xC3)");                          // truncated sequence
  CHECK(pass::printable("\xc0\xaf") == R"(\xC0\xAF)");                  // overlong
  CHECK(pass::printable("\xed\xa0\x80") == R"(\xED\xA0\x80)");          // a surrogate
  CHECK(pass::printable("\xf4\x90\x80\x80") == R"(\xF4\x90\x80\x80)");  // above U+10FFFF
  CHECK(pass::printable("ok\xe2\x82\xac") == "ok\xe2\x82\xac");         // the euro sign
}
