#include "platform/fs.hpp"

#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
// windows.h must come first.
#include <aclapi.h>
#include <sddl.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <system_error>

#include "pass/collector.hpp"
#include "platform/windows/text.hpp"

namespace pass::platform {
namespace {

// Protected DACL (no inheritance from the folder): full access for SYSTEM and the built-in
// Administrators group only, the Windows counterpart of mode 0600 for an agent run as SYSTEM.
constexpr wchar_t kPrivateSddl[] = L"D:P(A;;FA;;;SY)(A;;FA;;;BA)";
// The same for a directory, inherited by the files and directories created in it.
constexpr wchar_t kPrivateDirectorySddl[] = L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

std::string describeError(DWORD err) {
  return errorText(err) + " (error " + std::to_string(err) + ")";
}

bool isNotFound(DWORD err) { return err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND; }

std::unexpected<Error> winError(DWORD err, std::string_view what, const std::filesystem::path& p) {
  return fail(isNotFound(err) ? "not_found" : "io_error",
              std::string(what) + " " + displayPath(p) + ": " + describeError(err));
}

std::unexpected<Error> renameError(DWORD err, const std::filesystem::path& from,
                                   const std::filesystem::path& to) {
  return fail(
      isNotFound(err) ? "not_found" : "io_error",
      "cannot rename " + displayPath(from) + " to " + displayPath(to) + ": " + describeError(err));
}

class UniqueHandle {
 public:
  explicit UniqueHandle(HANDLE h) : h_(h) {}
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() {
    if (valid()) ::CloseHandle(h_);
  }
  bool valid() const { return h_ != INVALID_HANDLE_VALUE && h_ != nullptr; }
  HANDLE get() const { return h_; }
  /// Closes now and reports the error.
  DWORD closeChecked() {
    HANDLE h = h_;
    h_ = INVALID_HANDLE_VALUE;
    return ::CloseHandle(h) ? ERROR_SUCCESS : ::GetLastError();
  }

 private:
  HANDLE h_;
};

/// A self-relative security descriptor from SDDL, freed with LocalFree.
class SecurityDescriptor {
 public:
  SecurityDescriptor() = default;
  SecurityDescriptor(const SecurityDescriptor&) = delete;
  SecurityDescriptor& operator=(const SecurityDescriptor&) = delete;
  ~SecurityDescriptor() {
    if (sd_ != nullptr) ::LocalFree(sd_);
  }
  DWORD parse(const wchar_t* sddl) {
    if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd_,
                                                                nullptr)) {
      return ::GetLastError();
    }
    return ERROR_SUCCESS;
  }
  PSECURITY_DESCRIPTOR get() const { return sd_; }

 private:
  PSECURITY_DESCRIPTOR sd_ = nullptr;
};

std::filesystem::path tempPathFor(const std::filesystem::path& path) {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::wstring name(kTempPrefix.begin(), kTempPrefix.end());
  name += path.filename().wstring();
  name += L"." + std::to_wstring(::GetCurrentProcessId()) + L"-" +
          std::to_wstring(counter.fetch_add(1)) + L"-" + std::to_wstring(rng());
  return path.parent_path() / name;
}

std::filesystem::path directoryOf(const std::filesystem::path& path) {
  auto dir = path.parent_path();
  return dir.empty() ? std::filesystem::path(L".") : dir;
}

DWORD writeAll(HANDLE h, std::string_view data) {
  while (!data.empty()) {
    auto chunk = static_cast<DWORD>(std::min<std::size_t>(data.size(), 1u << 30));
    DWORD written = 0;
    if (!::WriteFile(h, data.data(), chunk, &written, nullptr)) return ::GetLastError();
    data.remove_prefix(written);
  }
  return ERROR_SUCCESS;
}

}  // namespace

Status writeFileAtomic(const std::filesystem::path& path, std::string_view data, bool privateFile) {
  // The private DACL is given at creation, so the file is never readable by others, not even
  // for the moment between creating and restricting it.
  SecurityDescriptor sd;
  SECURITY_ATTRIBUTES attributes{};
  attributes.nLength = sizeof attributes;
  if (privateFile) {
    if (DWORD err = sd.parse(kPrivateSddl)) return winError(err, "cannot build the ACL for", path);
    attributes.lpSecurityDescriptor = sd.get();
  }

  std::filesystem::path temp;
  HANDLE raw = INVALID_HANDLE_VALUE;
  DWORD err = ERROR_SUCCESS;
  for (int attempt = 0; attempt < 8; ++attempt) {
    temp = tempPathFor(path);
    raw = ::CreateFileW(temp.c_str(), GENERIC_WRITE, 0, privateFile ? &attributes : nullptr,
                        CREATE_NEW, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (raw != INVALID_HANDLE_VALUE) break;
    err = ::GetLastError();
    if (err != ERROR_FILE_EXISTS) break;
  }
  if (raw == INVALID_HANDLE_VALUE) return winError(err, "cannot create temporary file", temp);
  UniqueHandle file(raw);
  struct TempGuard {
    const std::filesystem::path& p;
    bool armed = true;
    ~TempGuard() {
      if (armed) ::DeleteFileW(p.c_str());
    }
  } guard{temp};

  if (DWORD e = writeAll(file.get(), data)) return winError(e, "cannot write", temp);
  if (!::FlushFileBuffers(file.get())) return winError(::GetLastError(), "cannot flush", temp);
  if (DWORD e = file.closeChecked()) return winError(e, "cannot close", temp);
  // WRITE_THROUGH: the call returns only once the rename is on disk.
  if (!::MoveFileExW(temp.c_str(), path.c_str(),
                     MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    return renameError(::GetLastError(), temp, path);
  }
  guard.armed = false;
  return syncDirectory(directoryOf(path));
}

Status syncDirectory(const std::filesystem::path& dir) {
  // Win32 has no fsync for a directory: FlushFileBuffers needs a handle opened for writing,
  // which a directory cannot be. NTFS journals its directory changes, and our renames use
  // MOVEFILE_WRITE_THROUGH, which returns only when the rename is durable. So there is nothing
  // to flush; we still check that the directory exists, as the POSIX version does.
  DWORD attributes = ::GetFileAttributesW(dir.c_str());
  if (attributes == INVALID_FILE_ATTRIBUTES) {
    return winError(::GetLastError(), "cannot open directory", dir);
  }
  if ((attributes & FILE_ATTRIBUTE_DIRECTORY) == 0) {
    return fail("io_error", "cannot sync directory " + displayPath(dir) + ": not a directory");
  }
  return {};
}

Status renameDurable(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (!::MoveFileExW(from.c_str(), to.c_str(),
                     MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    return renameError(::GetLastError(), from, to);
  }
  return syncDirectory(directoryOf(to));
}

Result<std::string> readFile(const std::filesystem::path& path) {
  UniqueHandle file(::CreateFileW(path.c_str(), GENERIC_READ,
                                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                                  OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr));
  if (!file.valid()) return winError(::GetLastError(), "cannot open", path);
  std::string out;
  LARGE_INTEGER size{};
  if (::GetFileSizeEx(file.get(), &size) && size.QuadPart > 0) {
    out.reserve(static_cast<std::size_t>(size.QuadPart));
  }
  char buffer[64 * 1024];
  for (;;) {
    DWORD n = 0;
    if (!::ReadFile(file.get(), buffer, sizeof buffer, &n, nullptr)) {
      return winError(::GetLastError(), "cannot read", path);
    }
    if (n == 0) break;
    out.append(buffer, n);
  }
  return out;
}

namespace {

Status setProtectedDacl(const wchar_t* sddl, const std::filesystem::path& path) {
  SecurityDescriptor sd;
  if (DWORD err = sd.parse(sddl)) return winError(err, "cannot build the ACL for", path);
  BOOL present = FALSE;
  BOOL defaulted = FALSE;
  PACL dacl = nullptr;
  if (!::GetSecurityDescriptorDacl(sd.get(), &present, &dacl, &defaulted)) {
    return winError(::GetLastError(), "cannot build the ACL for", path);
  }
  // SetNamedSecurityInfoW takes a non-const name.
  std::wstring name = path.wstring();
  DWORD err = ::SetNamedSecurityInfoW(
      name.data(), SE_FILE_OBJECT, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
      nullptr, nullptr, dacl, nullptr);
  if (err != ERROR_SUCCESS) return winError(err, "cannot restrict access to", path);
  return {};
}

}  // namespace

Status makePrivate(const std::filesystem::path& path) {
  return setProtectedDacl(kPrivateSddl, path);
}

Status makePrivateDirectory(const std::filesystem::path& dir) {
  return setProtectedDacl(kPrivateDirectorySddl, dir);
}

namespace {

// The collectors' view of the file system: std::filesystem for the listing, the file handle's
// information for identity (volume serial + file index), ReadFile at an offset for reading.
// Files are opened with every sharing flag so that the SVP software can keep writing, renaming
// and deleting its logs while the agent reads them.
constexpr DWORD kShareAll = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

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
                  "cannot open directory " + displayPath(dir) + ": " + ec.message());
    }
    std::vector<Entry> out;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::error_code typeError;
      if (!it->is_regular_file(typeError)) continue;
      // FILE_READ_ATTRIBUTES takes no part in sharing checks, so this works even on a file the
      // SVP software holds open exclusively.
      UniqueHandle h(openShared(it->path(), FILE_READ_ATTRIBUTES));
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
      return fail("io_error", "cannot read directory " + displayPath(dir) + ": " + ec.message());
    }
    return out;
  }

  Result<std::string> read(const std::filesystem::path& file, std::uint64_t offset,
                           std::size_t maxBytes) override {
    UniqueHandle h(openShared(file, GENERIC_READ));
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

}  // namespace pass::platform

namespace pass {

FileSystem& realFileSystem() {
  static platform::WindowsFileSystem fs;
  return fs;
}

}  // namespace pass
