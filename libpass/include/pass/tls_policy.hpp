#pragma once
/// What PASS accepts on its own TLS connections: the home's ingest and admin listeners and the
/// agent's client to the home. TLS 1.2 or 1.3; on TLS 1.2 only ECDHE key exchange with an AEAD
/// cipher (AES-GCM or ChaCha20-Poly1305), so no CBC, no SHA-1 MAC, no static RSA. TLS 1.3's
/// suites are all AEAD and stay OpenSSL's default. The arrays' own HTTPS (3PAR WSAPI, Nimble)
/// is not covered: old array firmware may know nothing newer, and the pin protects it.

namespace pass {

/// The TLS 1.2 cipher list, in OpenSSL's syntax (SSL_CTX_set_cipher_list,
/// CURLOPT_SSL_CIPHER_LIST); the server's order is the preference.
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace pass
