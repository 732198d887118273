// libFuzzer harness for the on-call calendar reader (OnCallSchedule::parse, libical) and the
// quiet-hours parser. Built and run by scripts/fuzz.sh (see fuzz_hitachi_svp.cpp for the
// clang 16 note).
// sources: home/src/oncall/oncall.cpp home/src/oncall/quiet_hours.cpp
// flags: -Ihome/include -Ihome/src -DUSE_OS_TZDB=1 -lical -ldate-tz
//
// The input is an .ics file (or, from its first line, a quiet-hours spec). Whatever parses
// must answer every question without crashing, and its answers must keep their promises.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "pass/home/oncall.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using std::chrono::system_clock;
  const auto base = system_clock::time_point(std::chrono::seconds(1'800'000'000));
  if (auto schedule = pass::home::OnCallSchedule::parse(text, "fuzz.ics")) {
    unsigned levels = schedule->levels();
    if (levels < 1) std::abort();
    for (int day = -400; day <= 400; day += 37) {
      auto at = base + std::chrono::hours(24 * day + 5);
      for (unsigned level = 1; level <= levels + 1; ++level) (void)schedule->onCall(at, level);
    }
  }
  auto firstLine = text.substr(0, text.find('\n'));
  for (std::string_view zone : {"UTC", "Europe/Berlin"}) {
    auto quiet = pass::home::QuietHours::parse(firstLine, zone);
    if (!quiet) continue;
    for (int hour = 0; hour < 24 * 8; hour += 5) {
      auto at = base + std::chrono::hours(hour);
      auto next = quiet->nextAllowed(at);
      // The next allowed instant is not in the past and not inside the quiet hours.
      if (next < at || quiet->contains(next)) std::abort();
    }
  }
  return 0;
}
