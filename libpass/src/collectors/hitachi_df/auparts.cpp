#include "collectors/hitachi_df/auparts.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <span>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/text.hpp"

namespace pass::hitachi_df {
namespace {

constexpr std::string_view kFormat = "hitachi_df.snapshot.v1";

/// Column names that describe a part instead of saying where it sits: a board whose Type turns
/// to "---" when it fails must keep its key (the public HUS110 sample shows exactly that).
constexpr std::array<std::string_view, 10> kDescriptiveWords = {
    "status",  "type",     "capacity", "serial",   "vendor",
    "product", "revision", "speed",    "firmware", "model"};

bool isBlank(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool containsNoCase(std::string_view text, std::string_view word) {
  if (word.size() > text.size()) return false;
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (equalNoCase(text.substr(i, word.size()), word)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (isBlank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (isBlank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A view of a temporary string would dangle at the end of the statement.
std::string_view trim(std::string&&) = delete;

bool isNormal(std::string_view status) { return equalNoCase(status, kNormal); }

/// Text for messages and events: at most `max` bytes, control characters shown as '?'.
std::string excerpt(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : cutUtf8(s, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > max) out += "...";
  return out;
}

struct Line {
  std::string text;        // UTF-8 (toUtf8), without '\r' and trailing blanks
  std::string_view bytes;  // the same as the CLI wrote it
  std::size_t number = 0;
};

/// Lines are split before they are decoded: a '\n' byte is a line end in every encoding that
/// TextEncoding knows. Keys must survive the JSON cursor unchanged, and events must be JSON
/// text: both need UTF-8.
std::vector<Line> splitLines(std::string_view text, const TextEncoding& encoding) {
  std::vector<Line> lines;
  std::size_t number = 0;
  for (std::size_t start = 0; start < text.size();) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(start, end - start);
    while (!line.empty() && (isBlank(line.back()) || line.back() == '\r')) line.remove_suffix(1);
    lines.push_back(Line{toUtf8(line, encoding), line, ++number});
    start = end + 1;
  }
  return lines;
}

/// Fields separated by two or more blanks or a tab: column names and values may hold single
/// spaces ("Interface Board", "Serial Number", "Link Failure").
std::vector<std::string_view> splitWide(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && isBlank(line[i])) ++i;
    if (i >= line.size()) break;
    std::size_t start = i;
    while (i < line.size()) {
      if (line[i] == '\t') break;
      if (line[i] == ' ' && i + 1 < line.size() && isBlank(line[i + 1])) break;
      if (line[i] == ' ' && i + 1 == line.size()) break;
      ++i;
    }
    out.push_back(line.substr(start, i - start));
  }
  return out;
}

/// Fields separated by any blanks: for a row whose values touch when one overflows its column.
std::vector<std::string_view> splitNarrow(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && isBlank(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !isBlank(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool identifies(std::string_view column) {
  return std::none_of(kDescriptiveWords.begin(), kDescriptiveWords.end(),
                      [column](std::string_view w) { return containsNoCase(column, w); });
}

struct Section {
  std::string name;
  std::vector<std::string_view> columns;
  std::optional<std::size_t> status;  // index of the Status column
};

/// Reads one blank-line separated block into `parts`; true when it is a section with a Status
/// column.
bool readBlock(std::span<const Line> block, Parts& parts, std::map<std::string, int>& keyCount) {
  const Line& title = block.front();
  if (block.size() == 1) {
    parts.unparsed.push_back(BadRow{{},
                                    std::string(cutUtf8(title.text, kMaxRawBytes)),
                                    std::string(title.bytes.substr(0, kMaxRawBytes)),
                                    "a line on its own, not a section with a column header",
                                    title.number});
    return false;
  }
  Section s;
  s.name = std::string(trim(title.text));
  s.columns = splitWide(block[1].text);
  for (std::size_t i = 0; i < s.columns.size(); ++i) {
    if (equalNoCase(s.columns[i], "Status")) s.status = i;
  }
  parts.sections.push_back(s.name);
  for (const Line& row : block.subspan(2)) {
    auto bad = [&](std::string why) {
      parts.unparsed.push_back(BadRow{s.name, std::string(cutUtf8(row.text, kMaxRawBytes)),
                                      std::string(row.bytes.substr(0, kMaxRawBytes)),
                                      std::move(why), row.number});
    };
    if (row.text.size() > kMaxRawBytes) {
      bad(fmt::format("longer than {} bytes", kMaxRawBytes));
      continue;
    }
    auto values = splitWide(row.text);
    if (values.size() != s.columns.size()) {
      auto narrow = splitNarrow(row.text);
      if (narrow.size() != s.columns.size()) {
        bad(fmt::format("{} value(s) under {} column(s) of the header on line {}", values.size(),
                        s.columns.size(), block[1].number));
        continue;
      }
      values = std::move(narrow);
    }
    if (!s.status) continue;  // an informational section (Unit): nothing to watch
    PartRow r;
    r.section = s.name;
    r.key = s.name;
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i == *s.status || !identifies(s.columns[i])) continue;
      r.key += fmt::format("/{} {}", s.columns[i], values[i]);
    }
    // Rows that no column tells apart still get distinct keys, stable while the list is.
    if (int n = ++keyCount[r.key]; n > 1) r.key += fmt::format(" #{}", n);
    r.status = std::string(values[*s.status]);
    r.raw = std::string(row.text);
    r.bytes = std::string(row.bytes);
    r.line = row.number;
    parts.rows.push_back(std::move(r));
  }
  return s.status.has_value();
}

std::string normalise(std::string_view word) {
  std::string out;
  bool gap = false;
  for (char c : word) {
    char l = lower(c);
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) {
      if (gap && !out.empty()) out += '_';
      out += l;
      gap = false;
    } else {
      gap = true;
    }
  }
  return out.empty() ? "unknown" : out;
}

std::string unparsedKey(const BadRow& row) {
  std::string key = row.section + "\n" + row.raw;
  return std::string(cutUtf8(key, kMaxRawBytes));
}

}  // namespace

Result<Parts> parseAuparts(std::string_view text, const TextEncoding& encoding) {
  const auto lines = splitLines(text, encoding);
  Parts parts;
  std::map<std::string, int> keyCount;
  bool anyStatus = false;
  for (std::size_t i = 0; i < lines.size();) {
    if (lines[i].text.empty()) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < lines.size() && !lines[end].text.empty()) ++end;
    anyStatus = readBlock(std::span(lines).subspan(i, end - i), parts, keyCount) || anyStatus;
    if (parts.rows.size() > kMaxComponents) {
      return fail("df.bad_output", fmt::format("auparts lists more than {} components (line {})",
                                               kMaxComponents, lines[end - 1].number));
    }
    i = end;
  }
  if (!anyStatus) {
    std::string_view first;
    for (const auto& l : lines) {
      if (!l.text.empty()) {
        first = l.text;
        break;
      }
    }
    if (first.empty()) return fail("df.bad_output", "auparts printed nothing");
    return fail("df.bad_output",
                fmt::format("auparts printed no section with a Status column (line 1: \"{}\")",
                            excerpt(first, 80)));
  }
  return parts;
}

Result<std::string> parseUnitSerial(std::string_view text, const TextEncoding& encoding) {
  for (const auto& line : splitLines(text, encoding)) {
    // A view, so that the pieces below point into the line, not into temporaries.
    const std::string_view l = line.text;
    auto colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    if (!equalNoCase(trim(l.substr(0, colon)), "Serial Number")) continue;
    auto value = trim(l.substr(colon + 1));
    if (value.empty()) {
      return fail("df.bad_output",
                  fmt::format("auunitinfo line {}: the Serial Number is empty", line.number));
    }
    return std::string(value);
  }
  auto lines = splitLines(text.substr(0, text.find('\n')), encoding);
  std::string_view first = lines.empty() ? std::string_view() : trim(lines.front().text);
  return fail("df.bad_output", fmt::format("auunitinfo shows no \"Serial Number\" line (line 1: "
                                           "\"{}\")",
                                           excerpt(first, 80)));
}

Diff diff(const Snapshot* previous, const Parts& now) {
  static const Snapshot kEmpty;
  const Snapshot& prev = previous != nullptr ? *previous : kEmpty;
  Diff d;
  d.next.generation = prev.generation;
  d.next.serial = prev.serial;
  for (const PartRow& row : now.rows) {
    d.next.components[row.key] = Component{row.section, row.status};
    auto it = prev.components.find(row.key);
    if (it == prev.components.end()) {
      if (isNormal(row.status)) {
        if (previous != nullptr) ++d.newNormal;
        continue;
      }
      d.transitions.push_back(Transition{row.key, row.section, {}, row.status, row.raw, row.bytes});
      continue;
    }
    const std::string& was = it->second.status;
    if (was == row.status || (isNormal(was) && isNormal(row.status))) continue;
    d.transitions.push_back(Transition{row.key, row.section, was,
                                       isNormal(row.status) ? std::string(kNormal) : row.status,
                                       row.raw, row.bytes});
  }
  for (const auto& [key, component] : prev.components) {
    if (d.next.components.contains(key)) continue;
    d.next.components[key] = Component{component.section, std::string(kAbsent)};
    if (component.status == kAbsent) continue;
    d.transitions.push_back(
        Transition{key, component.section, component.status, std::string(kAbsent), key, {}});
  }
  // Keep the cursor bounded: components long gone are forgotten first.
  for (auto it = d.next.components.begin();
       d.next.components.size() > kMaxComponents && it != d.next.components.end();) {
    it = it->second.status == kAbsent ? d.next.components.erase(it) : std::next(it);
  }
  for (const BadRow& row : now.unparsed) {
    auto key = unparsedKey(row);
    if (d.next.unparsed.size() < kMaxUnparsedKept) d.next.unparsed.insert(key);
    if (!prev.unparsed.contains(key)) d.newUnparsed.push_back(row);
  }
  if (previous == nullptr || d.next.components != prev.components) ++d.next.generation;
  return d;
}

std::string eventCode(std::string_view section, std::string_view status) {
  return normalise(section) + "." +
         (status == kAbsent ? std::string("removed") : normalise(status));
}

std::string toJson(const Snapshot& snapshot) {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& [key, c] : snapshot.components) {
    components.push_back({{"key", key}, {"section", c.section}, {"status", c.status}});
  }
  nlohmann::json j = {{"format", kFormat},
                      {"generation", snapshot.generation},
                      {"serial", snapshot.serial},
                      {"components", std::move(components)},
                      {"unparsed", snapshot.unparsed}};
  // Every key is UTF-8 (splitLines); replacement instead of an exception all the same.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Snapshot> parseSnapshot(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  auto bad = [](std::string_view what) { return fail("df.bad_cursor", fmt::format("{}", what)); };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto format = j.find("format");
  if (format == j.end() || !format->is_string() || format->get<std::string>() != kFormat) {
    return bad(fmt::format("\"format\" is not \"{}\"", kFormat));
  }
  Snapshot s;
  auto generation = j.find("generation");
  if (generation == j.end() || !generation->is_number_unsigned()) {
    return bad("\"generation\" must be an unsigned number");
  }
  s.generation = generation->get<std::uint64_t>();
  auto serial = j.find("serial");
  if (serial == j.end() || !serial->is_string()) return bad("\"serial\" must be a string");
  s.serial = serial->get<std::string>();
  auto components = j.find("components");
  if (components == j.end() || !components->is_array()) return bad("\"components\" must be a list");
  std::size_t index = 0;
  for (const auto& c : *components) {
    auto field = [&c](const char* name) -> const nlohmann::json* {
      auto it = c.find(name);
      return it != c.end() && it->is_string() ? &*it : nullptr;
    };
    const nlohmann::json* key = c.is_object() ? field("key") : nullptr;
    const nlohmann::json* section = c.is_object() ? field("section") : nullptr;
    const nlohmann::json* status = c.is_object() ? field("status") : nullptr;
    if (key == nullptr || section == nullptr || status == nullptr) {
      return bad(fmt::format("components[{}] needs string key, section and status", index));
    }
    s.components[key->get<std::string>()] =
        Component{section->get<std::string>(), status->get<std::string>()};
    ++index;
  }
  auto unparsed = j.find("unparsed");
  if (unparsed == j.end() || !unparsed->is_array()) return bad("\"unparsed\" must be a list");
  for (const auto& u : *unparsed) {
    if (!u.is_string()) return bad("\"unparsed\" must hold strings");
    s.unparsed.insert(u.get<std::string>());
  }
  return s;
}

}  // namespace pass::hitachi_df
