#pragma once
/// Hitachi modular arrays (AMS, HUS 100) as the SNM2 CLI shows them: `auparts -unit` component
/// tables, the serial number in `auunitinfo -unit`, and the snapshot diff that turns two
/// `auparts` answers into alerts and recoveries. Everything here is pure: no I/O, no
/// exceptions, no OpenSSL (the fuzzer links this file and text.cpp only).

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pass/result.hpp"
#include "pass/text.hpp"

namespace pass::hitachi_df {

/// The status word every healthy component shows; anything else is a fault.
inline constexpr std::string_view kNormal = "Normal";
/// Our own pseudo-status of a component that an earlier answer listed and this one does not.
inline constexpr std::string_view kAbsent = "(absent)";

/// One component row of a section that has a Status column.
struct PartRow {
  std::string section;   // "Interface Board"
  std::string key;       // "Interface Board/CTL 1/Interface Board 1"
  std::string status;    // "Alarm", as printed
  std::string raw;       // the row as printed (UTF-8), without its line end
  std::string bytes;     // the same as the CLI wrote it
  std::size_t line = 0;  // 1-based line number in the answer
};

/// A line inside a section that does not fit the section's column header.
struct BadRow {
  std::string section;  // empty for a block with no header line
  std::string raw;      // UTF-8, at most kMaxRawBytes
  std::string bytes;    // the row as the CLI wrote it, at most kMaxRawBytes
  std::string why;
  std::size_t line = 0;
};

/// What one `auparts -unit` answer lists.
struct Parts {
  std::vector<PartRow> rows;
  std::vector<BadRow> unparsed;
  std::vector<std::string> sections;  // every section name, in order
};

/// Reads an `auparts -unit` answer: blank-line separated sections; a section's first line is
/// its name, the second its column header (columns separated by two or more spaces), the rest
/// its rows. The Status column is found by name; the component's key is the section plus every
/// column that names a place rather than describing the part (not Status, Type, capacities,
/// serial numbers ...). Sections without a Status column (Unit) are listed but give no rows.
/// Tolerates "\r\n", trailing blanks and a missing final newline. A row that does not fit its
/// header is a BadRow. Each line is decoded from `encoding` first (toUtf8: what is not text is
/// U+FFFD). Error "df.bad_output" (naming line 1 and an excerpt) when no section with a Status
/// column is found at all: the whole answer is not an auparts table.
Result<Parts> parseAuparts(std::string_view text, const TextEncoding& encoding = {});

/// The "Serial Number" of an `auunitinfo -unit` answer. Error "df.bad_output" when absent.
Result<std::string> parseUnitSerial(std::string_view text, const TextEncoding& encoding = {});

/// A component's last known state.
struct Component {
  std::string section;
  std::string status;  // as printed, or kAbsent
  friend bool operator==(const Component&, const Component&) = default;
};

/// The collector's memory between runs (the cursor): each component's last status.
struct Snapshot {
  /// Counts the snapshots that differed from their predecessor; part of every event id, so an
  /// Alarm that clears and returns is a new event while a repeated run is not.
  std::uint64_t generation = 0;
  std::map<std::string, Component> components;  // by key
  std::set<std::string> unparsed;               // rows already reported as unparsed
  std::string serial;                           // verified by auunitinfo; empty = not yet
};

/// One component's change between two answers.
struct Transition {
  std::string key;
  std::string section;
  std::string from;   // empty: the component was not known before
  std::string to;     // kAbsent: no longer listed
  std::string raw;    // the row now, or the key when absent
  std::string bytes;  // the row now as the CLI wrote it; empty when absent
  bool recovery() const { return to == kNormal; }
};

/// What changed since `previous` (nullptr: the first run, when every component that is not
/// Normal is reported). Leaving Normal, changing between two faults, and disappearing are
/// alerts; returning to Normal is a recovery. A new component that is Normal says nothing.
/// Also returns the next snapshot (generation advanced when anything changed) and the BadRows
/// not reported before.
struct Diff {
  std::vector<Transition> transitions;
  std::vector<BadRow> newUnparsed;
  Snapshot next;
  std::size_t newNormal = 0;  // components listed for the first time, Normal
};
Diff diff(const Snapshot* previous, const Parts& now);

/// Our event code for a section and status: lower case, runs of other characters as '_',
/// joined by '.': ("Host Connector", "Alarm") -> "host_connector.alarm"; kAbsent -> "removed".
std::string eventCode(std::string_view section, std::string_view status);

/// The snapshot as cursor JSON, and back. Errors ("df.bad_cursor") say which field is wrong.
std::string toJson(const Snapshot& snapshot);
Result<Snapshot> parseSnapshot(std::string_view json);

/// Limits that keep the cursor bounded whatever the CLI prints.
inline constexpr std::size_t kMaxComponents = 10000;
inline constexpr std::size_t kMaxUnparsedKept = 256;
inline constexpr std::size_t kMaxRawBytes = 512;

}  // namespace pass::hitachi_df
