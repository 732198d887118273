// platform::removeTempFiles, the same on every platform: it needs only std::filesystem.

#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "platform/fs.hpp"

namespace pass::platform {

Status removeTempFiles(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> temps;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (displayPath(it->path().filename()).starts_with(kTempPrefix)) temps.push_back(it->path());
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return fail("io_error", fmt::format("cannot list {}: {}", displayPath(dir), ec.message()));
  }
  for (const auto& temp : temps) {
    std::filesystem::remove(temp, ec);
    if (ec) {
      return fail("io_error", fmt::format("cannot remove stray temp file {}: {}", displayPath(temp),
                                          ec.message()));
    }
  }
  if (temps.empty()) return {};
  return syncDirectory(dir);
}

}  // namespace pass::platform
