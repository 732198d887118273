#pragma once
// What the libFuzzer harnesses in tests/fuzz/ share: `check`, which aborts naming the property
// that broke, and a folder under $TMPDIR for the harnesses that need files beside their input
// (secret files that home.xml and the new-customer form name), removed when the fuzzer exits.
// Nothing is written anywhere else.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

/// Aborts naming the property that broke (a crash the fuzzer reports, with its input).
#define check(ok)                                                   \
  do {                                                              \
    if (!(ok)) {                                                    \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #ok); \
      std::abort();                                                 \
    }                                                               \
  } while (false)

namespace pass::fuzz {

class TempDir {
 public:
  /// The folder, holding `files` (relative path, content).
  explicit TempDir(
      std::initializer_list<std::pair<std::string_view, std::string_view>> files = {}) {
    std::string pattern = (std::filesystem::temp_directory_path() / "pass-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
    for (auto [relative, text] : files) write(relative, text);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  /// Writes `text` to `relative` inside the folder (creating its folders); aborts on failure,
  /// since the harness would otherwise test something else than it says.
  std::filesystem::path write(const std::filesystem::path& relative, std::string_view text) const {
    auto file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) std::abort();
    return file;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace pass::fuzz
