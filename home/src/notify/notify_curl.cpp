// The notification channels over libcurl: SMTP for e-mail and e-mail-to-SMS, HTTP for SMS
// gateways and webhooks. The only file of the home that sees a CURL handle.

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <curl/curl.h>
#include <fmt/format.h>

#include "pass/home/notify.hpp"

namespace pass::home::notify {

namespace {

// Gateways answer with a few hundred bytes; more is kept out of memory, not an error.
constexpr std::size_t kMaxAnswerBytes = 64 * 1024;
constexpr std::size_t kMaxDetailChars = 300;

struct CurlEasyCleanup {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct CurlSlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlList = std::unique_ptr<curl_slist, CurlSlistFree>;

bool initCurlOnce() {
  // curl_global_init must run once before any thread uses curl; a function-local static does
  // exactly that. It is never cleaned up: curl lives as long as the process.
  static const bool kReady = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return kReady;
}

/// An easy handle with what its callbacks write to: the answer body (capped), the server's
/// last error reply (SMTP) and the upload (SMTP DATA). The callbacks' state lives on the heap
/// so that the handle can move.
class Easy {
 public:
  static Result<Easy> create() {
    if (!initCurlOnce()) return fail("notify.curl", "libcurl could not be initialised");
    Easy easy;
    easy.curl_.reset(curl_easy_init());
    if (!easy.curl_) return fail("notify.curl", "curl_easy_init failed");
    easy.state_ = std::make_unique<State>();
    easy.set(CURLOPT_NOSIGNAL, 1L, "CURLOPT_NOSIGNAL");
    easy.set(CURLOPT_ERRORBUFFER, easy.state_->errorBuffer.data(), "CURLOPT_ERRORBUFFER");
    easy.set(CURLOPT_WRITEFUNCTION, &Easy::onAnswer, "CURLOPT_WRITEFUNCTION");
    easy.set(CURLOPT_WRITEDATA, easy.state_.get(), "CURLOPT_WRITEDATA");
    return easy;
  }

  /// Sets an option; the first refusal is kept for configured().
  template <typename T>
  void set(CURLoption option, T value, const char* name) {
    CURLcode rc = curl_easy_setopt(curl_.get(), option, value);
    if (rc != CURLE_OK && refused_.empty()) {
      refused_ = fmt::format("libcurl refused {}: {}", name, curl_easy_strerror(rc));
    }
  }

  /// The options every channel shares: no proxy, TLS 1.2 or later, trust, timeouts.
  void common(const char* protocols, const std::string& caFile, bool verifyPeer,
              std::chrono::milliseconds connectTimeout, std::chrono::milliseconds totalTimeout) {
    set(CURLOPT_PROTOCOLS_STR, protocols, "CURLOPT_PROTOCOLS_STR");
    // "" and "*" keep http_proxy/https_proxy/all_proxy from the environment out of the way.
    set(CURLOPT_PROXY, "", "CURLOPT_PROXY");
    set(CURLOPT_NOPROXY, "*", "CURLOPT_NOPROXY");
    set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2), "CURLOPT_SSLVERSION");
    if (!caFile.empty()) set(CURLOPT_CAINFO, caFile.c_str(), "CURLOPT_CAINFO");
    set(CURLOPT_SSL_VERIFYPEER, verifyPeer ? 1L : 0L, "CURLOPT_SSL_VERIFYPEER");
    set(CURLOPT_SSL_VERIFYHOST, verifyPeer ? 2L : 0L, "CURLOPT_SSL_VERIFYHOST");
    set(CURLOPT_CONNECTTIMEOUT_MS, millis(connectTimeout), "CURLOPT_CONNECTTIMEOUT_MS");
    set(CURLOPT_TIMEOUT_MS, millis(totalTimeout), "CURLOPT_TIMEOUT_MS");
  }

  /// Keeps the server's replies (SMTP) for the failure detail.
  void watchReplies() {
    set(CURLOPT_DEBUGFUNCTION, &Easy::onDebug, "CURLOPT_DEBUGFUNCTION");
    set(CURLOPT_DEBUGDATA, state_.get(), "CURLOPT_DEBUGDATA");
    // The debug callback replaces curl's own output; nothing goes to stderr.
    set(CURLOPT_VERBOSE, 1L, "CURLOPT_VERBOSE");
  }

  /// Sends `data` as the upload (SMTP DATA); the handle keeps a copy.
  void upload(std::string data) {
    state_->upload = std::move(data);
    set(CURLOPT_UPLOAD, 1L, "CURLOPT_UPLOAD");
    set(CURLOPT_READFUNCTION, &Easy::onRead, "CURLOPT_READFUNCTION");
    set(CURLOPT_READDATA, state_.get(), "CURLOPT_READDATA");
    set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(state_->upload.size()),
        "CURLOPT_INFILESIZE_LARGE");
  }

  /// Appends to a string list the handle owns (headers, recipients).
  void append(CurlList& list, const std::string& item) {
    // On failure curl_slist_append leaves the list as it was, so the owner keeps it.
    curl_slist* head = list.release();
    curl_slist* appended = curl_slist_append(head, item.c_str());
    list.reset(appended != nullptr ? appended : head);
    if (appended == nullptr && refused_.empty()) refused_ = "curl_slist_append failed";
  }

  CurlList& headers() { return headers_; }
  CurlList& recipients() { return recipients_; }

  /// Empty when every option was taken, else what libcurl refused.
  const std::string& refused() const { return refused_; }

  CURLcode perform() { return curl_easy_perform(curl_.get()); }

  long responseCode() {
    long code = 0;
    curl_easy_getinfo(curl_.get(), CURLINFO_RESPONSE_CODE, &code);
    return code;
  }

  std::string failureText(CURLcode rc) const {
    std::string text = state_->errorBuffer[0] != '\0' ? std::string(state_->errorBuffer.data())
                                                      : std::string(curl_easy_strerror(rc));
    if (state_->lastErrorReply.empty()) return text;
    return fmt::format("server said \"{}\" ({})", state_->lastErrorReply, text);
  }

  const std::string& answer() const { return state_->answer; }

 private:
  struct State {
    std::array<char, CURL_ERROR_SIZE> errorBuffer{};
    std::string answer;
    std::string lastErrorReply;
    std::string upload;
    std::size_t uploaded = 0;
  };

  Easy() = default;

  static long millis(std::chrono::milliseconds ms) {
    return static_cast<long>(std::clamp<std::chrono::milliseconds::rep>(ms.count(), 1, LONG_MAX));
  }

  static std::size_t onAnswer(char* data, std::size_t size, std::size_t count, void* user) {
    auto* state = static_cast<State*>(user);
    std::size_t bytes = size * count;
    std::size_t room = kMaxAnswerBytes - std::min(kMaxAnswerBytes, state->answer.size());
    state->answer.append(data, std::min(bytes, room));
    return bytes;
  }

  static std::size_t onRead(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* state = static_cast<State*>(user);
    std::size_t n = std::min(size * count, state->upload.size() - state->uploaded);
    std::memcpy(buffer, state->upload.data() + state->uploaded, n);
    state->uploaded += n;
    return n;
  }

  static int onDebug(CURL*, curl_infotype type, char* data, std::size_t size, void* user) {
    if (type != CURLINFO_HEADER_IN) return 0;
    std::string line = cleanLine(std::string_view(data, size));
    // Only 4xx/5xx replies explain a failure; QUIT's 221 after one must not hide it.
    if (line.size() >= 3 && (line[0] == '4' || line[0] == '5')) {
      static_cast<State*>(user)->lastErrorReply = cutChars(line, kMaxDetailChars);
    }
    return 0;
  }

  std::unique_ptr<State> state_;
  CurlList headers_;
  CurlList recipients_;
  std::string refused_;
  // Last, so that it is cleaned up first, while what it points to still exists.
  std::unique_ptr<CURL, CurlEasyCleanup> curl_;
};

/// `url` without user info, query or fragment: what a detail may show (a GET gateway's query
/// can carry its API key).
std::string redactUrl(std::string_view url) {
  url = url.substr(0, std::min(url.find_first_of("?#"), url.size()));
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return cleanLine(url);
  auto authorityEnd = std::min(url.find('/', scheme + 3), url.size());
  auto at = url.substr(0, authorityEnd).rfind('@');
  if (at == std::string_view::npos || at < scheme) return cleanLine(url);
  return cleanLine(fmt::format("{}{}", url.substr(0, scheme + 3), url.substr(at + 1)));
}

std::string excerpt(std::string_view body) { return cutChars(cleanLine(body), kMaxDetailChars); }

/// A mail address curl can put into MAIL FROM / RCPT TO: printable ASCII, no spaces or angle
/// brackets, one local part and one domain.
bool plausibleAddress(std::string_view addr) {
  auto at = addr.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == addr.size()) return false;
  return std::all_of(addr.begin(), addr.end(), [](char c) {
    return c > 0x20 && c < 0x7F && c != '<' && c != '>' && c != ',';
  });
}

bool timeoutsValid(std::chrono::milliseconds connect, std::chrono::milliseconds total) {
  return connect.count() > 0 && total.count() > 0;
}

// --- SMTP -----------------------------------------------------------------------------------

/// Failures below the SMTP dialogue: whatever the last reply was, try again later. A TLS
/// failure counts here too (like Postfix's deferral): a certificate gets renewed, a relay's
/// STARTTLS comes back, and the notifications wait in the outbox meanwhile.
bool isTransportFailure(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

bool isSettingsFailure(CURLcode rc) {
  return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_NOT_BUILT_IN;
}

Outcome classifySmtp(CURLcode rc, long reply) {
  if (rc == CURLE_OK) return Outcome::kSent;
  if (isTransportFailure(rc)) return Outcome::kRetry;
  if (reply >= 400 && reply <= 499) return Outcome::kRetry;
  if (reply >= 500 && reply <= 599) return Outcome::kPermanent;
  if (rc == CURLE_LOGIN_DENIED || isSettingsFailure(rc)) return Outcome::kPermanent;
  return Outcome::kRetry;
}

long curlUseSsl(SmtpSettings::Tls tls) {
  switch (tls) {
    case SmtpSettings::Tls::kRequired:
      return static_cast<long>(CURLUSESSL_ALL);
    case SmtpSettings::Tls::kOpportunistic:
      return static_cast<long>(CURLUSESSL_TRY);
    case SmtpSettings::Tls::kNone:
      return static_cast<long>(CURLUSESSL_NONE);
  }
  return static_cast<long>(CURLUSESSL_ALL);
}

/// What is wrong with the settings or recipients, or empty.
std::string smtpSettingsProblem(const SmtpSettings& s, const std::vector<std::string>& to) {
  bool implicitTls = s.url.starts_with("smtps://");
  if (!implicitTls && !s.url.starts_with("smtp://")) {
    return "the url is not smtp://host:port or smtps://host:port";
  }
  if (implicitTls && s.tls == SmtpSettings::Tls::kNone) {
    return "smtps:// always uses TLS, tls says none";
  }
  // A line break in an address would smuggle in SMTP commands; nothing is sent then.
  auto hasControl = [](std::string_view text) {
    return std::any_of(text.begin(), text.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
  };
  if (hasControl(s.from) || !plausibleAddress(envelopeAddress(s.from))) {
    return fmt::format("from \"{}\" is not a mail address", cleanLine(s.from));
  }
  if (to.empty()) return "no recipient";
  for (const auto& rcpt : to) {
    if (hasControl(rcpt) || !plausibleAddress(envelopeAddress(rcpt))) {
      return fmt::format("recipient \"{}\" is not a mail address", cleanLine(rcpt));
    }
  }
  if (!timeoutsValid(s.connectTimeout, s.totalTimeout)) return "timeouts must be positive";
  return {};
}

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + envelopeAddress(item);
  return cleanLine(out);
}

// --- HTTP -----------------------------------------------------------------------------------

struct HttpRequest {
  std::string channel;  // "sms", "webhook": the detail's first word
  std::string method = "POST";
  std::string url;
  std::string body;
  std::string contentType;
  std::string user, password;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string idempotencyKey;
  std::string caFile;
  bool verifyPeer = true;
  std::chrono::milliseconds connectTimeout{10000}, totalTimeout{30000};
};

bool isToken(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

std::string headerProblem(const std::pair<std::string, std::string>& header) {
  if (!isToken(header.first))
    return fmt::format("header name \"{}\" is not a token", cleanLine(header.first));
  if (header.second.find_first_of("\r\n") != std::string::npos ||
      header.second.find('\0') != std::string::npos) {
    return fmt::format("header {} holds a line break", header.first);
  }
  return {};
}

/// The request fields both HTTP channels' settings share.
template <typename Settings>
HttpRequest requestFor(const Settings& s, std::string channel, std::string_view idempotencyKey) {
  HttpRequest r;
  r.channel = std::move(channel);
  r.url = s.url;
  r.headers = s.headers;
  r.idempotencyKey = std::string(idempotencyKey);
  r.caFile = s.caFile;
  r.verifyPeer = s.verifyPeer;
  r.connectTimeout = s.connectTimeout;
  r.totalTimeout = s.totalTimeout;
  return r;
}

SendResult permanent(std::string_view channel, std::string_view where, std::string_view what) {
  return {Outcome::kPermanent, fmt::format("{} via {}: {}", channel, where, what)};
}

SendResult sendHttp(const HttpRequest& r) {
  std::string where = redactUrl(r.url);
  if (!r.url.starts_with("https://") && !r.url.starts_with("http://")) {
    return permanent(r.channel, where, "the url is not http:// or https://");
  }
  if (!timeoutsValid(r.connectTimeout, r.totalTimeout)) {
    return permanent(r.channel, where, "timeouts must be positive");
  }
  for (const auto& header : r.headers) {
    if (auto problem = headerProblem(header); !problem.empty()) {
      return permanent(r.channel, where, problem);
    }
  }
  auto created = Easy::create();
  if (!created)
    return {Outcome::kRetry,
            fmt::format("{} via {}: {}", r.channel, where, created.error().message)};
  Easy& easy = *created;
  easy.common("http,https", r.caFile, r.verifyPeer, r.connectTimeout, r.totalTimeout);
  easy.set(CURLOPT_URL, r.url.c_str(), "CURLOPT_URL");
  easy.set(CURLOPT_FOLLOWLOCATION, 0L, "CURLOPT_FOLLOWLOCATION");
  easy.set(CURLOPT_USERAGENT, "pass-home/" PASS_VERSION, "CURLOPT_USERAGENT");
  if (!r.user.empty()) {
    easy.set(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC), "CURLOPT_HTTPAUTH");
    easy.set(CURLOPT_USERNAME, r.user.c_str(), "CURLOPT_USERNAME");
    easy.set(CURLOPT_PASSWORD, r.password.c_str(), "CURLOPT_PASSWORD");
  }
  if (r.method == "GET") {
    easy.set(CURLOPT_HTTPGET, 1L, "CURLOPT_HTTPGET");
  } else {
    if (r.method != "POST")
      easy.set(CURLOPT_CUSTOMREQUEST, r.method.c_str(), "CURLOPT_CUSTOMREQUEST");
    easy.set(CURLOPT_POSTFIELDS, r.body.c_str(), "CURLOPT_POSTFIELDS");
    easy.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()),
             "CURLOPT_POSTFIELDSIZE_LARGE");
    easy.append(easy.headers(), "Content-Type: " + r.contentType);
  }
  // "Expect:" stops curl from waiting for a 100-continue that some gateways never send.
  easy.append(easy.headers(), "Expect:");
  easy.append(easy.headers(), "Accept: application/json");
  easy.append(easy.headers(), "Idempotency-Key: " + cleanLine(r.idempotencyKey));
  for (const auto& [name, value] : r.headers) easy.append(easy.headers(), name + ": " + value);
  easy.set(CURLOPT_HTTPHEADER, easy.headers().get(), "CURLOPT_HTTPHEADER");
  if (!easy.refused().empty()) return permanent(r.channel, where, easy.refused());

  CURLcode rc = easy.perform();
  if (rc != CURLE_OK) {
    Outcome outcome = isSettingsFailure(rc) ? Outcome::kPermanent : Outcome::kRetry;
    return {outcome,
            fmt::format("{} via {}: {} {}", r.channel, where, r.method, easy.failureText(rc))};
  }
  long status = easy.responseCode();
  std::string answer = excerpt(easy.answer());
  return {classifyHttpStatus(status), fmt::format("{} via {}: HTTP {}{}{}", r.channel, where,
                                                  status, answer.empty() ? "" : ": ", answer)};
}

}  // namespace

SendResult sendEmail(const SmtpSettings& settings, const std::vector<std::string>& to,
                     const Rendered& rendered, std::string_view messageId) {
  std::string channel = fmt::format("email to {}", joined(to));
  std::string where = redactUrl(settings.url);
  if (auto problem = smtpSettingsProblem(settings, to); !problem.empty()) {
    return permanent(channel, where, problem);
  }
  auto created = Easy::create();
  if (!created)
    return {Outcome::kRetry, fmt::format("{} via {}: {}", channel, where, created.error().message)};
  Easy& easy = *created;
  easy.common("smtp,smtps", settings.caFile, settings.verifyPeer, settings.connectTimeout,
              settings.totalTimeout);
  easy.watchReplies();
  easy.set(CURLOPT_URL, settings.url.c_str(), "CURLOPT_URL");
  easy.set(CURLOPT_USE_SSL, curlUseSsl(settings.tls), "CURLOPT_USE_SSL");
  if (!settings.user.empty()) {
    easy.set(CURLOPT_USERNAME, settings.user.c_str(), "CURLOPT_USERNAME");
    easy.set(CURLOPT_PASSWORD, settings.password.c_str(), "CURLOPT_PASSWORD");
  }
  std::string mailFrom = envelopeAddress(settings.from);
  easy.set(CURLOPT_MAIL_FROM, mailFrom.c_str(), "CURLOPT_MAIL_FROM");
  for (const auto& rcpt : to) easy.append(easy.recipients(), envelopeAddress(rcpt));
  easy.set(CURLOPT_MAIL_RCPT, easy.recipients().get(), "CURLOPT_MAIL_RCPT");
  easy.upload(emailMessage(settings.from, to, rendered, messageId, nowMs()));
  if (!easy.refused().empty()) return permanent(channel, where, easy.refused());

  CURLcode rc = easy.perform();
  Outcome outcome = classifySmtp(rc, easy.responseCode());
  if (outcome == Outcome::kSent)
    return {outcome, fmt::format("{} via {}: accepted", channel, where)};
  return {outcome, fmt::format("{} via {}: {}", channel, where, easy.failureText(rc))};
}

SendResult sendEmailToSms(const SmtpSettings& settings, const std::string& address,
                          const Rendered& rendered, std::string_view messageId) {
  // Gateways put the subject in front of the text; without one the SMS stays one segment.
  return sendEmail(settings, {address}, Rendered{.subject = {}, .text = rendered.sms, .sms = {}},
                   messageId);
}

SendResult sendSms(const HttpSmsSettings& settings, const std::string& toNumber,
                   const Rendered& rendered, std::int64_t ticket, std::string_view idempotencyKey) {
  HttpRequest r =
      requestFor(settings, fmt::format("sms to {}", cleanLine(toNumber)), idempotencyKey);
  r.method = settings.method;
  r.user = settings.user;
  r.password = settings.password;
  std::string where = redactUrl(settings.url);
  if (cleanLine(toNumber).empty()) return permanent(r.channel, where, "no number to send to");
  TemplateValues values{
      .to = toNumber, .from = settings.from, .text = rendered.sms, .ticket = ticket};

  if (settings.preset == "twilio") {
    if (settings.user.empty() || settings.password.empty()) {
      return permanent(r.channel, where,
                       "twilio needs the account SID as user and the auth token as password");
    }
    if (cleanLine(settings.from).empty())
      return permanent(r.channel, where, "twilio needs a from number");
    r.method = "POST";
    r.contentType = "application/x-www-form-urlencoded";
    r.body = expandTemplate("To={to}&From={from}&Body={text}", Escape::kForm, values);
    return sendHttp(r);
  }
  if (settings.preset != "generic") {
    return permanent(
        r.channel, where,
        fmt::format("unknown preset \"{}\" (generic or twilio)", cleanLine(settings.preset)));
  }
  if (r.method != "GET" && r.method != "POST" && r.method != "PUT") {
    return permanent(r.channel, where,
                     fmt::format("method \"{}\" is not GET, POST or PUT", cleanLine(r.method)));
  }
  r.url = expandTemplate(settings.url, Escape::kUrl, values);
  if (r.method != "GET") {
    auto escape = escapeFor(settings.contentType);
    if (!escape) return permanent(r.channel, where, escape.error().message);
    if (settings.bodyTemplate.empty()) return permanent(r.channel, where, "no body template");
    r.contentType = settings.contentType;
    r.body = expandTemplate(settings.bodyTemplate, *escape, values);
  }
  return sendHttp(r);
}

SendResult sendWebhook(const WebhookSettings& settings, const Notice& notice,
                       std::string_view idempotencyKey) {
  HttpRequest r =
      requestFor(settings, fmt::format("webhook {}", cleanLine(settings.preset)), idempotencyKey);
  r.contentType = "application/json";
  nlohmann::json body;
  if (settings.preset == "json") {
    body = webhookJson(notice);
  } else if (settings.preset == "pagerduty") {
    if (r.url.empty()) r.url = kPagerDutyEventsUrl;
    if (cleanLine(settings.routingKey).empty()) {
      return permanent(r.channel, redactUrl(r.url), "pagerduty needs a routing key");
    }
    body = pagerDutyEvent(notice, settings.routingKey);
  } else {
    return permanent(
        r.channel, redactUrl(r.url),
        fmt::format("unknown preset \"{}\" (json or pagerduty)", cleanLine(settings.preset)));
  }
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return sendHttp(r);
}

}  // namespace pass::home::notify
