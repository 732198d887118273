// home.xml: its one declaration (homeSchema), loading with semantic checks, and the rules.

#include "pass/home/home_config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "config/retention.hpp"
#include "pass/vendor_codes.hpp"

namespace pass::home {

namespace {

namespace fs = std::filesystem;
using config::attribute;
using config::AttributeDecl;
using config::ElementDecl;
using config::Findings;
using config::Type;
using config::uintAttribute;

constexpr std::string_view kRoot = "pass-home";
constexpr std::string_view kTickets = "pass-home/tickets";
constexpr std::string_view kWatchdog = "pass-home/watchdog";
constexpr std::string_view kNotifications = "pass-home/notifications";
constexpr std::string_view kRetention = "pass-home/retention";
constexpr std::string_view kSmtp = "pass-home/smtp";
constexpr std::string_view kSmsGateway = "pass-home/sms-gateway";
constexpr std::string_view kWebhook = "pass-home/webhook";
constexpr std::string_view kRule = "pass-home/rule";
constexpr std::string_view kCustomer = "pass-home/customer";
constexpr std::string_view kContact = "pass-home/customer/contact";
constexpr std::string_view kCustomerRule = "pass-home/customer/rule";

constexpr std::string_view kRuleSite = "Only alerts from this site (as enrolled); empty: any.";
constexpr std::string_view kRuleFamily =
    "Only this array family (hitachi_svp, hitachi_df, hpe_3par, nimble); empty: any.";
constexpr std::string_view kRuleSeverity =
    "Only these severities, space-separated, on the family's scale (case-insensitive); "
    "empty: any.";
constexpr std::string_view kRuleCode =
    "Only these vendor codes, space-separated (case-insensitive; a trailing * matches a "
    "prefix); empty: any.";
constexpr std::string_view kRuleAction =
    "ticket (open or update a ticket and notify), record (store it on the array, no ticket), "
    "or ignore (store the event only).";
constexpr std::string_view kRuleUrgent =
    "true: notified at any hour; false: held back during quiet hours. Empty: from the "
    "family's code table (urgent_from).";
constexpr std::string_view kVerifyPeer =
    "false turns off the server certificate check: for a lab only, since anyone on the path "
    "could then read the messages.";

constexpr std::array kElements{
    ElementDecl{kRoot, 1, 1,
                "The home's rules, contacts and notification channels (STATE/home.xml). "
                "Without the file the home uses the defaults below and notifies nobody."},
    ElementDecl{kTickets, 0, 1, "How tickets are kept."},
    ElementDecl{kWatchdog, 0, 1, "Missing heartbeats and agent clocks."},
    ElementDecl{kNotifications, 0, 1, "Retries, links, storms and rate limits of notifications."},
    ElementDecl{kRetention, 0, 1,
                "How long envelopes and events are kept (docs/scale-out.md, \"Retention\"). "
                "Tickets, their log and the outbox are kept for good. Without it nothing is "
                "pruned."},
    ElementDecl{kSmtp, 0, 1, "The mail server that sends e-mail and e-mail-to-SMS messages."},
    ElementDecl{kSmsGateway, 0, 0, "An HTTP SMS gateway."},
    ElementDecl{kWebhook, 0, 0, "An outbound webhook (JSON)."},
    ElementDecl{kRule, 0, 0,
                "A rule for every customer, tried after the customer's own rules and before "
                "the family's defaults. The first rule that matches decides."},
    ElementDecl{kCustomer, 0, 0, "A customer: who is told, when, and the customer's own rules."},
    ElementDecl{kContact, 0, 0,
                "A person told about the customer's tickets: management always, engineers when "
                "the customer has no on-call schedule."},
    ElementDecl{kCustomerRule, 0, 0,
                "A rule for this customer only, tried in order before the top-level rules."},
};

constexpr std::array kAttributes{
    AttributeDecl{
        kRoot, "schema", Type::kUint, true, {}, "Version of this file's layout; must be 1."},
    AttributeDecl{kTickets, "reopen-window-minutes", Type::kUint, false, "1440",
                  "A problem that comes back this long after its ticket was resolved reopens "
                  "that ticket instead of opening a new one."},
    AttributeDecl{kWatchdog, "grace-heartbeats", Type::kUint, false, "2",
                  "Heartbeat intervals to wait past the due time before a 'missing heartbeat' "
                  "ticket opens (1 to 100)."},
    AttributeDecl{kWatchdog, "first-report-days", Type::kUint, false, "14",
                  "Days an agent made by `pass-home onboard` may stay silent before its first "
                  "heartbeat (shipping and installing the appliance or the MSI) before a "
                  "'never reported' ticket opens (1 to 365)."},
    AttributeDecl{kWatchdog, "skew-warning-seconds", Type::kUint, false, "300",
                  "An agent clock further than this from the home's is a warning on the agent."},
    AttributeDecl{kWatchdog, "interval-seconds", Type::kUint, false, "60",
                  "How often the watchdog looks for overdue heartbeats and unacknowledged "
                  "tickets (1 to 3600)."},
    AttributeDecl{kRetention, "envelopes-days", Type::kUint, false, "0",
                  "Envelopes (with their heartbeat rows and (agent, seq) keys) received longer "
                  "ago than this are pruned; 0: kept for good. Else at least 31, the replay "
                  "window plus a day, so that a replay of a pruned envelope is refused as stale "
                  "(31 to 36500)."},
    AttributeDecl{kRetention, "events-days", Type::kUint, false, "0",
                  "Events that occurred longer ago than this are pruned, except those of an "
                  "array and code with a live ticket; 0: kept for good (1 to 36500)."},
    AttributeDecl{kRetention, "interval-minutes", Type::kUint, false, "60",
                  "How often the home leading the cluster's time-driven work prunes (1 to "
                  "1440)."},
    AttributeDecl{kNotifications,
                  "ack-url",
                  Type::kString,
                  false,
                  {},
                  "Base URL of the acknowledgement links in messages, e.g. "
                  "https://pass.example.com:9456; empty: messages carry no link."},
    AttributeDecl{kNotifications, "ack-link-valid-seconds", Type::kUint, false, "604800",
                  "How long an acknowledgement link works after its message was queued "
                  "(default 7 days); a later click gets a page saying when it expired. "
                  "1 to 31536000."},
    AttributeDecl{kNotifications, "storm-threshold", Type::kUint, false, "20",
                  "More new tickets than this at one site within storm-window-minutes turn on "
                  "storm mode there: one summary instead of one message per ticket."},
    AttributeDecl{kNotifications, "storm-window-minutes", Type::kUint, false, "10",
                  "The window of storm-threshold."},
    AttributeDecl{kNotifications, "rate-limit-per-hour", Type::kUint, false, "30",
                  "At most this many messages per recipient and channel in any hour; the rest "
                  "are recorded on their tickets, not sent."},
    AttributeDecl{kNotifications, "retry-initial-seconds", Type::kUint, false, "30",
                  "First wait after a failed send; it doubles up to retry-max-seconds."},
    AttributeDecl{kNotifications, "retry-max-seconds", Type::kUint, false, "1800",
                  "Longest wait between two attempts. A message is retried until it is sent "
                  "or refused for good."},
    AttributeDecl{kSmtp,
                  "url",
                  Type::kString,
                  true,
                  {},
                  "smtp://host:port (STARTTLS as tls says) or smtps://host:port."},
    AttributeDecl{kSmtp, "from", Type::kString, true, {}, "Sender: addr or \"Name <addr>\"."},
    AttributeDecl{kSmtp, "tls", Type::kString, false, "required",
                  "required (STARTTLS before anything else), opportunistic, or none (lab)."},
    AttributeDecl{kSmtp, "user", Type::kString, false, {}, "SMTP AUTH user; empty: no AUTH."},
    AttributeDecl{kSmtp,
                  "password-file",
                  Type::kPath,
                  false,
                  {},
                  "File holding the SMTP password (first line); relative to home.xml."},
    AttributeDecl{kSmtp,
                  "ca-file",
                  Type::kPath,
                  false,
                  {},
                  "PEM file of CAs to trust for the mail server; empty: the system store."},
    AttributeDecl{kSmtp, "verify-peer", Type::kBool, false, "true", kVerifyPeer},
    AttributeDecl{kSmsGateway, "name", Type::kString, true, {}, "Unique name, for customers."},
    AttributeDecl{kSmsGateway, "preset", Type::kString, false, "generic",
                  "generic (url, method, content-type and body-template say it all) or twilio."},
    AttributeDecl{kSmsGateway,
                  "url",
                  Type::kUrl,
                  true,
                  {},
                  "Where to send; twilio: https://api.twilio.com/2010-04-01/Accounts/SID/"
                  "Messages.json."},
    AttributeDecl{kSmsGateway, "method", Type::kString, false, "POST", "GET, POST or PUT."},
    AttributeDecl{kSmsGateway, "content-type", Type::kString, false, "application/json",
                  "generic: application/json, application/x-www-form-urlencoded or "
                  "application/xml."},
    AttributeDecl{kSmsGateway,
                  "body-template",
                  Type::kString,
                  false,
                  {},
                  "generic: the body, with {to}, {from}, {text} and {ticket} escaped for the "
                  "content type."},
    AttributeDecl{kSmsGateway, "from", Type::kString, false, {}, "Sender number or id."},
    AttributeDecl{kSmsGateway,
                  "user",
                  Type::kString,
                  false,
                  {},
                  "HTTP basic auth user (twilio: the account SID)."},
    AttributeDecl{kSmsGateway,
                  "password-file",
                  Type::kPath,
                  false,
                  {},
                  "File holding the basic auth password (twilio: the auth token)."},
    AttributeDecl{kSmsGateway,
                  "ca-file",
                  Type::kPath,
                  false,
                  {},
                  "PEM file of CAs to trust; empty: the system store."},
    AttributeDecl{kSmsGateway, "verify-peer", Type::kBool, false, "true", kVerifyPeer},
    AttributeDecl{kWebhook, "name", Type::kString, true, {}, "Unique name, for contacts."},
    AttributeDecl{kWebhook, "preset", Type::kString, false, "json",
                  "json (PASS's notice, docs/notifications.md) or pagerduty (Events API v2)."},
    AttributeDecl{kWebhook,
                  "url",
                  Type::kUrl,
                  false,
                  {},
                  "Where to POST; pagerduty: empty means https://events.pagerduty.com/v2/"
                  "enqueue."},
    AttributeDecl{kWebhook,
                  "routing-key-file",
                  Type::kPath,
                  false,
                  {},
                  "pagerduty: file holding the integration's routing key."},
    AttributeDecl{kWebhook,
                  "ca-file",
                  Type::kPath,
                  false,
                  {},
                  "PEM file of CAs to trust; empty: the system store."},
    AttributeDecl{kWebhook, "verify-peer", Type::kBool, false, "true", kVerifyPeer},
    AttributeDecl{kRule, "site", Type::kString, false, {}, kRuleSite},
    AttributeDecl{kRule, "family", Type::kString, false, {}, kRuleFamily},
    AttributeDecl{kRule, "severity", Type::kString, false, {}, kRuleSeverity},
    AttributeDecl{kRule, "code", Type::kString, false, {}, kRuleCode},
    AttributeDecl{kRule, "action", Type::kString, true, {}, kRuleAction},
    AttributeDecl{kRule, "urgent", Type::kString, false, {}, kRuleUrgent},
    AttributeDecl{kCustomer,
                  "name",
                  Type::kString,
                  true,
                  {},
                  "The customer's name, as its agents were enrolled."},
    AttributeDecl{kCustomer, "time-zone", Type::kString, false, "UTC",
                  "IANA time zone of the customer's quiet hours, e.g. Europe/Berlin."},
    AttributeDecl{kCustomer,
                  "quiet-hours",
                  Type::kString,
                  false,
                  {},
                  "When non-urgent messages wait, e.g. \"22:00-07:00\" or \"Mon-Fri "
                  "19:00-08:00\"; empty: never (docs/on-call.md)."},
    AttributeDecl{kCustomer,
                  "on-call",
                  Type::kPath,
                  false,
                  {},
                  "iCalendar file of the on-call rota (docs/on-call.md); relative to home.xml. "
                  "Empty: the engineer contacts are always on call."},
    AttributeDecl{kCustomer, "escalate-after-minutes", Type::kUint, false, "30",
                  "A ticket nobody acknowledged after this long is sent to the next on-call "
                  "level and management; 0: never."},
    AttributeDecl{kCustomer,
                  "sms-gateway",
                  Type::kString,
                  false,
                  {},
                  "The <sms-gateway> for this customer's SMS; empty: the only one there is."},
    AttributeDecl{kContact, "name", Type::kString, true, {}, "The person's name."},
    AttributeDecl{kContact, "role", Type::kString, false, "management",
                  "management (told of every ticket) or engineer (told when on call)."},
    AttributeDecl{kContact, "email", Type::kString, false, {}, "E-mail address."},
    AttributeDecl{kContact,
                  "sms",
                  Type::kString,
                  false,
                  {},
                  "Mobile number in E.164 form (+4915112345678), through the SMS gateway."},
    AttributeDecl{kContact,
                  "email-sms",
                  Type::kString,
                  false,
                  {},
                  "An e-mail-to-SMS address (number@gateway.example)."},
    AttributeDecl{kContact, "webhook", Type::kString, false, {}, "Name of a <webhook>."},
    AttributeDecl{kContact, "notify", Type::kString, false, "all",
                  "all, or urgent: only urgent tickets and their changes."},
    AttributeDecl{kCustomerRule, "site", Type::kString, false, {}, kRuleSite},
    AttributeDecl{kCustomerRule, "family", Type::kString, false, {}, kRuleFamily},
    AttributeDecl{kCustomerRule, "severity", Type::kString, false, {}, kRuleSeverity},
    AttributeDecl{kCustomerRule, "code", Type::kString, false, {}, kRuleCode},
    AttributeDecl{kCustomerRule, "action", Type::kString, true, {}, kRuleAction},
    AttributeDecl{kCustomerRule, "urgent", Type::kString, false, {}, kRuleUrgent},
};

constexpr std::array<std::string_view, 4> kFamilies = {"hitachi_svp", "hitachi_df", "hpe_3par",
                                                       "nimble"};

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
    std::size_t start = i;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) == 0) ++i;
    if (i > start) out.emplace_back(text.substr(start, i - start));
  }
  return out;
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool equalNoCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return lower(x) == lower(y); });
}

bool codeMatches(std::string_view pattern, std::string_view code) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return code.size() >= pattern.size() && equalNoCase(pattern, code.substr(0, pattern.size()));
  }
  return equalNoCase(pattern, code);
}

std::string where(const fs::path& file, const config::Node& node) {
  return fmt::format("{}:{}", file.filename().string(), node.line);
}

/// Reads the first line of a secret file named by `name`; a finding when it cannot.
std::string secret(Findings& findings, const config::Node& node, std::string_view name,
                   const fs::path& base) {
  const std::string& value = attribute(node, name);
  if (value.empty()) return {};
  auto text = config::readConfigFile(config::resolvePath(base, value));
  if (!text) {
    findings.add(node, name, text.error().message);
    return {};
  }
  auto end = text->find_first_of("\r\n");
  std::string line = text->substr(0, end);
  if (line.empty()) findings.add(node, name, fmt::format("{} is empty", value));
  return line;
}

std::string optionalPath(const config::Node& node, std::string_view name, const fs::path& base) {
  const std::string& value = attribute(node, name);
  return value.empty() ? std::string() : config::resolvePath(base, value).string();
}

void checkOneOf(Findings& findings, const config::Node& node, std::string_view name,
                std::initializer_list<std::string_view> allowed) {
  const std::string& value = attribute(node, name);
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  findings.add(node, name,
               fmt::format("\"{}\" is not one of: {}", value, fmt::join(allowed, ", ")));
}

Rule readRule(Findings& findings, const fs::path& file, const config::Node& node) {
  Rule rule;
  rule.where = where(file, node);
  rule.site = attribute(node, "site");
  rule.family = attribute(node, "family");
  if (!rule.family.empty() &&
      std::find(kFamilies.begin(), kFamilies.end(), rule.family) == kFamilies.end()) {
    findings.add(node, "family",
                 fmt::format("\"{}\" is not one of: {}", rule.family, fmt::join(kFamilies, ", ")));
  }
  rule.severities = words(attribute(node, "severity"));
  if (!rule.family.empty()) {
    const CodeTable* table = builtinCodeTable(rule.family);
    for (const auto& s : rule.severities) {
      if (table != nullptr && table->classify(s) == SeverityClass::kUnknown) {
        findings.add(node, "severity",
                     fmt::format("\"{}\" is not on the {} scale ({})", s, rule.family,
                                 fmt::join(table->severities(), ", ")));
      }
    }
  }
  rule.codes = words(attribute(node, "code"));
  const std::string& action = attribute(node, "action");
  checkOneOf(findings, node, "action", {"ticket", "record", "ignore"});
  rule.action = action == "record"   ? RuleAction::kRecord
                : action == "ignore" ? RuleAction::kIgnore
                                     : RuleAction::kTicket;
  const std::string& urgent = attribute(node, "urgent");
  if (!urgent.empty()) {
    checkOneOf(findings, node, "urgent", {"true", "false"});
    rule.urgent = urgent == "true";
  }
  return rule;
}

bool ruleMatches(const Rule& rule, std::string_view site, std::string_view family,
                 std::string_view code, std::string_view severity) {
  if (!rule.site.empty() && rule.site != site) return false;
  if (!rule.family.empty() && rule.family != family) return false;
  if (!rule.severities.empty() &&
      std::none_of(rule.severities.begin(), rule.severities.end(),
                   [&](const std::string& s) { return equalNoCase(s, severity); })) {
    return false;
  }
  if (!rule.codes.empty() &&
      std::none_of(rule.codes.begin(), rule.codes.end(),
                   [&](const std::string& c) { return codeMatches(c, code); })) {
    return false;
  }
  return true;
}

std::chrono::milliseconds seconds(std::uint64_t s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s) * 1000);
}

Retention readRetention(Findings& findings, const config::Node& n) {
  constexpr std::int64_t kDayMs = 24LL * 3600 * 1000;
  if (uintAttribute(n, "envelopes-days") != 0) {
    findings.checkRange(n, "envelopes-days", kMinEnvelopeRetentionDays, 36500);
  }
  if (uintAttribute(n, "events-days") != 0) findings.checkRange(n, "events-days", 1, 36500);
  findings.checkRange(n, "interval-minutes", 1, 1440);
  return Retention{
      .envelopesMs = static_cast<std::int64_t>(uintAttribute(n, "envelopes-days")) * kDayMs,
      .eventsMs = static_cast<std::int64_t>(uintAttribute(n, "events-days")) * kDayMs,
      .intervalMs = seconds(uintAttribute(n, "interval-minutes") * 60).count()};
}

}  // namespace

std::string_view toString(RuleAction action) {
  switch (action) {
    case RuleAction::kTicket:
      return "ticket";
    case RuleAction::kRecord:
      return "record";
    case RuleAction::kIgnore:
      return "ignore";
  }
  return "?";
}

const Customer* HomeConfig::customer(std::string_view name) const {
  for (const auto& c : customers) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const config::Schema& homeSchema() {
  static const config::Schema kSchema{kElements, kAttributes};
  return kSchema;
}

Result<HomeConfig> loadHomeConfig(const fs::path& file) {
  auto text = config::readConfigFile(file);
  if (!text) return std::unexpected(text.error());
  auto parsed = config::parse(homeSchema(), *text, file.string());
  if (!parsed) return std::unexpected(parsed.error());
  const config::Document& doc = *parsed;
  const fs::path base = file.parent_path();
  Findings findings(file.string());
  HomeConfig cfg;
  cfg.file = file;

  const config::Node* root = doc.first(kRoot);
  if (uintAttribute(*root, "schema") != 1) findings.add(*root, "schema", "must be 1");
  if (const auto* n = doc.first(kTickets)) {
    cfg.reopenWindowMs =
        static_cast<std::int64_t>(uintAttribute(*n, "reopen-window-minutes")) * 60 * 1000;
  }
  if (const auto* n = doc.first(kWatchdog)) {
    findings.checkRange(*n, "grace-heartbeats", 1, 100);
    findings.checkRange(*n, "interval-seconds", 1, 3600);
    findings.checkRange(*n, "first-report-days", 1, 365);
    cfg.graceHeartbeats = static_cast<unsigned>(uintAttribute(*n, "grace-heartbeats"));
    cfg.firstReportMs =
        static_cast<std::int64_t>(uintAttribute(*n, "first-report-days")) * 24 * 3600 * 1000;
    cfg.skewWarningMs = seconds(uintAttribute(*n, "skew-warning-seconds")).count();
    cfg.watchdogIntervalMs = seconds(uintAttribute(*n, "interval-seconds")).count();
  }
  // Checked here too, so that check-config and serve refuse a bad <retention> at once.
  if (const auto* n = doc.first(kRetention)) readRetention(findings, *n);
  if (const auto* n = doc.first(kNotifications)) {
    cfg.ackUrl = attribute(*n, "ack-url");
    if (!cfg.ackUrl.empty() && !cfg.ackUrl.starts_with("https://") &&
        !cfg.ackUrl.starts_with("http://")) {
      findings.add(*n, "ack-url", "must start with https:// (or http:// in a lab)");
    }
    findings.checkRange(*n, "ack-link-valid-seconds", 1, 31'536'000);
    findings.checkRange(*n, "storm-threshold", 1, 100000);
    findings.checkRange(*n, "storm-window-minutes", 1, 1440);
    findings.checkRange(*n, "rate-limit-per-hour", 1, 100000);
    findings.checkRange(*n, "retry-initial-seconds", 1, 86400);
    findings.checkRange(*n, "retry-max-seconds", 1, 86400);
    cfg.ackLinkValidMs = seconds(uintAttribute(*n, "ack-link-valid-seconds")).count();
    cfg.stormThreshold = static_cast<unsigned>(uintAttribute(*n, "storm-threshold"));
    cfg.stormWindowMs = seconds(uintAttribute(*n, "storm-window-minutes") * 60).count();
    cfg.ratePerHour = static_cast<unsigned>(uintAttribute(*n, "rate-limit-per-hour"));
    cfg.retryInitialMs = seconds(uintAttribute(*n, "retry-initial-seconds")).count();
    cfg.retryMaxMs = seconds(uintAttribute(*n, "retry-max-seconds")).count();
  }
  if (const auto* n = doc.first(kSmtp)) {
    notify::SmtpSettings smtp;
    smtp.url = attribute(*n, "url");
    if (!smtp.url.starts_with("smtp://") && !smtp.url.starts_with("smtps://")) {
      findings.add(*n, "url", "must start with smtp:// or smtps://");
    }
    smtp.from = attribute(*n, "from");
    checkOneOf(findings, *n, "tls", {"required", "opportunistic", "none"});
    const std::string& tls = attribute(*n, "tls");
    smtp.tls = tls == "none"            ? notify::SmtpSettings::Tls::kNone
               : tls == "opportunistic" ? notify::SmtpSettings::Tls::kOpportunistic
                                        : notify::SmtpSettings::Tls::kRequired;
    smtp.user = attribute(*n, "user");
    smtp.password = secret(findings, *n, "password-file", base);
    if (!smtp.user.empty() && attribute(*n, "password-file").empty()) {
      findings.add(*n, "password-file", "is required with user");
    }
    smtp.caFile = optionalPath(*n, "ca-file", base);
    smtp.verifyPeer = attribute(*n, "verify-peer") == "true";
    cfg.smtp = std::move(smtp);
  }
  for (const auto* n : doc.all(kSmsGateway)) {
    notify::HttpSmsSettings sms;
    const std::string& name = attribute(*n, "name");
    checkOneOf(findings, *n, "preset", {"generic", "twilio"});
    sms.preset = attribute(*n, "preset");
    sms.url = attribute(*n, "url");
    checkOneOf(findings, *n, "method", {"GET", "POST", "PUT"});
    sms.method = attribute(*n, "method");
    sms.contentType = attribute(*n, "content-type");
    sms.bodyTemplate = attribute(*n, "body-template");
    if (sms.preset == "generic") {
      if (auto escape = notify::escapeFor(sms.contentType); !escape) {
        findings.add(*n, "content-type", escape.error().message);
      }
      if (sms.method != "GET" && sms.bodyTemplate.empty()) {
        findings.add(*n, "body-template", "is required for a generic gateway with a body");
      }
    }
    sms.from = attribute(*n, "from");
    sms.user = attribute(*n, "user");
    sms.password = secret(findings, *n, "password-file", base);
    sms.caFile = optionalPath(*n, "ca-file", base);
    sms.verifyPeer = attribute(*n, "verify-peer") == "true";
    if (!cfg.smsGateways.emplace(name, std::move(sms)).second) {
      findings.add(*n, "name", fmt::format("\"{}\" is used by another <sms-gateway>", name));
    }
  }
  for (const auto* n : doc.all(kWebhook)) {
    notify::WebhookSettings hook;
    const std::string& name = attribute(*n, "name");
    checkOneOf(findings, *n, "preset", {"json", "pagerduty"});
    hook.preset = attribute(*n, "preset");
    hook.url = attribute(*n, "url");
    if (hook.preset == "json" && hook.url.empty()) findings.add(*n, "url", "is required");
    if (hook.preset == "pagerduty") {
      if (attribute(*n, "routing-key-file").empty()) {
        findings.add(*n, "routing-key-file", "is required for pagerduty");
      }
      hook.routingKey = secret(findings, *n, "routing-key-file", base);
    }
    hook.caFile = optionalPath(*n, "ca-file", base);
    hook.verifyPeer = attribute(*n, "verify-peer") == "true";
    if (!cfg.webhooks.emplace(name, std::move(hook)).second) {
      findings.add(*n, "name", fmt::format("\"{}\" is used by another <webhook>", name));
    }
  }
  for (const auto* n : doc.all(kRule)) cfg.rules.push_back(readRule(findings, file, *n));

  // Children follow their parent in document order, so each contact and rule belongs to the
  // customer read last before it.
  std::set<std::string, std::less<>> customerNames;
  for (const auto& node : doc.nodes) {
    if (node.path == kCustomer) {
      Customer c;
      c.name = attribute(node, "name");
      c.where = where(file, node);
      if (!customerNames.insert(c.name).second) {
        findings.add(node, "name", fmt::format("customer \"{}\" is declared twice", c.name));
      }
      c.timeZone = attribute(node, "time-zone");
      c.quietHours = attribute(node, "quiet-hours");
      if (!c.quietHours.empty()) {
        auto quiet = QuietHours::parse(c.quietHours, c.timeZone);
        if (quiet) {
          c.quiet = std::move(*quiet);
        } else {
          findings.add(node, "quiet-hours", quiet.error().message);
        }
      }
      const std::string& onCall = attribute(node, "on-call");
      if (!onCall.empty()) {
        c.onCall = config::resolvePath(base, onCall);
        auto schedule = OnCallSchedule::load(c.onCall);
        if (schedule) {
          c.schedule = std::move(*schedule);
        } else {
          findings.add(node, "on-call", schedule.error().message);
        }
      }
      c.escalateAfterMs =
          static_cast<std::int64_t>(uintAttribute(node, "escalate-after-minutes")) * 60 * 1000;
      c.smsGateway = attribute(node, "sms-gateway");
      if (!c.smsGateway.empty() && !cfg.smsGateways.contains(c.smsGateway)) {
        findings.add(node, "sms-gateway",
                     fmt::format("no <sms-gateway name=\"{}\">", c.smsGateway));
      }
      cfg.customers.push_back(std::move(c));
    } else if (node.path == kContact) {
      Contact contact;
      contact.name = attribute(node, "name");
      checkOneOf(findings, node, "role", {"management", "engineer"});
      contact.role = attribute(node, "role");
      contact.email = attribute(node, "email");
      contact.sms = attribute(node, "sms");
      contact.emailSms = attribute(node, "email-sms");
      contact.webhook = attribute(node, "webhook");
      checkOneOf(findings, node, "notify", {"all", "urgent"});
      contact.urgentOnly = attribute(node, "notify") == "urgent";
      if (contact.email.empty() && contact.sms.empty() && contact.emailSms.empty() &&
          contact.webhook.empty()) {
        findings.add(node, "email", "a contact needs email, sms, email-sms or webhook");
      }
      if ((!contact.email.empty() || !contact.emailSms.empty()) && !cfg.smtp) {
        findings.add(node, contact.email.empty() ? "email-sms" : "email",
                     "needs an <smtp> server to send through");
      }
      if (!contact.sms.empty()) {
        bool e164 = contact.sms.size() >= 8 && contact.sms.size() <= 16 && contact.sms[0] == '+' &&
                    std::all_of(contact.sms.begin() + 1, contact.sms.end(),
                                [](char ch) { return ch >= '0' && ch <= '9'; });
        if (!e164) {
          findings.add(
              node, "sms",
              fmt::format("\"{}\" is not an E.164 number like +4915112345678", contact.sms));
        }
        if (cfg.smsGateways.empty()) findings.add(node, "sms", "needs an <sms-gateway>");
      }
      if (!contact.webhook.empty() && !cfg.webhooks.contains(contact.webhook)) {
        findings.add(node, "webhook", fmt::format("no <webhook name=\"{}\">", contact.webhook));
      }
      cfg.customers.back().contacts.push_back(std::move(contact));
    } else if (node.path == kCustomerRule) {
      cfg.customers.back().rules.push_back(readRule(findings, file, node));
    }
  }
  for (const auto& c : cfg.customers) {
    if (c.smsGateway.empty() && cfg.smsGateways.size() > 1 &&
        std::any_of(c.contacts.begin(), c.contacts.end(),
                    [](const Contact& k) { return !k.sms.empty(); })) {
      const config::Node* node = nullptr;
      for (const auto* n : doc.all(kCustomer)) {
        if (attribute(*n, "name") == c.name) node = n;
      }
      findings.add(*node, "sms-gateway", "several <sms-gateway> exist: name the one to use");
    }
  }
  if (auto status = findings.status(); !status) return std::unexpected(status.error());
  return cfg;
}

Result<HomeConfig> loadHomeConfigFromState(const fs::path& stateDir) {
  fs::path file = stateDir / "home.xml";
  std::error_code ec;
  if (!fs::exists(file, ec)) return HomeConfig{};
  return loadHomeConfig(file);
}

Result<Retention> loadRetention(const fs::path& stateDir) {
  fs::path file = stateDir / "home.xml";
  std::error_code ec;
  if (!fs::exists(file, ec)) return Retention{};
  auto text = config::readConfigFile(file);
  if (!text) return std::unexpected(text.error());
  auto parsed = config::parse(homeSchema(), *text, file.string());
  if (!parsed) return std::unexpected(parsed.error());
  Findings findings(file.string());
  Retention retention;
  if (const auto* n = parsed->first(kRetention)) retention = readRetention(findings, *n);
  if (auto status = findings.status(); !status) return std::unexpected(status.error());
  return retention;
}

Decision decide(const HomeConfig& config, std::string_view customer, std::string_view site,
                std::string_view family, std::string_view code, std::string_view severity) {
  const CodeTable* table = builtinCodeTable(family);
  SeverityClass cls = table ? table->classify(severity) : SeverityClass::kUnknown;
  bool defaultUrgent = cls == SeverityClass::kUrgent || cls == SeverityClass::kUnknown;
  auto fromRule = [&](const Rule& rule) {
    return Decision{rule.action, rule.urgent.value_or(defaultUrgent), rule.where};
  };
  if (const Customer* c = config.customer(customer)) {
    for (const auto& rule : c->rules) {
      if (ruleMatches(rule, site, family, code, severity)) return fromRule(rule);
    }
  }
  for (const auto& rule : config.rules) {
    if (ruleMatches(rule, site, family, code, severity)) return fromRule(rule);
  }
  switch (cls) {
    case SeverityClass::kUrgent:
      return {RuleAction::kTicket, true, fmt::format("default: {} {} is urgent", family, severity)};
    case SeverityClass::kTicket:
      return {RuleAction::kTicket, false,
              fmt::format("default: {} {} opens a ticket", family, severity)};
    case SeverityClass::kRecord:
      return {RuleAction::kRecord, false,
              fmt::format("default: {} {} is only recorded", family, severity)};
    case SeverityClass::kUnknown:
      break;
  }
  return {RuleAction::kTicket, true,
          fmt::format("default: severity \"{}\" is not on the {} scale: urgent", severity, family)};
}

}  // namespace pass::home
