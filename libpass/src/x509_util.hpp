#pragma once
// What the agent's certificate renewal (agent_certificate.cpp) and the home's CA
// (home/src/keys/pki.cpp) both need from OpenSSL's X.509 API: owning pointers, the last error as
// text, and a certificate's serial, times and subject names in the forms PASS stores them.

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>

namespace pass::x509 {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME, ASN1_TIME_free>>;

/// The newest OpenSSL error as text, and the error queue cleared, so that the next failure
/// does not report a stale one.
std::string opensslReason();

/// The certificate's serial number in lower-case hex, as the home stores it ("" if unreadable).
std::string serialHex(const X509* cert);

/// An ASN.1 time in Unix milliseconds (0 if it cannot be read).
std::int64_t unixMs(const ASN1_TIME* time);

/// The first `nid` entry of a name (NID_commonName, ...) as UTF-8 ("" when absent).
std::string nameEntry(X509_NAME* name, int nid);

}  // namespace pass::x509
