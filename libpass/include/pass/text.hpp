#pragma once
/// Text from arrays. An array's bytes are data, never a reason to stop: every collector passes
/// what it reads through toUtf8() (or asUtf8()), so that everything after it — parsers, events,
/// JSON payloads, the home — holds valid UTF-8 (docs/agent.md, "Bytes that are not UTF-8").

#include <cstddef>
#include <string>
#include <string_view>

#include "pass/result.hpp"

namespace pass {

/// The character encoding an array writes its text in. Only encodings in which the ASCII bytes
/// mean ASCII and a '\n' byte is always a line end, so that collectors may split lines before
/// they decode them. The default is UTF-8.
class TextEncoding {
 public:
  TextEncoding() = default;
  /// "utf-8", "cp932" (also "shift_jis", "sjis", "windows-31j": what Japanese Windows writes),
  /// "windows-1252" ("cp1252") or "iso-8859-1" ("latin1"); any case. Error "config" naming the
  /// known encodings, or saying that this system cannot decode the one named.
  static Result<TextEncoding> named(std::string_view name);
  /// The canonical names, comma separated, for messages and the configuration reference.
  static std::string knownNames();

  std::string_view name() const;
  bool isUtf8() const { return index_ == 0; }

 private:
  explicit TextEncoding(std::size_t index) : index_(index) {}
  friend std::string toUtf8(std::string_view bytes, const TextEncoding& encoding);
  std::size_t index_ = 0;  // into text.cpp's table; 0 is UTF-8
};

/// The Unicode replacement character U+FFFD, as UTF-8: what stands for bytes that are not text.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

/// True when `bytes` are well-formed UTF-8 without NUL: exactly what toUtf8() leaves unchanged.
bool isCleanUtf8(std::string_view bytes);

/// `bytes`, written in `encoding`, as valid UTF-8. A sequence that is not a character of the
/// encoding becomes one U+FFFD (for UTF-8: each maximal ill-formed subpart, as Unicode
/// recommends), and so does every NUL byte: visible, and safe for C strings and mail. Never
/// fails, never throws on data.
std::string toUtf8(std::string_view bytes, const TextEncoding& encoding = {});

/// toUtf8() without a copy when none is needed: `bytes` themselves when they are clean UTF-8
/// and `encoding` is UTF-8, otherwise the decoded text, kept in `storage`.
std::string_view asUtf8(std::string_view bytes, const TextEncoding& encoding, std::string& storage);

/// `text` as a terminal may show it, with every control character escaped, so that nothing an
/// agent or an array sent can move the cursor, retitle a terminal, ring its bell or forge a
/// line of a table: C0 controls and DEL as \n, \r, \t or \xNN, C1 controls (U+0080..U+009F)
/// as \u0080..\u009F, and a byte that is not part of valid UTF-8 as \xNN. Everything else,
/// backslashes included, stays as it is: this is for reading; `--json` gives the exact text.
std::string printable(std::string_view text);

/// At most `maxBytes` of UTF-8 `text`, never cutting a character in two.
std::string_view cutUtf8(std::string_view text, std::size_t maxBytes);

}  // namespace pass
