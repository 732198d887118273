#include "pass/crypto.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include <fmt/format.h>

#ifdef PASS_HAVE_LIBSODIUM
#include <sodium.h>
#endif

#include "platform/fs.hpp"

// The one file that owns OpenSSL (and libsodium) handles: everything else in libpass sees only
// pass types.

namespace pass {

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Pkcs8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO_free>>;

struct OpensslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};
using OsslString = std::unique_ptr<char, OpensslFree>;

/// DER from a PEM block may be a private key: wipe it when done.
struct OpensslDer {
  unsigned char* data = nullptr;
  long len = 0;
  OpensslDer() = default;
  OpensslDer(const OpensslDer&) = delete;
  OpensslDer& operator=(const OpensslDer&) = delete;
  ~OpensslDer() {
    if (data != nullptr) OPENSSL_clear_free(data, static_cast<std::size_t>(len));
  }
};

constexpr std::size_t kX25519Size = 32;
constexpr std::size_t kEd25519Size = 32;
constexpr std::size_t kEd25519SigSize = 64;
constexpr std::size_t kGcmKeySize = 16;
constexpr std::size_t kGcmNonceSize = 12;
constexpr std::size_t kGcmTagSize = 16;
// Key files are a few hundred bytes; anything much larger is the wrong file.
constexpr std::uintmax_t kMaxKeyFileSize = 64 * 1024;

/// Drains this thread's OpenSSL error queue and returns the most recent reason, so that a
/// failure never leaves stale errors behind for the next, unrelated call.
std::string opensslError() {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  if (last == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

[[noreturn]] void fatal(std::string_view what) {
  std::fprintf(stderr, "pass: fatal OpenSSL failure: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), opensslError().c_str());
  std::abort();
}

// Fetched once: a fetch walks the provider store under a lock, far too slow per envelope.
const EVP_CIPHER* aes128Gcm() {
  static const EVP_CIPHER* const kCipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    if (c == nullptr) fatal("EVP_CIPHER_fetch(AES-128-GCM)");
    return c;
  }();
  return kCipher;
}

/// An HMAC-SHA256 context with the digest already set; each use duplicates it, which is
/// cheaper than setting the digest parameter (a fetch) on a fresh context.
const EVP_MD* sha256Md() {
  static const EVP_MD* const kMd = [] {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (md == nullptr) fatal("EVP_MD_fetch(SHA256)");
    return md;
  }();
  return kMd;
}

Result<std::string> bioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || data == nullptr) return fail("crypto.pem_write", "cannot read PEM output");
  return std::string(data, static_cast<std::size_t>(len));
}

std::string toPem(EVP_PKEY* key, bool privatePart) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) fatal("BIO_new");
  // OpenSSL 3 writes PKCS#8 "PRIVATE KEY" and SPKI "PUBLIC KEY" for these calls.
  int ok = privatePart
               ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) fatal(privatePart ? "PEM_write_bio_PrivateKey" : "PEM_write_bio_PUBKEY");
  auto text = bioContents(bio.get());
  if (!text) fatal("BIO_get_mem_data");
  return *std::move(text);
}

Bytes rawPrivateKey(EVP_PKEY* key) {
  Bytes out(kX25519Size);
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_private_key(key, out.data(), &len) != 1) {
    opensslError();
    return {};
  }
  out.resize(len);
  return out;
}

/// The raw public key every Ed25519 and X25519 key object carries beside its EVP_PKEY.
std::array<std::uint8_t, 32> rawPublic32(EVP_PKEY* key) {
  std::array<std::uint8_t, 32> out{};
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size()) {
    fatal("EVP_PKEY_get_raw_public_key");
  }
  return out;
}

#ifdef PASS_HAVE_LIBSODIUM
void sodiumReady() {
  // sodium_init is thread-safe and idempotent; the static only saves the call.
  static const bool kReady = [] {
    if (sodium_init() < 0) {
      std::fprintf(stderr, "pass: fatal: libsodium cannot initialize\n");
      std::abort();
    }
    return true;
  }();
  (void)kReady;
}
#endif

PkeyPtr generateKey(const char* type) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
  if (!key) fatal(fmt::format("generate {} key", type));
  return key;
}

struct ParsedKey {
  PkeyPtr key;
  bool hasPrivate = false;
};

/// One PEM block: PKCS#8 "PRIVATE KEY" or SPKI "PUBLIC KEY" holding a key of `type`
/// ("ED25519" / "X25519"); `what` names the source (a file path) in errors.
Result<ParsedKey> parseKeyPem(std::string_view pem, std::string_view what, const char* type,
                              std::string_view typeName) {
  if (pem.size() > static_cast<std::size_t>(INT_MAX)) {
    return fail("key.not_pem", fmt::format("{}: too large to be a PEM key", what));
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fatal("BIO_new_mem_buf");

  char* rawName = nullptr;
  char* rawHeader = nullptr;
  OpensslDer der;
  int ok = PEM_read_bio(bio.get(), &rawName, &rawHeader, &der.data, &der.len);
  OsslString name(rawName);
  OsslString header(rawHeader);
  if (ok != 1) {
    unsigned long err = ERR_peek_last_error();
    std::string reason = opensslError();
    if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
      return fail("key.not_pem",
                  fmt::format("{}: not a PEM file (no '-----BEGIN' line); expected an {} key", what,
                              typeName));
    }
    return fail("key.not_pem", fmt::format("{}: damaged PEM ({})", what, reason));
  }

  std::string_view label = name.get();
  ParsedKey parsed;
  const unsigned char* p = der.data;
  if (label == "PRIVATE KEY") {
    Pkcs8Ptr info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, der.len));
    if (info) parsed.key.reset(EVP_PKCS82PKEY_ex(info.get(), nullptr, nullptr));
    parsed.hasPrivate = true;
  } else if (label == "PUBLIC KEY") {
    parsed.key.reset(d2i_PUBKEY_ex(nullptr, &p, der.len, nullptr, nullptr));
  } else if (label == "ENCRYPTED PRIVATE KEY") {
    return fail("key.unsupported_pem",
                fmt::format("{}: the private key is password-encrypted; PASS reads unencrypted "
                            "PKCS#8 keys protected by file permissions",
                            what));
  } else {
    return fail("key.unsupported_pem",
                fmt::format("{}: PEM block is '{}', expected 'PRIVATE KEY' (PKCS#8) or "
                            "'PUBLIC KEY' (SPKI) holding a {} key",
                            what, label, typeName));
  }
  if (!parsed.key) {
    return fail("key.bad_pem", fmt::format("{}: '{}' PEM block does not decode ({})", what, label,
                                           opensslError()));
  }
  if (p != der.data + der.len) {
    return fail("key.bad_pem", fmt::format("{}: '{}' PEM block has {} bytes after the key", what,
                                           label, der.data + der.len - p));
  }
  if (EVP_PKEY_is_a(parsed.key.get(), type) != 1) {
    const char* actual = EVP_PKEY_get0_type_name(parsed.key.get());
    std::string_view actualName = actual != nullptr ? actual : "non-standard";
    if (actualName == "ED25519") actualName = "Ed25519";
    return fail("key.wrong_type",
                fmt::format("{}: holds {} {} key, expected an {} key", what,
                            parsed.hasPrivate ? "a private" : "a public", actualName, typeName));
  }
  return parsed;
}

Result<std::string> readKeyFile(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path file = platform::pathFromUtf8(path);
  std::error_code ec;
  auto status = fs::status(file, ec);
  if (status.type() == fs::file_type::not_found) {
    return fail("key.missing_file", fmt::format("key file {} does not exist", path));
  }
  if (ec) {
    return fail("key.unreadable", fmt::format("key file {}: {}", path, ec.message()));
  }
  if (status.type() != fs::file_type::regular) {
    return fail("key.unreadable", fmt::format("key file {} is not a regular file", path));
  }
  auto size = fs::file_size(file, ec);
  if (!ec && size > kMaxKeyFileSize) {
    return fail("key.not_pem",
                fmt::format("key file {} is {} bytes, too large for a PEM key", path, size));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail("key.unreadable", fmt::format("cannot open key file {}", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return fail("key.unreadable", fmt::format("error reading key file {}", path));
  return text;
}

/// The text of a private key file should not linger in freed heap memory.
void wipe(std::string& text) {
  secureZero({reinterpret_cast<std::uint8_t*>(text.data()), text.size()});
}

/// Feeds `in` to a GCM context (out == nullptr: as associated data) in chunks that OpenSSL's
/// int lengths accept.
bool gcmUpdate(EVP_CIPHER_CTX* ctx, bool encrypt, std::uint8_t* out, ByteView in) {
  constexpr std::size_t kChunk = 1u << 30;
  while (!in.empty()) {
    std::size_t n = std::min(in.size(), kChunk);
    int outLen = 0;
    int ok = encrypt ? EVP_EncryptUpdate(ctx, out, &outLen, in.data(), static_cast<int>(n))
                     : EVP_DecryptUpdate(ctx, out, &outLen, in.data(), static_cast<int>(n));
    if (ok != 1) return false;
    if (out != nullptr) out += outLen;
    in = in.subspan(n);
  }
  return true;
}

}  // namespace

void PkeyFree::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }

std::string toBase64(ByteView data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                      static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(std::max(written, 0)));
  return out;
}

Bytes sha256(ByteView data) {
  Bytes out(32);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, sha256Md(), nullptr) != 1) {
    fatal("EVP_Digest(SHA256)");
  }
  return out;
}

Bytes randomBytes(std::size_t n) {
  Bytes out(n);
  constexpr std::size_t kChunk = 1u << 30;
  for (std::size_t done = 0; done < n;) {
    std::size_t step = std::min(n - done, kChunk);
    if (RAND_bytes(out.data() + done, static_cast<int>(step)) != 1) fatal("RAND_bytes");
    done += step;
  }
  return out;
}

std::array<std::uint8_t, 32> hmacSha256(ByteView key, std::initializer_list<ByteView> parts) {
  // RFC 2104 on a digest context reused by the thread. HKDF runs seven HMACs over short inputs
  // per envelope the home opens; EVP_MAC sets up a fresh provider context for each, which
  // costs more than the hashing.
  constexpr std::size_t kBlock = 64;
  thread_local const MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  std::array<std::uint8_t, kBlock> pad{};
  if (key.size() > kBlock) {
    unsigned int len = 0;
    if (EVP_Digest(key.data(), key.size(), pad.data(), &len, sha256Md(), nullptr) != 1) {
      fatal("EVP_Digest(SHA256)");
    }
  } else {
    std::copy(key.begin(), key.end(), pad.begin());
  }
  std::array<std::uint8_t, 32> inner{};
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  for (auto& b : pad) b ^= 0x36;
  bool ok = EVP_DigestInit_ex2(ctx.get(), sha256Md(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), pad.data(), pad.size()) == 1;
  for (ByteView part : parts) {
    ok = ok && (part.empty() || EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1);
  }
  ok = ok && EVP_DigestFinal_ex(ctx.get(), inner.data(), &len) == 1;
  for (auto& b : pad) b ^= 0x36 ^ 0x5c;
  ok = ok && EVP_DigestInit_ex2(ctx.get(), sha256Md(), nullptr) == 1 &&
       EVP_DigestUpdate(ctx.get(), pad.data(), pad.size()) == 1 &&
       EVP_DigestUpdate(ctx.get(), inner.data(), inner.size()) == 1 &&
       EVP_DigestFinal_ex(ctx.get(), out.data(), &len) == 1;
  secureZero(pad);
  secureZero(inner);
  // Reset wipes the hash state, which derives from the key, and keeps the context.
  EVP_MD_CTX_reset(ctx.get());
  if (!ok) fatal("HMAC-SHA256");
  return out;
}

Result<Bytes> aes128GcmSeal(ByteView key16, ByteView nonce12, ByteView aad, ByteView pt) {
  if (key16.size() != kGcmKeySize || nonce12.size() != kGcmNonceSize) {
    return fail("encrypt_failed",
                fmt::format("AES-128-GCM needs a 16-byte key and 12-byte nonce, got {} and {}",
                            key16.size(), nonce12.size()));
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) fatal("EVP_CIPHER_CTX_new");
  Bytes out(pt.size() + kGcmTagSize);
  int finalLen = 0;
  if (EVP_EncryptInit_ex2(ctx.get(), aes128Gcm(), key16.data(), nonce12.data(), nullptr) != 1 ||
      !gcmUpdate(ctx.get(), true, nullptr, aad) || !gcmUpdate(ctx.get(), true, out.data(), pt) ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + pt.size(), &finalLen) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagSize),
                          out.data() + pt.size()) != 1) {
    return fail("encrypt_failed", fmt::format("AES-128-GCM seal: {}", opensslError()));
  }
  return out;
}

Result<Bytes> aes128GcmOpen(ByteView key16, ByteView nonce12, ByteView aad, ByteView ctAndTag) {
  if (key16.size() != kGcmKeySize || nonce12.size() != kGcmNonceSize) {
    return fail("decrypt_failed",
                fmt::format("AES-128-GCM needs a 16-byte key and 12-byte nonce, got {} and {}",
                            key16.size(), nonce12.size()));
  }
  if (ctAndTag.size() < kGcmTagSize) {
    return fail("decrypt_failed",
                fmt::format("AES-128-GCM ciphertext is {} bytes, shorter than its 16-byte tag",
                            ctAndTag.size()));
  }
  ByteView ct = ctAndTag.first(ctAndTag.size() - kGcmTagSize);
  ByteView tag = ctAndTag.last(kGcmTagSize);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) fatal("EVP_CIPHER_CTX_new");
  Bytes out(ct.size());
  // OpenSSL takes the expected tag through a non-const pointer but only reads it.
  std::array<std::uint8_t, kGcmTagSize> tagCopy;
  std::copy(tag.begin(), tag.end(), tagCopy.begin());
  if (EVP_DecryptInit_ex2(ctx.get(), aes128Gcm(), key16.data(), nonce12.data(), nullptr) != 1 ||
      !gcmUpdate(ctx.get(), false, nullptr, aad) || !gcmUpdate(ctx.get(), false, out.data(), ct) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagSize),
                          tagCopy.data()) != 1) {
    return fail("decrypt_failed", fmt::format("AES-128-GCM open: {}", opensslError()));
  }
  int finalLen = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + out.size(), &finalLen) != 1) {
    ERR_clear_error();
    secureZero(out);
    return fail("decrypt_failed",
                "AES-128-GCM tag does not authenticate the ciphertext and associated data");
  }
  return out;
}

void secureZero(std::span<std::uint8_t> secret) { OPENSSL_cleanse(secret.data(), secret.size()); }

// ---- Ed25519 ----

Ed25519Key::Ed25519Key(PkeyPtr k, bool priv)
    : key_(std::move(k)), public_(rawPublic32(key_.get())), hasPrivate_(priv) {}

Ed25519Key Ed25519Key::generate() { return Ed25519Key(generateKey("ED25519"), true); }

Result<Ed25519Key> Ed25519Key::loadPem(const std::string& path) {
  auto text = readKeyFile(path);
  if (!text) return std::unexpected(std::move(text.error()));
  auto key = fromPem(*text, path);
  wipe(*text);
  return key;
}

Result<Ed25519Key> Ed25519Key::fromPem(std::string_view pem, std::string_view what) {
  auto parsed = parseKeyPem(pem, what, "ED25519", "Ed25519");
  if (!parsed) return std::unexpected(std::move(parsed.error()));
  return Ed25519Key(std::move(parsed->key), parsed->hasPrivate);
}

Result<Ed25519Key> Ed25519Key::fromRawPublic(ByteView raw32) {
  if (raw32.size() != kEd25519Size) {
    return fail("key.bad_raw",
                fmt::format("Ed25519 public key is {} bytes, expected 32", raw32.size()));
  }
  PkeyPtr key(
      EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, raw32.data(), raw32.size()));
  if (!key) {
    return fail("key.bad_raw", fmt::format("Ed25519 public key rejected: {}", opensslError()));
  }
  return Ed25519Key(std::move(key), false);
}

Bytes Ed25519Key::rawPublic() const { return Bytes(public_.begin(), public_.end()); }

std::string Ed25519Key::privatePem() const {
  if (!hasPrivate_) return {};
  return toPem(key_.get(), true);
}

std::string Ed25519Key::publicPem() const { return toPem(key_.get(), false); }

Bytes Ed25519Key::sign(ByteView message) const {
  if (!hasPrivate_) return {};
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  Bytes sig(kEd25519SigSize);
  std::size_t len = sig.size();
  // Ed25519 is a one-shot (pure) signature: no digest, the whole message at once.
  if (EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_.get(), nullptr) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1) {
    opensslError();
    return {};
  }
  sig.resize(len);
  return sig;
}

bool Ed25519Key::verify(ByteView message, ByteView signature64) const {
  if (signature64.size() != kEd25519SigSize) return false;
#ifdef PASS_HAVE_LIBSODIUM
  sodiumReady();
  return crypto_sign_ed25519_verify_detached(signature64.data(), message.data(), message.size(),
                                             public_.data()) == 0;
#else
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_.get(), nullptr) !=
      1) {
    opensslError();
    return false;
  }
  int ok = EVP_DigestVerify(ctx.get(), signature64.data(), signature64.size(), message.data(),
                            message.size());
  if (ok != 1) ERR_clear_error();
  return ok == 1;
#endif
}

// ---- X25519 ----

X25519Key::X25519Key(PkeyPtr k, bool priv)
    : key_(std::move(k)), public_(rawPublic32(key_.get())), hasPrivate_(priv) {}

X25519Key X25519Key::generate() { return X25519Key(generateKey("X25519"), true); }

Result<X25519Key> X25519Key::loadPem(const std::string& path) {
  auto text = readKeyFile(path);
  if (!text) return std::unexpected(std::move(text.error()));
  auto key = fromPem(*text, path);
  wipe(*text);
  return key;
}

Result<X25519Key> X25519Key::fromPem(std::string_view pem, std::string_view what) {
  auto parsed = parseKeyPem(pem, what, "X25519", "X25519");
  if (!parsed) return std::unexpected(std::move(parsed.error()));
  return X25519Key(std::move(parsed->key), parsed->hasPrivate);
}

Result<X25519Key> X25519Key::fromRawPrivate(ByteView raw32) {
  if (raw32.size() != kX25519Size) {
    return fail("key.bad_raw",
                fmt::format("X25519 private key is {} bytes, expected 32", raw32.size()));
  }
  PkeyPtr key(
      EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, raw32.data(), raw32.size()));
  if (!key) {
    return fail("key.bad_raw", fmt::format("X25519 private key rejected: {}", opensslError()));
  }
  return X25519Key(std::move(key), true);
}

Result<X25519Key> X25519Key::fromRawPublic(ByteView raw32) {
  if (raw32.size() != kX25519Size) {
    return fail("key.bad_raw",
                fmt::format("X25519 public key is {} bytes, expected 32", raw32.size()));
  }
  PkeyPtr key(
      EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, raw32.data(), raw32.size()));
  if (!key) {
    return fail("key.bad_raw", fmt::format("X25519 public key rejected: {}", opensslError()));
  }
  return X25519Key(std::move(key), false);
}

Bytes X25519Key::rawPublic() const { return Bytes(public_.begin(), public_.end()); }

Bytes X25519Key::rawPrivate() const {
  if (!hasPrivate_) return {};
  return rawPrivateKey(key_.get());
}

std::string X25519Key::privatePem() const {
  if (!hasPrivate_) return {};
  return toPem(key_.get(), true);
}

std::string X25519Key::publicPem() const { return toPem(key_.get(), false); }

Result<Bytes> X25519Key::dh(const X25519Key& peer) const { return dh(peer.public_); }

Result<Bytes> X25519Key::dh(ByteView peerPublic32) const {
  if (!hasPrivate_) {
    return fail("dh_failed", "X25519: this key has no private part to derive with");
  }
  if (peerPublic32.size() != kX25519Size) {
    return fail("dh_failed", fmt::format("X25519 peer public key is {} bytes, expected 32",
                                         peerPublic32.size()));
  }
  Bytes secret(kX25519Size);
  constexpr std::string_view kLowOrder =
      "X25519 shared secret is all zero: the peer public key is a low-order point";
#ifdef PASS_HAVE_LIBSODIUM
  sodiumReady();
  std::array<std::uint8_t, kX25519Size> own{};
  std::size_t ownLen = own.size();
  if (EVP_PKEY_get_raw_private_key(key_.get(), own.data(), &ownLen) != 1) {
    fatal("EVP_PKEY_get_raw_private_key(X25519)");
  }
  // crypto_scalarmult refuses (-1) exactly the all-zero result.
  int refused = crypto_scalarmult(secret.data(), own.data(), peerPublic32.data());
  secureZero(own);
  if (refused != 0) {
    secureZero(secret);
    return fail("dh_failed", std::string(kLowOrder));
  }
#else
  // OpenSSL takes any 32 bytes as an X25519 public key.
  PkeyPtr peer(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peerPublic32.data(),
                                              peerPublic32.size()));
  if (!peer) fatal("EVP_PKEY_new_raw_public_key_ex(X25519)");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  if (!ctx) fatal("EVP_PKEY_CTX_new_from_pkey(X25519)");
  std::size_t len = secret.size();
  if (EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), 0) != 1 ||
      EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1) {
    // With two valid X25519 keys the only failure is OpenSSL refusing the all-zero result.
    return fail("dh_failed", fmt::format("{} ({})", kLowOrder, opensslError()));
  }
  static const std::array<std::uint8_t, kX25519Size> kZero{};
  if (len != kX25519Size || CRYPTO_memcmp(secret.data(), kZero.data(), kZero.size()) == 0) {
    secureZero(secret);
    return fail("dh_failed", std::string(kLowOrder));
  }
#endif
  return secret;
}

}  // namespace pass
