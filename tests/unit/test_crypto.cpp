// Ed25519 verification and X25519 against published values. These pin the behaviour of
// whichever backend libpass is built with (libsodium on Linux, OpenSSL on Windows), so that
// swapping one for the other cannot change what the home accepts.

#include <doctest/doctest.h>

#include <string_view>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"

using pass::Bytes;

namespace {

Bytes hex(std::string_view h) {
  auto b = pass::fromHex(h);
  REQUIRE(b.has_value());
  return *b;
}

struct Rfc8032Vector {
  std::string_view publicKey;
  std::string_view message;
  std::string_view signature;
};

// RFC 8032 section 7.1, TEST 1 to 3.
constexpr Rfc8032Vector kVectors[] = {
    {"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b"
     "46"
     "bd25bf5f0595bbe24655141438e7a100b"},
    {"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11"
     "d8"
     "c387b2eaeb4302aeeb00d291612bb0c00"},
    {"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc"
     "65"
     "94a7c15e9716ed28dc027beceea1ec40a"},
};

// The order of the Ed25519 group, little-endian: S + L verifies the same equation but is not
// the canonical encoding, and both RFC 8032 and every backend must refuse it.
constexpr std::string_view kGroupOrder =
    "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

Bytes addGroupOrderToS(Bytes signature) {
  auto order = hex(kGroupOrder);
  unsigned carry = 0;
  for (std::size_t i = 0; i < 32; ++i) {
    unsigned sum = signature[32 + i] + order[i] + carry;
    signature[32 + i] = static_cast<std::uint8_t>(sum);
    carry = sum >> 8;
  }
  REQUIRE(carry == 0);
  return signature;
}

}  // namespace

TEST_CASE("Ed25519 verifies the RFC 8032 vectors and refuses their alterations") {
  for (const auto& v : kVectors) {
    CAPTURE(v.publicKey);
    auto key = pass::Ed25519Key::fromRawPublic(hex(v.publicKey));
    REQUIRE(key.has_value());
    auto message = hex(v.message);
    auto signature = hex(v.signature);
    CHECK(key->verify(message, signature));

    auto flipped = signature;
    flipped[10] ^= 0x01;  // inside R
    CHECK_FALSE(key->verify(message, flipped));
    flipped = signature;
    flipped[40] ^= 0x01;  // inside S
    CHECK_FALSE(key->verify(message, flipped));
    auto longer = message;
    longer.push_back(0);
    CHECK_FALSE(key->verify(longer, signature));
    CHECK_FALSE(key->verify(message, addGroupOrderToS(signature)));
    CHECK_FALSE(key->verify(message, Bytes(signature.begin(), signature.end() - 1)));
  }
}

TEST_CASE("a signature from one key does not verify under another") {
  auto a = pass::Ed25519Key::generate();
  auto b = pass::Ed25519Key::generate();
  Bytes message = {'p', 'a', 's', 's'};
  auto signature = a.sign(message);
  REQUIRE(signature.size() == 64);
  CHECK(a.verify(message, signature));
  auto aPublic = pass::Ed25519Key::fromRawPublic(a.rawPublic());
  REQUIRE(aPublic.has_value());
  CHECK(aPublic->verify(message, signature));
  CHECK_FALSE(b.verify(message, signature));
}

TEST_CASE("X25519 with a raw peer key: RFC 7748 section 6.1") {
  auto alice = pass::X25519Key::fromRawPrivate(
      hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  auto bob = pass::X25519Key::fromRawPrivate(
      hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
  REQUIRE(alice.has_value());
  REQUIRE(bob.has_value());
  CHECK(pass::toHex(alice->rawPublic()) ==
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  CHECK(pass::toHex(bob->rawPublic()) ==
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const std::string_view shared =
      "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  auto fromRaw = alice->dh(bob->rawPublic());
  REQUIRE(fromRaw.has_value());
  CHECK(pass::toHex(*fromRaw) == shared);
  auto fromKey = bob->dh(*alice);
  REQUIRE(fromKey.has_value());
  CHECK(pass::toHex(*fromKey) == shared);

  auto shortPeer = alice->dh(Bytes(31, 9));
  REQUIRE_FALSE(shortPeer.has_value());
  CHECK(shortPeer.error().code == "dh_failed");
  auto lowOrder = alice->dh(Bytes(32, 0));
  REQUIRE_FALSE(lowOrder.has_value());
  CHECK(lowOrder.error().code == "dh_failed");
}
