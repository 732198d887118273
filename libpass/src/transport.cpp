// HTTPS delivery with libcurl's easy interface; the only file that sees a CURL handle.

#include "pass/transport.hpp"
#include "pass/tls_policy.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <memory>

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/envelope.hpp"
#include "platform/fs.hpp"

namespace pass {

namespace {

constexpr std::string_view kEnvelopesPath = "/v1/envelopes";
constexpr std::string_view kCertificatePath = "/v1/certificate";
// The home answers with a few hundred bytes of JSON; anything bigger is not our home.
constexpr std::size_t kMaxAnswerBytes = 64 * 1024;
constexpr std::size_t kMaxDetailChars = 200;

struct CurlEasyCleanup {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlEasyCleanup>;

struct CurlSlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlList = std::unique_ptr<curl_slist, CurlSlistFree>;

Status initCurlOnce() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once even
  // when several threads create transports. It is never cleaned up: libcurl then lives as
  // long as the process, which is what every transport needs.
  static const CURLcode kInit = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (kInit != CURLE_OK) {
    return fail("transport.init",
                fmt::format("libcurl could not be initialised: {}", curl_easy_strerror(kInit)));
  }
  return {};
}

/// A short, single-line excerpt of an answer body for messages.
std::string excerpt(std::string_view body) {
  std::string out(body.substr(0, kMaxDetailChars));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
  if (body.size() > kMaxDetailChars) out += "...";
  return out;
}

std::string joinUrl(std::string_view endpoint, std::string_view path) {
  while (endpoint.ends_with('/')) endpoint.remove_suffix(1);
  return fmt::format("{}{}", endpoint, path);
}

/// Appends `lines` to a header list; false when curl could not allocate.
bool appendHeaders(CurlList& list, std::initializer_list<const char*> lines) {
  for (const char* header : lines) {
    // On failure curl_slist_append leaves the list as it was, so the owner keeps it.
    curl_slist* head = list.release();
    curl_slist* appended = curl_slist_append(head, header);
    list.reset(appended != nullptr ? appended : head);
    if (appended == nullptr) return false;
  }
  return true;
}

Status checkReadable(std::string_view what, const std::string& path) {
  if (path.empty()) {
    return fail("transport.settings", fmt::format("no {} file is configured", what));
  }
  std::ifstream in(platform::pathFromUtf8(path), std::ios::binary);
  if (!in) {
    return fail("transport.settings", fmt::format("cannot read the {} file {}", what, path));
  }
  return {};
}

long clampMillis(std::chrono::milliseconds ms) {
  return static_cast<long>(std::clamp<std::chrono::milliseconds::rep>(ms.count(), 1, LONG_MAX));
}

/// Our transport error code for a failed curl_easy_perform.
std::string_view failureCode(CURLcode rc, bool viaProxy, long connectCode) {
  // Behind a proxy the only TCP connection curl opens is to the proxy, and a refused tunnel
  // shows as a CONNECT answer other than 200.
  if (viaProxy && (connectCode != 0 && connectCode != 200)) return "proxy";
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      return viaProxy ? "proxy" : "connect";
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_PROXY:
      return "proxy";
    case CURLE_COULDNT_RESOLVE_HOST:
      return "resolve";
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return "tls";
    case CURLE_WRITE_ERROR:
      return "answer_too_large";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return "network";
    default:
      return "transport";
  }
}

}  // namespace

std::string_view toString(Delivery d) {
  switch (d) {
    case Delivery::kAccepted:
      return "accepted";
    case Delivery::kDuplicate:
      return "duplicate";
    case Delivery::kRefused:
      return "refused";
    case Delivery::kRetry:
      return "retry";
  }
  return "unknown";
}

bool isClockRefusal(const DeliveryResult& r) {
  return r.delivery == Delivery::kRefused && r.httpStatus == 422 &&
         (r.errorCode == "stale" || r.errorCode == "future");
}

namespace {

// The "home_key" of a 200 answer; a malformed one is reported and not taken.
void readHomeKey(const nlohmann::json& j, DeliveryResult& result) {
  auto text = [&](const char* name) -> std::string {
    if (!j.is_object() || !j.contains(name) || !j[name].is_string()) return {};
    return j[name].get<std::string>();
  };
  auto id = fromHex(text("key_id"));
  auto pub = fromHex(text("public"));
  if (!id || id->size() != 8 || !pub || pub->size() != 32) {
    result.homeKeyError = fmt::format(
        "the answer's home_key is not {{\"key_id\": 16 hex digits, \"public\": 64 hex digits}}: "
        "{}",
        excerpt(j.dump()));
    return;
  }
  auto key = X25519Key::fromRawPublic(*pub);
  if (!key) {
    result.homeKeyError = fmt::format("the answer's home_key: {}", key.error().message);
    return;
  }
  HomeKeyAnnouncement announced;
  std::copy(id->begin(), id->end(), announced.keyId.begin());
  if (hpkeKeyId(*key) != announced.keyId) {
    result.homeKeyError =
        fmt::format("the answer's home_key has key_id {}, but its public key's id is {}; not taken",
                    text("key_id"), toHex(hpkeKeyId(*key)));
    return;
  }
  announced.publicKey = std::move(*pub);
  result.homeKey = std::move(announced);
}

}  // namespace

DeliveryResult classifyCertificateAnswer(long httpStatus, std::string body) {
  if (httpStatus != 200) return classifyAnswer(httpStatus, std::move(body));
  DeliveryResult result;
  result.httpStatus = httpStatus;
  result.body = std::move(body);
  auto json = nlohmann::json::parse(result.body, nullptr, false);
  if (json.is_object() && json.value("status", std::string()) == "issued" &&
      json.contains("certificate") && json["certificate"].is_string()) {
    result.delivery = Delivery::kAccepted;
    return result;
  }
  result.delivery = Delivery::kRetry;
  result.errorCode = "bad_answer";
  result.detail = fmt::format("HTTP 200 without {{\"status\":\"issued\",\"certificate\":...}}: {}",
                              excerpt(result.body));
  return result;
}

DeliveryResult classifyAnswer(long httpStatus, std::string body) {
  DeliveryResult result;
  result.httpStatus = httpStatus;
  result.body = std::move(body);
  // allow_exceptions = false: a malformed body is an answer to classify, not an exception.
  auto json = nlohmann::json::parse(result.body, nullptr, false);
  bool isObject = !json.is_discarded() && json.is_object();
  auto stringField = [&](const char* name) -> std::string {
    if (!isObject) return {};
    auto it = json.find(name);
    if (it == json.end() || !it->is_string()) return {};
    return it->get<std::string>();
  };

  if (httpStatus == 200) {
    std::string status = stringField("status");
    if (status == "accepted" || status == "duplicate") {
      result.delivery = status == "accepted" ? Delivery::kAccepted : Delivery::kDuplicate;
      if (json.contains("home_key")) readHomeKey(json["home_key"], result);
      return result;
    }
    result.delivery = Delivery::kRetry;
    result.errorCode = "bad_answer";
    result.detail = fmt::format(
        "HTTP 200 without {{\"status\":\"accepted\"}} or {{\"status\":\"duplicate\"}}: {}",
        isObject ? excerpt(result.body) : "the body is not JSON: " + excerpt(result.body));
    return result;
  }

  if (httpStatus >= 400 && httpStatus <= 499) {
    result.delivery = Delivery::kRefused;
    result.errorCode = stringField("error");
    result.detail = stringField("detail");
    if (result.errorCode.empty()) {
      result.errorCode = fmt::format("http_{}", httpStatus);
      if (result.detail.empty()) {
        result.detail =
            fmt::format("HTTP {} without a PASS error body: {}", httpStatus, excerpt(result.body));
      }
    }
    return result;
  }

  result.delivery = Delivery::kRetry;
  result.errorCode = fmt::format("http_{}", httpStatus);
  std::string detail = stringField("detail");
  result.detail =
      fmt::format("HTTP {}: {}", httpStatus, detail.empty() ? excerpt(result.body) : detail);
  return result;
}

struct Transport::Impl {
  TransportSettings settings;
  CurlHandle curl;
  CurlList headers;             // of an envelope
  CurlList certificateHeaders;  // of a certificate request
  std::string answer;
  bool answerTooLarge = false;
  std::array<char, CURL_ERROR_SIZE> errorBuffer{};

  static std::size_t onAnswer(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    std::size_t bytes = size * count;
    if (self->answer.size() + bytes > kMaxAnswerBytes) {
      self->answerTooLarge = true;
      return 0;  // makes curl abort with CURLE_WRITE_ERROR
    }
    self->answer.append(data, bytes);
    return bytes;
  }

  /// Sets every option that is the same for all posts; a failure names the option.
  Status configure() {
    CURL* h = curl.get();
    CURLcode rc = CURLE_OK;
    const char* failed = nullptr;
    auto check = [&](CURLcode r, const char* option) {
      if (rc == CURLE_OK && r != CURLE_OK) {
        rc = r;
        failed = option;
      }
    };
    check(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L), "CURLOPT_NOSIGNAL");
    check(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errorBuffer.data()), "CURLOPT_ERRORBUFFER");
    check(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https"), "CURLOPT_PROTOCOLS_STR");
    check(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L), "CURLOPT_FOLLOWLOCATION");
    check(curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)),
          "CURLOPT_HTTP_VERSION");
    check(curl_easy_setopt(h, CURLOPT_USERAGENT, "pass-agent/" PASS_VERSION), "CURLOPT_USERAGENT");

    // Level 1: only the home's CA. CAINFO replaces the default bundle and a NULL CAPATH drops
    // the built-in directory (/etc/ssl/certs on Debian); CURLSSLOPT_NATIVE_CA stays off.
    check(curl_easy_setopt(h, CURLOPT_CAINFO, settings.caFile.c_str()), "CURLOPT_CAINFO");
    check(curl_easy_setopt(h, CURLOPT_CAPATH, static_cast<char*>(nullptr)), "CURLOPT_CAPATH");
    check(curl_easy_setopt(h, CURLOPT_SSL_OPTIONS, 0L), "CURLOPT_SSL_OPTIONS");
    check(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L), "CURLOPT_SSL_VERIFYPEER");
    check(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L), "CURLOPT_SSL_VERIFYHOST");
    check(curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)),
          "CURLOPT_SSLVERSION");
    check(curl_easy_setopt(h, CURLOPT_SSL_CIPHER_LIST, kTls12Ciphers), "CURLOPT_SSL_CIPHER_LIST");
    // Level 2: the agent's client certificate.
    check(curl_easy_setopt(h, CURLOPT_SSLCERT, settings.certFile.c_str()), "CURLOPT_SSLCERT");
    check(curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM"), "CURLOPT_SSLCERTTYPE");
    check(curl_easy_setopt(h, CURLOPT_SSLKEY, settings.keyFile.c_str()), "CURLOPT_SSLKEY");
    check(curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM"), "CURLOPT_SSLKEYTYPE");

    // "" disables proxies, including http_proxy/https_proxy/all_proxy from the environment.
    check(curl_easy_setopt(h, CURLOPT_PROXY, settings.proxy.c_str()), "CURLOPT_PROXY");
    if (!settings.proxy.empty()) {
      check(curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L), "CURLOPT_HTTPPROXYTUNNEL");
    }

    check(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, clampMillis(settings.connectTimeout)),
          "CURLOPT_CONNECTTIMEOUT_MS");
    check(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, clampMillis(settings.totalTimeout)),
          "CURLOPT_TIMEOUT_MS");

    check(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Impl::onAnswer), "CURLOPT_WRITEFUNCTION");
    check(curl_easy_setopt(h, CURLOPT_WRITEDATA, this), "CURLOPT_WRITEDATA");
    check(curl_easy_setopt(h, CURLOPT_POST, 1L), "CURLOPT_POST");

    if (rc != CURLE_OK) {
      return fail("transport.init",
                  fmt::format("libcurl refused {}: {}", failed, curl_easy_strerror(rc)));
    }
    return {};
  }

  /// The Date header of the last answer (RFC 9110 IMF-fixdate), in Unix ms.
  std::optional<std::int64_t> answerDate() {
    curl_header* date = nullptr;
    if (curl_easy_header(curl.get(), "Date", 0, CURLH_HEADER, -1, &date) != CURLHE_OK) {
      return std::nullopt;
    }
    const time_t seconds = curl_getdate(date->value, nullptr);
    if (seconds == -1) return std::nullopt;
    return static_cast<std::int64_t>(seconds) * 1000;
  }

  using Classify = DeliveryResult (*)(long, std::string);

  DeliveryResult postTo(const std::string& endpoint, std::string_view path, curl_slist* head,
                        ByteView content, Classify classify) {
    CURL* h = curl.get();
    std::string url = joinUrl(endpoint, path);
    answer.clear();
    answerTooLarge = false;
    errorBuffer[0] = '\0';

    // A NULL POSTFIELDS would make curl read the body from stdin; an empty body stays "".
    const char* body = content.empty() ? "" : reinterpret_cast<const char*>(content.data());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, head);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(content.size()));
    CURLcode rc = curl_easy_perform(h);
    // curl keeps the pointer; do not leave it pointing at the caller's buffer.
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));

    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
      long connectCode = 0;
      curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connectCode);
      DeliveryResult result;
      result.delivery = Delivery::kRetry;
      result.httpStatus = status;
      result.endpoint = endpoint;
      result.body = std::move(answer);
      result.errorCode = failureCode(rc, !settings.proxy.empty(), connectCode);
      std::string message = errorBuffer[0] != '\0' ? std::string(errorBuffer.data())
                                                   : std::string(curl_easy_strerror(rc));
      if (answerTooLarge) {
        message = fmt::format("the answer is larger than {} bytes", kMaxAnswerBytes);
      }
      result.detail = fmt::format("POST {}: {}", url, message);
      return result;
    }
    DeliveryResult result = classify(status, std::move(answer));
    result.endpoint = endpoint;
    result.homeClockMs = answerDate();
    return result;
  }

  /// Tries the endpoints in order until one gives an answer that is not kRetry.
  DeliveryResult postToAny(std::string_view path, curl_slist* head, ByteView content,
                           Classify classify) {
    DeliveryResult last;
    for (const auto& endpoint : settings.endpoints) {
      last = postTo(endpoint, path, head, content, classify);
      if (last.delivery != Delivery::kRetry) return last;
    }
    return last;
  }
};

Result<Transport> Transport::create(TransportSettings settings) {
  if (settings.endpoints.empty()) {
    return fail("transport.settings", "no home endpoint is configured");
  }
  for (const auto& endpoint : settings.endpoints) {
    if (!endpoint.starts_with("https://")) {
      return fail("transport.settings",
                  fmt::format("endpoint \"{}\" is not an https:// URL", endpoint));
    }
  }
  if (!settings.proxy.empty() && !settings.proxy.starts_with("http://") &&
      !settings.proxy.starts_with("https://")) {
    return fail("transport.settings",
                fmt::format("proxy \"{}\" is not an http:// or https:// URL", settings.proxy));
  }
  if (settings.connectTimeout.count() <= 0 || settings.totalTimeout.count() <= 0) {
    return fail("transport.settings", "timeouts must be positive");
  }
  if (auto s = checkReadable("home CA", settings.caFile); !s) return std::unexpected(s.error());
  if (auto s = checkReadable("client certificate", settings.certFile); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = checkReadable("client key", settings.keyFile); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = initCurlOnce(); !s) return std::unexpected(s.error());

  auto impl = std::make_unique<Impl>();
  impl->settings = std::move(settings);
  impl->curl.reset(curl_easy_init());
  if (!impl->curl) return fail("transport.init", "curl_easy_init failed");

  const std::string contentType = fmt::format("Content-Type: {}", kEnvelopeContentType);
  // "Expect:" stops curl from waiting for 100-continue before sending larger envelopes.
  if (!appendHeaders(impl->headers, {contentType.c_str(), "Accept: application/json", "Expect:"}) ||
      !appendHeaders(impl->certificateHeaders,
                     {"Content-Type: application/pkcs10", "Accept: application/json", "Expect:"})) {
    return fail("transport.init", "curl_slist_append failed");
  }
  if (auto s = impl->configure(); !s) return std::unexpected(s.error());
  return Transport(std::move(impl));
}

Transport::Transport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Transport::Transport(Transport&&) noexcept = default;
Transport& Transport::operator=(Transport&&) noexcept = default;
Transport::~Transport() = default;

DeliveryResult Transport::post(ByteView envelope) {
  return impl_->postToAny(kEnvelopesPath, impl_->headers.get(), envelope, &classifyAnswer);
}

DeliveryResult Transport::requestCertificate(ByteView csrDer) {
  return impl_->postToAny(kCertificatePath, impl_->certificateHeaders.get(), csrDer,
                          &classifyCertificateAnswer);
}

}  // namespace pass
