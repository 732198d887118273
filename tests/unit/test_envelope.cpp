// Envelope wire format v1: sealing, opening, every refusal, and the keys it is built from.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/hpke.hpp"

namespace {

using pass::Bytes;
using pass::ByteView;

constexpr std::size_t kCtLenOffset = 80;
constexpr std::size_t kCtOffset = 84;
constexpr std::string_view kPayload = R"({"schema":1,"kind":"test","message":"hello"})";

/// An agent, a home and counters of how often the home's key lookups ran.
struct Fixture {
  pass::Ed25519Key agentKey = pass::Ed25519Key::generate();
  pass::X25519Key homeKey = pass::X25519Key::generate();
  pass::EnvelopeHeader header;
  int agentLookups = 0;
  int homeLookups = 0;

  Fixture() {
    header.agentId = pass::randomUuid();
    header.seq = 42;
    header.createdMs = 1'700'000'000'123;
    header.keyId = pass::hpkeKeyId(homeKey);
  }

  Bytes seal(std::string_view payload = kPayload) {
    auto sealed = pass::sealEnvelope(header, payload, homeKey, agentKey);
    REQUIRE_MESSAGE(sealed.has_value(), sealed.error().message);
    return *sealed;
  }

  pass::EnvelopeKeys keys() {
    pass::EnvelopeKeys k;
    k.agentKey = [this](const pass::AgentId& id) -> pass::Result<pass::Ed25519Key> {
      ++agentLookups;
      if (id != header.agentId) return pass::fail("unknown_agent", "no such agent");
      return pass::Ed25519Key::fromRawPublic(agentKey.rawPublic());
    };
    k.homeKey = [this](const pass::KeyId& id) -> pass::Result<pass::X25519Key> {
      ++homeLookups;
      if (id != header.keyId) return pass::fail("unknown_key_id", "no such key id");
      return homeKey;
    };
    return k;
  }

  pass::Result<pass::OpenedEnvelope> open(ByteView envelope) {
    return pass::openEnvelope(envelope, keys());
  }

  /// Replaces the signature so that only what the test changed differs from a valid envelope.
  void resign(Bytes& envelope) const {
    Bytes sig = agentKey.sign(ByteView(envelope).first(envelope.size() - 64));
    REQUIRE(sig.size() == 64);
    std::copy(sig.begin(), sig.end(), envelope.end() - 64);
  }
};

void setCtLen(Bytes& envelope, std::uint32_t len) {
  Bytes be;
  pass::putU32(be, len);
  std::copy(be.begin(), be.end(), envelope.begin() + kCtLenOffset);
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

/// A directory under the system temp folder, removed with everything in it.
struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("pass-test-envelope-" + pass::formatUuid(pass::randomUuid()));
  TempDir() { std::filesystem::create_directories(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, std::string_view text) const {
    auto file = path / name;
    std::ofstream(file, std::ios::binary) << text;
    return file.string();
  }
};

}  // namespace

TEST_CASE("an envelope round-trips and has the v1 layout") {
  Fixture f;
  Bytes env = f.seal();
  CHECK(env.size() == pass::kEnvelopeFixedSize + kPayload.size() + pass::hpke::kNt);
  CHECK(pass::asString(ByteView(env).first(4)) == "PASS");
  CHECK(env[4] == 1);
  CHECK(env[5] == 1);
  CHECK(pass::getU16(&env[6]) == 0);
  CHECK(std::equal(f.header.agentId.begin(), f.header.agentId.end(), env.begin() + 8));
  CHECK(pass::getU64(&env[24]) == 42);
  CHECK(pass::getU64(&env[32]) == 1'700'000'000'123);
  CHECK(std::equal(f.header.keyId.begin(), f.header.keyId.end(), env.begin() + 40));
  CHECK(pass::getU32(&env[kCtLenOffset]) == kPayload.size() + pass::hpke::kNt);
  // The payload is not visible anywhere in the sealed bytes.
  CHECK_FALSE(contains(std::string(pass::asString(env)), "hello"));
  // The signature covers every byte before it.
  CHECK(f.agentKey.verify(ByteView(env).first(env.size() - 64), ByteView(env).last(64)));

  auto opened = f.open(env);
  REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
  CHECK(opened->payload == kPayload);
  CHECK(opened->header.agentId == f.header.agentId);
  CHECK(opened->header.seq == 42);
  CHECK(opened->header.createdMs == 1'700'000'000'123);
  CHECK(opened->header.keyId == f.header.keyId);
  CHECK(f.agentLookups == 1);
  CHECK(f.homeLookups == 1);

  // Two seals of one payload differ (fresh ephemeral key), and an empty payload works.
  CHECK(f.seal() != env);
  auto empty = f.open(f.seal(""));
  REQUIRE(empty.has_value());
  CHECK(empty->payload.empty());
}

TEST_CASE("the home can decrypt an envelope it sealed with the matching HPKE context") {
  // Independent check of the wire composition: open by hand with the HPKE API.
  Fixture f;
  Bytes env = f.seal();
  auto ctx = pass::hpke::setupBaseR(ByteView(env).subspan(48, 32), f.homeKey,
                                    pass::asBytes(pass::kEnvelopeInfo));
  REQUIRE(ctx.has_value());
  auto pt = ctx->open(ByteView(env).first(48),
                      ByteView(env).subspan(kCtOffset, env.size() - kCtOffset - 64));
  REQUIRE(pt.has_value());
  CHECK(pass::asString(*pt) == kPayload);
}

TEST_CASE("framing refusals each have their own code, checked in order") {
  Fixture f;
  Bytes env = f.seal();

  auto expectCode = [&](const Bytes& bytes, const std::string& code, std::string_view part) {
    auto parsed = pass::parseEnvelopeHeader(bytes);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code == code);
    CHECK_MESSAGE(contains(parsed.error().message, part), parsed.error().message);
    auto opened = f.open(bytes);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == code);
  };

  SUBCASE("short") { expectCode(Bytes(env.begin(), env.begin() + 147), "short", "147 bytes"); }
  SUBCASE("every fault at once reports the first in the documented order") {
    Bytes bad = env;
    bad[0] = 'X';
    bad[4] = 2;
    bad[5] = 9;
    bad[7] = 1;
    bad.push_back(0);
    expectCode(bad, "bad_magic", "0x58415353");
    bad[0] = 'P';
    expectCode(bad, "bad_version", "version is 2");
    bad[4] = 1;
    expectCode(bad, "bad_suite", "suite is 9");
    bad[5] = 1;
    expectCode(bad, "bad_flags", "0x0001");
    bad[7] = 0;
    expectCode(bad, "length_mismatch", "ct_len");
    bad.pop_back();
    CHECK(pass::parseEnvelopeHeader(bad).has_value());
  }
  SUBCASE("bad_flags in the high byte") {
    Bytes bad = env;
    bad[6] = 0x80;
    expectCode(bad, "bad_flags", "0x8000");
  }
  SUBCASE("length_mismatch: envelope longer than ct_len says") {
    Bytes bad = env;
    bad.push_back(0);
    expectCode(bad, "length_mismatch", std::to_string(env.size() + 1));
  }
  SUBCASE("length_mismatch: envelope shorter than ct_len says") {
    Bytes bad(env.begin(), env.end() - 1);
    expectCode(bad, "length_mismatch", std::to_string(env.size() - 1));
  }
  SUBCASE("length_mismatch: ct_len larger than any envelope") {
    Bytes bad = env;
    setCtLen(bad, 0xffffffffu);
    expectCode(bad, "length_mismatch", "4294967295");
  }
  SUBCASE("length_mismatch: ct_len shorter than the AEAD tag, though consistent") {
    Bytes bad(pass::kEnvelopeFixedSize + 15);
    std::copy_n(env.begin(), kCtLenOffset, bad.begin());
    setCtLen(bad, 15);
    expectCode(bad, "length_mismatch", "ct_len is 15");
  }
  CHECK(f.homeLookups == 0);
}

TEST_CASE("framing errors after the fixed fields name the agent and seq") {
  Fixture f;
  Bytes env = f.seal();
  env.push_back(0);
  auto parsed = pass::parseEnvelopeHeader(env);
  REQUIRE_FALSE(parsed.has_value());
  CHECK(contains(parsed.error().message, pass::formatUuid(f.header.agentId)));
  CHECK(contains(parsed.error().message, "seq 42"));
}

TEST_CASE("a bad signature is refused before any decryption") {
  Fixture f;
  Bytes env = f.seal();

  auto expectBadSignature = [&](const Bytes& bytes) {
    f.homeLookups = 0;
    auto opened = f.open(bytes);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "bad_signature");
    CHECK(contains(opened.error().message, pass::formatUuid(f.header.agentId)));
    CHECK(f.homeLookups == 0);
  };

  SUBCASE("bit flipped in the header") {
    Bytes bad = env;
    bad[31] ^= 0x01;  // seq
    expectBadSignature(bad);
  }
  SUBCASE("bit flipped in the ciphertext") {
    Bytes bad = env;
    bad[kCtOffset + 3] ^= 0x80;
    expectBadSignature(bad);
  }
  SUBCASE("bit flipped in enc") {
    Bytes bad = env;
    bad[48] ^= 0x01;
    expectBadSignature(bad);
  }
  SUBCASE("bit flipped in the signature") {
    Bytes bad = env;
    bad.back() ^= 0x01;
    expectBadSignature(bad);
  }
  SUBCASE("signed by another agent's key") {
    Fixture other;
    other.header = f.header;
    other.homeKey = f.homeKey;
    expectBadSignature(other.seal());
  }
}

TEST_CASE("key lookup errors are passed on unchanged") {
  Fixture f;
  Bytes env = f.seal();

  SUBCASE("unknown agent") {
    pass::AgentId stranger = pass::randomUuid();
    std::copy(stranger.begin(), stranger.end(), env.begin() + 8);
    auto opened = f.open(env);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "unknown_agent");
    CHECK(opened.error().message == "no such agent");
    CHECK(f.homeLookups == 0);
  }
  SUBCASE("unknown key id") {
    auto keys = f.keys();
    keys.homeKey = [](const pass::KeyId&) -> pass::Result<pass::X25519Key> {
      return pass::fail("unknown_key_id", "key id retired");
    };
    auto opened = pass::openEnvelope(env, keys);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "unknown_key_id");
    CHECK(opened.error().message == "key id retired");
  }
  SUBCASE("unknown key id through the header, signed correctly") {
    env[40] ^= 0xff;
    f.resign(env);
    auto opened = f.open(env);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "unknown_key_id");
  }
}

TEST_CASE("decrypt_failed is reached only with a valid signature") {
  Fixture f;
  Bytes env = f.seal();

  auto expectDecryptFailed = [&](const Bytes& bytes) {
    auto opened = f.open(bytes);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "decrypt_failed");
    CHECK(contains(opened.error().message, pass::formatUuid(f.header.agentId)));
    CHECK(contains(opened.error().message, "seq 42"));
    CHECK(f.homeLookups == 1);
  };

  SUBCASE("ciphertext altered and re-signed") {
    env[kCtOffset] ^= 0x01;
    f.resign(env);
    expectDecryptFailed(env);
  }
  SUBCASE("tag altered and re-signed") {
    env[env.size() - 65] ^= 0x01;
    f.resign(env);
    expectDecryptFailed(env);
  }
  SUBCASE("header (aad) altered and re-signed") {
    env[39] ^= 0x01;  // created_ms
    f.resign(env);
    expectDecryptFailed(env);
  }
  SUBCASE("enc replaced by a low-order point and re-signed") {
    std::fill_n(env.begin() + 48, 32, 0);
    f.resign(env);
    expectDecryptFailed(env);
  }
  SUBCASE("sealed to another home key") {
    auto keys = f.keys();
    auto wrongHome = pass::X25519Key::generate();
    keys.homeKey = [&](const pass::KeyId&) -> pass::Result<pass::X25519Key> {
      ++f.homeLookups;
      return wrongHome;
    };
    auto opened = pass::openEnvelope(env, keys);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "decrypt_failed");
  }
}

TEST_CASE("truncated or extended envelopes are refused, never crash") {
  Fixture f;
  Bytes env = f.seal();
  for (std::size_t len = 0; len < env.size(); ++len) {
    CAPTURE(len);
    auto opened = f.open(ByteView(env).first(len));
    REQUIRE_FALSE(opened.has_value());
    CHECK((opened.error().code == "short" || opened.error().code == "length_mismatch"));
  }
  Bytes longer = env;
  for (int extra = 1; extra <= 64; ++extra) {
    longer.push_back(static_cast<std::uint8_t>(extra));
    auto opened = f.open(longer);
    REQUIRE_FALSE(opened.has_value());
    CHECK(opened.error().code == "length_mismatch");
  }
  CHECK(f.homeLookups == 0);
  CHECK(f.open(env).has_value());
}

TEST_CASE("sealEnvelope refuses a key id that is not the home key's") {
  Fixture f;
  f.header.keyId[0] ^= 0x01;
  auto sealed = pass::sealEnvelope(f.header, kPayload, f.homeKey, f.agentKey);
  REQUIRE_FALSE(sealed.has_value());
  CHECK(sealed.error().code == "envelope.key_id_mismatch");

  Fixture g;
  auto verifyOnly = pass::Ed25519Key::fromRawPublic(g.agentKey.rawPublic());
  REQUIRE(verifyOnly.has_value());
  auto unsigned_ = pass::sealEnvelope(g.header, kPayload, g.homeKey, *verifyOnly);
  REQUIRE_FALSE(unsigned_.has_value());
  CHECK(unsigned_.error().code == "envelope.no_sign_key");
}

TEST_CASE("hpkeKeyId is the first 8 bytes of SHA-256 of the raw public key") {
  auto key = pass::X25519Key::generate();
  auto id = pass::hpkeKeyId(key);
  Bytes digest = pass::sha256(key.rawPublic());
  CHECK(std::equal(id.begin(), id.end(), digest.begin()));
  // SHA-256("abc"), FIPS 180-2.
  CHECK(pass::toHex(pass::sha256(pass::asBytes("abc"))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("UUIDs format, parse and are random version 4") {
  auto parsed = pass::parseUuid("123E4567-e89b-42d3-A456-426614174000");
  REQUIRE(parsed.has_value());
  CHECK(pass::formatUuid(*parsed) == "123e4567-e89b-42d3-a456-426614174000");

  for (std::string_view bad :
       {"123e4567e89b42d3a456426614174000", "{123e4567-e89b-42d3-a456-426614174000}",
        "123e4567-e89b-42d3-a456-42661417400g", "123e4567-e89b-42d3-a456-4266141740000",
        "123e456-7e89b-42d3-a456-426614174000", ""}) {
    CAPTURE(bad);
    auto r = pass::parseUuid(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == "bad_uuid");
    CHECK(contains(r.error().message, "'" + std::string(bad) + "'"));
  }

  auto a = pass::randomUuid();
  auto b = pass::randomUuid();
  CHECK(a != b);
  CHECK((a[6] >> 4) == 4);
  CHECK((a[8] & 0xc0) == 0x80);
  auto again = pass::parseUuid(pass::formatUuid(a));
  REQUIRE(again.has_value());
  CHECK(*again == a);
}

TEST_CASE("Ed25519 keys: PEM round trip, sign and verify") {
  auto key = pass::Ed25519Key::generate();
  std::string priv = key.privatePem();
  std::string pub = key.publicPem();
  CHECK(priv.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);
  CHECK(pub.rfind("-----BEGIN PUBLIC KEY-----", 0) == 0);

  TempDir dir;
  auto loadedPriv = pass::Ed25519Key::loadPem(dir.write("agent-sign.key", priv));
  REQUIRE_MESSAGE(loadedPriv.has_value(), loadedPriv.error().message);
  CHECK(loadedPriv->hasPrivate());
  auto loadedPub = pass::Ed25519Key::loadPem(dir.write("agent-sign.pub", pub));
  REQUIRE_MESSAGE(loadedPub.has_value(), loadedPub.error().message);
  CHECK_FALSE(loadedPub->hasPrivate());
  CHECK(loadedPub->rawPublic() == key.rawPublic());
  CHECK(loadedPub->privatePem().empty());

  Bytes sig = loadedPriv->sign(pass::asBytes("message"));
  CHECK(sig.size() == 64);
  CHECK(loadedPub->verify(pass::asBytes("message"), sig));
  CHECK_FALSE(loadedPub->verify(pass::asBytes("messagE"), sig));
  CHECK_FALSE(loadedPub->verify(pass::asBytes("message"), ByteView(sig).first(63)));
  CHECK(loadedPub->sign(pass::asBytes("message")).empty());
}

TEST_CASE("X25519 keys: PEM and raw round trips") {
  auto key = pass::X25519Key::generate();
  auto fromPriv = pass::X25519Key::fromPem(key.privatePem(), "home-hpke.key");
  REQUIRE(fromPriv.has_value());
  CHECK(fromPriv->rawPrivate() == key.rawPrivate());
  auto fromPub = pass::X25519Key::fromPem(key.publicPem(), "home-hpke.pub");
  REQUIRE(fromPub.has_value());
  CHECK_FALSE(fromPub->hasPrivate());
  CHECK(fromPub->rawPublic() == key.rawPublic());
  CHECK(fromPub->rawPrivate().empty());
  auto fromRaw = pass::X25519Key::fromRawPrivate(key.rawPrivate());
  REQUIRE(fromRaw.has_value());
  CHECK(fromRaw->rawPublic() == key.rawPublic());
  CHECK(pass::X25519Key::fromRawPublic(Bytes(31)).error().code == "key.bad_raw");
  CHECK(pass::Ed25519Key::fromRawPublic(Bytes(33)).error().code == "key.bad_raw");
}

TEST_CASE("key loading errors name the file and what is wrong") {
  TempDir dir;
  auto expectError = [](const pass::Status& s, const std::string& code, const std::string& path,
                        std::string_view part) {
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().code == code);
    CHECK_MESSAGE(contains(s.error().message, path), s.error().message);
    CHECK_MESSAGE(contains(s.error().message, part), s.error().message);
  };
  auto status = [](const auto& result) -> pass::Status {
    if (result) return {};
    return std::unexpected(result.error());
  };

  std::string missing = (dir.path / "absent.key").string();
  expectError(status(pass::Ed25519Key::loadPem(missing)), "key.missing_file", missing,
              "does not exist");
  expectError(status(pass::X25519Key::loadPem(missing)), "key.missing_file", missing,
              "does not exist");

  std::string notPem = dir.write("garbage.key", "this is not a key\n");
  expectError(status(pass::Ed25519Key::loadPem(notPem)), "key.not_pem", notPem, "not a PEM");

  std::string damaged =
      dir.write("damaged.key", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n");
  expectError(status(pass::Ed25519Key::loadPem(damaged)), "key.not_pem", damaged, "PEM");

  std::string wrongLabel = dir.write(
      "rsa.key", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
  expectError(status(pass::Ed25519Key::loadPem(wrongLabel)), "key.unsupported_pem", wrongLabel,
              "RSA PRIVATE KEY");

  auto x = pass::X25519Key::generate();
  std::string xKey = dir.write("home-hpke.key", x.privatePem());
  expectError(status(pass::Ed25519Key::loadPem(xKey)), "key.wrong_type", xKey, "X25519");
  auto e = pass::Ed25519Key::generate();
  std::string eKey = dir.write("agent-sign.pub", e.publicPem());
  expectError(status(pass::X25519Key::loadPem(eKey)), "key.wrong_type", eKey, "public Ed25519");

  std::string notDer =
      dir.write("bad-der.key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  expectError(status(pass::X25519Key::loadPem(notDer)), "key.bad_pem", notDer, "does not decode");

  expectError(status(pass::Ed25519Key::loadPem(dir.path.string())), "key.unreadable",
              dir.path.string(), "not a regular file");
}
