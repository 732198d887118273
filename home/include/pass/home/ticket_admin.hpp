#pragma once
/// The operator commands for tickets, silences and notifications (`pass-home tickets`,
/// `silence`, `notify-test`, `watchdog`, `check-config`). Each returns the text to print, so
/// main.cpp stays a parser; the admin API calls the same functions.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// STATE/home.xml (or the defaults) with its schedules, and STATE/ack.key.
Result<std::shared_ptr<const Policy>> loadPolicy(const std::filesystem::path& state);

/// The state's database with the state's policy.
Result<Store> openStoreWithPolicy(const std::filesystem::path& state);

nlohmann::ordered_json ticketJson(const TicketRow& t);
/// Fixed-width lines: id, state, urgent, count, customer/site, array, opened, title.
std::string ticketsTable(const std::vector<TicketRow>& tickets);

Result<std::string> listTickets(const std::filesystem::path& state, const TicketFilter& filter,
                                bool json);
/// The ticket, its audit trail and its messages. Fails with "ticket.unknown".
Result<std::string> showTicket(const std::filesystem::path& state, std::int64_t id, bool json);
/// ack | resolve | reopen by `who`; prints the ticket's new state.
Result<std::string> changeTicket(const std::filesystem::path& state, std::int64_t id,
                                 TicketAction action, std::string_view who, std::string_view note,
                                 std::int64_t nowMs);

/// Fails with "usage.silence" when the times do not parse.
Result<std::string> addSilence(const std::filesystem::path& state, const SilenceRow& silence);
Result<std::string> listSilences(const std::filesystem::path& state, std::int64_t nowMs, bool all,
                                 bool json);
Result<std::string> removeSilence(const std::filesystem::path& state, std::int64_t id,
                                  std::string_view who, std::int64_t nowMs);

/// Sends a test message to `address` now — an e-mail address, "sms:+4915..." through the SMS
/// gateway, "email-sms:ADDR" or "webhook:NAME" — through the outbox, and reports what the
/// channel answered. Fails with "notify.failed" when it was not sent.
Result<std::string> notifyTest(const std::filesystem::path& state, std::string_view address,
                               std::int64_t nowMs);

/// One watchdog pass at `nowMs`; a running server's outbox worker sends what it queued.
Result<std::string> runWatchdog(const std::filesystem::path& state, std::int64_t nowMs);

/// Validates STATE/home.xml, its secrets and schedules; prints a summary.
Result<std::string> checkHomeConfig(const std::filesystem::path& state);

// --- JSON answers of the admin API (admin_api.cpp); the listings reuse the --json texts ---

/// changeTicket(), answering with the ticket's new row as ticketJson().
Result<nlohmann::ordered_json> changeTicketJson(const std::filesystem::path& state, std::int64_t id,
                                                TicketAction action, std::string_view who,
                                                std::string_view note, std::int64_t nowMs);
/// addSilence(), answering with the stored silence as `silence list --json` shows it.
Result<nlohmann::ordered_json> addSilenceJson(const std::filesystem::path& state,
                                              const SilenceRow& silence);

/// "2026-11-28T10:00:00Z", "2026-11-28 10:00" (UTC) or "now"/"+2h"/"+30m"/"+1d" relative to
/// `nowMs`; fails with "usage.time".
Result<std::int64_t> parseTime(std::string_view text, std::int64_t nowMs);

}  // namespace pass::home
