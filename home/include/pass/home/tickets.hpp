#pragma once
/// Tickets, their audit trail, notification outbox rows and silences, as the home's Store
/// keeps them (docs/tickets.md). The rules that make them (Policy) are home.xml plus each
/// customer's parsed on-call schedule and quiet hours.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pass/bytes.hpp"
#include "pass/home/home_config.hpp"
#include "pass/home/notify.hpp"
#include "pass/home/oncall.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// One person on one channel.
struct Recipient {
  std::string name;
  std::string channel;  // email | sms | email_sms | webhook
  std::string target;   // address, E.164 number or webhook name
};

/// home.xml (with its schedules and quiet hours, parsed when it was loaded) and the key of the
/// acknowledgement links: what the commit path, the watchdog and the outbox decide with.
class Policy {
 public:
  /// `ackKey` signs the acknowledgement links (STATE/ack.key).
  static std::shared_ptr<const Policy> make(HomeConfig config, Bytes ackKey);

  const HomeConfig& config() const { return config_; }

  /// Who hears of a ticket of `customer` at escalation `level` (1 = first line): the
  /// customer's management contacts and the on-call engineers of that level (from the
  /// schedule, or the engineer contacts without one). SMS channels only when `urgent` or
  /// escalated. A contact with notify="urgent" only for urgent tickets.
  std::vector<Recipient> recipients(std::string_view customer, bool urgent, unsigned level,
                                    std::int64_t nowMs) const;
  /// When a message may go out: now, or for a non-urgent one the end of the customer's quiet
  /// hours.
  std::int64_t notBefore(std::string_view customer, bool urgent, std::int64_t nowMs) const;
  /// The highest escalation level the customer has (on-call schedule levels, at least 1).
  unsigned levels(std::string_view customer) const;
  /// The acknowledgement link of a ticket issued at `issuedMs` (it expires
  /// <notifications ack-link-valid-seconds> later), or empty without <notifications ack-url>.
  std::string ackUrl(std::int64_t ticket, std::int64_t issuedMs) const;
  /// The token in the link of `ticket` issued at `issuedS` (seconds since 1970): it covers both.
  std::string ackToken(std::int64_t ticket, std::int64_t issuedS) const;
  /// The token of a link of the first format, without an issue time: such a link is recognised
  /// only to say that it has expired.
  std::string legacyAckToken(std::int64_t ticket) const;

 private:
  HomeConfig config_;
  Bytes ackKey_;
};

/// Reads STATE/ack.key, creating it (32 random bytes, mode 0600) the first time.
Result<Bytes> loadAckKey(const std::filesystem::path& stateDir);

struct TicketRow {
  std::int64_t id = 0;
  std::string
      kind;  // alert | missing_heartbeat | array_unreachable | site_silent | ... (tickets.md)
  std::string customer, site, family, array, agentId;
  std::string problem;  // what is wrong, the deduplication key within the array
  std::string title;
  std::string code, severity, component;
  bool urgent = false;
  std::string state;  // open | acknowledged | resolved
  std::int64_t count = 0;
  std::int64_t firstSeenMs = 0, lastSeenMs = 0, openedMs = 0;
  std::optional<std::int64_t> ackedMs, resolvedMs;
  std::string ackedBy, resolvedBy;
  std::int64_t escalationLevel = 1;
  std::optional<std::int64_t> parentId, silencedBy;
  std::string detail;  // JSON: meaning, text, model, name of the latest occurrence
};

struct TicketLogRow {
  std::int64_t id = 0;
  std::int64_t ticketId = 0;
  std::int64_t atMs = 0;
  std::string who;
  std::string action;  // opened | repeated | reopened | acknowledged | resolved | escalated |
                       // silenced | notified | attached | ...
  std::string detail;
};

struct OutboxRow {
  std::int64_t id = 0;
  std::optional<std::int64_t> ticketId;
  std::int64_t createdMs = 0;
  std::string channel, target, recipient;
  std::string notice;  // notify::Notice as JSON
  std::string state;   // pending | sent | failed | suppressed
  std::int64_t notBeforeMs = 0;
  std::int64_t attempts = 0;
  std::optional<std::int64_t> sentMs;
  std::string lastError;
};

struct SilenceRow {
  std::int64_t id = 0;
  std::string customer{}, site{}, array{}, code{};  // empty: any
  std::int64_t startsMs = 0, endsMs = 0;
  std::string author{}, reason{};
  std::int64_t createdMs = 0;
  std::optional<std::int64_t> removedMs{};
  std::string removedBy{};
};

struct TicketFilter {
  bool liveOnly = false;  // open or acknowledged
  std::optional<std::string> customer{};
  std::optional<std::string> array{};
};

enum class TicketAction { kAcknowledge, kResolve, kReopen };

/// What one watchdog pass did.
/// An agent whose certificate expires within this much is a `certificate_expiring` ticket.
inline constexpr std::int64_t kCertificateExpiringMs = 30LL * 24 * 3600 * 1000;

struct WatchdogReport {
  int missingOpened = 0;
  int siteOpened = 0;
  int neverReportedOpened = 0;
  int certificateExpiringOpened = 0;
  int escalated = 0;
  int stormSummaries = 0;
  /// With a hold (Store::watchdog's `receivingSinceMs`): agents overdue by more than their
  /// grace that the hold kept from being called missing in this pass, and when the hold ends
  /// for the agent with the longest heartbeat interval (receiving since + grace-heartbeats of
  /// that interval; the receiving time itself when no agent sends heartbeats).
  int held = 0;
  std::optional<std::int64_t> holdUntilMs{};
};

nlohmann::json noticeToJson(const notify::Notice& notice);
notify::Notice noticeFromJson(const nlohmann::json& json);

}  // namespace pass::home
