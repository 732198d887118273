#include "pass/text.hpp"

#include <array>

#include <fmt/format.h>

#include "platform/codepage.hpp"

namespace pass {

namespace {

struct Encoding {
  std::string_view name;  // canonical, as docs and messages write it
  std::array<std::string_view, 4> aliases;
  platform::CodePage page;
};

// Index 0 is UTF-8, the default. A new entry needs a code page that both glibc iconv and
// Windows know, and that is ASCII-compatible with '\n' as line end (see TextEncoding).
constexpr std::array<Encoding, 4> kEncodings = {{
    {"utf-8", {"utf8"}, {"UTF-8", 65001}},
    {"cp932", {"shift_jis", "shift-jis", "sjis", "windows-31j"}, {"CP932", 932}},
    {"windows-1252", {"cp1252"}, {"CP1252", 1252}},
    {"iso-8859-1", {"latin1", "latin-1", "iso8859-1"}, {"ISO-8859-1", 28591}},
}};

bool equalNoCase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

/// The length of the well-formed UTF-8 character at s[i], or 0 when there is none; then `bad`
/// is the length of the maximal ill-formed subpart there (at least 1). NUL counts as bad.
std::size_t charAt(std::string_view s, std::size_t i, std::size_t& bad) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c != 0 && c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;  // the second byte's range: no overlong forms, no surrogates,
  unsigned char hi = 0xBF;  // nothing above U+10FFFF
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  std::size_t k = 1;
  for (; k < n && i + k < s.size(); ++k) {
    const auto x = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) break;
  }
  if (k == n) return n;
  bad = k;
  return 0;
}

/// The offset of the first byte toUtf8() would change, or s.size().
std::size_t firstUnclean(std::string_view s) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = charAt(s, i, bad);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

/// UTF-8 (possibly ill-formed, possibly holding NUL) as clean UTF-8.
std::string cleanUtf8(std::string_view s) {
  std::size_t i = firstUnclean(s);
  std::string out(s.substr(0, i));
  if (i == s.size()) return out;
  out.reserve(s.size() + 16);
  std::size_t bad = 0;
  while (i < s.size()) {
    const std::size_t n = charAt(s, i, bad);
    if (n == 0) {
      out += kReplacement;
      i += bad;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace

Result<TextEncoding> TextEncoding::named(std::string_view name) {
  for (std::size_t i = 0; i < kEncodings.size(); ++i) {
    bool match = equalNoCase(name, kEncodings[i].name);
    for (auto alias : kEncodings[i].aliases)
      match = match || (!alias.empty() && equalNoCase(name, alias));
    if (!match) continue;
    // Asked once here, so that a system without the converter is a configuration error and
    // not U+FFFD in every event.
    if (i != 0) {
      if (auto probe = platform::decodeCodePage("", kEncodings[i].page); !probe) {
        return std::unexpected(probe.error());
      }
    }
    return TextEncoding(i);
  }
  return fail("config",
              fmt::format("encoding \"{}\" is not known (known: {})", name, knownNames()));
}

std::string TextEncoding::knownNames() {
  std::string out;
  for (const auto& e : kEncodings) {
    out += fmt::format("{}{}", out.empty() ? "" : ", ", e.name);
    for (auto alias : e.aliases) {
      if (!alias.empty()) out += fmt::format(" ({})", alias);
    }
  }
  return out;
}

std::string_view TextEncoding::name() const { return kEncodings[index_].name; }

bool isCleanUtf8(std::string_view bytes) { return firstUnclean(bytes) == bytes.size(); }

std::string toUtf8(std::string_view bytes, const TextEncoding& encoding) {
  if (encoding.isUtf8()) return cleanUtf8(bytes);
  auto decoded = platform::decodeCodePage(bytes, kEncodings[encoding.index_].page);
  // TextEncoding::named() checked the converter; should it vanish, the bytes are still
  // delivered, with what is not UTF-8 replaced.
  if (!decoded) return cleanUtf8(bytes);
  // The converter passes NUL through.
  return cleanUtf8(*decoded);
}

std::string_view asUtf8(std::string_view bytes, const TextEncoding& encoding,
                        std::string& storage) {
  if (encoding.isUtf8() && isCleanUtf8(bytes)) return bytes;
  storage = toUtf8(bytes, encoding);
  return storage;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const std::size_t n = charAt(text, i, bad);
    if (n == 0 && byte != 0) {  // not UTF-8: each byte of the ill-formed part shown
      for (std::size_t k = 0; k < bad; ++k) {
        out += fmt::format("\\x{:02X}", static_cast<unsigned char>(text[i + k]));
      }
      i += bad;
      continue;
    }
    if (byte < 0x20 || byte == 0x7F) {  // NUL (n == 0 above) and the other C0 controls, DEL
      switch (byte) {
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          out += fmt::format("\\x{:02X}", byte);
      }
      i += 1;
      continue;
    }
    if (n == 2 && byte == 0xC2 && static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
      out += fmt::format("\\u{:04X}", static_cast<unsigned char>(text[i + 1]));  // C1
    } else {
      out.append(text, i, n);
    }
    i += n;
  }
  return out;
}

std::string_view cutUtf8(std::string_view text, std::size_t maxBytes) {
  if (text.size() <= maxBytes) return text;
  std::size_t n = maxBytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return text.substr(0, n);
}

}  // namespace pass
