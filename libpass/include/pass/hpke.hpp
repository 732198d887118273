#pragma once
/// HPKE base mode (RFC 9180) for the one suite PASS uses:
/// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, composed from OpenSSL primitives.

#include <cstdint>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/result.hpp"

namespace pass::hpke {

inline constexpr std::uint16_t kKemId = 0x0020;
inline constexpr std::uint16_t kKdfId = 0x0001;
inline constexpr std::uint16_t kAeadId = 0x0001;
inline constexpr std::size_t kNk = 16;
inline constexpr std::size_t kNn = 12;
inline constexpr std::size_t kNt = 16;
inline constexpr std::size_t kNenc = 32;

/// DeriveKeyPair(ikm) of RFC 9180 §7.1.3 for X25519.
X25519Key deriveKeyPair(ByteView ikm);

/// An HPKE context (sender or recipient) after the key schedule.
class Context {
 public:
  Bytes key;
  Bytes baseNonce;
  Bytes exporterSecret;
  std::uint64_t seq = 0;

  /// Seal/Open with the current sequence number, then increment it (open: only on success).
  /// open fails with "decrypt_failed" when ct or aad were altered or the key is wrong.
  Result<Bytes> seal(ByteView aad, ByteView pt);
  Result<Bytes> open(ByteView aad, ByteView ct);
  /// Export(exporter_context, L). Precondition: length <= 255 * 32; returns empty otherwise.
  Bytes exportSecret(ByteView exporterContext, std::size_t length) const;
  /// ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn).
  Bytes nonce(std::uint64_t sequence) const;
};

struct SenderSetup {
  Bytes enc;
  Bytes sharedSecret;
  Context context;
};

/// SetupBaseS with a fresh ephemeral key.
Result<SenderSetup> setupBaseS(const X25519Key& recipientPublic, ByteView info);
/// SetupBaseS with a given ephemeral key pair (for the RFC test vectors).
Result<SenderSetup> setupBaseS(const X25519Key& recipientPublic, ByteView info,
                               const X25519Key& ephemeral);
/// SetupBaseR: fails with code "decrypt_failed" on a bad enc.
Result<Context> setupBaseR(ByteView enc, const X25519Key& recipientPrivate, ByteView info);

/// The key schedule alone (for tests): returns the context from shared_secret and info.
Context keySchedule(ByteView sharedSecret, ByteView info);

}  // namespace pass::hpke
