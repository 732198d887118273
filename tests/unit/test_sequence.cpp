#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "pass/sequence.hpp"
#include "platform/fs.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

using pass::test::errorText;
using pass::test::TempDir;

namespace {

std::string slurp(const fs::path& p) {
  auto content = pass::platform::readFile(p);
  REQUIRE_MESSAGE(content.has_value(), errorText(content));
  return *content;
}

void spit(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

}  // namespace

TEST_CASE("a new counter starts at 1 and stays monotonic across reopen") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  std::uint64_t last = 0;
  for (int round = 0; round < 4; ++round) {
    auto counter = pass::SequenceCounter::open(path, 8);
    REQUIRE_MESSAGE(counter.has_value(), errorText(counter));
    if (round == 0) CHECK(counter->peek() == 1);
    for (int i = 0; i < 5; ++i) {
      auto n = counter->next();
      REQUIRE(n.has_value());
      if (round == 0 && i == 0) CHECK(*n == 1);
      CHECK(*n > last);
      last = *n;
    }
  }
  // Each reopen skips the rest of the block that was reserved: 1-5, 9-13, 17-21, 25-29.
  CHECK(last == 29);
}

TEST_CASE("a block is reserved durably before its first number is used") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  auto counter = pass::SequenceCounter::open(path, 4);
  REQUIRE(counter.has_value());
  CHECK(slurp(path) == "1\n");
  for (std::uint64_t expected = 1; expected <= 4; ++expected) {
    auto n = counter->next();
    REQUIRE(n.has_value());
    CHECK(*n == expected);
    CHECK(slurp(path) == "5\n");
  }
  CHECK(counter->peek() == 5);
  auto n = counter->next();
  REQUIRE(n.has_value());
  CHECK(*n == 5);
  CHECK(slurp(path) == "9\n");

  auto reopened = pass::SequenceCounter::open(path, 4);
  REQUIRE(reopened.has_value());
  CHECK(reopened->peek() == 9);
}

TEST_CASE("a block size of one writes every number") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  auto counter = pass::SequenceCounter::open(path, 1);
  REQUIRE(counter.has_value());
  for (std::uint64_t expected = 1; expected <= 3; ++expected) {
    auto n = counter->next();
    REQUIRE(n.has_value());
    CHECK(*n == expected);
    CHECK(slurp(path) == std::to_string(expected + 1) + "\n");
  }
}

TEST_CASE("a corrupt counter file is an error naming the file and its content") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  for (std::string content :
       {"garbage", "", "0", "0\n", "12abc", "-5", " 7", "18446744073709551616", "7\n\n"}) {
    CAPTURE(content);
    spit(path, content);
    auto counter = pass::SequenceCounter::open(path);
    REQUIRE_FALSE(counter.has_value());
    CHECK(counter.error().code == "sequence.corrupt");
    CHECK(counter.error().message.find(path.string()) != std::string::npos);
    CHECK(counter.error().message.find("\"" + content.substr(0, content.find('\n'))) !=
          std::string::npos);
    // Never a silent reset: the file is left as it was for a person to look at.
    CHECK(slurp(path) == content);
  }
}

TEST_CASE("a hand-written number without a newline is accepted") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  spit(path, "1000");
  auto counter = pass::SequenceCounter::open(path);
  REQUIRE(counter.has_value());
  auto n = counter->next();
  REQUIRE(n.has_value());
  CHECK(*n == 1000);
}

TEST_CASE("counter errors: zero block size, missing directory, exhaustion") {
  TempDir tmp;
  auto zero = pass::SequenceCounter::open(tmp.path() / "seq", 0);
  REQUIRE_FALSE(zero.has_value());
  CHECK(zero.error().code == "invalid_argument");

  auto missing = pass::SequenceCounter::open(tmp.path() / "no-such-dir" / "seq");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("no-such-dir") != std::string::npos);

  auto path = tmp.path() / "seq";
  spit(path, "18446744073709551615\n");
  auto counter = pass::SequenceCounter::open(path, 4);
  REQUIRE(counter.has_value());
  auto n = counter->next();
  REQUIRE_FALSE(n.has_value());
  CHECK(n.error().code == "sequence.exhausted");
}

TEST_CASE("stray temp files of the counter are removed at open, others are kept") {
  TempDir tmp;
  auto path = tmp.path() / "seq";
  auto stray = tmp.path() / ".tmp-seq.123-0-00000000deadbeef";
  auto other = tmp.path() / ".tmp-cursor.123-0-00000000deadbeef";
  spit(stray, "9");
  spit(other, "9");
  auto counter = pass::SequenceCounter::open(path);
  REQUIRE(counter.has_value());
  CHECK_FALSE(fs::exists(stray));
  CHECK(fs::exists(other));
}
