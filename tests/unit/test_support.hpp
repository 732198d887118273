#pragma once
// Helpers shared by the unit tests.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include "pass/bytes.hpp"
#include "pass/collector.hpp"
#include "pass/crypto.hpp"

namespace pass::test {

/// A fresh directory under the system temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() / ("pass-test-" + toHex(randomBytes(8)));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// For assertion messages: doctest builds them for passing assertions too (with -s), so the
/// error must not be read from a Result that holds a value.
template <typename R>
std::string errorText(const R& r) {
  return r ? std::string() : r.error().message;
}

/// One run of `collector` on the real file system, pins in memory, at a fixed clock.
inline Collector::Outcome collectOnce(Collector& collector,
                                      std::optional<std::string> cursor = std::nullopt) {
  MemoryPinStore pins;
  CollectContext ctx;
  ctx.clock = [] { return std::uint64_t{1'700'000'000'000}; };
  ctx.fs = &realFileSystem();
  ctx.cursor = std::move(cursor);
  ctx.pins = &pins;
  ctx.log = [](std::string_view, std::string_view) {};
  return collector.collect(ctx);
}

}  // namespace pass::test
