#pragma once
// An exclusive, non-blocking lock on a file, held for the lifetime of the object, so that two
// scheduled runs of the agent (cron or Task Scheduler overlapping a slow run) never share the
// spool. posix/lock.cpp uses flock(), windows/lock.cpp LockFileEx(); the OS drops the lock
// when the process dies, so a killed run never leaves a stale lock behind.

#include <filesystem>
#include <memory>

#include "pass/result.hpp"

namespace pass::platform {

class FileLock {
 public:
  /// Fails with code "locked" when another process holds it, "io" on other errors.
  static Result<FileLock> tryAcquire(const std::filesystem::path& path);
  /// A lock that other shared holders may hold at the same time, but not an exclusive one
  /// (tryAcquire). Fails like tryAcquire.
  static Result<FileLock> tryAcquireShared(const std::filesystem::path& path);
  FileLock(FileLock&&) noexcept;
  FileLock& operator=(FileLock&&) noexcept;
  ~FileLock();

 private:
  struct Handle;
  static Result<FileLock> acquire(const std::filesystem::path& path, bool shared);
  explicit FileLock(std::unique_ptr<Handle> h);
  std::unique_ptr<Handle> handle_;
};

}  // namespace pass::platform
