#include "pass/hpke.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>

// RFC 9180 base mode, written against the RFC's section numbers. Secrets live in fixed-size
// arrays on the stack (no allocation on the hot path) and are wiped before they go out of scope.

namespace pass::hpke {

namespace {

constexpr std::size_t kNh = 32;       // HKDF-SHA256 output
constexpr std::size_t kNsecret = 32;  // DHKEM(X25519) shared secret
constexpr std::size_t kNsk = 32;      // X25519 private key
constexpr std::uint8_t kModeBase = 0x00;

using Secret = std::array<std::uint8_t, kNh>;

constexpr std::string_view kVersionLabel = "HPKE-v1";
// suite_id = "KEM" || I2OSP(kem_id, 2) for the KEM; "HPKE" || kem || kdf || aead otherwise.
constexpr auto kKemSuite = [] {
  std::array<std::uint8_t, 5> id{'K', 'E', 'M'};
  id[3] = kKemId >> 8;
  id[4] = kKemId & 0xff;
  return id;
}();
constexpr auto kHpkeSuite = [] {
  std::array<std::uint8_t, 10> id{'H', 'P', 'K', 'E'};
  std::size_t i = 4;
  for (std::uint16_t part : {kKemId, kKdfId, kAeadId}) {
    id[i++] = static_cast<std::uint8_t>(part >> 8);
    id[i++] = static_cast<std::uint8_t>(part & 0xff);
  }
  return id;
}();

/// Wipes a secret array when it leaves scope, whatever path leaves it.
template <std::size_t N>
struct Wiped {
  std::array<std::uint8_t, N> bytes{};
  Wiped() = default;
  Wiped(const Wiped&) = delete;
  Wiped& operator=(const Wiped&) = delete;
  ~Wiped() { secureZero(bytes); }
};

/// LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm).
/// An empty salt is Nh zero bytes (RFC 5869), which is what HMAC makes of an empty key.
Secret labeledExtract(ByteView suite, ByteView salt, std::string_view label, ByteView ikm) {
  return hmacSha256(salt, {asBytes(kVersionLabel), suite, asBytes(label), ikm});
}

/// LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id ||
/// label || info, L), with HKDF-Expand's T(i) blocks computed in place.
void labeledExpand(ByteView suite, ByteView prk, std::string_view label, ByteView info,
                   std::span<std::uint8_t> out) {
  const std::array<std::uint8_t, 2> length = {static_cast<std::uint8_t>(out.size() >> 8),
                                              static_cast<std::uint8_t>(out.size())};
  Wiped<kNh> block;
  ByteView previous;
  std::uint8_t counter = 0;
  for (std::size_t done = 0; done < out.size(); done += kNh) {
    ++counter;
    block.bytes = hmacSha256(prk, {previous, length, asBytes(kVersionLabel), suite, asBytes(label),
                                   info, ByteView(&counter, 1)});
    std::size_t n = std::min(kNh, out.size() - done);
    std::copy_n(block.bytes.begin(), n, out.begin() + static_cast<std::ptrdiff_t>(done));
    previous = block.bytes;
  }
}

Bytes labeledExpand(ByteView suite, ByteView prk, std::string_view label, ByteView info,
                    std::size_t length) {
  Bytes out(length);
  labeledExpand(suite, prk, label, info, out);
  return out;
}

/// ExtractAndExpand(dh, kem_context) of DHKEM (§4.1): the KEM shared secret.
Bytes extractAndExpand(ByteView dh, ByteView enc, ByteView pkRm) {
  Wiped<kNh> eaePrk;
  eaePrk.bytes = labeledExtract(kKemSuite, {}, "eae_prk", dh);
  std::array<std::uint8_t, kNenc * 2> kemContext{};
  std::copy(enc.begin(), enc.end(), kemContext.begin());
  std::copy(pkRm.begin(), pkRm.end(), kemContext.begin() + kNenc);
  return labeledExpand(kKemSuite, eaePrk.bytes, "shared_secret", kemContext, kNsecret);
}

std::array<std::uint8_t, kNn> computeNonce(const Bytes& baseNonce, std::uint64_t seq) {
  std::array<std::uint8_t, kNn> nonce{};
  std::copy_n(baseNonce.begin(), kNn, nonce.begin());
  for (std::size_t i = 0; i < 8; ++i) {
    nonce[kNn - 1 - i] ^= static_cast<std::uint8_t>(seq >> (8 * i));
  }
  return nonce;
}

}  // namespace

X25519Key deriveKeyPair(ByteView ikm) {
  // §7.1.3: X25519 clamps any 32 bytes into a valid scalar, so no rejection loop is needed.
  Wiped<kNh> dkpPrk;
  dkpPrk.bytes = labeledExtract(kKemSuite, {}, "dkp_prk", ikm);
  Wiped<kNsk> sk;
  labeledExpand(kKemSuite, dkpPrk.bytes, "sk", {}, sk.bytes);
  auto key = X25519Key::fromRawPrivate(sk.bytes);
  // Cannot fail for 32 bytes; if OpenSSL disagrees nothing sealed with it could be trusted.
  return *std::move(key);
}

Context keySchedule(ByteView sharedSecret, ByteView info) {
  static const Secret kPskIdHash = labeledExtract(kHpkeSuite, {}, "psk_id_hash", {});
  std::array<std::uint8_t, 1 + 2 * kNh> context{};
  context[0] = kModeBase;
  std::copy(kPskIdHash.begin(), kPskIdHash.end(), context.begin() + 1);
  Secret infoHash = labeledExtract(kHpkeSuite, {}, "info_hash", info);
  std::copy(infoHash.begin(), infoHash.end(), context.begin() + 1 + kNh);

  Wiped<kNh> secret;
  secret.bytes = labeledExtract(kHpkeSuite, sharedSecret, "secret", {});  // psk is empty
  Context ctx;
  ctx.key = labeledExpand(kHpkeSuite, secret.bytes, "key", context, kNk);
  ctx.baseNonce = labeledExpand(kHpkeSuite, secret.bytes, "base_nonce", context, kNn);
  ctx.exporterSecret = labeledExpand(kHpkeSuite, secret.bytes, "exp", context, kNh);
  return ctx;
}

Result<SenderSetup> setupBaseS(const X25519Key& recipientPublic, ByteView info) {
  return setupBaseS(recipientPublic, info, X25519Key::generate());
}

Result<SenderSetup> setupBaseS(const X25519Key& recipientPublic, ByteView info,
                               const X25519Key& ephemeral) {
  auto dh = ephemeral.dh(recipientPublic);
  if (!dh) {
    return fail("encrypt_failed", fmt::format("HPKE encap to the recipient public key failed: {}",
                                              dh.error().message));
  }
  SenderSetup setup;
  setup.enc = ephemeral.rawPublic();
  Bytes pkRm = recipientPublic.rawPublic();
  setup.sharedSecret = extractAndExpand(*dh, setup.enc, pkRm);
  secureZero(*dh);
  setup.context = keySchedule(setup.sharedSecret, info);
  return setup;
}

Result<Context> setupBaseR(ByteView enc, const X25519Key& recipientPrivate, ByteView info) {
  if (enc.size() != kNenc) {
    return fail("decrypt_failed",
                fmt::format("HPKE enc is {} bytes, expected {}", enc.size(), kNenc));
  }
  if (!recipientPrivate.hasPrivate()) {
    return fail("decrypt_failed", "HPKE decap needs the recipient's private key, got a public key");
  }
  auto dh = recipientPrivate.dh(enc);
  if (!dh) {
    return fail("decrypt_failed", fmt::format("HPKE decap: {}", dh.error().message));
  }
  Bytes pkRm = recipientPrivate.rawPublic();
  Bytes sharedSecret = extractAndExpand(*dh, enc, pkRm);
  secureZero(*dh);
  Context ctx = keySchedule(sharedSecret, info);
  secureZero(sharedSecret);
  return ctx;
}

Bytes Context::nonce(std::uint64_t sequence) const {
  if (baseNonce.size() != kNn) return {};
  auto n = computeNonce(baseNonce, sequence);
  return Bytes(n.begin(), n.end());
}

Result<Bytes> Context::seal(ByteView aad, ByteView pt) {
  // The RFC's limit is 2^96 - 1 messages; a 64-bit counter would wrap first.
  if (seq == std::numeric_limits<std::uint64_t>::max()) {
    return fail("encrypt_failed", "HPKE context has sealed its last message (sequence limit)");
  }
  if (baseNonce.size() != kNn) {
    return fail("encrypt_failed",
                fmt::format("HPKE base_nonce is {} bytes, expected {}", baseNonce.size(), kNn));
  }
  auto nonceBytes = computeNonce(baseNonce, seq);
  auto ct = aes128GcmSeal(key, nonceBytes, aad, pt);
  if (!ct) return ct;
  ++seq;
  return ct;
}

Result<Bytes> Context::open(ByteView aad, ByteView ct) {
  if (seq == std::numeric_limits<std::uint64_t>::max()) {
    return fail("decrypt_failed", "HPKE context has opened its last message (sequence limit)");
  }
  if (baseNonce.size() != kNn) {
    return fail("decrypt_failed",
                fmt::format("HPKE base_nonce is {} bytes, expected {}", baseNonce.size(), kNn));
  }
  auto nonceBytes = computeNonce(baseNonce, seq);
  auto pt = aes128GcmOpen(key, nonceBytes, aad, ct);
  if (!pt) {
    return fail("decrypt_failed",
                fmt::format("HPKE open of message {} failed: {}", seq, pt.error().message));
  }
  ++seq;
  return pt;
}

Bytes Context::exportSecret(ByteView exporterContext, std::size_t length) const {
  if (length > 255 * kNh) return {};
  return labeledExpand(kHpkeSuite, exporterSecret, "sec", exporterContext, length);
}

}  // namespace pass::hpke
