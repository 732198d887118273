// pass::printable: agent and array text as a terminal may show it.

#include <doctest/doctest.h>

#include <string>

#include "pass/printable.hpp"

using pass::printable;

TEST_CASE("printable leaves ordinary text, UTF-8 and backslashes alone") {
  CHECK(printable("DKC power supply failure (PS-1)") == "DKC power supply failure (PS-1)");
  CHECK(printable("Lüfter ausgefallen, 電源") == "Lüfter ausgefallen, 電源");
  CHECK(printable(R"(C:\ProgramData\PASS)") == R"(C:\ProgramData\PASS)");
  CHECK(printable("") == "");
}

TEST_CASE("printable escapes C0 controls, DEL and C1 controls") {
  CHECK(printable("\x1b]0;owned\x07") == R"(\x1B]0;owned\x07)");
  CHECK(printable("a\nb\rc\td") == R"(a\nb\rc\td)");
  CHECK(printable(std::string("nul\0byte", 8)) == R"(nul\x00byte)");
  CHECK(printable("del\x7f") == R"(del\x7F)");
  CHECK(printable("csi\u009b31m") == R"(csi\u009B31m)");
  CHECK(printable("nel\u0085") == R"(nel\u0085)");
  CHECK(printable("nbsp\u00a0") == "nbsp\u00a0");  // U+00A0 is not a control
}

TEST_CASE("printable shows bytes that are not UTF-8 as \\xNN and resumes after them") {
  CHECK(printable("L\xfc" "fter") == R"(L\xFCfter)");
  CHECK(printable("\xc3") == R"(\xC3)");                  // truncated sequence
  CHECK(printable("\xc0\xaf") == R"(\xC0\xAF)");          // overlong
  CHECK(printable("\xed\xa0\x80") == R"(\xED\xA0\x80)");  // a surrogate
  CHECK(printable("\xf4\x90\x80\x80") == R"(\xF4\x90\x80\x80)");  // above U+10FFFF
  CHECK(printable("ok\xe2\x82\xac") == "ok\xe2\x82\xac");        // the euro sign
}
