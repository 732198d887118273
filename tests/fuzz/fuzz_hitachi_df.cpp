// libFuzzer harness for the hitachi_df parsers: parseAuparts, parseUnitSerial, the snapshot
// diff and the cursor JSON. Built and run by scripts/fuzz.sh (see fuzz_hitachi_svp.cpp for the
// clang note). The lines below list what it links.
// sources: libpass/src/collectors/hitachi_df/auparts.cpp
// sources: libpass/src/text.cpp libpass/src/platform/posix/codepage.cpp
//
// The input is an auparts answer. Properties: the parser never fails on its own bounds; what it
// reads survives the cursor round trip exactly; reading the same answer twice reports nothing
// the second time; and, split at the first NUL byte, the second half diffed against the first
// half's snapshot gives only transitions between different states.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "collectors/hitachi_df/auparts.hpp"
#include "support.hpp"

namespace {

namespace df = pass::hitachi_df;

void checkParts(const df::Parts& parts) {
  for (const auto& r : parts.rows) {
    check(!r.status.empty());
    check(r.key.starts_with(r.section));
    check(r.raw.size() <= df::kMaxRawBytes);
    check(r.line > 0);
  }
  for (const auto& b : parts.unparsed) check(b.raw.size() <= df::kMaxRawBytes && b.line > 0);
  check(parts.rows.size() <= df::kMaxComponents);
}

/// The snapshot of `parts` read back from its JSON equals itself, and a second look at the same
/// answer changes nothing.
df::Snapshot roundTrip(const df::Parts& parts) {
  df::Diff first = df::diff(nullptr, parts);
  auto back = df::parseSnapshot(df::toJson(first.next));
  check(back.has_value());
  check(back->components == first.next.components);
  check(back->unparsed == first.next.unparsed);
  check(back->generation == first.next.generation);
  df::Diff again = df::diff(&*back, parts);
  check(again.transitions.empty());
  if (parts.unparsed.size() <= df::kMaxUnparsedKept) check(again.newUnparsed.empty());
  check(again.next.generation == back->generation);
  return *back;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  auto serial = df::parseUnitSerial(input);
  if (serial) check(!serial->empty());
  (void)df::parseSnapshot(input);

  auto nul = input.find('\0');
  auto parts = df::parseAuparts(input.substr(0, nul));
  if (!parts) {
    check(parts.error().code == "df.bad_output");
    return 0;
  }
  checkParts(*parts);
  df::Snapshot before = roundTrip(*parts);
  if (nul == std::string_view::npos) return 0;

  auto later = df::parseAuparts(input.substr(nul + 1));
  if (!later) return 0;
  checkParts(*later);
  df::Diff d = df::diff(&before, *later);
  for (const auto& t : d.transitions) {
    check(t.from != t.to);
    check(!t.to.empty());
    check(!df::eventCode(t.section, t.to).empty());
  }
  return 0;
}
