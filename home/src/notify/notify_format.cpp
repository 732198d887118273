// Wire formats of the channels, without I/O: the RFC 5322 message (RFC 2047 headers,
// quoted-printable body), the SMS gateway's request template and HTTP status classification.

#include <algorithm>
#include <ctime>
#include <random>
#include <string>
#include <string_view>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/evp.h>

#include "pass/home/notify.hpp"

namespace pass::home::notify {

namespace {

// RFC 5322 2.1.1: lines SHOULD stay within 78 characters; RFC 2047: an encoded word is at
// most 75. 39 bytes of UTF-8 become 52 base64 characters, 64 with "=?UTF-8?B?" and "?=".
constexpr std::size_t kFoldColumn = 78;
constexpr std::size_t kEncodedWordBytes = 39;
// RFC 2045 6.7: encoded lines are at most 76 characters, the soft break's "=" included.
constexpr std::size_t kQpLine = 75;
// RFC 5322 2.1.1: a line MUST NOT exceed 998 characters; a longer one goes quoted-printable.
constexpr std::size_t kMaxLine = 998;

bool isAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string trim(std::string_view s) {
  auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  auto last = s.find_last_not_of(" \t");
  return std::string(s.substr(first, last - first + 1));
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  return out;
}

/// RFC 2047 B-encoded words for `text` (valid UTF-8), split between characters and joined by
/// folding white space.
std::string encodedWords(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    std::size_t take = std::min(kEncodedWordBytes, text.size());
    // Never split a character: back up over continuation bytes.
    while (take < text.size() && take > 0 &&
           (static_cast<unsigned char>(text[take]) & 0xC0) == 0x80) {
      --take;
    }
    if (!out.empty()) out += "\r\n ";
    out += fmt::format("=?UTF-8?B?{}?=", base64(text.substr(0, take)));
    text.remove_prefix(take);
  }
  return out;
}

/// `name: value` folded at spaces so that lines stay near kFoldColumn, with CRLF.
std::string foldedHeader(std::string_view name, std::string_view value) {
  std::string out = fmt::format("{}:", name);
  std::size_t column = out.size();
  std::size_t start = 0;
  while (start < value.size()) {
    std::size_t end = std::min(value.find(' ', start), value.size());
    std::string_view word = value.substr(start, end - start);
    if (!word.empty()) {
      if (column + 1 + word.size() > kFoldColumn && column > name.size() + 1) {
        out += "\r\n";
        column = 0;
      }
      out += ' ';
      out += word;
      column += 1 + word.size();
    }
    start = end + 1;
  }
  return out + "\r\n";
}

/// An unstructured header (Subject): folded ASCII, or encoded words when it is not ASCII or
/// holds "=?" that a reader would take for the start of one.
std::string unstructuredHeader(std::string_view name, std::string_view value) {
  if (isAscii(value) && value.find("=?") == std::string_view::npos) {
    return foldedHeader(name, value);
  }
  return fmt::format("{}: {}\r\n", name, encodedWords(value));
}

/// A mailbox for From/To: "addr", or "Name <addr>" with the name quoted when it holds
/// specials and encoded when it is not ASCII.
std::string mailbox(std::string_view address) {
  std::string text = cleanLine(address);
  auto lt = text.rfind('<');
  if (lt == std::string::npos) return text;
  std::string name = trim(std::string_view(text).substr(0, lt));
  std::string angle = text.substr(lt);
  if (name.empty()) return angle;
  if (!isAscii(name)) return fmt::format("{} {}", encodedWords(name), angle);
  bool quoted = name.size() >= 2 && name.front() == '"' && name.back() == '"';
  if (quoted || name.find_first_of("()<>[]:;@\\,.\"") == std::string::npos) {
    return fmt::format("{} {}", name, angle);
  }
  std::string escaped;
  for (char c : name) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return fmt::format("\"{}\" {}", escaped, angle);
}

std::string addressList(const std::vector<std::string>& to) {
  std::string out = "To:";
  std::size_t column = out.size();
  for (std::size_t i = 0; i < to.size(); ++i) {
    std::string box = mailbox(to[i]);
    if (i > 0) {
      out += ',';
      ++column;
      if (column + 1 + box.size() > kFoldColumn) {
        out += "\r\n";
        column = 0;
      }
    }
    out += ' ';
    out += box;
    column += 1 + box.size();
  }
  return out + "\r\n";
}

std::string messageIdPart(std::string_view id, std::int64_t dateMs) {
  std::string out;
  for (char c : id) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_';
    out += keep ? c : '_';
  }
  if (out.empty()) out = fmt::format("{}.{:08x}", dateMs, std::random_device{}());
  return out;
}

std::string rfc5322Date(std::int64_t dateMs) {
  auto seconds = static_cast<std::time_t>(dateMs / 1000);
  // fmt's %a and %b are the C locale's names unless "L" asks for another.
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} +0000", fmt::gmtime(seconds));
}

/// RFC 2045 6.7: each line encoded on its own (hard breaks stay CRLF), soft breaks "=".
std::string quotedPrintable(std::string_view text) {
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    std::size_t column = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      auto c = static_cast<unsigned char>(line[i]);
      bool lastOfLine = i + 1 == line.size();
      bool encode =
          c == '=' || c > 126 || (c < 32 && c != '\t') || ((c == ' ' || c == '\t') && lastOfLine);
      std::string token = encode ? fmt::format("={:02X}", c) : std::string(1, static_cast<char>(c));
      if (column + token.size() > kQpLine) {
        out += "=\r\n";
        column = 0;
      }
      out += token;
      column += token.size();
    }
    out += "\r\n";
    start = end + 1;
  }
  return out;
}

bool fitsSevenBit(std::string_view text) {
  if (!isAscii(text)) return false;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = std::min(text.find('\n', start), text.size());
    if (end - start > kMaxLine) return false;
    start = end + 1;
  }
  return true;
}

std::string withCrlf(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out + "\r\n";
}

std::string percentEncode(std::string_view value, bool form) {
  std::string out;
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || (form ? c == '*' : c == '~');
    if (unreserved) {
      out += ch;
    } else if (form && c == ' ') {
      out += '+';
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string escapeValue(std::string_view value, Escape escape) {
  std::string clean = cleanLine(value);
  switch (escape) {
    case Escape::kJson: {
      std::string quoted =
          nlohmann::json(clean).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return quoted.substr(1, quoted.size() - 2);
    }
    case Escape::kForm:
      return percentEncode(clean, true);
    case Escape::kUrl:
      return percentEncode(clean, false);
    case Escape::kXml: {
      std::string out;
      for (char c : clean) {
        switch (c) {
          case '&':
            out += "&amp;";
            break;
          case '<':
            out += "&lt;";
            break;
          case '>':
            out += "&gt;";
            break;
          case '"':
            out += "&quot;";
            break;
          case '\'':
            out += "&apos;";
            break;
          default:
            out += c;
        }
      }
      return out;
    }
  }
  return clean;
}

}  // namespace

std::string envelopeAddress(std::string_view address) {
  auto lt = address.rfind('<');
  auto gt = address.rfind('>');
  if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt) {
    return trim(address.substr(lt + 1, gt - lt - 1));
  }
  return trim(address);
}

std::string emailMessage(std::string_view from, const std::vector<std::string>& to,
                         const Rendered& rendered, std::string_view messageId,
                         std::int64_t dateMs) {
  std::string subject = cutChars(cleanLine(rendered.subject), kSubjectMaxChars);
  std::string body = cleanText(rendered.text);
  bool sevenBit = fitsSevenBit(body);

  std::string m;
  m += fmt::format("Date: {}\r\n", rfc5322Date(dateMs));
  m += fmt::format("From: {}\r\n", mailbox(from));
  m += addressList(to);
  if (!subject.empty()) m += unstructuredHeader("Subject", subject);
  m += fmt::format("Message-ID: <{}@pass>\r\n", messageIdPart(messageId, dateMs));
  // RFC 3834: vacation responders and the like must not answer a machine.
  m += "Auto-Submitted: auto-generated\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=UTF-8\r\n";
  m += fmt::format("Content-Transfer-Encoding: {}\r\n", sevenBit ? "7bit" : "quoted-printable");
  m += "\r\n";
  m += sevenBit ? withCrlf(body) : quotedPrintable(body);
  return m;
}

Result<Escape> escapeFor(std::string_view contentType) {
  std::string type =
      trim(contentType.substr(0, std::min(contentType.find(';'), contentType.size())));
  std::transform(type.begin(), type.end(), type.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
  if (type == "application/json" || type.ends_with("+json")) return Escape::kJson;
  if (type == "application/x-www-form-urlencoded") return Escape::kForm;
  if (type == "application/xml" || type == "text/xml" || type.ends_with("+xml")) {
    return Escape::kXml;
  }
  return fail("notify.settings",
              fmt::format("content type \"{}\" has no escaping for template values; use "
                          "application/json, application/x-www-form-urlencoded or "
                          "application/xml",
                          cleanLine(contentType)));
}

std::string expandTemplate(std::string_view tmpl, Escape escape, const TemplateValues& values) {
  std::string ticket = std::to_string(values.ticket);
  const std::pair<std::string_view, std::string_view> placeholders[] = {
      {"{to}", values.to}, {"{from}", values.from}, {"{text}", values.text}, {"{ticket}", ticket}};
  std::string out;
  std::size_t i = 0;
  while (i < tmpl.size()) {
    bool replaced = false;
    if (tmpl[i] == '{') {
      for (const auto& [name, value] : placeholders) {
        if (tmpl.substr(i).starts_with(name)) {
          out += escapeValue(value, escape);
          i += name.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out += tmpl[i++];
  }
  return out;
}

std::string_view toString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSent:
      return "sent";
    case Outcome::kRetry:
      return "retry";
    case Outcome::kPermanent:
      return "permanent";
  }
  return "unknown";
}

Outcome classifyHttpStatus(long status) {
  if (status >= 200 && status <= 299) return Outcome::kSent;
  if (status == 0 || status == 408 || status == 425 || status == 429 || status >= 500) {
    return Outcome::kRetry;
  }
  return Outcome::kPermanent;
}

}  // namespace pass::home::notify
