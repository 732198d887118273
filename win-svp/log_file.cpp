// The rolling log file (log_file.hpp).

#include "log_file.hpp"

#include <fstream>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "pass/agent.hpp"
#include "pass/iso_time.hpp"

namespace pass::win {
namespace {

std::filesystem::path numbered(const std::filesystem::path& dir, int n) {
  return dir / (n == 0 ? std::string("pass-svp.log") : fmt::format("pass-svp.{}.log", n));
}

}  // namespace

void appendLog(const std::filesystem::path& dir, std::string_view command, std::string_view text) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto current = numbered(dir, 0);
  const auto size = std::filesystem::file_size(current, ec);
  if (!ec && size + text.size() > kLogFileMaxBytes) {
    std::filesystem::remove(numbered(dir, kLogFilesKept), ec);
    for (int n = kLogFilesKept - 1; n >= 0; --n) {
      std::filesystem::rename(numbered(dir, n), numbered(dir, n + 1), ec);
    }
  }
  std::ofstream out(current, std::ios::binary | std::ios::app);
  if (!out) return;
  const std::string stamp =
      fmt::format("{} {}: ", isoUtc(static_cast<std::int64_t>(systemNowMs())), command);
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out << stamp << text.substr(start, end - start) << "\r\n";
    start = end + 1;
  }
}

}  // namespace pass::win
