// The spool's crash test: a forked writer is killed at random points, many times; the spool
// must always open and hold only whole envelopes, and nothing acknowledged may be lost.
// POSIX only (fork, SIGKILL); the other spool tests (test_spool.cpp) also run on Windows.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/spool.hpp"
#include "platform/fs.hpp"
#include "spool_test_support.hpp"
#include "test_pipe.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using pass::EnvelopeKind;

using pass::test::errorText;
using pass::test::kindName;
using pass::test::sealed;
using pass::test::TempDir;

namespace {

int countTemps(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(".tmp-")) ++n;
  }
  return n;
}

}  // namespace

namespace {

// Crash test protocol: the writer child announces each operation before it starts and after it
// completes, so the parent knows exactly which one a SIGKILL interrupted.
enum Msg : char {
  kPushStart = 'P',
  kPushDone = 'p',
  kDropped = 'D',
  kRefused = 'F',
  kRemoveStart = 'R',
  kRemoveDone = 'r',
};

EnvelopeKind kindFor(std::uint64_t seq) {
  return seq % 2 == 0 ? EnvelopeKind::kHeartbeat : EnvelopeKind::kReport;
}

bool send(int fd, Msg type, std::uint64_t seq) {
  unsigned char buf[9];
  buf[0] = static_cast<unsigned char>(type);
  for (int i = 8; i >= 1; --i, seq >>= 8) buf[i] = static_cast<unsigned char>(seq);
  return pass::test::writeAll(fd, buf, sizeof buf);
}

bool receive(int fd, Msg& type, std::uint64_t& seq) {
  unsigned char buf[9];
  if (!pass::test::readAll(fd, buf, sizeof buf)) return false;
  type = static_cast<Msg>(buf[0]);
  seq = 0;
  for (int i = 1; i <= 8; ++i) seq = seq << 8 | buf[i];
  return true;
}

[[noreturn]] void writerChild(int fd, const fs::path& dir, pass::SpoolLimits limits,
                              const std::vector<pass::Bytes>& envelopes, std::uint64_t seq,
                              std::uint64_t rngSeed) {
  auto spool = pass::Spool::open(dir, limits);
  if (!spool) ::_exit(10);
  std::mt19937_64 rng(rngSeed);
  auto removeFront = [&] {
    auto front = spool->entries().front().seq;
    if (!send(fd, kRemoveStart, front)) ::_exit(11);
    if (!spool->remove(front)) ::_exit(12);
    if (!send(fd, kRemoveDone, front)) ::_exit(11);
  };
  for (;;) {
    // Removing less often than pushing fills the spool, so both bounds and refusals happen.
    if (spool->depth() > 0 && rng() % 4 == 0) {
      removeFront();
      continue;
    }
    if (!send(fd, kPushStart, seq)) ::_exit(11);
    auto dropped = spool->push(seq, kindFor(seq), envelopes[seq % envelopes.size()]);
    if (dropped) {
      for (auto d : *dropped) {
        if (!send(fd, kDropped, d)) ::_exit(11);
      }
      if (!send(fd, kPushDone, seq)) ::_exit(11);
    } else if (dropped.error().code == "spool_full") {
      if (!send(fd, kRefused, seq)) ::_exit(11);
      removeFront();
    } else {
      ::_exit(13);
    }
    ++seq;
  }
}

}  // namespace

TEST_CASE("crash test: SIGKILL at any point leaves a consistent spool and loses nothing") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  std::random_device rd;
  auto seed = rd();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);

  // Real sealed envelopes of random sizes, made before forking so the child does no crypto.
  std::vector<pass::Bytes> envelopes;
  std::uint64_t largest = 0;
  for (std::uint64_t i = 0; i < 16; ++i) {
    envelopes.push_back(sealed(i, std::uniform_int_distribution<std::size_t>(0, 8000)(rng)));
    largest = std::max<std::uint64_t>(largest, envelopes.back().size());
  }
  // Small enough that both bounds are hit often; room for the largest envelope alone, always.
  pass::SpoolLimits limits{.maxEnvelopes = 12, .maxBytes = 6 * largest};

  std::set<std::uint64_t> present;  // what the spool must hold, as far as the child told us
  std::uint64_t nextSeq = 1;
  constexpr int kRounds = 200;
  int interrupted = 0;
  int drops = 0;
  int refusals = 0;
  auto started = std::chrono::steady_clock::now();

  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    auto childSeed = rng();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      writerChild(fds[1], dir, limits, envelopes, nextSeq, childSeed);
    }
    ::close(fds[1]);

    enum class Op { kNone, kPush, kRemove } inflight = Op::kNone;
    std::uint64_t inflightSeq = 0;
    auto apply = [&](Msg type, std::uint64_t seq) {
      switch (type) {
        case kPushStart:
          inflight = Op::kPush;
          inflightSeq = seq;
          nextSeq = std::max(nextSeq, seq + 1);
          break;
        case kDropped:
          present.erase(seq);
          ++drops;
          break;
        case kPushDone:
          present.insert(seq);
          inflight = Op::kNone;
          break;
        case kRefused:
          ++refusals;
          inflight = Op::kNone;
          break;
        case kRemoveStart:
          inflight = Op::kRemove;
          inflightSeq = seq;
          break;
        case kRemoveDone:
          present.erase(seq);
          inflight = Op::kNone;
          break;
      }
    };

    auto reads = std::uniform_int_distribution<int>(0, 12)(rng);
    Msg type{};
    std::uint64_t seq = 0;
    for (int i = 0; i < reads && receive(fds[0], type, seq); ++i) apply(type, seq);
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 500)(rng)));
    pass::test::killAndReap(pid);
    while (receive(fds[0], type, seq)) apply(type, seq);
    ::close(fds[0]);
    if (inflight != Op::kNone) ++interrupted;

    auto spool = pass::Spool::open(dir, limits);
    REQUIRE_MESSAGE(spool.has_value(), errorText(spool));
    REQUIRE(countTemps(dir) == 0);
    auto q = spool->quarantined();
    REQUIRE_MESSAGE(q.empty(), "quarantined: ",
                    q.empty() ? std::string() : q.front().file + ": " + q.front().reason);

    std::set<std::uint64_t> onDisk;
    std::uint64_t total = 0;
    for (const auto& e : spool->entries()) {
      CAPTURE(e.seq);
      onDisk.insert(e.seq);
      REQUIRE(kindName(e.kind) == kindName(kindFor(e.seq)));
      auto data = spool->read(e);
      REQUIRE(data.has_value());
      REQUIRE(pass::parseEnvelopeHeader(*data).has_value());
      REQUIRE(*data == envelopes[e.seq % envelopes.size()]);
      total += data->size();
    }
    CHECK(spool->bytes() == total);
    // Only the interrupted operation may be half done: a push may or may not have landed (and
    // may already have dropped heartbeats); a remove may or may not have happened.
    for (auto s : present) {
      bool mayBeGone = (inflight == Op::kRemove && s == inflightSeq) ||
                       (inflight == Op::kPush && kindFor(s) == EnvelopeKind::kHeartbeat);
      CAPTURE(s);
      REQUIRE((onDisk.contains(s) || mayBeGone));
    }
    for (auto s : onDisk) {
      CAPTURE(s);
      REQUIRE((present.contains(s) || (inflight == Op::kPush && s == inflightSeq)));
    }
    present = onDisk;
  }
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  MESSAGE("spool crash test: ", kRounds, " kills, ", interrupted, " mid-operation, ", drops,
          " heartbeat drops, ", refusals, " spool_full refusals, ", seconds, " s");
  // Otherwise the kills did not exercise what this test is for.
  CHECK(interrupted > kRounds / 2);
  CHECK(drops > 0);
  CHECK(refusals > 0);
}
