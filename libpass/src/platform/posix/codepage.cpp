#include <iconv.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "pass/text.hpp"
#include "platform/codepage.hpp"

namespace pass::platform {

namespace {

/// One converter per thread and code page in use: iconv_open is costly, and a descriptor must
/// not be shared between threads (arrays are collected on several).
class Converter {
 public:
  ~Converter() { close(); }
  iconv_t open(std::string_view name) {
    if (cd_ != invalid() && name_ == name) return cd_;
    close();
    name_ = std::string(name);
    cd_ = ::iconv_open("UTF-8", name_.c_str());
    return cd_;
  }

  static iconv_t invalid() { return reinterpret_cast<iconv_t>(-1); }

 private:
  void close() {
    if (cd_ != invalid()) ::iconv_close(cd_);
    cd_ = invalid();
  }
  std::string name_;
  iconv_t cd_ = invalid();
};

}  // namespace

Result<std::string> decodeCodePage(std::string_view bytes, const CodePage& page) {
  thread_local Converter converter;
  iconv_t cd = converter.open(page.iconvName);
  if (cd == Converter::invalid()) {
    return fail("config", fmt::format("this system cannot decode {} (iconv: {})", page.iconvName,
                                      std::strerror(errno)));
  }
  ::iconv(cd, nullptr, nullptr, nullptr, nullptr);  // the initial shift state
  std::string out;
  char* in = const_cast<char*>(bytes.data());  // iconv's signature; it does not write there
  std::size_t inLeft = bytes.size();
  std::string buffer(4 * bytes.size() + 16, '\0');  // a byte becomes at most 4 in UTF-8
  while (inLeft > 0) {
    char* o = buffer.data();
    std::size_t oLeft = buffer.size();
    const std::size_t r = ::iconv(cd, &in, &inLeft, &o, &oLeft);
    const int error = r == static_cast<std::size_t>(-1) ? errno : 0;
    out.append(buffer.data(), buffer.size() - oLeft);
    if (error == 0 || error == E2BIG) continue;
    // EILSEQ: not a character of the page; EINVAL: a character cut off at the end.
    out += kReplacement;
    ++in;
    --inLeft;
    ::iconv(cd, nullptr, nullptr, nullptr, nullptr);
  }
  return out;
}

}  // namespace pass::platform
