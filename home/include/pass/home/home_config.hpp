#pragma once
/// home.xml: the home's rules, contacts and notification channels (docs/tickets.md,
/// docs/notifications.md). Declared once in a schema table like agent.xml, so errors name
/// file, line and key, and docs/home-configuration.md is generated from the same table.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pass/config.hpp"
#include "pass/home/notify.hpp"
#include "pass/home/oncall.hpp"
#include "pass/result.hpp"

namespace pass::home {

enum class RuleAction { kTicket, kRecord, kIgnore };
std::string_view toString(RuleAction action);

/// A <rule>: what to do with an alert that matches every attribute the rule sets.
struct Rule {
  std::string where{};                    // "home.xml:12"
  std::string site{};                     // empty: any site
  std::string family{};                   // empty: any family
  std::vector<std::string> severities{};  // empty: any; case-insensitive
  std::vector<std::string> codes{};  // empty: any; case-insensitive, a trailing '*' is a prefix
  RuleAction action = RuleAction::kTicket;
  std::optional<bool> urgent{};  // unset: from the family's code table
};

struct Contact {
  std::string name{};
  std::string role{};  // management | engineer
  std::string email{};
  std::string sms{};       // phone number for the customer's SMS gateway
  std::string emailSms{};  // an e-mail-to-SMS gateway address
  std::string webhook{};   // name of a <webhook>
  bool urgentOnly = false;
};

struct Customer {
  std::string name{};
  std::string where{};
  std::string timeZone{};          // IANA name for quiet hours
  std::string quietHours{};        // e.g. "22:00-07:00"; empty: none
  std::filesystem::path onCall{};  // iCalendar schedule; empty: the engineer contacts are on call
  std::optional<QuietHours> quiet{};         // quietHours, parsed when home.xml is loaded
  std::optional<OnCallSchedule> schedule{};  // onCall, read when home.xml is loaded
  std::int64_t escalateAfterMs = 0;
  std::string smsGateway{};  // name of an <sms-gateway>; empty: the only one, if exactly one
  std::vector<Contact> contacts{};
  std::vector<Rule> rules{};
};

struct HomeConfig {
  std::filesystem::path file;  // empty: built-in defaults, no home.xml
  std::int64_t reopenWindowMs = 24LL * 3600 * 1000;
  unsigned graceHeartbeats = 2;
  /// How long an onboarded agent may go without its first heartbeat.
  std::int64_t firstReportMs = 14LL * 24 * 3600 * 1000;
  std::int64_t skewWarningMs = 5LL * 60 * 1000;
  std::int64_t watchdogIntervalMs = 60LL * 1000;
  std::string ackUrl;  // base URL of the acknowledgement links; empty: no links
  std::int64_t ackLinkValidMs = 7LL * 24 * 3600 * 1000;  // a link expires this long after issue
  unsigned stormThreshold = 20;
  std::int64_t stormWindowMs = 10LL * 60 * 1000;
  unsigned ratePerHour = 30;
  std::int64_t retryInitialMs = 30LL * 1000;
  std::int64_t retryMaxMs = 30LL * 60 * 1000;
  std::optional<notify::SmtpSettings> smtp;
  std::map<std::string, notify::HttpSmsSettings, std::less<>> smsGateways;
  std::map<std::string, notify::WebhookSettings, std::less<>> webhooks;
  std::vector<Rule> rules;  // for every customer, after the customer's own
  std::vector<Customer> customers;

  const Customer* customer(std::string_view name) const;
};

/// The schema of home.xml.
const config::Schema& homeSchema();

/// Loads and validates home.xml; secrets named by *-file attributes are read now. Error codes
/// "config.*" (see config::parse) and "config.io".
Result<HomeConfig> loadHomeConfig(const std::filesystem::path& file);

/// STATE/home.xml when it exists, the built-in defaults otherwise.
Result<HomeConfig> loadHomeConfigFromState(const std::filesystem::path& stateDir);

/// What the rules say about one alert.
struct Decision {
  RuleAction action = RuleAction::kTicket;
  bool urgent = true;
  std::string why;  // "home.xml:12" or "default: hpe_3par degraded and above open a ticket"
};

/// The first matching rule of the customer, then of home.xml's top level, then the family's
/// code table defaults (ticket_from, urgent_from). A severity not on the family's scale opens
/// an urgent ticket.
Decision decide(const HomeConfig& config, std::string_view customer, std::string_view site,
                std::string_view family, std::string_view code, std::string_view severity);

}  // namespace pass::home
