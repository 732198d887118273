#pragma once
// Code page decoding by the system's own converters: glibc iconv (posix/codepage.cpp) and the
// Win32 code pages (windows/codepage.cpp). pass::toUtf8() (text.cpp) is the only caller.

#include <string>
#include <string_view>

#include "pass/result.hpp"

namespace pass::platform {

/// One code page as each system names it.
struct CodePage {
  std::string_view iconvName;  // "CP932"
  unsigned windowsId = 0;      // 932
};

/// `bytes` in `page` as UTF-8; a sequence that is not a character of the page becomes U+FFFD.
/// NUL bytes pass through (the caller replaces them). Error "config" when this system has no
/// converter for the page.
Result<std::string> decodeCodePage(std::string_view bytes, const CodePage& page);

}  // namespace pass::platform
