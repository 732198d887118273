// NimbleOS REST answers → CollectedEvents. Field names and enums are those of the public
// NimbleOS REST reference and SDKs (vendor-interfaces reference, section 4); no real capture
// was available, so every field is optional here and a record that lacks what a cursor needs
// is still reported, marked "unparsed".

#include "collectors/nimble/parse.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include <fmt/format.h>

namespace pass::nimble {

namespace {

using nlohmann::json;

// Far deeper than any NimbleOS answer; keeps hostile input from recursing without end.
constexpr int kMaxDepth = 64;
// Milliseconds since the epoch pass 1e11 in 1973, seconds only in the year 5138.
constexpr std::int64_t kSecondsLimit = 100'000'000'000;

/// The deepest nesting of arrays and objects in `text`, strings skipped.
int nestingDepth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool inString = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

std::string dumpRecord(const json& record) {
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// FNV-1a: a stable name for a record that has no id of its own.
std::string recordHash(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

/// An integer field, also when the array writes it as a string of digits.
std::optional<std::int64_t> integerField(const json& record, const char* name) {
  auto it = record.find(name);
  if (it == record.end()) return std::nullopt;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() &&
        it->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return it->get<std::int64_t>();
  }
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return v;
  }
  return std::nullopt;
}

/// A text field; numbers are written as text, anything else is "".
std::string textField(const json& record, const char* name) {
  auto it = record.find(name);
  if (it == record.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return dumpRecord(*it);
  return {};
}

std::string lower(std::string s) {
  std::ranges::transform(s, s.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string joinNonEmpty(std::string_view a, std::string_view b, std::string_view separator) {
  if (a.empty()) return std::string(b);
  if (b.empty() || a == b) return std::string(a);
  return fmt::format("{}{}{}", a, separator, b);
}

/// A record that is not an object or has no id: reported with its raw text.
CollectedEvent unparsed(std::string_view prefix, std::string raw, std::string why) {
  CollectedEvent e;
  e.id = fmt::format("{}:unparsed:{}", prefix, recordHash(raw));
  e.code = std::string(kUnparsedCode);
  e.text = std::move(why);
  e.raw = std::move(raw);
  return e;
}

}  // namespace

std::string excerpt(std::string_view text, std::size_t max) {
  std::string out;
  for (char c : cutUtf8(text, max)) {
    out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  }
  if (text.size() > max) out += "...";
  return out;
}

std::optional<std::int64_t> timestampMs(std::int64_t value) {
  if (value <= 0) return std::nullopt;
  if (value >= kSecondsLimit) return value;
  return value * 1000;
}

Result<Page> parsePage(std::string_view body, std::string_view what) {
  // One byte that is not UTF-8 costs its string (U+FFFD), not the page.
  std::string decoded;
  const std::string_view text = asUtf8(body, {}, decoded);
  auto bad = [&](std::string_view why) {
    return fail("nimble.bad_output",
                fmt::format("{}: {}; the answer starts: {}", what, why, excerpt(text)));
  };
  if (nestingDepth(text) > kMaxDepth) return bad("JSON nested deeper than 64 levels");
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return bad("not JSON");
  if (!doc.is_object()) return bad("$: not a JSON object");
  auto data = doc.find("data");
  if (data == doc.end()) return bad("$.data: missing");
  if (!data->is_array()) return bad("$.data: not an array");
  Page page;
  for (const char* name : {"startRow", "endRow", "totalRows"}) {
    if (!doc.contains(name)) continue;
    auto value = integerField(doc, name);
    if (!value || *value < 0) return bad(fmt::format("$.{}: not a row number", name));
    if (std::string_view(name) == "startRow") page.startRow = *value;
    if (std::string_view(name) == "endRow") page.endRow = *value;
    if (std::string_view(name) == "totalRows") page.totalRows = *value;
  }
  page.records = std::move(data->get_ref<json::array_t&>());
  return page;
}

EventRecord readEvent(const json& record) {
  EventRecord out;
  std::string raw = dumpRecord(record);
  if (!record.is_object()) {
    out.event = unparsed("event", std::move(raw), "an event that is not a JSON object");
    out.key = out.event.id;
    return out;
  }
  std::string id = textField(record, "id");
  if (id.empty()) {
    out.event = unparsed("event", std::move(raw), "an event without an id");
    out.key = out.event.id;
    return out;
  }
  CollectedEvent& e = out.event;
  e.id = "event:" + id;
  out.key = e.id;
  if (auto ts = integerField(record, "timestamp")) out.ms = timestampMs(*ts);
  e.occurredMs = out.ms;
  e.severity = lower(textField(record, "severity"));
  e.component = joinNonEmpty(textField(record, "target_type"), textField(record, "target"), " ");
  e.text = joinNonEmpty(textField(record, "summary"), textField(record, "activity"), ": ");
  std::vector<std::string> problems;
  if (auto type = integerField(record, "type")) {
    e.code = std::to_string(*type);
  } else {
    e.code = std::string(kUnparsedCode);
    problems.push_back("no numeric type");
  }
  if (!out.ms) problems.push_back("no usable timestamp");
  if (!problems.empty()) {
    std::string why;
    for (const auto& p : problems) why += fmt::format("{}{}", why.empty() ? "" : ", ", p);
    e.text = joinNonEmpty(fmt::format("event {} has {}", id, why), e.text, ": ");
  }
  e.raw = std::move(raw);
  return out;
}

AlarmRecord readAlarm(const json& record) {
  AlarmRecord out;
  std::string raw = dumpRecord(record);
  if (!record.is_object()) {
    out.event = unparsed("alarm", std::move(raw), "an alarm that is not a JSON object");
    return out;
  }
  out.id = textField(record, "id");
  if (out.id.empty()) {
    out.event = unparsed("alarm", std::move(raw), "an alarm without an id");
    return out;
  }
  CollectedEvent& e = out.event;
  std::optional<std::int64_t> onsetTime = integerField(record, "onset_time");
  out.onset = textField(record, "curr_onset_event_id");
  if (out.onset.empty() && onsetTime) out.onset = fmt::format("t{}", *onsetTime);
  if (auto status = record.find("status"); status != record.end() && status->is_string()) {
    auto s = lower(status->get<std::string>());
    out.active = s == "open" || s == "acknowledged";
  }
  e.id = fmt::format("alarm:{}:{}", out.id, out.onset);
  if (onsetTime) e.occurredMs = timestampMs(*onsetTime);
  e.severity = lower(textField(record, "severity"));
  e.component =
      joinNonEmpty(textField(record, "object_type"), textField(record, "object_name"), " ");
  e.text = textField(record, "activity");
  if (auto type = integerField(record, "type")) {
    e.code = std::to_string(*type);
  } else {
    e.code = std::string(kUnparsedCode);
    e.text = joinNonEmpty(fmt::format("alarm {} has no numeric type", out.id), e.text, ": ");
  }
  e.raw = std::move(raw);
  return out;
}

std::string errorText(std::string_view body) {
  if (nestingDepth(body) <= kMaxDepth) {
    auto doc = json::parse(body, nullptr, false);
    if (doc.is_object()) {
      auto messages = doc.find("messages");
      if (messages != doc.end() && messages->is_array()) {
        std::string out;
        for (const auto& m : *messages) {
          if (!m.is_object()) continue;
          auto text = joinNonEmpty(textField(m, "code"), textField(m, "text"), ": ");
          if (!text.empty()) out += fmt::format("{}{}", out.empty() ? "" : "; ", text);
        }
        if (!out.empty()) return excerpt(out, 300);
      }
    }
  }
  return body.empty() ? std::string("an empty answer") : excerpt(body);
}

}  // namespace pass::nimble
