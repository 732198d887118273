#include "pass/printable.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace pass {
namespace {

/// The length of the valid UTF-8 sequence at text[i] (1 to 4), or 0 when it is not one.
std::size_t utf8Length(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(text[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < text.size() && (b(k) & 0xC0) == 0x80; };
  const std::uint8_t lead = b(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return cont(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (lead == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (lead == 0xED && b(1) > 0x9F) return 0;  // surrogates
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (lead == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (lead == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<std::uint8_t>(text[i]);
    const std::size_t n = utf8Length(text, i);
    if (n == 0) {
      out += fmt::format("\\x{:02X}", byte);
      i += 1;
      continue;
    }
    if (n == 1 && (byte < 0x20 || byte == 0x7F)) {
      switch (byte) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += fmt::format("\\x{:02X}", byte);
      }
    } else if (n == 2 && byte == 0xC2 && static_cast<std::uint8_t>(text[i + 1]) <= 0x9F) {
      out += fmt::format("\\u{:04X}", static_cast<std::uint8_t>(text[i + 1]));
    } else {
      out.append(text, i, n);
    }
    i += n;
  }
  return out;
}

}  // namespace pass
