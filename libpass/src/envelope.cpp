#include "pass/envelope.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "pass/hpke.hpp"

namespace pass {

namespace {

// Offsets of wire format v1 (DESIGN.md, "Envelope, wire format v1").
constexpr std::size_t kMagicOffset = 0;
constexpr std::size_t kVersionOffset = 4;
constexpr std::size_t kSuiteOffset = 5;
constexpr std::size_t kFlagsOffset = 6;
constexpr std::size_t kAgentIdOffset = 8;
constexpr std::size_t kSeqOffset = 24;
constexpr std::size_t kCreatedOffset = 32;
constexpr std::size_t kKeyIdOffset = 40;
constexpr std::size_t kEncOffset = kEnvelopeHeaderSize;
constexpr std::size_t kCtLenOffset = kEncOffset + hpke::kNenc;
constexpr std::size_t kCtOffset = kCtLenOffset + 4;
constexpr std::size_t kSigSize = 64;
constexpr std::string_view kMagic = "PASS";
static_assert(kKeyIdOffset + 8 == kEnvelopeHeaderSize);
static_assert(kCtOffset + kSigSize == kEnvelopeFixedSize);

std::string describe(const EnvelopeHeader& h) {
  return fmt::format("envelope from agent {} seq {}", formatUuid(h.agentId), h.seq);
}

/// Printable form of untrusted bytes for an error message.
std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

}  // namespace

std::string formatUuid(const AgentId& id) {
  ByteView b(id);
  return fmt::format("{}-{}-{}-{}-{}", toHex(b.subspan(0, 4)), toHex(b.subspan(4, 2)),
                     toHex(b.subspan(6, 2)), toHex(b.subspan(8, 2)), toHex(b.subspan(10, 6)));
}

Result<AgentId> parseUuid(std::string_view text) {
  auto bad = [&] {
    return fail("bad_uuid",
                fmt::format("'{}' is not a UUID: expected 32 hex digits in the 8-4-4-4-12 form, "
                            "e.g. 123e4567-e89b-42d3-a456-426614174000",
                            quoted(text)));
  };
  if (text.size() != 36) return bad();
  std::string hex;
  hex.reserve(32);
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (text[i] == '-')) return bad();
    if (!dash) hex.push_back(text[i]);
  }
  auto bytes = fromHex(hex);
  if (!bytes) return bad();
  AgentId id{};
  std::copy(bytes->begin(), bytes->end(), id.begin());
  return id;
}

AgentId randomUuid() {
  Bytes r = randomBytes(16);
  AgentId id{};
  std::copy(r.begin(), r.end(), id.begin());
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0f) | 0x40);  // version 4
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return id;
}

KeyId hpkeKeyId(const X25519Key& publicKey) {
  Bytes digest = sha256(publicKey.rawPublic());
  KeyId id{};
  std::copy_n(digest.begin(), id.size(), id.begin());
  return id;
}

Result<Bytes> sealEnvelope(const EnvelopeHeader& header, std::string_view payload,
                           const X25519Key& homePublic, const Ed25519Key& signKey) {
  if (!signKey.hasPrivate()) {
    return fail("envelope.no_sign_key",
                fmt::format("{}: the signing key has no private part", describe(header)));
  }
  KeyId homeKeyId = hpkeKeyId(homePublic);
  if (header.keyId != homeKeyId) {
    return fail("envelope.key_id_mismatch",
                fmt::format("{}: header key_id {} is not the id {} of the home HPKE key it is "
                            "sealed to (use hpkeKeyId)",
                            describe(header), toHex(header.keyId), toHex(homeKeyId)));
  }
  if (payload.size() > std::uint64_t{UINT32_MAX} - hpke::kNt) {
    return fail("envelope.too_large", fmt::format("{}: payload of {} bytes does not fit ct_len",
                                                  describe(header), payload.size()));
  }

  Bytes out;
  out.reserve(kEnvelopeFixedSize + payload.size() + hpke::kNt);
  out.insert(out.end(), kMagic.begin(), kMagic.end());
  out.push_back(kEnvelopeVersion);
  out.push_back(kEnvelopeSuite);
  putU16(out, 0);
  out.insert(out.end(), header.agentId.begin(), header.agentId.end());
  putU64(out, header.seq);
  putU64(out, header.createdMs);
  out.insert(out.end(), header.keyId.begin(), header.keyId.end());

  auto setup = hpke::setupBaseS(homePublic, asBytes(kEnvelopeInfo));
  if (!setup) {
    return fail(setup.error().code, fmt::format("{}: {}", describe(header), setup.error().message));
  }
  auto ct = setup->context.seal(ByteView(out.data(), kEnvelopeHeaderSize), asBytes(payload));
  if (!ct) {
    return fail(ct.error().code, fmt::format("{}: {}", describe(header), ct.error().message));
  }
  out.insert(out.end(), setup->enc.begin(), setup->enc.end());
  putU32(out, static_cast<std::uint32_t>(ct->size()));
  out.insert(out.end(), ct->begin(), ct->end());

  Bytes sig = signKey.sign(out);
  if (sig.size() != kSigSize) {
    return fail("envelope.sign_failed",
                fmt::format("{}: Ed25519 signing failed", describe(header)));
  }
  out.insert(out.end(), sig.begin(), sig.end());
  return out;
}

Result<EnvelopeHeader> parseEnvelopeHeader(ByteView envelope) {
  if (envelope.size() < kEnvelopeFixedSize) {
    return fail("short", fmt::format("envelope is {} bytes, shorter than the {} bytes every v1 "
                                     "envelope has without its ciphertext",
                                     envelope.size(), kEnvelopeFixedSize));
  }
  ByteView magic = envelope.subspan(kMagicOffset, kMagic.size());
  if (!std::equal(magic.begin(), magic.end(), kMagic.begin())) {
    return fail("bad_magic", fmt::format("envelope magic is 0x{} ('{}'), expected 'PASS'",
                                         toHex(magic), quoted(asString(magic))));
  }
  if (envelope[kVersionOffset] != kEnvelopeVersion) {
    return fail("bad_version", fmt::format("envelope version is {}, expected {}",
                                           envelope[kVersionOffset], kEnvelopeVersion));
  }
  if (envelope[kSuiteOffset] != kEnvelopeSuite) {
    return fail("bad_suite", fmt::format("envelope suite is {}, expected {} (X25519/HKDF-SHA256/"
                                         "AES-128-GCM, Ed25519)",
                                         envelope[kSuiteOffset], kEnvelopeSuite));
  }
  if (std::uint16_t flags = getU16(envelope.data() + kFlagsOffset); flags != 0) {
    return fail("bad_flags",
                fmt::format("envelope flags are 0x{:04x}, expected 0x0000 (reserved)", flags));
  }

  EnvelopeHeader h;
  std::copy_n(envelope.begin() + kAgentIdOffset, h.agentId.size(), h.agentId.begin());
  h.seq = getU64(envelope.data() + kSeqOffset);
  h.createdMs = getU64(envelope.data() + kCreatedOffset);
  std::copy_n(envelope.begin() + kKeyIdOffset, h.keyId.size(), h.keyId.begin());

  std::uint32_t ctLen = getU32(envelope.data() + kCtLenOffset);
  if (ctLen < hpke::kNt) {
    return fail("length_mismatch",
                fmt::format("{}: ct_len is {}, shorter than the {}-byte AEAD tag", describe(h),
                            ctLen, hpke::kNt));
  }
  // 64-bit arithmetic: a 32-bit size_t could overflow on a hostile ct_len.
  std::uint64_t expected = std::uint64_t{kEnvelopeFixedSize} + ctLen;
  if (expected != envelope.size()) {
    return fail("length_mismatch",
                fmt::format("{}: ct_len {} means {} bytes in all, but the envelope is {} bytes",
                            describe(h), ctLen, expected, envelope.size()));
  }
  return h;
}

Result<OpenedEnvelope> openEnvelope(ByteView envelope, const EnvelopeKeys& keys) {
  auto header = parseEnvelopeHeader(envelope);
  if (!header) return std::unexpected(std::move(header.error()));
  if (!keys.agentKey || !keys.homeKey) {
    return fail("envelope.no_key_lookup",
                fmt::format("{}: no key lookup configured", describe(*header)));
  }

  auto agentKey = keys.agentKey(header->agentId);
  if (!agentKey) return std::unexpected(std::move(agentKey.error()));
  ByteView signedPart = envelope.first(envelope.size() - kSigSize);
  if (!agentKey->verify(signedPart, envelope.last(kSigSize))) {
    return fail("bad_signature",
                fmt::format("{}: the Ed25519 signature does not verify with the agent's "
                            "enrolled key (altered in transit, or signed by another key)",
                            describe(*header)));
  }

  auto homeKey = keys.homeKey(header->keyId);
  if (!homeKey) return std::unexpected(std::move(homeKey.error()));
  auto context =
      hpke::setupBaseR(envelope.subspan(kEncOffset, hpke::kNenc), *homeKey, asBytes(kEnvelopeInfo));
  if (!context) {
    return fail("decrypt_failed", fmt::format("{}: key_id {}: {}", describe(*header),
                                              toHex(header->keyId), context.error().message));
  }
  ByteView ct = signedPart.subspan(kCtOffset);
  auto pt = context->open(envelope.first(kEnvelopeHeaderSize), ct);
  if (!pt) {
    return fail("decrypt_failed",
                fmt::format("{}: signed correctly but does not decrypt with home key_id {} "
                            "({})",
                            describe(*header), toHex(header->keyId), pt.error().message));
  }
  OpenedEnvelope opened;
  opened.header = *header;
  opened.payload.assign(pt->begin(), pt->end());
  secureZero(*pt);
  return opened;
}

}  // namespace pass
