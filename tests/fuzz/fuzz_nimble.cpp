// libFuzzer harness for the nimble decoders: parsePage, readEvent, readAlarm and errorText.
// Built and run by scripts/fuzz.sh (see fuzz_hitachi_svp.cpp for the clang 16 note).
// sources: libpass/src/collectors/nimble/parse.cpp
// sources: libpass/src/text.cpp libpass/src/platform/posix/codepage.cpp
//
// The input is one REST answer; each record of a page that parses is read as an event and as
// an alarm, and what every successful read promises is checked.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "collectors/nimble/parse.hpp"

namespace {

void checkCommon(const pass::CollectedEvent& e) {
  if (e.id.empty() || e.code.empty() || e.raw.empty()) std::abort();
  if (e.kind != "alert") std::abort();
  if (e.code != pass::nimble::kUnparsedCode) {
    for (char c : e.code) {
      if ((c < '0' || c > '9') && c != '-') std::abort();
    }
  }
  if (e.occurredMs && *e.occurredMs <= 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)pass::nimble::errorText(input);
  auto page = pass::nimble::parsePage(input, "fuzz");
  if (!page) {
    if (page.error().code != "nimble.bad_output") std::abort();
    return 0;
  }
  for (const auto& record : page->records) {
    auto event = pass::nimble::readEvent(record);
    checkCommon(event.event);
    if (event.key != event.event.id || !event.key.starts_with("event:")) std::abort();
    if (event.ms != event.event.occurredMs) std::abort();
    auto alarm = pass::nimble::readAlarm(record);
    checkCommon(alarm.event);
    if (!alarm.event.id.starts_with("alarm:")) std::abort();
    if (alarm.id.empty() && alarm.event.code != pass::nimble::kUnparsedCode) std::abort();
  }
  return 0;
}
