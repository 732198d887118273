// pass::realFileSystem() on Windows: std::filesystem for the listing, the file handle's
// information for identity (volume serial + file index), ReadFile at an offset for reading.
// Files are opened with every sharing flag so that the SVP software can keep writing, renaming
// and deleting its logs while the agent reads them.

#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <algorithm>
#include <string>
#include <system_error>

#include "pass/collector.hpp"
#include "platform/fs.hpp"

namespace pass {
namespace {

constexpr DWORD kShareAll = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

std::string describeError(DWORD err) {
  // std::system_category() formats Windows error codes (FormatMessage underneath).
  return std::system_category().message(static_cast<int>(err)) + " (error " + std::to_string(err) +
         ")";
}

std::unexpected<Error> winError(DWORD err, std::string_view what, const std::filesystem::path& p) {
  bool notFound = err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND;
  return fail(notFound ? "not_found" : "io_error",
              std::string(what) + " " + platform::displayPath(p) + ": " + describeError(err));
}

class Handle {
 public:
  explicit Handle(HANDLE h) : h_(h) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (valid()) ::CloseHandle(h_);
  }
  bool valid() const { return h_ != INVALID_HANDLE_VALUE && h_ != nullptr; }
  HANDLE get() const { return h_; }

 private:
  HANDLE h_;
};

HANDLE openShared(const std::filesystem::path& p, DWORD access) {
  return ::CreateFileW(p.c_str(), access, kShareAll, nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL,
                       nullptr);
}

std::string utf8Name(const std::filesystem::path& p) {
  auto u8 = p.filename().u8string();
  return std::string(u8.begin(), u8.end());
}

class WindowsFileSystem final : public FileSystem {
 public:
  Result<std::vector<Entry>> list(const std::filesystem::path& dir) override {
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
      bool notFound = ec == std::errc::no_such_file_or_directory;
      return fail(notFound ? "not_found" : "io_error",
                  "cannot open directory " + platform::displayPath(dir) + ": " + ec.message());
    }
    std::vector<Entry> out;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::error_code typeError;
      if (!it->is_regular_file(typeError)) continue;
      // FILE_READ_ATTRIBUTES takes no part in sharing checks, so this works even on a file the
      // SVP software holds open exclusively.
      Handle h(openShared(it->path(), FILE_READ_ATTRIBUTES));
      if (!h.valid()) {
        DWORD err = ::GetLastError();
        if (err == ERROR_FILE_NOT_FOUND) continue;  // deleted since the listing saw it
        return winError(err, "cannot open", it->path());
      }
      BY_HANDLE_FILE_INFORMATION info{};
      if (!::GetFileInformationByHandle(h.get(), &info)) {
        return winError(::GetLastError(), "cannot query", it->path());
      }
      out.push_back(Entry{
          utf8Name(it->path()),
          FileId{info.dwVolumeSerialNumber,
                 (static_cast<std::uint64_t>(info.nFileIndexHigh) << 32) | info.nFileIndexLow},
          (static_cast<std::uint64_t>(info.nFileSizeHigh) << 32) | info.nFileSizeLow});
    }
    if (ec) {
      return fail("io_error",
                  "cannot read directory " + platform::displayPath(dir) + ": " + ec.message());
    }
    return out;
  }

  Result<std::string> read(const std::filesystem::path& file, std::uint64_t offset,
                           std::size_t maxBytes) override {
    Handle h(openShared(file, GENERIC_READ));
    if (!h.valid()) return winError(::GetLastError(), "cannot open", file);
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(h.get(), &size)) return winError(::GetLastError(), "cannot query", file);
    const auto total = static_cast<std::uint64_t>(size.QuadPart);
    std::string out(offset < total ? std::min<std::uint64_t>(total - offset, maxBytes) : 0, '\0');
    std::size_t got = 0;
    while (got < out.size()) {
      const std::uint64_t at = offset + got;
      OVERLAPPED ov{};  // on a synchronous handle this only carries the offset
      ov.Offset = static_cast<DWORD>(at & 0xffffffffu);
      ov.OffsetHigh = static_cast<DWORD>(at >> 32);
      const auto chunk = static_cast<DWORD>(std::min<std::size_t>(out.size() - got, 1u << 30));
      DWORD n = 0;
      if (!::ReadFile(h.get(), out.data() + got, chunk, &n, &ov)) {
        DWORD err = ::GetLastError();
        if (err == ERROR_HANDLE_EOF) break;  // truncated since GetFileSizeEx
        return winError(err, "cannot read", file);
      }
      if (n == 0) break;
      got += n;
    }
    out.resize(got);
    return out;
  }
};

}  // namespace

FileSystem& realFileSystem() {
  static WindowsFileSystem fs;
  return fs;
}

}  // namespace pass
