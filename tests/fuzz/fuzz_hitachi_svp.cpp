// libFuzzer harness for the hitachi_svp parsers: decodeSsb, parseProfiles and parseSimLine.
// Built and run by scripts/fuzz.sh (clang 16: libstdc++ 12 offers std::expected only when
// __cpp_concepts >= 202002, which no clang up to 16 defines although clang 16 implements what
// <expected> needs; the script overrides the macro). The lines below list what it links.
// sources: libpass/src/collectors/hitachi_svp/sim.cpp
// sources: libpass/src/text.cpp libpass/src/platform/posix/codepage.cpp
//
// The input is used three ways: as an SSB, as lines for a few fixed profiles, and, split at
// its first NUL byte, as a profile file followed by lines for the profiles it defines.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "collectors/hitachi_svp/sim.hpp"

namespace {

using pass::hitachi_svp::LineProfile;

constexpr std::string_view kProfiles = R"({"profiles": [
  {"name": "csv", "separator": ",",
   "fields": ["date", "time", "refcode", "severity", "part", "description"],
   "date_format": "%Y/%m/%d", "time_format": "%H:%M:%S", "comment_prefix": "#",
   "timezone": "local", "severity_map": {"Acute": "acute", "Moderate": "moderate"}},
  {"name": "tsv", "separator": "\t", "fields": ["date", "time", "severity", "ssb", "description"],
   "date_format": "%d-%b-%y", "time_format": "%H%M", "timezone": "+09:00",
   "severity_map": {"1": "service", "4": "acute"}},
  {"name": "bare", "separator": "|", "fields": ["skip", "refcode", "ssb", "part"]}
]})";

const std::vector<LineProfile>& fixedProfiles() {
  static const std::vector<LineProfile> profiles = [] {
    auto p = pass::hitachi_svp::parseProfiles(kProfiles, "fuzz");
    if (!p) std::abort();  // the harness itself is wrong
    return *p;
  }();
  return profiles;
}

bool isUpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

/// What every successful parse promises, whatever the input.
void checkEvent(const pass::CollectedEvent& ev, std::string_view line) {
  if (ev.code.size() != 6) std::abort();
  for (char c : ev.code) {
    if (!isUpperHex(c)) std::abort();
  }
  if (!ev.severity.empty() && ev.severity != "acute" && ev.severity != "serious" &&
      ev.severity != "moderate" && ev.severity != "service") {
    std::abort();
  }
  // raw is UTF-8; the line's exact bytes are raw itself or, when it is not, rawBytes.
  if (!pass::isCleanUtf8(ev.raw)) std::abort();
  const std::string& exact = ev.rawBytes ? *ev.rawBytes : ev.raw;
  if (!line.starts_with(exact) || exact.size() + 1 < line.size()) std::abort();
  if (!ev.id.empty()) std::abort();
}

void parseLines(const LineProfile& profile, std::string_view text) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto ev = pass::hitachi_svp::parseSimLine(profile, line);
    if (ev) {
      checkEvent(*ev, line);
    } else if (ev.error().code != "svp.bad_line" && ev.error().code != "svp.skipped_line") {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  auto ssb = pass::hitachi_svp::decodeSsb(input);
  if (ssb && (ssb->referenceCode.size() != 6 || ssb->simType.size() != 2)) std::abort();

  for (const auto& profile : fixedProfiles()) parseLines(profile, input);

  auto nul = input.find('\0');
  auto profiles = pass::hitachi_svp::parseProfiles(input.substr(0, nul), "fuzz.json");
  if (profiles && nul != std::string_view::npos) {
    for (const auto& profile : *profiles) parseLines(profile, input.substr(nul + 1));
  }
  return 0;
}
