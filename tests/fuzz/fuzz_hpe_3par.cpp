// libFuzzer harness for the hpe_3par parsers: showalert -d blocks, WSAPI eventlog pages, the
// cursor, and following alerts from one answer to the next. Built and run by scripts/fuzz.sh.
// The lines below list what it links.
// sources: libpass/src/collectors/hpe_3par/parse.cpp
// sources: libpass/src/text.cpp libpass/src/platform/posix/codepage.cpp
//
// The input is read as showalert output, as an eventlog page, as a cursor and as a
// zone-abbreviations setting; split at its first NUL byte, the two halves are two consecutive
// showalert answers followed with one cursor.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "collectors/hpe_3par/parse.hpp"

namespace {

using pass::hpe_3par::AlertCursor;

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/// What every parsed block promises, whatever the input.
void checkBlocks(const std::vector<pass::hpe_3par::AlertBlock>& blocks) {
  for (const auto& b : blocks) {
    if (b.id.empty() != (b.event.code == "unparsed")) std::abort();
    if (!b.event.id.empty()) std::abort();
    if (b.line == 0) std::abort();
    if (b.event.raw.empty()) std::abort();
  }
}

/// The cursor the collector saves must be read back as the same cursor.
void checkRoundTrip(const AlertCursor& cursor) {
  auto back = pass::hpe_3par::parseCursor(pass::hpe_3par::toJson(cursor));
  if (!back || back->alerts != cursor.alerts || back->unparsed != cursor.unparsed ||
      back->wsapiSecs != cursor.wsapiSecs) {
    std::abort();
  }
}

void follow(std::string_view text, AlertCursor& cursor) {
  auto blocks = pass::hpe_3par::parseShowAlert(text, pass::hpe_3par::builtinZones());
  if (!blocks) {
    if (blocks.error().code != "hpe_3par.bad_output") std::abort();
    return;
  }
  checkBlocks(*blocks);
  auto diff = pass::hpe_3par::followAlerts(*blocks, cursor);
  for (const auto& e : diff.events) {
    if (e.id.empty()) std::abort();
    if (e.kind != "alert" && e.kind != "recovery") std::abort();
  }
  checkRoundTrip(cursor);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  auto nul = input.find('\0');
  AlertCursor cursor;
  follow(input.substr(0, nul), cursor);
  if (nul != std::string_view::npos) follow(input.substr(nul + 1), cursor);

  auto page = pass::hpe_3par::parseEventLog(input);
  if (page) {
    for (const auto& entry : page->entries) {
      if (entry.event.id.empty()) std::abort();
    }
    AlertCursor log;
    pass::hpe_3par::followEventLog(*page, log);
    pass::hpe_3par::followEventLog(*page, log);
    checkRoundTrip(log);
  } else if (page.error().code != "hpe_3par.bad_output") {
    std::abort();
  }

  if (auto parsed = pass::hpe_3par::parseCursor(input)) checkRoundTrip(*parsed);
  (void)pass::hpe_3par::zonesWithOverrides(input);
  if (auto code = pass::hpe_3par::normaliseMessageCode(input)) {
    if (code->size() < 9 || !code->starts_with("0x")) std::abort();
    for (char c : code->substr(2)) {
      if (!isLowerHex(c)) std::abort();
    }
  }
  (void)pass::hpe_3par::parseAlertTime(input, pass::hpe_3par::builtinZones());
  return 0;
}
