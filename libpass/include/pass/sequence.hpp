#pragma once
/// The agent's envelope sequence numbers: strictly increasing, never reused, even after the
/// process is killed at any point. Numbers are reserved in blocks written durably before use,
/// so a crash can only leave a gap, never a repeat.

#include <cstdint>
#include <filesystem>

#include "pass/result.hpp"

namespace pass {

class SequenceCounter {
 public:
  /// Opens (or creates, starting at 1) the counter file `path`.
  static Result<SequenceCounter> open(const std::filesystem::path& path,
                                      std::uint64_t blockSize = 64);
  /// Returns the next number; reserves a new block durably when the current one is used up.
  Result<std::uint64_t> next();
  /// The number next() would return (for status output).
  std::uint64_t peek() const { return next_; }

 private:
  std::filesystem::path path_;
  std::uint64_t next_ = 1;
  std::uint64_t limit_ = 1;  // exclusive: numbers below limit_ are durably reserved
  std::uint64_t block_ = 64;
};

}  // namespace pass
