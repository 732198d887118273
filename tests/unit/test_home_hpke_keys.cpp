// The home's HPKE key set: rotation, retirement, deletion past the replay window, the ring that
// `serve` reloads, and Ingest opening envelopes sealed to any key it holds.

#include <doctest/doctest.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "pass/envelope.hpp"
#include "pass/home/hpke_keys.hpp"
#include "pass/home/ingest.hpp"
#include "pass/home/pki.hpp"
#include "platform/fs.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::nowMs;
using pass::home::test::permissionsOf;
using pass::home::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::string_view kTestPayload =
    R"({"schema":1,"type":"test","agent_version":"0","sent_ms":1,"message":"hi"})";

KeyId idOfPubFile(const fs::path& file) {
  auto key = X25519Key::loadPem(file.string());
  REQUIRE(key.has_value());
  return hpkeKeyId(*key);
}

struct Home {
  Home() { REQUIRE(initState(InitOptions{dir / "state", {}}).has_value()); }
  StatePaths paths() const { return StatePaths(dir / "state"); }
  TempDir dir;
};

}  // namespace

TEST_CASE("a state made by init has one current key: home-hpke.key") {
  Home home;
  auto set = loadHpkeKeys(home.paths());
  REQUIRE_MESSAGE(set.has_value(), pass::test::errorText(set));
  REQUIRE(set->keys.size() == 1);
  CHECK_FALSE(set->current().retiredMs.has_value());
  CHECK(set->current().id == idOfPubFile(home.paths().hpkePub()));
  CHECK(set->find(set->current().id) == &set->current());
}

TEST_CASE("rotation retires the current key and makes a new one, stored 0600") {
  Home home;
  const auto t0 = nowMs();
  const auto before = loadHpkeKeys(home.paths()).value().current().id;
  auto rotated = rotateHpkeKey(home.paths(), t0, kRetiredKeyKeepMs);
  REQUIRE_MESSAGE(rotated.has_value(), pass::test::errorText(rotated));
  CHECK(rotated->deleted.empty());
  CHECK(rotated->current.id != before);
  CHECK(rotated->current.createdMs == t0);

  auto file = home.paths().dir / "hpke-keys.json";
  CHECK(permissionsOf(file) == (fs::perms::owner_read | fs::perms::owner_write));
  // The private key lives in hpke-keys.json alone; home-hpke.pub is the new current key.
  CHECK_FALSE(fs::exists(home.paths().hpkeKey()));
  CHECK(idOfPubFile(home.paths().hpkePub()) == rotated->current.id);

  auto set = loadHpkeKeys(home.paths());
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 2);
  CHECK(set->keys[0].id == before);
  CHECK(set->keys[0].retiredMs == t0);
  CHECK(set->current().id == rotated->current.id);
  CHECK_FALSE(set->current().retiredMs.has_value());

  // A bundle enrolled now carries the new key.
  auto enrolled = enrollAgent(home.paths().dir, EnrollOptions{.customer = "Acme",
                                                              .site = "Berlin",
                                                              .name = "vsp",
                                                              .out = home.dir / "bundle",
                                                              .endpoints = {}});
  REQUIRE(enrolled.has_value());
  CHECK(idOfPubFile(home.dir / "bundle" / "home-hpke.pub") == rotated->current.id);

  auto listed = listHpkeKeys(home.paths(), kRetiredKeyKeepMs, true);
  REQUIRE(listed.has_value());
  auto j = nlohmann::json::parse(*listed);
  REQUIRE(j.size() == 2);
  CHECK(j[0]["current"] == false);
  CHECK(j[0]["delete_after_ms"] == t0 + kRetiredKeyKeepMs);
  CHECK(j[1]["current"] == true);
  CHECK(j[1]["delete_after_ms"].is_null());
}

TEST_CASE("a retired key is deleted once the replay window has passed, never the current one") {
  Home home;
  const auto t0 = nowMs();
  const auto first = loadHpkeKeys(home.paths()).value().current().id;
  REQUIRE(rotateHpkeKey(home.paths(), t0, kRetiredKeyKeepMs).has_value());
  CHECK(retiredKeyKeepMs(WindowOptions{}.maxAgeMs, WindowOptions{}.maxAheadMs) ==
        kRetiredKeyKeepMs);

  auto gone = pruneHpkeKeys(home.paths(), t0 + kRetiredKeyKeepMs, kRetiredKeyKeepMs);
  REQUIRE(gone.has_value());
  CHECK(gone->empty());
  CHECK(loadHpkeKeys(home.paths()).value().find(first) != nullptr);

  gone = pruneHpkeKeys(home.paths(), t0 + kRetiredKeyKeepMs + 1, kRetiredKeyKeepMs);
  REQUIRE(gone.has_value());
  REQUIRE(gone->size() == 1);
  CHECK((*gone)[0] == first);
  auto set = loadHpkeKeys(home.paths()).value();
  CHECK(set.keys.size() == 1);
  CHECK(set.find(first) == nullptr);
  // The file no longer holds the old private key in any form.
  auto text = platform::readFile(home.paths().dir / "hpke-keys.json").value();
  CHECK(text.find(toHex(first)) == std::string::npos);

  // Years later the current key is still there; a rotation deletes what is due itself.
  CHECK(pruneHpkeKeys(home.paths(), t0 + 1000 * kDayMs, kRetiredKeyKeepMs).value().empty());
  auto second = set.current().id;
  auto r1 = rotateHpkeKey(home.paths(), t0 + 2 * kDayMs, kRetiredKeyKeepMs).value();
  auto r2 = rotateHpkeKey(home.paths(), t0 + 40 * kDayMs, kRetiredKeyKeepMs).value();
  REQUIRE(r2.deleted.size() == 1);
  CHECK(r2.deleted[0] == second);
  CHECK(loadHpkeKeys(home.paths()).value().find(r1.current.id) != nullptr);
}

TEST_CASE("a damaged hpke-keys.json is an error naming the file and the field") {
  Home home;
  REQUIRE(rotateHpkeKey(home.paths(), nowMs(), kRetiredKeyKeepMs).has_value());
  auto file = home.paths().dir / "hpke-keys.json";
  auto j = nlohmann::json::parse(platform::readFile(file).value());
  j["keys"][0]["key_id"] = "0000000000000000";
  REQUIRE(platform::writeFileAtomic(file, j.dump(), true).has_value());
  auto set = loadHpkeKeys(home.paths());
  REQUIRE_FALSE(set.has_value());
  CHECK(set.error().code == "hpke_keys");
  CHECK(set.error().message.find(file.string()) != std::string::npos);
  CHECK(set.error().message.find("keys[0].key_id") != std::string::npos);

  REQUIRE(platform::writeFileAtomic(file, R"({"keys":[]})", true).has_value());
  CHECK(loadHpkeKeys(home.paths()).error().message.find("holds no key") != std::string::npos);
}

TEST_CASE("the ring sees another process's rotation at the next envelope") {
  Home home;
  const auto t0 = nowMs();
  auto ring = HpkeKeyRing::open(home.paths(), kRetiredKeyKeepMs, t0);
  REQUIRE_MESSAGE(ring.has_value(), pass::test::errorText(ring));
  const auto first = (*ring)->get(t0)->current().id;
  auto rotated = rotateHpkeKey(home.paths(), t0, kRetiredKeyKeepMs).value();
  CHECK(rotated.current.id != first);
  CHECK((*ring)->get(t0 + 1)->current().id == rotated.current.id);
  auto notes = (*ring)->takeNotes();
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "current " + toHex(rotated.current.id));

  auto again = rotateHpkeKey(home.paths(), t0 + 1001, kRetiredKeyKeepMs).value();
  CHECK((*ring)->get(t0 + 1002)->find(again.current.id) != nullptr);

  // Past the window the ring deletes the retired keys itself.
  auto later = (*ring)->get(t0 + 1001 + kRetiredKeyKeepMs + 1);
  CHECK(later->keys.size() == 1);
  CHECK(later->current().id == again.current.id);
  CHECK(loadHpkeKeys(home.paths()).value().keys.size() == 1);
}

TEST_CASE("ingest opens envelopes sealed to a retired key and names the current one") {
  Home home;
  auto enrolled = enrollAgent(home.paths().dir, EnrollOptions{.customer = "Acme",
                                                              .site = "Berlin",
                                                              .name = "vsp",
                                                              .out = home.dir / "bundle",
                                                              .endpoints = {}})
                      .value();
  auto sign = Ed25519Key::loadPem((home.dir / "bundle" / "agent-sign.key").string()).value();
  auto oldPub = X25519Key::loadPem((home.dir / "bundle" / "home-hpke.pub").string()).value();
  const auto t0 = nowMs();
  auto ring = std::shared_ptr<HpkeKeyRing>(
      HpkeKeyRing::open(home.paths(), kRetiredKeyKeepMs, t0).value().release());
  AgentDirectory directory(StoreLocation{.sqliteFile = home.paths().sqliteDatabase()});
  Ingest ingest(directory, ring, WindowOptions{});
  PeerIdentity peer{enrolled.uuid, enrolled.certSerial};
  auto seal = [&](std::uint64_t seq, const X25519Key& to, std::int64_t createdMs) {
    EnvelopeHeader h;
    h.agentId = enrolled.id;
    h.seq = seq;
    h.createdMs = static_cast<std::uint64_t>(createdMs);
    h.keyId = hpkeKeyId(to);
    return sealEnvelope(h, kTestPayload, to, sign).value();
  };
  auto check = [&](const Bytes& env, std::int64_t now) {
    ConnectionAuth auth;
    return ingest.check(env, peer, auth, now);
  };

  auto before = check(seal(1, oldPub, t0), t0);
  REQUIRE(std::holds_alternative<Checked>(before.result));
  CHECK_FALSE(std::get<Checked>(before.result).newHomeKey.has_value());

  auto rotated = rotateHpkeKey(home.paths(), t0, kRetiredKeyKeepMs).value();
  // Sealed to the old key, just before the rotation: opens, and the answer names the new key.
  auto old = check(seal(2, oldPub, t0), t0 + 1);
  REQUIRE(std::holds_alternative<Checked>(old.result));
  const auto& announced = std::get<Checked>(old.result).newHomeKey;
  REQUIRE(announced.has_value());
  CHECK(announced->id == rotated.current.id);
  CHECK(std::get<Checked>(old.result).sealedTo == hpkeKeyId(oldPub));

  auto newPub = X25519Key::fromRawPublic(rotated.current.key.rawPublic()).value();
  auto fresh = check(seal(3, newPub, t0 + 2), t0 + 2);
  REQUIRE(std::holds_alternative<Checked>(fresh.result));
  CHECK_FALSE(std::get<Checked>(fresh.result).newHomeKey.has_value());

  // Sealed to the old key within the window of the old key's last use: still opens.
  const auto lastDay = t0 + kRetiredKeyKeepMs - 1000;
  auto late = check(seal(4, oldPub, lastDay - 29 * kDayMs), lastDay);
  CHECK(std::holds_alternative<Checked>(late.result));
  // Past it the old key is gone: unknown_key_id, naming the current key.
  const auto past = t0 + kRetiredKeyKeepMs + 1000;
  auto refused = check(seal(5, oldPub, past - kDayMs), past);
  REQUIRE(std::holds_alternative<Refusal>(refused.result));
  const auto& r = std::get<Refusal>(refused.result);
  CHECK(r.code == "unknown_key_id");
  CHECK(r.status == 400);
  CHECK(r.detail.find(toHex(rotated.current.id)) != std::string::npos);
}
