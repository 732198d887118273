#pragma once
/// Envelope wire format v1 (docs/protocol.md): signed with the agent's
/// Ed25519 key, payload sealed with HPKE to the home's X25519 key.

#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/result.hpp"

namespace pass {

inline constexpr std::size_t kEnvelopeHeaderSize = 48;
inline constexpr std::size_t kEnvelopeFixedSize = 48 + 32 + 4 + 64;  // header, enc, ct_len, sig
inline constexpr std::uint8_t kEnvelopeVersion = 1;
inline constexpr std::uint8_t kEnvelopeSuite = 1;
inline constexpr std::string_view kEnvelopeInfo = "PASS envelope v1";
inline constexpr std::string_view kEnvelopeContentType = "application/vnd.pass.envelope.v1";

using AgentId = std::array<std::uint8_t, 16>;
using KeyId = std::array<std::uint8_t, 8>;

/// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" lower case.
std::string formatUuid(const AgentId& id);
Result<AgentId> parseUuid(std::string_view text);
/// A random (version 4) UUID.
AgentId randomUuid();

/// First 8 bytes of SHA-256 of the raw 32-byte X25519 public key.
KeyId hpkeKeyId(const X25519Key& publicKey);

/// The fields of an envelope that are readable without keys.
struct EnvelopeHeader {
  AgentId agentId{};
  std::uint64_t seq = 0;
  std::uint64_t createdMs = 0;
  KeyId keyId{};
};

/// Seals `payload` for the home. Precondition: signKey has a private key.
Result<Bytes> sealEnvelope(const EnvelopeHeader& header, std::string_view payload,
                           const X25519Key& homePublic, const Ed25519Key& signKey);

/// Checks the framing only (magic, version, suite, flags, lengths) and returns the header.
/// Error codes: "short", "bad_magic", "bad_version", "bad_suite", "bad_flags",
/// "length_mismatch".
Result<EnvelopeHeader> parseEnvelopeHeader(ByteView envelope);

/// Looks up what the home needs to open an envelope.
struct EnvelopeKeys {
  /// The agent's enrolled verification key; nullptr/unexpected when the agent is unknown.
  std::function<Result<Ed25519Key>(const AgentId&)> agentKey;
  /// The home's HPKE private key for a key id; unexpected when the key id is unknown.
  std::function<Result<X25519Key>(const KeyId&)> homeKey;
};

struct OpenedEnvelope {
  EnvelopeHeader header;
  std::string payload;
};

/// Verifies and opens an envelope. Order: framing, agent key, signature, home key, HPKE open;
/// nothing is decrypted before the signature checks out. Error codes as parseEnvelopeHeader
/// plus whatever agentKey returns (e.g. "unknown_agent"), "bad_signature", "unknown_key_id",
/// "decrypt_failed".
Result<OpenedEnvelope> openEnvelope(ByteView envelope, const EnvelopeKeys& keys);

}  // namespace pass
