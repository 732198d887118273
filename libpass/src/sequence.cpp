#include "pass/sequence.hpp"

#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "platform/fs.hpp"

namespace pass {
namespace {

/// The content as a field engineer can read it in one line: escaped and cut short.
std::string printable(std::string_view content) {
  constexpr std::size_t kMax = 40;
  std::string out = "\"";
  for (std::size_t i = 0; i < content.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(content[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out += '"';
  if (content.size() > kMax) out += fmt::format(" ({} bytes in all)", content.size());
  return out;
}

/// Parses "<decimal>\n"; the newline is optional so that a hand-edited file still reads.
std::optional<std::uint64_t> parseLimit(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0) return std::nullopt;
  return value;
}

std::string formatLimit(std::uint64_t limit) { return fmt::format("{}\n", limit); }

/// A kill during a reservation leaves a temp file; without this they would pile up. Best
/// effort: a leftover that cannot be removed does no harm.
void removeStrayTemps(const std::filesystem::path& path) {
  auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  std::u8string prefix(platform::kTempPrefix.begin(), platform::kTempPrefix.end());
  prefix += path.filename().u8string() + u8".";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().u8string().starts_with(prefix)) {
      std::error_code ignored;
      std::filesystem::remove(it->path(), ignored);
    }
  }
}

}  // namespace

Result<SequenceCounter> SequenceCounter::open(const std::filesystem::path& path,
                                              std::uint64_t blockSize) {
  if (blockSize == 0) {
    return fail("invalid_argument",
                fmt::format("sequence counter {}: block size must be at least 1",
                            platform::displayPath(path)));
  }
  SequenceCounter counter;
  counter.path_ = path;
  counter.block_ = blockSize;
  removeStrayTemps(path);

  auto content = platform::readFile(path);
  if (!content) {
    if (content.error().code != "not_found") return std::unexpected(content.error());
    // A new agent starts at 1. Writing the file now makes an unwritable directory fail here
    // rather than at the first envelope.
    if (auto s = platform::writeFileAtomic(path, formatLimit(1)); !s) {
      return std::unexpected(s.error());
    }
    return counter;
  }
  auto limit = parseLimit(*content);
  if (!limit) {
    // Never restart from 1: the home would refuse every envelope as a replay. A person has to
    // look at the file (or restore it) and set a number above the last one used.
    return fail("sequence.corrupt",
                fmt::format("sequence counter file {} is corrupt: it holds {} where a positive "
                            "decimal number was expected; set it to a number above the last "
                            "sequence number the home has seen",
                            platform::displayPath(path), printable(*content)));
  }
  // Every number below the stored limit may have been handed out before a crash.
  counter.next_ = *limit;
  counter.limit_ = *limit;
  return counter;
}

Result<std::uint64_t> SequenceCounter::next() {
  if (next_ >= limit_) {
    if (next_ > std::numeric_limits<std::uint64_t>::max() - block_) {
      return fail("sequence.exhausted", fmt::format("sequence counter {} is exhausted at {}",
                                                    platform::displayPath(path_), next_));
    }
    std::uint64_t newLimit = next_ + block_;
    // Durable before any number of the block is used, so a crash can only skip numbers.
    if (auto s = platform::writeFileAtomic(path_, formatLimit(newLimit)); !s) {
      return std::unexpected(s.error());
    }
    limit_ = newLimit;
  }
  return next_++;
}

}  // namespace pass
