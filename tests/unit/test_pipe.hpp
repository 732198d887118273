#pragma once
// Whole-buffer reads and writes on a pipe, for the crash tests that fork a child and read what
// it managed to do before SIGKILL (POSIX only, like those tests).

#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace pass::test {

/// Writes all n bytes; false when the pipe is closed or fails.
inline bool writeAll(int fd, const unsigned char* buf, std::size_t n) {
  std::size_t sent = 0;
  while (sent < n) {
    ssize_t r = ::write(fd, buf + sent, n - sent);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    sent += static_cast<std::size_t>(r);
  }
  return true;
}

/// Reads exactly n bytes; false at end of file (the writer died) or on an error.
inline bool readAll(int fd, unsigned char* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace pass::test
