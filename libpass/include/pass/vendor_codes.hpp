#pragma once
/// Vendor code tables (vendor-codes/<family>/*-codes.json): code or code pattern → meaning,
/// component, severity, suggested action and the public source of the entry. Loaded and
/// checked at run time; the reviewed copies are built in.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pass/result.hpp"

namespace pass {

struct CodeEntry {
  /// As written. Syntax "hex": hex digits, 'x' = any hex digit ("2180xx"), after an optional
  /// literal "0x" ("0x02700xx"). Syntax "name": a word matched whole ("drive.alarm").
  std::string code;
  std::string meaning;
  std::string component;
  std::string severity;  // empty when the source gives none
  std::string action;
  std::string source;
  /// False when the vendor has not published what the code means (the code is known from,
  /// say, a guide's example): `meaning` then says what is known, and the array's own text is
  /// the better title for the alert.
  bool meaningPublished = true;
};

/// Where a severity stands on its family's scale, for the home's default rules.
enum class SeverityClass {
  kUrgent,   // at or above the table's urgent_from: a ticket, notified at any hour
  kTicket,   // at or above ticket_from: a ticket, held back during quiet hours
  kRecord,   // below ticket_from: stored, no ticket
  kUnknown,  // not on the scale (or the table has none)
};

class CodeTable {
 public:
  /// Parses and checks a table: {"schema": 1, "family": ..., "note": ..., "code_syntax":
  /// "hex" (the default) or "name", "severities": [the family's scale, most urgent first],
  /// "ticket_from" and "urgent_from": severities on that scale (required with it), "codes":
  /// [entries]}. An entry's severity must be on the table's scale.
  /// Every entry needs code, meaning and source; "meaning_published" is an optional boolean,
  /// the other keys strings; unknown keys are errors. Errors
  /// ("codes.bad_table") name `file`, the entry's index and the key.
  static Result<CodeTable> parse(std::string_view json, std::string_view file);

  const std::string& family() const { return family_; }
  const std::vector<CodeEntry>& entries() const { return entries_; }
  /// The family's severity scale, most urgent first (empty when the table declares none).
  const std::vector<std::string>& severities() const { return severities_; }
  /// The default rule for an alert of `severity` (case-insensitive).
  SeverityClass classify(std::string_view severity) const;

  /// The most specific entry matching `code` (case-insensitive; fewest 'x' wins), or nullptr.
  const CodeEntry* find(std::string_view code) const;

 private:
  std::string family_;
  bool names_ = false;  // code_syntax "name"
  std::vector<std::string> severities_;
  std::size_t ticketFrom_ = 0;  // index into severities_
  std::size_t urgentFrom_ = 0;
  std::vector<CodeEntry> entries_;
};

/// The built-in table of `family`, or nullptr when there is none.
const CodeTable* builtinCodeTable(std::string_view family);

}  // namespace pass
