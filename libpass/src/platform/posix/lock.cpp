#include "platform/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace pass::platform {

struct FileLock::Handle {
  int fd = -1;
  ~Handle() {
    if (fd >= 0) ::close(fd);
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
  h->fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (h->fd < 0) {
    return fail("io",
                fmt::format("cannot open lock file {}: {}", path.string(), std::strerror(errno)));
  }
  if (::flock(h->fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail("locked", fmt::format("{} is locked: another run of the agent is in progress",
                                        path.string()));
    }
    return fail("io", fmt::format("cannot lock {}: {}", path.string(), std::strerror(errno)));
  }
  return FileLock(std::move(h));
}

FileLock::FileLock(std::unique_ptr<Handle> h) : handle_(std::move(h)) {}
FileLock::FileLock(FileLock&&) noexcept = default;
FileLock& FileLock::operator=(FileLock&&) noexcept = default;
FileLock::~FileLock() = default;

}  // namespace pass::platform
