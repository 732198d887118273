#include "platform/lock.hpp"

#include <windows.h>

#include <fmt/format.h>

namespace pass::platform {

struct FileLock::Handle {
  HANDLE h = INVALID_HANDLE_VALUE;
  ~Handle() {
    if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

Result<FileLock> FileLock::tryAcquire(const std::filesystem::path& path) {
  return acquire(path, /*shared=*/false);
}

Result<FileLock> FileLock::tryAcquireShared(const std::filesystem::path& path) {
  return acquire(path, /*shared=*/true);
}

Result<FileLock> FileLock::acquire(const std::filesystem::path& path, bool shared) {
  auto h = std::make_unique<Handle>();
  h->h = CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                     nullptr, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h->h == INVALID_HANDLE_VALUE) {
    return fail("io", fmt::format("cannot open lock file {}: Windows error {}", path.string(),
                                  GetLastError()));
  }
  OVERLAPPED ov{};
  const DWORD mode = shared ? 0 : LOCKFILE_EXCLUSIVE_LOCK;
  if (!LockFileEx(h->h, mode | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov)) {
    DWORD err = GetLastError();
    if (err == ERROR_LOCK_VIOLATION) {
      return fail("locked", fmt::format("{} is locked: another run of the agent is in progress",
                                        path.string()));
    }
    return fail("io", fmt::format("cannot lock {}: Windows error {}", path.string(), err));
  }
  return FileLock(std::move(h));
}

FileLock::FileLock(std::unique_ptr<Handle> h) : handle_(std::move(h)) {}
FileLock::FileLock(FileLock&&) noexcept = default;
FileLock& FileLock::operator=(FileLock&&) noexcept = default;
FileLock::~FileLock() = default;

}  // namespace pass::platform
