#pragma once
/// Thin, RAII-owned access to the OpenSSL 3 primitives PASS uses: SHA-256, Ed25519 and
/// X25519 keys with PEM files. All OpenSSL handles are wrapped in libpass/src/crypto.cpp.

#include <memory>
#include <string>

#include "pass/bytes.hpp"
#include "pass/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;  // NOLINT: OpenSSL's own forward declaration

namespace pass {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

Bytes sha256(ByteView data);

/// Fills `n` bytes from OpenSSL's CSPRNG.
Bytes randomBytes(std::size_t n);

/// An Ed25519 signing key (agent-sign.key) or verification key.
class Ed25519Key {
 public:
  static Ed25519Key generate();
  /// From a PKCS#8 PEM private key or SPKI PEM public key; errors name the file.
  static Result<Ed25519Key> loadPem(const std::string& path);
  static Result<Ed25519Key> fromPem(std::string_view pem, std::string_view what);
  static Result<Ed25519Key> fromRawPublic(ByteView raw32);

  bool hasPrivate() const { return hasPrivate_; }
  Bytes rawPublic() const;
  /// PKCS#8 PEM of the private key (precondition: hasPrivate()).
  std::string privatePem() const;
  std::string publicPem() const;
  Bytes sign(ByteView message) const;
  bool verify(ByteView message, ByteView signature64) const;

 private:
  explicit Ed25519Key(PkeyPtr k, bool priv) : key_(std::move(k)), hasPrivate_(priv) {}
  std::shared_ptr<EVP_PKEY> key_;
  bool hasPrivate_ = false;
};

/// An X25519 key pair or public key (home-hpke.pub / home-hpke.key).
class X25519Key {
 public:
  static X25519Key generate();
  static Result<X25519Key> loadPem(const std::string& path);
  static Result<X25519Key> fromPem(std::string_view pem, std::string_view what);
  static Result<X25519Key> fromRawPrivate(ByteView raw32);
  static Result<X25519Key> fromRawPublic(ByteView raw32);

  bool hasPrivate() const { return hasPrivate_; }
  Bytes rawPublic() const;
  Bytes rawPrivate() const;
  std::string privatePem() const;
  std::string publicPem() const;
  /// X25519(this private, peer public); fails on an all-zero shared secret.
  Result<Bytes> dh(const X25519Key& peer) const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit X25519Key(PkeyPtr k, bool priv) : key_(std::move(k)), hasPrivate_(priv) {}
  std::shared_ptr<EVP_PKEY> key_;
  bool hasPrivate_ = false;
};

}  // namespace pass
