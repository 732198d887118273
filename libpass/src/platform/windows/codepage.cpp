#include <windows.h>

#include <fmt/format.h>

#include "pass/text.hpp"
#include "platform/codepage.hpp"
#include "platform/windows/text.hpp"

namespace pass::platform {

namespace {

/// UTF-16 of `bytes` in `codePage`; false when a byte sequence is not a character of it.
bool toWide(std::string_view bytes, unsigned codePage, std::wstring& out) {
  const int size = static_cast<int>(bytes.size());
  const int n =
      ::MultiByteToWideChar(codePage, MB_ERR_INVALID_CHARS, bytes.data(), size, nullptr, 0);
  if (n <= 0) return false;
  out.assign(static_cast<std::size_t>(n), L'\0');
  return ::MultiByteToWideChar(codePage, MB_ERR_INVALID_CHARS, bytes.data(), size, out.data(), n) ==
         n;
}

}  // namespace

Result<std::string> decodeCodePage(std::string_view bytes, const CodePage& page) {
  if (!::IsValidCodePage(page.windowsId)) {
    return fail("config", fmt::format("this system cannot decode code page {}", page.windowsId));
  }
  std::wstring wide;
  if (bytes.empty()) return std::string();
  if (toWide(bytes, page.windowsId, wide)) return utf8(wide);
  // Not all valid: one character at a time (one byte, or two after a lead byte), so that only
  // what is not a character becomes U+FFFD.
  std::string out;
  for (std::size_t i = 0; i < bytes.size();) {
    std::size_t n = 1;
    if (::IsDBCSLeadByteEx(page.windowsId, static_cast<BYTE>(bytes[i])) && i + 1 < bytes.size()) {
      n = 2;
    }
    if (toWide(bytes.substr(i, n), page.windowsId, wide)) {
      out += utf8(wide);
      i += n;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

}  // namespace pass::platform
