#pragma once
// Whole-buffer reads and writes on a pipe, for the crash tests that fork a child and read what
// it managed to do before SIGKILL (POSIX only, like those tests).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

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

/// Kills the forked child with SIGKILL and reaps it; the child must not have ended by itself
/// (an exit means the operation under test failed in the child).
inline void killAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE(WIFSIGNALED(status), "child exited with status ", WEXITSTATUS(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
}

}  // namespace pass::test
