// The sequence counter's crash test: a forked child is killed at a random point, again and
// again; no number it handed out may ever be handed out again. POSIX only (fork, SIGKILL);
// the other counter tests (test_sequence.cpp) also run on Windows.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "pass/sequence.hpp"
#include "test_pipe.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

using pass::test::errorText;
using pass::test::TempDir;

namespace {

/// Reads exactly one number from the pipe; false at end of file.
bool readNumber(int fd, std::uint64_t& out) {
  unsigned char buf[8];
  if (!pass::test::readAll(fd, buf, sizeof buf)) return false;
  out = 0;
  for (auto b : buf) out = out << 8 | b;
  return true;
}

bool writeNumber(int fd, std::uint64_t v) {
  unsigned char buf[8];
  for (int i = 7; i >= 0; --i, v >>= 8) buf[i] = static_cast<unsigned char>(v);
  return pass::test::writeAll(fd, buf, sizeof buf);
}

}  // namespace

TEST_CASE("crash test: no number is reused after SIGKILL at a random point") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  std::random_device rd;
  auto seed = rd();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::uint64_t maxSeen = 0;
  constexpr int kRounds = 100;
  int killedMidRun = 0;

  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    auto block = std::uniform_int_distribution<std::uint64_t>(1, 5)(rng);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto counter = pass::SequenceCounter::open(path, block);
      if (!counter) ::_exit(2);
      for (;;) {
        auto n = counter->next();
        if (!n) ::_exit(3);
        if (!writeNumber(fds[1], *n)) ::_exit(4);
      }
    }
    ::close(fds[1]);

    std::vector<std::uint64_t> seen;
    auto reads = std::uniform_int_distribution<int>(0, 15)(rng);
    std::uint64_t n = 0;
    for (int i = 0; i < reads && readNumber(fds[0], n); ++i) seen.push_back(n);
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 500)(rng)));
    pass::test::killAndReap(pid);
    // Numbers the child sent before it died were handed out too.
    while (readNumber(fds[0], n)) seen.push_back(n);
    ::close(fds[0]);
    if (!seen.empty()) ++killedMidRun;

    for (auto v : seen) {
      REQUIRE(v > maxSeen);
      maxSeen = v;
    }
    auto reopened = pass::SequenceCounter::open(path, block);
    REQUIRE_MESSAGE(reopened.has_value(), errorText(reopened));
    auto next = reopened->next();
    REQUIRE(next.has_value());
    REQUIRE(*next > maxSeen);
    maxSeen = *next;
  }
  // The kills must have landed while numbers were being handed out, or the test proves nothing.
  CHECK(killedMidRun > kRounds / 2);
  // No temp file piles up: each open removes what a kill left.
  int temps = 0;
  for (const auto& entry : fs::directory_iterator(tmp.path())) {
    if (entry.path().filename().string().starts_with(".tmp-")) ++temps;
  }
  CHECK(temps == 0);
}
