#pragma once
/// Thin, RAII-owned access to the primitives PASS uses: SHA-256, HMAC, AES-128-GCM, Ed25519 and
/// X25519 keys with PEM files. OpenSSL 3 owns the keys and does the rest; where libpass is built
/// with libsodium (PASS_HAVE_LIBSODIUM, every Linux build), Ed25519 verification and X25519 run
/// in libsodium, which does them twice and 1.2 times as fast (docs/performance.md). All handles
/// are wrapped in libpass/src/crypto.cpp.

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "pass/bytes.hpp"
#include "pass/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;  // NOLINT: OpenSSL's own forward declaration

namespace pass {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

Bytes sha256(ByteView data);

/// Standard base64 (RFC 4648 section 4) with padding.
std::string toBase64(ByteView data);

/// Fills `n` bytes from OpenSSL's CSPRNG. Aborts if the CSPRNG cannot be seeded: nothing in
/// PASS can run safely without it.
Bytes randomBytes(std::size_t n);

/// HMAC-SHA256(key, parts[0] || parts[1] || ...), without concatenating the parts first.
std::array<std::uint8_t, 32> hmacSha256(ByteView key, std::initializer_list<ByteView> parts);

/// AES-128-GCM with a 12-byte nonce: returns ct || 16-byte tag. Errors ("encrypt_failed") only
/// on a wrong key/nonce length or an OpenSSL failure.
Result<Bytes> aes128GcmSeal(ByteView key16, ByteView nonce12, ByteView aad, ByteView pt);
/// Inverse of aes128GcmSeal; "decrypt_failed" when the tag does not authenticate ct and aad.
Result<Bytes> aes128GcmOpen(ByteView key16, ByteView nonce12, ByteView aad, ByteView ctAndTag);

/// Overwrites secret bytes in a way the compiler cannot optimise away.
void secureZero(std::span<std::uint8_t> secret);

/// An Ed25519 signing key (agent-sign.key) or verification key.
class Ed25519Key {
 public:
  static Ed25519Key generate();
  /// From a PKCS#8 PEM private key or SPKI PEM public key; errors name the file and say what
  /// is wrong: "key.missing_file", "key.unreadable", "key.not_pem", "key.unsupported_pem",
  /// "key.bad_pem", "key.wrong_type". fromPem names `what` (a path) in the same errors.
  static Result<Ed25519Key> loadPem(const std::string& path);
  static Result<Ed25519Key> fromPem(std::string_view pem, std::string_view what);
  static Result<Ed25519Key> fromRawPublic(ByteView raw32);

  bool hasPrivate() const { return hasPrivate_; }
  Bytes rawPublic() const;
  /// PKCS#8 PEM of the private key (precondition: hasPrivate()).
  std::string privatePem() const;
  std::string publicPem() const;
  /// The 64-byte signature; empty when this is a verification key only.
  Bytes sign(ByteView message) const;
  /// False for a wrong signature, including one that is not 64 bytes. With libsodium this
  /// also refuses a non-canonical or small-order public key or R, which no key PASS generates
  /// has.
  bool verify(ByteView message, ByteView signature64) const;

 private:
  Ed25519Key(PkeyPtr k, bool priv);
  std::shared_ptr<EVP_PKEY> key_;
  std::array<std::uint8_t, 32> public_{};
  bool hasPrivate_ = false;
};

/// An X25519 key pair or public key (home-hpke.pub / home-hpke.key).
class X25519Key {
 public:
  static X25519Key generate();
  /// As Ed25519Key::loadPem, for X25519 keys.
  static Result<X25519Key> loadPem(const std::string& path);
  static Result<X25519Key> fromPem(std::string_view pem, std::string_view what);
  static Result<X25519Key> fromRawPrivate(ByteView raw32);
  static Result<X25519Key> fromRawPublic(ByteView raw32);

  bool hasPrivate() const { return hasPrivate_; }
  Bytes rawPublic() const;
  /// Empty when the key has no private part (also privatePem()).
  Bytes rawPrivate() const;
  std::string privatePem() const;
  std::string publicPem() const;
  /// X25519(this private, peer public); "dh_failed" on an all-zero shared secret (low-order
  /// peer point) or when this key has no private part.
  Result<Bytes> dh(const X25519Key& peer) const;
  /// As above with the peer's raw 32-byte public key (an HPKE `enc`), without building a key
  /// object for it; "dh_failed" also when it is not 32 bytes.
  Result<Bytes> dh(ByteView peerPublic32) const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  X25519Key(PkeyPtr k, bool priv);
  std::shared_ptr<EVP_PKEY> key_;
  std::array<std::uint8_t, 32> public_{};
  bool hasPrivate_ = false;
};

}  // namespace pass
