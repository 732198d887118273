#pragma once
/// The home's notification channels: a ticket change (a Notice) rendered into an e-mail, an SMS
/// and webhook bodies by pure functions, and sent by SMTP, an HTTP SMS gateway, e-mail-to-SMS
/// or a webhook. A send makes one attempt and classifies it; retries, backoff and durability
/// are the outbox worker's. See docs/notifications.md.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "pass/result.hpp"

namespace pass::home::notify {

/// One ticket change to tell people about. Empty strings are left out of every rendering.
struct Notice {
  std::int64_t ticket = 0;  ///< the ticket number; 0 for notices without a ticket (storm, test)
  std::string kind;         ///< opened | updated | reopened | escalated | acknowledged | resolved |
                            ///< storm_on | storm_summary | test
  std::string customer, site;
  std::string family, model, serial, arrayName;  ///< may be empty (e.g. agent tickets)
  std::string problem;                           ///< short title, e.g. "SIM 307080 (acute)"
  std::string code, severity;  ///< vendor code and severity as the array gave them
  std::string meaning;         ///< decoded text from vendor-codes, may be empty
  std::string text;            ///< the array's own text (may span lines), may be empty
  std::string component;
  std::int64_t count = 1;                        ///< occurrences so far
  std::int64_t firstSeenMs = 0, lastSeenMs = 0;  ///< Unix ms; 0 = unknown
  std::string ackUrl;  ///< link that acknowledges the ticket; may be empty
  std::string detail;  ///< free text (may span lines) for storm/test/escalation notices
};

/// What the channels send: an e-mail subject and plain-text body, and an SMS of at most
/// kSmsMaxSeptets GSM 03.38 septets (so one segment, never UCS-2).
struct Rendered {
  std::string subject;
  std::string text;
  std::string sms;
};

inline constexpr std::size_t kSmsMaxSeptets = 160;
inline constexpr std::size_t kSubjectMaxChars = 200;
inline constexpr std::size_t kPagerDutySummaryMaxChars = 1024;

/// Subject, body and SMS of a notice. Control characters become spaces (line breaks survive
/// only in the body's text and detail) and invalid UTF-8 becomes U+FFFD, so no field can
/// inject a header line.
Rendered render(const Notice& notice);

/// The generic webhook body (schema "pass.notice.v1", documented in docs/notifications.md).
nlohmann::json webhookJson(const Notice& notice);

/// A PagerDuty Events API v2 event: trigger, acknowledge (kind "acknowledged") or resolve
/// (kind "resolved"), dedup_key "pass-<ticket>".
nlohmann::json pagerDutyEvent(const Notice& notice, std::string_view routingKey);

/// critical | error | warning | info for a severity word of any of the four families'
/// scales (case-insensitive); "error" for an unknown or empty word.
std::string_view pagerDutySeverity(std::string_view vendorSeverity);

/// `text` as valid UTF-8 on one line: invalid bytes become U+FFFD, control characters
/// (line breaks included) a space, and runs of spaces one space; trimmed.
std::string cleanLine(std::string_view text);
/// Like cleanLine but keeps line breaks (as "\n") and tabs; trailing blanks of a line go.
std::string cleanText(std::string_view text);
/// `text` cut to at most `maxChars` code points, ending in "..." when it was cut.
std::string cutChars(std::string_view utf8, std::size_t maxChars);

/// GSM 03.38 septets that `utf8` needs, or SIZE_MAX when a character is outside the GSM
/// default alphabet and its extension table (the SMS would go out as UCS-2).
std::size_t gsmSeptets(std::string_view utf8);
/// `utf8` with each character outside GSM 03.38 replaced by a close ASCII stand-in ("..." for
/// U+2026, straight quotes, "-" for dashes, the base letter for Latin accents) or "?".
std::string toGsm(std::string_view utf8);

// --- wire formats (pure) --------------------------------------------------------------------

/// The RFC 5322 message sendEmail transmits (CRLF line ends): Date, From, To, Subject (RFC 2047
/// when not ASCII; left out when empty), Message-ID "<messageId@pass>", Auto-Submitted,
/// MIME-Version, text/plain; charset=UTF-8 in 7bit when the body is short-lined ASCII,
/// quoted-printable otherwise.
std::string emailMessage(std::string_view from, const std::vector<std::string>& to,
                         const Rendered& rendered, std::string_view messageId, std::int64_t dateMs);

/// The address inside "Name <addr>", or the trimmed text when there are no angle brackets.
std::string envelopeAddress(std::string_view address);

/// How a template placeholder's value is escaped.
enum class Escape { kJson, kForm, kXml, kUrl };
/// kJson for application/json and */*+json, kForm for application/x-www-form-urlencoded, kXml
/// for application/xml, text/xml and */*+xml; fails with "notify.settings" otherwise.
Result<Escape> escapeFor(std::string_view contentType);

struct TemplateValues {
  std::string_view to, from, text;
  std::int64_t ticket = 0;
};
/// `tmpl` with each {to}, {from}, {text}, {ticket} replaced in one pass (a value that contains
/// a placeholder is not expanded again), escaped as `escape` says; JSON values are string
/// contents without the quotes, which the template writes.
std::string expandTemplate(std::string_view tmpl, Escape escape, const TemplateValues& values);

// --- channels (libcurl) ---------------------------------------------------------------------

/// kRetry: try again later (server or network trouble, 4xx SMTP, 408/425/429/5xx HTTP, TLS).
/// kPermanent: retrying the same request cannot succeed (5xx SMTP, other 4xx HTTP, settings).
enum class Outcome { kSent, kRetry, kPermanent };
std::string_view toString(Outcome outcome);

struct SendResult {
  Outcome outcome = Outcome::kRetry;
  std::string detail;  ///< names the channel, server and what failed (or what accepted)
};

/// 2xx kSent; 408, 425, 429, 5xx kRetry; 1xx, 3xx (redirects are not followed) and the other
/// 4xx kPermanent; 0 (no answer) kRetry.
Outcome classifyHttpStatus(long status);

struct SmtpSettings {
  std::string url;   ///< smtp://host:port (STARTTLS per tls) or smtps://host:port (implicit TLS)
  std::string from;  ///< envelope and header From: "addr" or "Name <addr>"
  /// kRequired: STARTTLS or fail before AUTH; kOpportunistic: STARTTLS when offered, else plain
  /// (credentials would then travel in clear text); kNone: never TLS (lab only).
  enum class Tls { kRequired, kOpportunistic, kNone } tls = Tls::kRequired;
  std::string user, password;  ///< empty user: no AUTH
  std::string caFile;          ///< trust these CAs for the server (PEM); empty: system store
  bool verifyPeer = true;      ///< false only for tests/labs: anyone can then pose as the server
  std::chrono::milliseconds connectTimeout{10000}, totalTimeout{30000};
};

/// One message to all of `to` (one transaction: a rejected recipient fails the whole send,
/// so the outbox sends one recipient per call when they should fail independently).
/// `messageId` (letters, digits and -._ ; other characters become '_') makes the Message-ID
/// <messageId@pass>, the same on every retry of one notification.
SendResult sendEmail(const SmtpSettings& settings, const std::vector<std::string>& to,
                     const Rendered& rendered, std::string_view messageId);
/// The SMS text as the body of a subject-less e-mail to an e-mail-to-SMS gateway address.
SendResult sendEmailToSms(const SmtpSettings& settings, const std::string& address,
                          const Rendered& rendered, std::string_view messageId);

struct HttpSmsSettings {
  std::string preset;  ///< "generic" | "twilio"
  /// twilio: https://api.twilio.com/2010-04-01/Accounts/{account}/Messages.json; generic: may
  /// hold placeholders, percent-encoded (e.g. for a GET gateway).
  std::string url;
  std::string method = "POST";  ///< generic: GET (no body), POST, PUT
  std::string contentType;      ///< generic: application/json, application/x-www-form-urlencoded
                                ///< or application/xml
  std::string bodyTemplate;     ///< generic: with {to}, {from}, {text}, {ticket}
  std::string from;             ///< sender number or id
  std::string user, password;   ///< HTTP basic auth (twilio: account SID and auth token)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string caFile;
  bool verifyPeer = true;
  std::chrono::milliseconds connectTimeout{10000}, totalTimeout{30000};
};

/// Sends rendered.sms to `toNumber`, with an Idempotency-Key header.
SendResult sendSms(const HttpSmsSettings& settings, const std::string& toNumber,
                   const Rendered& rendered, std::int64_t ticket, std::string_view idempotencyKey);

inline constexpr std::string_view kPagerDutyEventsUrl = "https://events.pagerduty.com/v2/enqueue";

struct WebhookSettings {
  std::string preset;      ///< "json" | "pagerduty"
  std::string url;         ///< pagerduty: empty means kPagerDutyEventsUrl
  std::string routingKey;  ///< pagerduty
  std::vector<std::pair<std::string, std::string>> headers;
  std::string caFile;
  bool verifyPeer = true;
  std::chrono::milliseconds connectTimeout{10000}, totalTimeout{30000};
};

/// POSTs webhookJson or pagerDutyEvent of `notice`, with an Idempotency-Key header.
SendResult sendWebhook(const WebhookSettings& settings, const Notice& notice,
                       std::string_view idempotencyKey);

}  // namespace pass::home::notify
