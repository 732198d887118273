// HTTPS to an array's management interface with libcurl's easy interface. The certificate is
// self-signed, so no CA is checked; the server's public key is pinned on first contact instead.
// Every request is sent under the pin (CURLOPT_PINNEDPUBLICKEY: curl compares the key during
// the handshake, before a byte of the request leaves, on every connection it opens or reuses);
// on first contact the key is learnt from a handshake of its own that carries no request.

#include "array_https.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"

namespace pass {

namespace {

constexpr std::string_view kPinPrefix = "sha256//";

struct CurlEasyCleanup {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlEasyCleanup>;

struct CurlSlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlList = std::unique_ptr<curl_slist, CurlSlistFree>;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};

bool initCurlOnce() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once. It is
  // never cleaned up, as in transport.cpp: libcurl lives as long as the process.
  static const CURLcode kInit = curl_global_init(CURL_GLOBAL_DEFAULT);
  return kInit == CURLE_OK;
}

long clampMillis(std::chrono::milliseconds ms) {
  return static_cast<long>(std::clamp<std::chrono::milliseconds::rep>(ms.count(), 1, LONG_MAX));
}

bool equalsNoCase(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

/// curl's pin of the certificate in `pem`: "sha256//" + base64(SHA-256(DER SubjectPublicKeyInfo)).
std::optional<std::string> pinOfPem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::nullopt;
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return std::nullopt;
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  if (len <= 0) return std::nullopt;
  Bytes digest = sha256(ByteView(der, static_cast<std::size_t>(len)));
  OPENSSL_free(der);
  return std::string(kPinPrefix) + toBase64(digest);
}

/// The pin of the leaf certificate of the last handshake on `curl` (CURLOPT_CERTINFO on).
std::optional<std::string> pinOfLastHandshake(CURL* curl) {
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_CERTINFO, &info) != CURLE_OK || info == nullptr ||
      info->num_of_certs < 1) {
    return std::nullopt;
  }
  // The first certificate is the server's own; each entry is "Name:value", one is "Cert:PEM".
  for (curl_slist* item = info->certinfo[0]; item != nullptr; item = item->next) {
    std::string_view entry(item->data);
    if (entry.starts_with("Cert:")) return pinOfPem(entry.substr(5));
  }
  return std::nullopt;
}

/// Our error code for a failed transfer; the codes statusState() reads.
std::string_view errorCode(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "collector.timeout";
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return "collector.pin_mismatch";
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PARTIAL_FILE:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return "collector.bad_output";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      return "collector.unreachable";
    default:
      return "collector.error";
  }
}

}  // namespace

std::optional<std::string> HttpsResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (equalsNoCase(key, name)) return value;
  }
  return std::nullopt;
}

struct ArrayHttps::Impl {
  ArrayHttpsOptions options;
  PinStore& pins;
  const ArrayConfig& array;
  CurlHandle curl;
  std::array<char, CURL_ERROR_SIZE> errorBuffer{};
  HttpsResponse response;
  bool bodyTooLong = false;

  Impl(ArrayHttpsOptions o, PinStore& p, const ArrayConfig& a)
      : options(std::move(o)), pins(p), array(a) {
    if (options.pinName.empty()) options.pinName = "https";
  }

  std::string hostPort() const {
    bool v6 = options.host.find(':') != std::string::npos;
    return v6 ? fmt::format("[{}]:{}", options.host, options.port)
              : fmt::format("{}:{}", options.host, options.port);
  }

  std::string url(std::string_view target) const {
    return fmt::format("https://{}{}{}", hostPort(), target.starts_with('/') ? "" : "/", target);
  }

  static std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    std::size_t bytes = size * count;
    if (self->response.body.size() + bytes > self->options.maxBody) {
      self->bodyTooLong = true;
      return 0;  // curl aborts with CURLE_WRITE_ERROR
    }
    self->response.body.append(data, bytes);
    return bytes;
  }

  static std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    std::string_view line(data, size * count);
    // A status line starts a response; an interim one (100 Continue) leaves no headers behind.
    if (line.starts_with("HTTP/")) {
      self->response.headers.clear();
      return line.size();
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return line.size();
    self->response.headers.emplace_back(std::string(trim(line.substr(0, colon))),
                                        std::string(trim(line.substr(colon + 1))));
    return line.size();
  }

  /// Options every connection of this client shares, on `h` (the client's handle or a probe).
  CURLcode configure(CURL* h, const std::optional<std::string>& pin) {
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLcode r) {
      if (rc == CURLE_OK) rc = r;
    };
    set(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errorBuffer.data()));
    set(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L));
    set(curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)));
    set(curl_easy_setopt(h, CURLOPT_USERAGENT, "pass-agent/" PASS_VERSION));
    // The array is on the customer's LAN: never a proxy, whatever the environment says.
    set(curl_easy_setopt(h, CURLOPT_PROXY, ""));
    set(curl_easy_setopt(h, CURLOPT_NOPROXY, "*"));
    set(curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)));
    // Self-signed certificates: the pinned key is the identity, not a CA chain or a name.
    set(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L));
    set(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L));
    set(curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pin ? pin->c_str() : nullptr));
    set(curl_easy_setopt(h, CURLOPT_CERTINFO, pin ? 0L : 1L));
    set(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, clampMillis(options.connectTimeout)));
    set(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, clampMillis(options.totalTimeout)));
    return rc;
  }

  Error failure(CURLcode rc, std::string_view target) const {
    std::string detail = errorBuffer[0] != '\0' ? std::string(errorBuffer.data())
                                                : std::string(curl_easy_strerror(rc));
    if (rc == CURLE_WRITE_ERROR && bodyTooLong) {
      detail = fmt::format("the answer is longer than {} bytes", options.maxBody);
    }
    if (rc == CURLE_FILESIZE_EXCEEDED) {
      detail = fmt::format("the answer announces more than {} bytes", options.maxBody);
    }
    return Error{std::string(errorCode(rc)), fmt::format("{} {}: https://{}{}: {}", array.family,
                                                         array.serial, hostPort(), target, detail)};
  }

  /// The key the server presents now, from a handshake of its own that sends no request;
  /// `target` names the request it is for in errors.
  Result<std::string> presentedKey(std::string_view target) {
    CurlHandle probe(curl_easy_init());
    if (!probe) return fail("collector.error", "libcurl could not create a handle");
    errorBuffer[0] = '\0';
    CURLcode rc = configure(probe.get(), std::nullopt);
    if (rc == CURLE_OK) rc = curl_easy_setopt(probe.get(), CURLOPT_URL, url(target).c_str());
    if (rc == CURLE_OK) rc = curl_easy_setopt(probe.get(), CURLOPT_CONNECT_ONLY, 1L);
    if (rc == CURLE_OK) rc = curl_easy_perform(probe.get());
    if (rc != CURLE_OK) return std::unexpected(failure(rc, target));
    auto seen = pinOfLastHandshake(probe.get());
    if (!seen) {
      return fail("collector.unreachable",
                  fmt::format("{} {}: https://{}: the server's certificate could not be read, so "
                              "its key cannot be pinned",
                              array.family, array.serial, hostPort()));
    }
    return std::move(*seen);
  }

  /// The pin every request is sent under. Without one yet, the server's key is learnt from a
  /// handshake that carries no request and stored before the first request (a login with the
  /// password) leaves: credentials only ever go to a pinned key.
  Result<std::string> pinToSendUnder(std::string_view target) {
    if (auto pin = pins.find(options.pinName)) return std::move(*pin);
    auto seen = presentedKey(target);
    if (!seen) return seen;
    if (auto stored = pins.remember(options.pinName, *seen); !stored) {
      return std::unexpected(stored.error());
    }
    return seen;
  }

  Result<HttpsResponse> send(const HttpsRequest& request) {
    if (!curl) {
      if (!initCurlOnce()) return fail("collector.error", "libcurl could not be initialised");
      curl.reset(curl_easy_init());
      if (!curl) return fail("collector.error", "libcurl could not create a handle");
    }
    CURL* h = curl.get();
    const auto pin = pinToSendUnder(request.target);
    if (!pin) return std::unexpected(pin.error());
    errorBuffer[0] = '\0';
    response = HttpsResponse{};
    bodyTooLong = false;

    CurlList headers;
    auto addHeader = [&](const std::string& line) {
      curl_slist* next = curl_slist_append(headers.get(), line.c_str());
      if (next != nullptr) {
        (void)headers.release();
        headers.reset(next);
      }
    };
    for (const auto& [name, value] : request.headers) addHeader(fmt::format("{}: {}", name, value));
    if (!request.body.empty()) addHeader("Content-Type: application/json");
    addHeader("Expect:");  // no 100-continue round trip for a large body

    const std::string target = url(request.target);
    CURLcode rc = configure(h, *pin);
    auto set = [&](CURLcode r) {
      if (rc == CURLE_OK) rc = r;
    };
    set(curl_easy_setopt(h, CURLOPT_URL, target.c_str()));
    set(curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get()));
    set(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Impl::onBody));
    set(curl_easy_setopt(h, CURLOPT_WRITEDATA, this));
    set(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Impl::onHeader));
    set(curl_easy_setopt(h, CURLOPT_HEADERDATA, this));
    set(curl_easy_setopt(
        h, CURLOPT_MAXFILESIZE_LARGE,
        static_cast<curl_off_t>(std::min<std::size_t>(options.maxBody, LLONG_MAX))));
    // HTTPGET resets what an earlier request on this handle set (a body, a method).
    set(curl_easy_setopt(h, CURLOPT_HTTPGET, 1L));
    set(curl_easy_setopt(h, CURLOPT_NOBODY, request.method == "HEAD" ? 1L : 0L));
    const std::string& method = request.method;
    if (!request.body.empty() || (method != "GET" && method != "HEAD" && method != "DELETE")) {
      set(curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                           static_cast<curl_off_t>(request.body.size())));
      set(curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, request.body.c_str()));
    }
    bool plain = method == "GET" || method == "HEAD" || method == "POST";
    set(curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, plain ? nullptr : method.c_str()));
    if (rc != CURLE_OK) {
      return fail("collector.error",
                  fmt::format("{} {}: libcurl refused an option: {}", array.family, array.serial,
                              curl_easy_strerror(rc)));
    }

    rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // `headers` dies with this call
    if (rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
      auto seen = presentedKey(request.target);
      return std::unexpected(
          pinMismatch(array, fmt::format("TLS key on {}", hostPort()), *pin,
                      seen ? *seen : fmt::format("unknown ({})", seen.error().message)));
    }
    if (rc != CURLE_OK) return std::unexpected(failure(rc, request.target));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    return std::move(response);
  }
};

ArrayHttps::ArrayHttps(ArrayHttpsOptions options, PinStore& pins, const ArrayConfig& array)
    : impl_(std::make_unique<Impl>(std::move(options), pins, array)) {}

ArrayHttps::~ArrayHttps() = default;

Result<HttpsResponse> ArrayHttps::send(const HttpsRequest& request) { return impl_->send(request); }

}  // namespace pass
