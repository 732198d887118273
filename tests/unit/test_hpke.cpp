// HPKE against every base-mode value of the RFC 9180 Appendix A.1 vectors for our suite.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/hpke.hpp"

namespace {

using pass::Bytes;
using pass::ByteView;

const std::string kVectorFile = PASS_SOURCE_DIR "/tests/data/rfc9180/x25519-sha256-aes128gcm.txt";

/// One "key: value" group; values are kept as written (hex or decimal), wrapped lines joined.
using Record = std::map<std::string, std::string>;

struct VectorSection {
  std::string title;
  Record setup;
  std::vector<Record> encryptions;
  std::vector<Record> exports;
};

std::string trim(std::string s) {
  auto notSpace = [](unsigned char c) { return c != ' ' && c != '\t' && c != '\r'; };
  while (!s.empty() && !notSpace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && !notSpace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

/// The vectors file is markdown: "### <Mode> Setup Information" starts a section, "####
/// Encryptions" / "#### Exported Values" its lists; "~~~" fences hold "key: value" lines, blank
/// lines separate records, and a line without ':' continues the previous value.
std::vector<VectorSection> parseVectors(std::istream& in) {
  enum class Part { kSetup, kEncryptions, kExports };
  std::vector<VectorSection> sections;
  Part part = Part::kSetup;
  bool inFence = false;
  Record current;
  std::string lastKey;

  auto flush = [&] {
    if (!current.empty() && !sections.empty()) {
      auto& s = sections.back();
      if (part == Part::kSetup) {
        s.setup.insert(current.begin(), current.end());
      } else if (part == Part::kEncryptions) {
        s.encryptions.push_back(current);
      } else {
        s.exports.push_back(current);
      }
    }
    current.clear();
    lastKey.clear();
  };

  std::string raw;
  while (std::getline(in, raw)) {
    std::string line = trim(raw);
    if (line == "~~~") {
      flush();
      inFence = !inFence;
      continue;
    }
    if (!inFence) {
      if (line.rfind("#### ", 0) == 0) {
        part = line.find("Encryptions") != std::string::npos ? Part::kEncryptions : Part::kExports;
      } else if (line.rfind("### ", 0) == 0) {
        sections.push_back(VectorSection{line.substr(4), {}, {}, {}});
        part = Part::kSetup;
      }
      continue;
    }
    if (line.empty()) {
      flush();
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      if (!lastKey.empty()) current[lastKey] += line;
      continue;
    }
    lastKey = trim(line.substr(0, colon));
    current[lastKey] = trim(line.substr(colon + 1));
  }
  flush();
  return sections;
}

Bytes hex(const Record& r, const std::string& key) {
  auto it = r.find(key);
  REQUIRE_MESSAGE(it != r.end(), "vector record has no '" << key << "'");
  auto bytes = pass::fromHex(it->second);
  REQUIRE_MESSAGE(bytes.has_value(), "'" << key << "' is not hex: " << it->second);
  return *bytes;
}

std::uint64_t number(const Record& r, const std::string& key) {
  auto it = r.find(key);
  REQUIRE_MESSAGE(it != r.end(), "vector record has no '" << key << "'");
  return std::stoull(it->second);
}

std::string hexOf(ByteView b) { return pass::toHex(b); }

std::vector<VectorSection> loadVectors() {
  std::ifstream in(kVectorFile);
  REQUIRE_MESSAGE(in.is_open(), "cannot open the RFC 9180 test vectors at " << kVectorFile);
  return parseVectors(in);
}

const VectorSection& baseSection(const std::vector<VectorSection>& sections) {
  auto it = std::find_if(sections.begin(), sections.end(), [](const VectorSection& s) {
    auto mode = s.setup.find("mode");
    return mode != s.setup.end() && mode->second == "0";
  });
  REQUIRE_MESSAGE(it != sections.end(), "no 'mode: 0' section in " << kVectorFile);
  return *it;
}

}  // namespace

TEST_CASE("the vector parser reads every mode and the base mode in full") {
  auto sections = loadVectors();
  REQUIRE(sections.size() == 4);
  for (std::size_t mode = 0; mode < sections.size(); ++mode) {
    CAPTURE(sections[mode].title);
    CHECK(number(sections[mode].setup, "mode") == mode);
    CHECK(number(sections[mode].setup, "kem_id") == pass::hpke::kKemId);
    CHECK(number(sections[mode].setup, "kdf_id") == pass::hpke::kKdfId);
    CHECK(number(sections[mode].setup, "aead_id") == pass::hpke::kAeadId);
    CHECK(!sections[mode].encryptions.empty());
    CHECK(!sections[mode].exports.empty());
  }
  const auto& base = baseSection(sections);
  // A value wrapped over three lines is joined; an empty value stays empty.
  CHECK(hex(base.setup, "key_schedule_context").size() == 65);
  CHECK(base.exports.front().at("exporter_context").empty());
}

TEST_CASE("HPKE base mode matches every RFC 9180 A.1 value") {
  auto sections = loadVectors();
  const auto& base = baseSection(sections);
  const auto& s = base.setup;
  Bytes info = hex(s, "info");

  // DeriveKeyPair gives the vector's key pairs.
  auto ephemeral = pass::hpke::deriveKeyPair(hex(s, "ikmE"));
  CHECK(hexOf(ephemeral.rawPrivate()) == hexOf(hex(s, "skEm")));
  CHECK(hexOf(ephemeral.rawPublic()) == hexOf(hex(s, "pkEm")));
  auto recipient = pass::hpke::deriveKeyPair(hex(s, "ikmR"));
  CHECK(hexOf(recipient.rawPrivate()) == hexOf(hex(s, "skRm")));
  CHECK(hexOf(recipient.rawPublic()) == hexOf(hex(s, "pkRm")));

  auto recipientPublic = pass::X25519Key::fromRawPublic(hex(s, "pkRm"));
  REQUIRE(recipientPublic.has_value());
  auto sender = pass::hpke::setupBaseS(*recipientPublic, info, ephemeral);
  REQUIRE_MESSAGE(sender.has_value(), sender.error().message);
  CHECK(hexOf(sender->enc) == hexOf(hex(s, "enc")));
  CHECK(hexOf(sender->sharedSecret) == hexOf(hex(s, "shared_secret")));
  CHECK(hexOf(sender->context.key) == hexOf(hex(s, "key")));
  CHECK(hexOf(sender->context.baseNonce) == hexOf(hex(s, "base_nonce")));
  CHECK(hexOf(sender->context.exporterSecret) == hexOf(hex(s, "exporter_secret")));

  auto scheduled = pass::hpke::keySchedule(hex(s, "shared_secret"), info);
  CHECK(hexOf(scheduled.key) == hexOf(hex(s, "key")));
  CHECK(hexOf(scheduled.baseNonce) == hexOf(hex(s, "base_nonce")));
  CHECK(hexOf(scheduled.exporterSecret) == hexOf(hex(s, "exporter_secret")));

  auto skR = pass::X25519Key::fromRawPrivate(hex(s, "skRm"));
  REQUIRE(skR.has_value());
  auto receiver = pass::hpke::setupBaseR(hex(s, "enc"), *skR, info);
  REQUIRE_MESSAGE(receiver.has_value(), receiver.error().message);
  CHECK(hexOf(receiver->key) == hexOf(hex(s, "key")));
  CHECK(hexOf(receiver->baseNonce) == hexOf(hex(s, "base_nonce")));
  CHECK(hexOf(receiver->exporterSecret) == hexOf(hex(s, "exporter_secret")));

  REQUIRE(base.encryptions.size() == 6);
  for (const auto& e : base.encryptions) {
    std::uint64_t seq = number(e, "sequence number");
    CAPTURE(seq);
    Bytes pt = hex(e, "pt");
    Bytes aad = hex(e, "aad");
    Bytes ct = hex(e, "ct");
    CHECK(hexOf(sender->context.nonce(seq)) == hexOf(hex(e, "nonce")));

    sender->context.seq = seq;
    auto sealed = sender->context.seal(aad, pt);
    REQUIRE_MESSAGE(sealed.has_value(), sealed.error().message);
    CHECK(hexOf(*sealed) == hexOf(ct));
    CHECK(sender->context.seq == seq + 1);

    receiver->seq = seq;
    auto opened = receiver->open(aad, ct);
    REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
    CHECK(hexOf(*opened) == hexOf(pt));
    CHECK(receiver->seq == seq + 1);
  }

  REQUIRE(base.exports.size() == 3);
  for (const auto& x : base.exports) {
    Bytes exporterContext = hex(x, "exporter_context");
    auto length = static_cast<std::size_t>(number(x, "L"));
    CAPTURE(hexOf(exporterContext));
    CHECK(hexOf(sender->context.exportSecret(exporterContext, length)) ==
          hexOf(hex(x, "exported_value")));
    CHECK(hexOf(receiver->exportSecret(exporterContext, length)) ==
          hexOf(hex(x, "exported_value")));
  }
}

TEST_CASE("HPKE open refuses altered input and keeps its sequence number") {
  auto recipient = pass::X25519Key::generate();
  auto sender = pass::hpke::setupBaseS(recipient, pass::asBytes("info"));
  REQUIRE(sender.has_value());
  auto receiver = pass::hpke::setupBaseR(sender->enc, recipient, pass::asBytes("info"));
  REQUIRE(receiver.has_value());

  auto ct = sender->context.seal(pass::asBytes("aad"), pass::asBytes("hello"));
  REQUIRE(ct.has_value());
  CHECK(ct->size() == 5 + pass::hpke::kNt);

  auto wrongAad = receiver->open(pass::asBytes("aaD"), *ct);
  REQUIRE_FALSE(wrongAad.has_value());
  CHECK(wrongAad.error().code == "decrypt_failed");
  CHECK(receiver->seq == 0);

  Bytes flipped = *ct;
  flipped[0] ^= 0x01;
  auto altered = receiver->open(pass::asBytes("aad"), flipped);
  REQUIRE_FALSE(altered.has_value());
  CHECK(altered.error().code == "decrypt_failed");

  auto truncated = receiver->open(pass::asBytes("aad"), ByteView(*ct).first(15));
  REQUIRE_FALSE(truncated.has_value());
  CHECK(truncated.error().code == "decrypt_failed");
  CHECK(receiver->seq == 0);

  auto opened = receiver->open(pass::asBytes("aad"), *ct);
  REQUIRE(opened.has_value());
  CHECK(pass::asString(*opened) == "hello");
  CHECK(receiver->seq == 1);

  // A second message uses the next nonce: replaying the first ciphertext fails.
  auto replay = receiver->open(pass::asBytes("aad"), *ct);
  REQUIRE_FALSE(replay.has_value());
  CHECK(replay.error().code == "decrypt_failed");
}

TEST_CASE("HPKE setupBaseR refuses a bad enc or a public-only key") {
  auto recipient = pass::X25519Key::generate();
  auto info = pass::asBytes("PASS envelope v1");

  auto shortEnc = pass::hpke::setupBaseR(Bytes(31, 0x42), recipient, info);
  REQUIRE_FALSE(shortEnc.has_value());
  CHECK(shortEnc.error().code == "decrypt_failed");
  CHECK(shortEnc.error().message.find("31 bytes") != std::string::npos);

  // The zero point is of low order: X25519 with it gives the all-zero secret.
  auto zeroEnc = pass::hpke::setupBaseR(Bytes(32, 0), recipient, info);
  REQUIRE_FALSE(zeroEnc.has_value());
  CHECK(zeroEnc.error().code == "decrypt_failed");

  auto publicOnly = pass::X25519Key::fromRawPublic(recipient.rawPublic());
  REQUIRE(publicOnly.has_value());
  auto sender = pass::hpke::setupBaseS(recipient, info);
  REQUIRE(sender.has_value());
  auto noPrivate = pass::hpke::setupBaseR(sender->enc, *publicOnly, info);
  REQUIRE_FALSE(noPrivate.has_value());
  CHECK(noPrivate.error().code == "decrypt_failed");

  // A different info derives a different context, so the sender's message does not open.
  auto ct = sender->context.seal({}, pass::asBytes("x"));
  REQUIRE(ct.has_value());
  auto otherInfo = pass::hpke::setupBaseR(sender->enc, recipient, pass::asBytes("other"));
  REQUIRE(otherInfo.has_value());
  CHECK_FALSE(otherInfo->open({}, *ct).has_value());
}

TEST_CASE("X25519 refuses a low-order peer and agrees with itself") {
  auto a = pass::X25519Key::generate();
  auto b = pass::X25519Key::generate();
  auto ab = a.dh(b);
  auto ba = b.dh(a);
  REQUIRE(ab.has_value());
  REQUIRE(ba.has_value());
  CHECK(*ab == *ba);

  auto zero = pass::X25519Key::fromRawPublic(Bytes(32, 0));
  REQUIRE(zero.has_value());
  auto bad = a.dh(*zero);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == "dh_failed");

  auto publicOnly = pass::X25519Key::fromRawPublic(a.rawPublic());
  REQUIRE(publicOnly.has_value());
  CHECK_FALSE(publicOnly->dh(b).has_value());
}

TEST_CASE("HPKE export refuses lengths above 255 * Nh") {
  auto ctx = pass::hpke::keySchedule(Bytes(32, 7), {});
  CHECK(ctx.exportSecret({}, 255 * 32).size() == 255 * 32);
  CHECK(ctx.exportSecret({}, 255 * 32 + 1).empty());
}
