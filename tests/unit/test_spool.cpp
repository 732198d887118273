#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
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
#include "test_support.hpp"

namespace fs = std::filesystem;
using pass::EnvelopeKind;

using pass::test::errorText;
using pass::test::kindName;
using pass::test::sealed;
using pass::test::TempDir;

namespace {

std::vector<std::uint64_t> seqs(const pass::Spool& spool) {
  std::vector<std::uint64_t> out;
  for (const auto& e : spool.entries()) out.push_back(e.seq);
  return out;
}

pass::Spool openSpool(const fs::path& dir, pass::SpoolLimits limits = {}) {
  auto spool = pass::Spool::open(dir, limits);
  REQUIRE_MESSAGE(spool.has_value(), errorText(spool));
  return std::move(*spool);
}

void pushOk(pass::Spool& spool, std::uint64_t seq, EnvelopeKind kind, const pass::Bytes& envelope,
            std::vector<std::uint64_t> expectDropped = {}) {
  auto dropped = spool.push(seq, kind, envelope);
  REQUIRE_MESSAGE(dropped.has_value(), errorText(dropped));
  CHECK(*dropped == expectDropped);
}

std::string nameOf(std::uint64_t seq, EnvelopeKind kind) {
  auto digits = std::to_string(seq);
  return std::string(20 - digits.size(), '0') + digits + "." + std::string(pass::toString(kind)) +
         ".env";
}

}  // namespace

TEST_CASE("entries come back oldest first, byte for byte, after reopen") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  std::map<std::uint64_t, pass::Bytes> pushed;
  std::uint64_t total = 0;
  {
    auto spool = openSpool(dir);
    CHECK(spool.depth() == 0);
    // Pushed out of order on purpose: the order is by seq, not by arrival.
    for (std::uint64_t seq : {3, 1, 5, 2, 4}) {
      pushed[seq] = sealed(seq, 50 * seq);
      auto kind = seq % 2 == 0 ? EnvelopeKind::kHeartbeat : EnvelopeKind::kReport;
      pushOk(spool, seq, kind, pushed[seq]);
      total += pushed[seq].size();
    }
    CHECK(seqs(spool) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    CHECK(spool.bytes() == total);
  }
  auto spool = openSpool(dir);
  REQUIRE(seqs(spool) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(spool.depth() == 5);
  CHECK(spool.bytes() == total);
  for (const auto& e : spool.entries()) {
    CAPTURE(e.seq);
    CHECK(kindName(e.kind) == (e.seq % 2 == 0 ? "heartbeat" : "report"));
    CHECK(e.size == pushed[e.seq].size());
    CHECK(e.path.filename() == nameOf(e.seq, e.kind));
    auto data = spool.read(e);
    REQUIRE(data.has_value());
    CHECK(*data == pushed[e.seq]);
#ifndef _WIN32
    // Sealed envelopes are private to the agent's account (on Windows a DACL, which the mode
    // bits std::filesystem shows do not reflect).
    CHECK((fs::status(e.path).permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write));
#endif
  }
  CHECK(spool.quarantined().empty());
}

TEST_CASE("remove deletes the file durably and updates depth and bytes") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  auto spool = openSpool(dir);
  auto one = sealed(1, 10);
  auto two = sealed(2, 20);
  auto three = sealed(3, 30);
  pushOk(spool, 1, EnvelopeKind::kReport, one);
  pushOk(spool, 2, EnvelopeKind::kReport, two);
  pushOk(spool, 3, EnvelopeKind::kTest, three);
  auto removedPath = spool.entries()[1].path;

  REQUIRE(spool.remove(2).has_value());
  CHECK(seqs(spool) == std::vector<std::uint64_t>{1, 3});
  CHECK(spool.bytes() == one.size() + three.size());
  CHECK_FALSE(fs::exists(removedPath));

  auto missing = spool.remove(2);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == "not_found");
  CHECK(missing.error().message.find("seq 2") != std::string::npos);

  auto reopened = openSpool(dir);
  CHECK(seqs(reopened) == std::vector<std::uint64_t>{1, 3});
  CHECK(kindName(reopened.entries()[1].kind) == "test");
}

TEST_CASE("quarantine moves the envelope aside with a one-line reason") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  auto spool = openSpool(dir);
  auto one = sealed(1);
  auto two = sealed(2);
  pushOk(spool, 1, EnvelopeKind::kReport, one);
  pushOk(spool, 2, EnvelopeKind::kHeartbeat, two);

  REQUIRE(
      spool.quarantine(1, "home refused: bad_signature\nsignature does not verify").has_value());
  CHECK(seqs(spool) == std::vector<std::uint64_t>{2});
  CHECK(spool.bytes() == two.size());
  auto name = nameOf(1, EnvelopeKind::kReport);
  CHECK_FALSE(fs::exists(dir / name));
  CHECK(fs::exists(dir / "quarantine" / name));
  auto reasonFile = pass::platform::readFile(dir / "quarantine" / (name + ".reason"));
  REQUIRE(reasonFile.has_value());
  CHECK(*reasonFile == "home refused: bad_signature signature does not verify\n");

  auto check = [&](const pass::Spool& s) {
    auto q = s.quarantined();
    REQUIRE(q.size() == 1);
    CHECK(q[0].seq == 1);
    CHECK(kindName(q[0].kind) == "report");
    CHECK(q[0].reason == "home refused: bad_signature signature does not verify");
    CHECK(q[0].file == name);
  };
  check(spool);
  // The quarantine folder is not mistaken for spool entries on reopen.
  auto reopened = openSpool(dir);
  CHECK(seqs(reopened) == std::vector<std::uint64_t>{2});
  check(reopened);

  auto missing = reopened.quarantine(1, "again");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == "not_found");
}

TEST_CASE("a full spool of heartbeats drops the oldest heartbeats for a new envelope") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  auto spool = openSpool(dir, {.maxEnvelopes = 3, .maxBytes = 1 << 20});
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    pushOk(spool, seq, EnvelopeKind::kHeartbeat, sealed(seq));
  }
  pushOk(spool, 4, EnvelopeKind::kReport, sealed(4), {1});
  pushOk(spool, 5, EnvelopeKind::kHeartbeat, sealed(5), {2});
  CHECK(seqs(spool) == std::vector<std::uint64_t>{3, 4, 5});
  CHECK_FALSE(fs::exists(dir / nameOf(1, EnvelopeKind::kHeartbeat)));
  CHECK_FALSE(fs::exists(dir / nameOf(2, EnvelopeKind::kHeartbeat)));
  // The report is never the one to go: the heartbeat after it is dropped instead.
  pushOk(spool, 6, EnvelopeKind::kReport, sealed(6), {3});
  pushOk(spool, 7, EnvelopeKind::kReport, sealed(7), {5});
  CHECK(seqs(spool) == std::vector<std::uint64_t>{4, 6, 7});
  CHECK(seqs(openSpool(dir, {.maxEnvelopes = 3, .maxBytes = 1 << 20})) ==
        std::vector<std::uint64_t>{4, 6, 7});
}

TEST_CASE("a full spool of reports refuses reports and heartbeats and loses nothing") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  pass::SpoolLimits limits{.maxEnvelopes = 3, .maxBytes = 1 << 20};
  auto spool = openSpool(dir, limits);
  std::map<std::uint64_t, pass::Bytes> pushed;
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    pushed[seq] = sealed(seq);
    pushOk(spool, seq, EnvelopeKind::kReport, pushed[seq]);
  }
  auto bytesBefore = spool.bytes();

  for (auto kind : {EnvelopeKind::kReport, EnvelopeKind::kHeartbeat, EnvelopeKind::kTest}) {
    CAPTURE(pass::toString(kind));
    auto refused = spool.push(4, kind, sealed(4));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == "spool_full");
    const auto& msg = refused.error().message;
    CHECK(msg.find(dir.string()) != std::string::npos);
    CHECK(msg.find("3 envelopes, " + std::to_string(bytesBefore) + " bytes") != std::string::npos);
    CHECK(msg.find("limits: 3 envelopes, 1048576 bytes") != std::string::npos);
    CHECK(msg.find("nothing was dropped") != std::string::npos);
    CHECK(seqs(spool) == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(spool.bytes() == bytesBefore);
    CHECK_FALSE(fs::exists(dir / nameOf(4, kind)));
  }

  auto reopened = openSpool(dir, limits);
  REQUIRE(seqs(reopened) == std::vector<std::uint64_t>{1, 2, 3});
  for (const auto& e : reopened.entries()) {
    auto data = reopened.read(e);
    REQUIRE(data.has_value());
    CHECK(*data == pushed[e.seq]);
  }
}

TEST_CASE("mixed spool: heartbeats go first, then reports are refused") {
  TempDir tmp;
  auto spool = openSpool(tmp.path() / "spool", {.maxEnvelopes = 3, .maxBytes = 1 << 20});
  pushOk(spool, 1, EnvelopeKind::kReport, sealed(1));
  pushOk(spool, 2, EnvelopeKind::kHeartbeat, sealed(2));
  pushOk(spool, 3, EnvelopeKind::kTest, sealed(3));
  pushOk(spool, 4, EnvelopeKind::kReport, sealed(4), {2});
  auto refused = spool.push(5, EnvelopeKind::kReport, sealed(5));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "spool_full");
  CHECK(seqs(spool) == std::vector<std::uint64_t>{1, 3, 4});
}

TEST_CASE("the byte bound drops heartbeats and refuses like the count bound") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  auto hb1 = sealed(1, 1000);
  auto hb2 = sealed(2, 1000);
  auto big = sealed(3, 1500);
  // Room for two envelopes of ~1 KB but not for a third, whatever the count limit says.
  pass::SpoolLimits limits{.maxEnvelopes = 100, .maxBytes = hb1.size() + hb2.size() + 600};
  auto spool = openSpool(dir, limits);
  pushOk(spool, 1, EnvelopeKind::kHeartbeat, hb1);
  pushOk(spool, 2, EnvelopeKind::kHeartbeat, hb2);
  pushOk(spool, 3, EnvelopeKind::kReport, big, {1});
  CHECK(seqs(spool) == std::vector<std::uint64_t>{2, 3});
  CHECK(spool.bytes() == hb2.size() + big.size());

  // Dropping heartbeat 2 would not free enough for this one, so nothing is dropped.
  auto huge = sealed(4, static_cast<std::size_t>(limits.maxBytes));
  auto refused = spool.push(4, EnvelopeKind::kReport, huge);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "spool_full");
  CHECK(refused.error().message.find("nothing was dropped") != std::string::npos);
  CHECK(seqs(spool) == std::vector<std::uint64_t>{2, 3});

  pushOk(spool, 5, EnvelopeKind::kReport, sealed(5, 600), {2});
  auto full = spool.push(6, EnvelopeKind::kHeartbeat, sealed(6, 1000));
  REQUIRE_FALSE(full.has_value());
  CHECK(full.error().code == "spool_full");
  CHECK(seqs(spool) == std::vector<std::uint64_t>{3, 5});
}

TEST_CASE("push refuses a seq twice and an envelope that is not whole") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  auto spool = openSpool(dir);
  auto env = sealed(1);
  pushOk(spool, 1, EnvelopeKind::kReport, env);

  auto again = spool.push(1, EnvelopeKind::kHeartbeat, sealed(1));
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().code == "duplicate_seq");
  CHECK(again.error().message.find("seq 1") != std::string::npos);
  CHECK(spool.depth() == 1);
  CHECK_FALSE(fs::exists(dir / nameOf(1, EnvelopeKind::kHeartbeat)));

  pass::Bytes truncated(env.begin(), env.end() - 1);
  auto bad = spool.push(2, EnvelopeKind::kReport, truncated);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == "bad_envelope");
  CHECK(spool.depth() == 1);
  CHECK_FALSE(fs::exists(dir / nameOf(2, EnvelopeKind::kReport)));
}

TEST_CASE("open removes stray temp files left by a crash") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  fs::create_directories(dir);
  auto stray = dir / (".tmp-" + nameOf(7, EnvelopeKind::kReport) + ".123-0-00000000deadbeef");
  std::ofstream(stray, std::ios::binary) << "half an envelope";
  REQUIRE(fs::exists(stray));

  auto spool = openSpool(dir);
  CHECK_FALSE(fs::exists(stray));
  CHECK(spool.depth() == 0);
  CHECK(spool.quarantined().empty());
}

TEST_CASE("open quarantines a truncated envelope as corrupt and keeps the rest") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  {
    auto spool = openSpool(dir);
    pushOk(spool, 1, EnvelopeKind::kReport, sealed(1, 500));
    pushOk(spool, 2, EnvelopeKind::kReport, sealed(2, 500));
  }
  auto name = nameOf(1, EnvelopeKind::kReport);
  fs::resize_file(dir / name, fs::file_size(dir / name) / 2);

  auto spool = openSpool(dir);
  CHECK(seqs(spool) == std::vector<std::uint64_t>{2});
  auto q = spool.quarantined();
  REQUIRE(q.size() == 1);
  CHECK(q[0].seq == 1);
  CHECK(q[0].reason.starts_with("corrupt: "));
  CHECK(q[0].reason.find("bytes") != std::string::npos);  // the framing error's own words
  CHECK(fs::exists(dir / "quarantine" / name));
  CHECK_FALSE(fs::exists(dir / name));
}

TEST_CASE("open quarantines files it does not recognise instead of skipping them") {
  TempDir tmp;
  auto dir = tmp.path() / "spool";
  fs::create_directories(dir);
  std::ofstream(dir / "notes.txt") << "hello";
  std::ofstream(dir / "00000000000000000009.alert.env") << "x";
  auto spool = openSpool(dir);
  CHECK(spool.depth() == 0);
  auto q = spool.quarantined();
  REQUIRE(q.size() == 2);
  CHECK(q[0].seq == 0);
  CHECK(q[1].seq == 0);
  CHECK(q[0].file == "00000000000000000009.alert.env");
  CHECK(q[1].file == "notes.txt");
  CHECK(q[1].reason == "unrecognised name: notes.txt");
}

TEST_CASE("a copy travels with its envelope: held, listed, released; counted in bytes") {
  TempDir tmp;
  const auto dir = tmp.path() / "spool";
  auto spool = openSpool(dir);
  auto one = sealed(1);
  auto copy = sealed(1, 300);
  auto dropped = spool.push(1, EnvelopeKind::kReport, one, copy);
  REQUIRE_MESSAGE(dropped.has_value(), errorText(dropped));
  pushOk(spool, 2, EnvelopeKind::kHeartbeat, sealed(2));
  CHECK(spool.bytes() == one.size() + copy.size() + sealed(2).size());
  CHECK(fs::exists(dir / "00000000000000000001.report.copy"));

  // After a reopen the copy is still attached.
  spool = openSpool(dir);
  REQUIRE(spool.entries().size() == 2);
  CHECK(spool.entries()[0].copy == dir / "00000000000000000001.report.copy");
  CHECK(spool.entries()[1].copy.empty());

  auto noCopy = spool.hold(2, "refused as future");
  REQUIRE_FALSE(noCopy.has_value());
  CHECK(noCopy.error().code == "no_copy");
  CHECK(seqs(spool) == std::vector<std::uint64_t>{1, 2});

  auto held = spool.hold(1, "HTTP 422 future: created_ms is 172800 s ahead");
  REQUIRE_MESSAGE(held.has_value(), errorText(held));
  CHECK(seqs(spool) == std::vector<std::uint64_t>{2});
  CHECK(spool.bytes() == sealed(2).size());
  CHECK_FALSE(fs::exists(dir / nameOf(1, EnvelopeKind::kReport)));
  auto list = spool.held();
  REQUIRE(list.size() == 1);
  CHECK(list[0].seq == 1);
  CHECK(kindName(list[0].kind) == "report");
  CHECK(list[0].reason == "HTTP 422 future: created_ms is 172800 s ahead");
  auto bytes = pass::platform::readFile(list[0].copy);
  REQUIRE(bytes.has_value());
  CHECK(*bytes == std::string(pass::asString(copy)));

  // Held copies survive a reopen and are not envelopes of the spool.
  spool = openSpool(dir);
  CHECK(seqs(spool) == std::vector<std::uint64_t>{2});
  REQUIRE(spool.held().size() == 1);

  auto released = spool.release(spool.held()[0]);
  REQUIRE_MESSAGE(released.has_value(), errorText(released));
  CHECK(spool.held().empty());
  CHECK(fs::is_empty(dir / "held"));

  // Removing a delivered envelope removes its copy too.
  REQUIRE(spool.push(3, EnvelopeKind::kReport, sealed(3), sealed(3)).has_value());
  REQUIRE(spool.remove(3).has_value());
  CHECK_FALSE(fs::exists(dir / "00000000000000000003.report.copy"));
}

TEST_CASE("open removes a copy without its envelope and an envelope whose copy is held") {
  TempDir tmp;
  const auto dir = tmp.path() / "spool";
  {
    auto spool = openSpool(dir);
    REQUIRE(spool.push(1, EnvelopeKind::kReport, sealed(1), sealed(1)).has_value());
    REQUIRE(spool.push(2, EnvelopeKind::kReport, sealed(2), sealed(2)).has_value());
    REQUIRE(spool.hold(2, "stale").has_value());
  }
  // A kill between writing a copy and its envelope; a kill between holding and removing.
  fs::remove(dir / nameOf(1, EnvelopeKind::kReport));
  {
    std::ofstream again(dir / nameOf(2, EnvelopeKind::kReport), std::ios::binary);
    auto env = sealed(2);
    again.write(reinterpret_cast<const char*>(env.data()),
                static_cast<std::streamsize>(env.size()));
  }
  std::ofstream(dir / "held" / ".tmp-00000000000000000009.report.copy.1") << "half";
  auto spool = openSpool(dir);
  CHECK(spool.entries().empty());
  CHECK(spool.bytes() == 0);
  CHECK_FALSE(fs::exists(dir / "00000000000000000001.report.copy"));
  CHECK_FALSE(fs::exists(dir / nameOf(2, EnvelopeKind::kReport)));
  CHECK_FALSE(fs::exists(dir / "held" / ".tmp-00000000000000000009.report.copy.1"));
  REQUIRE(spool.held().size() == 1);
  CHECK(spool.held()[0].seq == 2);
  CHECK(spool.quarantined().empty());
}
