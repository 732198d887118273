// A notice rendered as e-mail subject and body, SMS and webhook JSON: pure functions, no I/O.

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <boost/locale/utf.hpp>

#include "pass/home/notify.hpp"
#include "pass/iso_time.hpp"

namespace pass::home::notify {

namespace {

constexpr char32_t kReplacement = U'\uFFFD';

namespace utf = boost::locale::utf;

/// Calls `f(codePoint)` for each character of `text`; an invalid or truncated sequence yields
/// U+FFFD, and decoding goes on after it.
template <typename F>
void forEachCodePoint(std::string_view text, F f) {
  const char* p = text.data();
  const char* end = p + text.size();
  while (p != end) {
    utf::code_point cp = utf::utf_traits<char>::decode(p, end);
    f(cp == utf::illegal || cp == utf::incomplete ? kReplacement : static_cast<char32_t>(cp));
  }
}

void appendUtf8(std::string& out, char32_t cp) {
  utf::utf_traits<char>::encode(static_cast<utf::code_point>(cp), std::back_inserter(out));
}

bool isControl(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

void trimTrailingBlanks(std::string& s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
}

// GSM 03.38: the default alphabet beyond printable ASCII, and the extension table whose
// characters take an escape septet each. ASCII's backtick is in neither.
constexpr std::u32string_view kGsmBasicExtra = U"\n\r£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà";
constexpr std::u32string_view kGsmExtension = U"^{}\\[~]|€\f";
// Base letters of U+00C0..U+00FF, for the ones GSM lacks.
constexpr std::string_view kLatin1Base =
    "AAAAAAACEEEEIIIIDNOOOOOxOUUUUYTsaaaaaaaceeeeiiiidnooooo/ouuuuyty";

/// Septets of one character: 1, 2 (extension table) or 0 when GSM cannot carry it.
std::size_t gsmCost(char32_t cp) {
  if (kGsmExtension.find(cp) != std::u32string_view::npos) return 2;
  if (cp >= 0x20 && cp < 0x7F && cp != U'`') return 1;
  return kGsmBasicExtra.find(cp) != std::u32string_view::npos ? 1 : 0;
}

std::string_view gsmStandIn(char32_t cp) {
  switch (cp) {
    case U'\u2026':
      return "...";
    case U'`':
    case U'\u00B4':
    case U'\u2018':
    case U'\u2019':
    case U'\u201A':
    case U'\u2032':
      return "'";
    case U'\u00AB':
    case U'\u00BB':
    case U'\u201C':
    case U'\u201D':
    case U'\u201E':
    case U'\u2033':
      return "\"";
    case U'\u2010':
    case U'\u2011':
    case U'\u2012':
    case U'\u2013':
    case U'\u2014':
    case U'\u2015':
    case U'\u2212':
      return "-";
    case U'\u00A0':
    case U'\u202F':
    case U'\t':
      return " ";
    case U'\u2022':
      return "*";
    default:
      break;
  }
  if (cp >= 0xC0 && cp <= 0xFF) return kLatin1Base.substr(cp - 0xC0, 1);
  return "?";
}

/// `gsm` (already GSM-only) cut to `maxSeptets`, ending in "..." when cut.
std::string cutSeptets(std::string_view gsm, std::size_t maxSeptets) {
  if (gsmSeptets(gsm) <= maxSeptets) return std::string(gsm);
  std::string out;
  std::size_t used = 0;
  bool full = false;
  forEachCodePoint(gsm, [&](char32_t cp) {
    std::size_t cost = gsmCost(cp);
    if (full || used + cost + 3 > maxSeptets) {
      full = true;
      return;
    }
    used += cost;
    appendUtf8(out, cp);
  });
  trimTrailingBlanks(out);
  return out + "...";
}

std::string joinNonEmpty(std::string_view separator,
                         std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto part : parts) {
    if (part.empty()) continue;
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

/// The notice with every field cleaned once, so that no rendering sees raw bytes.
Notice cleaned(const Notice& n) {
  Notice c = n;
  for (std::string* field :
       {&c.kind, &c.customer, &c.site, &c.family, &c.model, &c.serial, &c.arrayName, &c.problem,
        &c.code, &c.severity, &c.meaning, &c.component, &c.ackUrl}) {
    *field = cleanLine(*field);
  }
  c.text = cleanText(n.text);
  c.detail = cleanText(n.detail);
  return c;
}

std::string ticketWord(const Notice& n) {
  return n.ticket > 0 ? fmt::format("Ticket #{}", n.ticket) : std::string("Ticket");
}

/// The notice's title: its problem, or what its kind says when it has none.
std::string title(const Notice& n) {
  if (!n.problem.empty()) return n.problem;
  if (n.kind == "storm_on") return "storm mode on";
  if (n.kind == "storm_summary") return "storm summary";
  if (n.kind == "test") return "test notification";
  return n.kind.empty() ? std::string("notification") : n.kind;
}

std::string headline(const Notice& n) {
  std::string what = title(n);
  if (n.kind == "opened") {
    return n.ticket > 0 ? fmt::format("New ticket #{}: {}", n.ticket, what)
                        : fmt::format("New ticket: {}", what);
  }
  if (n.kind == "escalated") {
    return fmt::format("{} escalated, not acknowledged in time: {}", ticketWord(n), what);
  }
  auto labelled = [&](std::string_view label) {
    return n.problem.empty() ? std::string(label) : fmt::format("{}: {}", label, n.problem);
  };
  if (n.kind == "storm_on") return labelled("Storm mode on");
  if (n.kind == "storm_summary") return labelled("Storm summary");
  if (n.kind == "test") return labelled("PASS test notification");
  return fmt::format("{} {}: {}", ticketWord(n), n.kind.empty() ? "changed" : n.kind, what);
}

std::string where(const Notice& n) { return joinNonEmpty("/", {n.customer, n.site}); }

std::string subjectOf(const Notice& n) {
  std::string tag = n.ticket > 0 ? fmt::format("[PASS #{}]", n.ticket) : std::string("[PASS]");
  std::string head = joinNonEmpty(" ", {tag, where(n), n.model, n.serial});
  std::string kind = n.kind.empty() ? std::string() : fmt::format(" ({})", n.kind);
  return cutChars(fmt::format("{}: {}{}", head, title(n), kind), kSubjectMaxChars);
}

std::string arrayLine(const Notice& n) {
  std::string serial = n.serial.empty() ? std::string() : "serial " + n.serial;
  std::string name = n.arrayName.empty() ? std::string() : "\"" + n.arrayName + "\"";
  return joinNonEmpty(", ", {joinNonEmpty(" ", {n.family, n.model}), serial, name});
}

std::string bodyOf(const Notice& n) {
  constexpr std::size_t kLabelWidth = 13;
  std::string out = headline(n) + "\n\n";
  auto field = [&](std::string_view label, std::string_view value) {
    if (value.empty()) return;
    std::string prefix = fmt::format("{:<{}}", fmt::format("{}:", label), kLabelWidth);
    std::string indent(kLabelWidth, ' ');
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = std::min(value.find('\n', start), value.size());
      out += (start == 0 ? prefix : indent);
      out += value.substr(start, end - start);
      trimTrailingBlanks(out);
      out += '\n';
      start = end + 1;
    }
  };
  field("Array", arrayLine(n));
  field("Site", n.site);
  field("Customer", n.customer);
  field("Severity", n.severity);
  field("Code", n.code);
  field("Component", n.component);
  field("Meaning", n.meaning);
  field("Array text", n.text);
  if (n.count > 0) field("Occurrences", std::to_string(n.count));
  if (n.firstSeenMs > 0) field("First seen", isoUtc(n.firstSeenMs));
  if (n.lastSeenMs > 0) field("Last seen", isoUtc(n.lastSeenMs));
  if (n.ticket > 0) field("Ticket", fmt::format("#{}", n.ticket));
  if (!n.ackUrl.empty()) out += fmt::format("\nAcknowledge: {}\n", n.ackUrl);
  if (!n.detail.empty()) out += fmt::format("\n{}\n", n.detail);
  return out;
}

std::string smsOf(const Notice& n) {
  constexpr std::size_t kMinTextBesideLink = 40;
  std::string lead = n.ticket > 0 ? fmt::format("#{}", n.ticket) : std::string("PASS");
  std::string kind = n.kind.empty() ? std::string() : n.kind + ":";
  std::string what = title(n);
  std::string severity;
  if (!n.severity.empty() && what.find(n.severity) == std::string::npos) {
    severity = "(" + n.severity + ")";
  }
  std::string count = n.count > 1 ? fmt::format("x{}", n.count) : std::string();
  std::string core =
      toGsm(joinNonEmpty(" ", {lead, n.serial, kind, what, severity, where(n), count}));
  if (n.ackUrl.empty()) return cutSeptets(core, kSmsMaxSeptets);

  std::string link = toGsm(" Ack: " + n.ackUrl);
  std::size_t linkSeptets = gsmSeptets(link);
  if (gsmSeptets(core) + linkSeptets <= kSmsMaxSeptets) return core + link;
  // A cut link acknowledges nothing: keep it whole, or leave it out when it would crowd out
  // the text.
  if (linkSeptets + kMinTextBesideLink <= kSmsMaxSeptets) {
    return cutSeptets(core, kSmsMaxSeptets - linkSeptets) + link;
  }
  return cutSeptets(core, kSmsMaxSeptets);
}

std::string eventAction(std::string_view kind) {
  if (kind == "resolved") return "resolve";
  if (kind == "acknowledged") return "acknowledge";
  return "trigger";
}

std::string dedupKey(const Notice& n) {
  if (n.ticket > 0) return fmt::format("pass-{}", n.ticket);
  // Storm notices of one site belong together; a test stands alone.
  if (n.kind == "storm_on" || n.kind == "storm_summary") {
    return fmt::format("pass-storm-{}", where(n));
  }
  return {};
}

}  // namespace

std::string cleanLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  forEachCodePoint(text, [&](char32_t cp) {
    if (isControl(cp) || cp == U' ') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
      return;
    }
    appendUtf8(out, cp);
  });
  trimTrailingBlanks(out);
  return out;
}

std::string cleanText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool afterCr = false;
  forEachCodePoint(text, [&](char32_t cp) {
    bool lineBreak = cp == U'\n' || cp == U'\r';
    if (lineBreak) {
      if (!(cp == U'\n' && afterCr)) {
        trimTrailingBlanks(out);
        out.push_back('\n');
      }
    } else if (cp == U'\t') {
      out.push_back('\t');
    } else {
      appendUtf8(out, isControl(cp) ? U' ' : cp);
    }
    afterCr = cp == U'\r';
  });
  trimTrailingBlanks(out);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t')) {
    out.pop_back();
  }
  std::size_t first = out.find_first_not_of("\n");
  return first == std::string::npos ? std::string() : out.substr(first);
}

std::string cutChars(std::string_view utf8, std::size_t maxChars) {
  std::size_t chars = 0;
  forEachCodePoint(utf8, [&](char32_t) { ++chars; });
  if (chars <= maxChars) return std::string(utf8);
  if (maxChars < 3) return std::string(maxChars, '.');
  std::string out;
  std::size_t kept = 0;
  forEachCodePoint(utf8, [&](char32_t cp) {
    if (kept == maxChars - 3) return;
    appendUtf8(out, cp);
    ++kept;
  });
  trimTrailingBlanks(out);
  return out + "...";
}

std::size_t gsmSeptets(std::string_view utf8) {
  std::size_t total = 0;
  bool representable = true;
  forEachCodePoint(utf8, [&](char32_t cp) {
    std::size_t cost = gsmCost(cp);
    if (cost == 0) representable = false;
    total += cost;
  });
  return representable ? total : SIZE_MAX;
}

std::string toGsm(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  forEachCodePoint(utf8, [&](char32_t cp) {
    if (gsmCost(cp) > 0) {
      appendUtf8(out, cp);
      return;
    }
    out += gsmStandIn(cp);
  });
  return out;
}

std::string_view pagerDutySeverity(std::string_view vendorSeverity) {
  struct Mapping {
    std::string_view word, severity;
  };
  // The four families' scales (vendor-codes/*/...-codes.json "severities"); no word means
  // different things in two of them. Hitachi SVP and DF share acute/serious/moderate/service.
  static constexpr std::array<Mapping, 13> kMap{{
      {"acute", "critical"},
      {"serious", "error"},
      {"moderate", "warning"},
      {"service", "info"},
      {"fatal", "critical"},
      {"critical", "critical"},
      {"major", "error"},
      {"minor", "warning"},
      {"degraded", "warning"},
      {"informational", "info"},
      {"debug", "info"},
      {"warning", "warning"},
      {"notice", "info"},
  }};
  std::string word = cleanLine(vendorSeverity);
  std::transform(word.begin(), word.end(), word.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
  if (word == "info") return "info";
  for (const auto& m : kMap) {
    if (m.word == word) return m.severity;
  }
  return "error";
}

Rendered render(const Notice& notice) {
  Notice n = cleaned(notice);
  return Rendered{.subject = subjectOf(n), .text = bodyOf(n), .sms = smsOf(n)};
}

nlohmann::json webhookJson(const Notice& notice) {
  Notice n = cleaned(notice);
  auto time = [](std::int64_t ms) -> nlohmann::json {
    return ms > 0 ? nlohmann::json(isoUtc(ms)) : nlohmann::json(nullptr);
  };
  return {
      {"schema", "pass.notice.v1"},
      {"ticket", n.ticket},
      {"kind", n.kind},
      {"summary", subjectOf(n)},
      {"customer", n.customer},
      {"site", n.site},
      {"array",
       {{"family", n.family}, {"model", n.model}, {"serial", n.serial}, {"name", n.arrayName}}},
      {"problem", n.problem},
      {"code", n.code},
      {"severity", n.severity},
      {"meaning", n.meaning},
      {"text", n.text},
      {"component", n.component},
      {"count", n.count},
      {"first_seen", time(n.firstSeenMs)},
      {"last_seen", time(n.lastSeenMs)},
      {"ack_url", n.ackUrl},
      {"detail", n.detail},
  };
}

nlohmann::json pagerDutyEvent(const Notice& notice, std::string_view routingKey) {
  Notice n = cleaned(notice);
  nlohmann::json event = {{"routing_key", cleanLine(routingKey)},
                          {"event_action", eventAction(n.kind)}};
  if (auto key = dedupKey(n); !key.empty()) event["dedup_key"] = cutChars(key, 255);
  if (event["event_action"] != "trigger") return event;

  std::string severity = "error";
  if (n.kind == "storm_on" || n.kind == "storm_summary") {
    severity = "warning";
  } else if (n.kind == "test") {
    severity = "info";
  } else {
    severity = pagerDutySeverity(n.severity);
  }
  nlohmann::json payload = {
      {"summary", cutChars(subjectOf(n), kPagerDutySummaryMaxChars)},
      {"source", !n.serial.empty() ? n.serial
                 : !n.site.empty() ? n.site
                                   : std::string("pass")},
      {"severity", severity},
  };
  if (std::int64_t at = n.lastSeenMs > 0 ? n.lastSeenMs : n.firstSeenMs; at > 0) {
    payload["timestamp"] = isoUtc(at);
  }
  if (!n.component.empty()) payload["component"] = n.component;
  if (!n.site.empty()) payload["group"] = n.site;
  if (!n.code.empty()) payload["class"] = n.code;

  nlohmann::json details = nlohmann::json::object();
  if (n.ticket > 0) details["ticket"] = n.ticket;
  details["kind"] = n.kind;
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string*>{"customer", &n.customer},
        {"site", &n.site},
        {"family", &n.family},
        {"model", &n.model},
        {"serial", &n.serial},
        {"array_name", &n.arrayName},
        {"problem", &n.problem},
        {"code", &n.code},
        {"severity", &n.severity},
        {"meaning", &n.meaning},
        {"text", &n.text},
        {"detail", &n.detail}}) {
    if (!value->empty()) details[key] = *value;
  }
  details["count"] = n.count;
  if (n.firstSeenMs > 0) details["first_seen"] = isoUtc(n.firstSeenMs);
  if (n.lastSeenMs > 0) details["last_seen"] = isoUtc(n.lastSeenMs);
  payload["custom_details"] = std::move(details);

  event["payload"] = std::move(payload);
  event["client"] = "PASS";
  if (!n.ackUrl.empty()) {
    event["links"] = nlohmann::json::array({{{"href", n.ackUrl}, {"text", "Acknowledge"}}});
  }
  return event;
}

}  // namespace pass::home::notify
