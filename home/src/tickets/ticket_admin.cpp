// The ticket, silence and notification commands shared by the command line and the admin API.

#include "pass/home/ticket_admin.hpp"

#include <charconv>
#include <optional>

#include <date/date.h>
#include <fmt/format.h>

#include "pass/home/home_config.hpp"
#include "pass/home/log.hpp"
#include "pass/home/outbox_worker.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/state_store.hpp"
#include "pass/text.hpp"
#include "store/outbox_queue.hpp"

namespace pass::home {

namespace {

using Json = nlohmann::ordered_json;

std::string dumpJson(const Json& j) {
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Json optionalJson(const std::optional<std::int64_t>& v) { return v ? Json(*v) : Json(nullptr); }

std::string time(std::optional<std::int64_t> ms) {
  return ms ? formatTimestamp(*ms) : std::string("-");
}

Result<Store> openStore(const std::filesystem::path& state) {
  return openStateStore(StatePaths(state));
}

Json outboxJson(const OutboxRow& o) {
  return Json{{"id", o.id},
              {"ticket", optionalJson(o.ticketId)},
              {"created_ms", o.createdMs},
              {"channel", o.channel},
              {"to", o.target},
              {"recipient", o.recipient},
              {"state", o.state},
              {"not_before_ms", o.notBeforeMs},
              {"attempts", o.attempts},
              {"sent_ms", optionalJson(o.sentMs)},
              {"last_error", o.lastError}};
}

Json silenceJson(const SilenceRow& x) {
  return Json{{"id", x.id},
              {"customer", x.customer},
              {"site", x.site},
              {"array", x.array},
              {"code", x.code},
              {"starts_ms", x.startsMs},
              {"ends_ms", x.endsMs},
              {"author", x.author},
              {"reason", x.reason},
              {"created_ms", x.createdMs},
              {"removed_ms", optionalJson(x.removedMs)},
              {"removed_by", x.removedBy}};
}

std::string orAny(const std::string& s) { return s.empty() ? std::string("*") : printable(s); }

}  // namespace

Result<std::shared_ptr<const Policy>> loadPolicy(const std::filesystem::path& state) {
  auto config = loadHomeConfigFromState(state);
  if (!config) return std::unexpected(config.error());
  auto key = loadAckKey(state);
  if (!key) return std::unexpected(key.error());
  return Policy::make(std::move(*config), std::move(*key));
}

Result<Store> openStoreWithPolicy(const std::filesystem::path& state) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto policy = loadPolicy(state);
  if (!policy) return std::unexpected(policy.error());
  store->setPolicy(std::move(*policy));
  return store;
}

Json ticketJson(const TicketRow& t) {
  Json detail = Json::parse(t.detail, nullptr, false);
  if (detail.is_discarded()) detail = Json::object();
  return Json{{"id", t.id},
              {"kind", t.kind},
              {"state", t.state},
              {"urgent", t.urgent},
              {"customer", t.customer},
              {"site", t.site},
              {"family", t.family},
              {"array", t.array},
              {"agent", t.agentId},
              {"title", t.title},
              {"code", t.code},
              {"severity", t.severity},
              {"component", t.component},
              {"count", t.count},
              {"first_seen_ms", t.firstSeenMs},
              {"last_seen_ms", t.lastSeenMs},
              {"opened_ms", t.openedMs},
              {"acked_ms", optionalJson(t.ackedMs)},
              {"acked_by", t.ackedBy},
              {"resolved_ms", optionalJson(t.resolvedMs)},
              {"resolved_by", t.resolvedBy},
              {"escalation_level", t.escalationLevel},
              {"parent", optionalJson(t.parentId)},
              {"silenced_by", optionalJson(t.silencedBy)},
              {"detail", detail}};
}

std::string ticketsTable(const std::vector<TicketRow>& tickets) {
  std::string out =
      fmt::format("{:<6} {:<12} {:<6} {:>6}  {:<24} {:<14} {:<24} {}\n", "ID", "STATE", "URGENT",
                  "COUNT", "CUSTOMER/SITE", "ARRAY", "OPENED", "TITLE");
  for (const auto& t : tickets) {
    std::string title = printable(t.title);
    if (t.parentId) title += fmt::format(" [under #{}]", *t.parentId);
    if (t.silencedBy) title += fmt::format(" [silenced by #{}]", *t.silencedBy);
    out +=
        fmt::format("{:<6} {:<12} {:<6} {:>6}  {:<24} {:<14} {:<24} {}\n", t.id, t.state,
                    t.urgent ? "yes" : "no", t.count, printable(t.customer + "/" + t.site),
                    t.array.empty() ? "-" : printable(t.array), formatTimestamp(t.openedMs), title);
  }
  return out;
}

Result<std::string> listTickets(const std::filesystem::path& state, const TicketFilter& filter,
                                bool json) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto rows = store->tickets(filter);
  if (!rows) return std::unexpected(rows.error());
  if (!json) return ticketsTable(*rows);
  Json out = Json::array();
  for (const auto& t : *rows) out.push_back(ticketJson(t));
  return dumpJson(out);
}

Result<std::string> showTicket(const std::filesystem::path& state, std::int64_t id, bool json) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto row = store->ticket(id);
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail("ticket.unknown", fmt::format("no ticket #{}", id));
  auto log = store->ticketLog(id);
  if (!log) return std::unexpected(log.error());
  auto messages = store->outbox(id);
  if (!messages) return std::unexpected(messages.error());
  const TicketRow& t = **row;
  if (json) {
    Json out = ticketJson(t);
    out["log"] = Json::array();
    for (const auto& l : *log) {
      out["log"].push_back(
          Json{{"at_ms", l.atMs}, {"who", l.who}, {"action", l.action}, {"detail", l.detail}});
    }
    out["messages"] = Json::array();
    for (const auto& o : *messages) out["messages"].push_back(outboxJson(o));
    return dumpJson(out);
  }
  Json detail = Json::parse(t.detail, nullptr, false);
  // Every text below came from an agent, an array or an operator: printed escaped.
  auto field = [&](const char* key) {
    return printable(detail.is_object() ? detail.value(key, std::string()) : std::string());
  };
  std::string out = fmt::format("ticket #{} — {}\n", t.id, printable(t.title));
  out += fmt::format("  state:      {}{}\n", t.state, t.urgent ? " (urgent)" : "");
  out += fmt::format("  customer:   {} / site {}\n", printable(t.customer), printable(t.site));
  if (!t.array.empty()) {
    out += fmt::format("  array:      {} {} {} {}\n", printable(t.family), field("model"),
                       printable(t.array), field("name"));
  }
  if (!t.code.empty()) {
    out += fmt::format("  code:       {} ({})\n", printable(t.code), printable(t.severity));
  }
  if (!field("meaning").empty()) out += fmt::format("  meaning:    {}\n", field("meaning"));
  if (!field("text").empty()) out += fmt::format("  text:       {}\n", field("text"));
  if (!t.component.empty()) out += fmt::format("  component:  {}\n", printable(t.component));
  out += fmt::format("  count:      {} (first {}, last {})\n", t.count,
                     formatTimestamp(t.firstSeenMs), formatTimestamp(t.lastSeenMs));
  out += fmt::format("  opened:     {}\n", formatTimestamp(t.openedMs));
  if (t.ackedMs) {
    out += fmt::format("  acked:      {} by {}\n", time(t.ackedMs), printable(t.ackedBy));
  }
  if (t.resolvedMs) {
    out += fmt::format("  resolved:   {} by {}\n", time(t.resolvedMs), printable(t.resolvedBy));
  }
  if (!field("rule").empty()) out += fmt::format("  rule:       {}\n", field("rule"));
  out += "history:\n";
  for (const auto& l : *log) {
    out += fmt::format("  {}  {:<13} {:<28} {}\n", formatTimestamp(l.atMs), l.action,
                       printable(l.who), printable(l.detail));
  }
  out += "messages:\n";
  for (const auto& o : *messages) {
    out += fmt::format(
        "  #{:<5} {:<9} {:<32} {:<10} attempts {}{}\n", o.id, o.channel, printable(o.target),
        o.state, o.attempts,
        o.lastError.empty() ? std::string() : "  last error: " + printable(o.lastError));
  }
  return out;
}

Result<std::string> changeTicket(const std::filesystem::path& state, std::int64_t id,
                                 TicketAction action, std::string_view who, std::string_view note,
                                 std::int64_t nowMs) {
  auto store = openStoreWithPolicy(state);
  if (!store) return std::unexpected(store.error());
  auto row = store->changeTicket(id, action, who, note, nowMs);
  if (!row) return std::unexpected(row.error());
  return fmt::format("ticket #{} is {} ({})\n", row->id, row->state, printable(row->title));
}

Result<std::string> addSilence(const std::filesystem::path& state, const SilenceRow& silence) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto id = store->addSilence(silence);
  if (!id) return std::unexpected(id.error());
  return fmt::format("silence #{}: customer {} site {} array {} code {}, {} to {}\n", *id,
                     orAny(silence.customer), orAny(silence.site), orAny(silence.array),
                     orAny(silence.code), formatTimestamp(silence.startsMs),
                     formatTimestamp(silence.endsMs));
}

Result<std::string> listSilences(const std::filesystem::path& state, std::int64_t nowMs, bool all,
                                 bool json) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto rows = store->silences(nowMs, all);
  if (!rows) return std::unexpected(rows.error());
  if (json) {
    Json out = Json::array();
    for (const auto& x : *rows) out.push_back(silenceJson(x));
    return dumpJson(out);
  }
  std::string out =
      fmt::format("{:<5} {:<14} {:<14} {:<14} {:<10} {:<24} {:<24} {:<12} {}\n", "ID", "CUSTOMER",
                  "SITE", "ARRAY", "CODE", "STARTS", "ENDS", "AUTHOR", "REASON");
  for (const auto& x : *rows) {
    out += fmt::format(
        "{:<5} {:<14} {:<14} {:<14} {:<10} {:<24} {:<24} {:<12} {}{}\n", x.id, orAny(x.customer),
        orAny(x.site), orAny(x.array), orAny(x.code), formatTimestamp(x.startsMs),
        formatTimestamp(x.endsMs), printable(x.author), printable(x.reason),
        x.removedMs ? fmt::format(" (removed by {})", printable(x.removedBy)) : std::string());
  }
  return out;
}

Result<std::string> removeSilence(const std::filesystem::path& state, std::int64_t id,
                                  std::string_view who, std::int64_t nowMs) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  if (auto done = store->removeSilence(id, who, nowMs); !done) {
    return std::unexpected(done.error());
  }
  return fmt::format("silence #{} removed\n", id);
}

Result<std::string> notifyTest(const std::filesystem::path& state, std::string_view address,
                               std::int64_t nowMs) {
  auto policy = loadPolicy(state);
  if (!policy) return std::unexpected(policy.error());
  Recipient to{"notify-test", "email", std::string(address)};
  auto take = [&](std::string_view prefix, std::string_view channel) {
    if (!address.starts_with(prefix)) return false;
    to.channel = std::string(channel);
    to.target = std::string(address.substr(prefix.size()));
    return true;
  };
  take("sms:", "sms") || take("email-sms:", "email_sms") || take("webhook:", "webhook") ||
      take("email:", "email");
  if (to.target.empty()) {
    return fail("usage.to",
                "--to needs an address: you@example.com, sms:+4915112345678, "
                "email-sms:ADDR or webhook:NAME");
  }
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  OutboxQueue& queue = store->outboxQueue();
  auto id = queue.enqueueTest(to, "sent by pass-home notify-test", nowMs);
  if (!id) return std::unexpected(id.error());
  // Only this row: other due rows stay for the server's worker.
  auto claimed = queue.claim("notify-test", wallClockMs(), kOutboxLeaseMs);
  if (!claimed) return std::unexpected(claimed.error());
  if (!*claimed || (*claimed)->row.id != *id) {
    if (*claimed) {
      (void)queue.finish((*claimed)->row.id, "notify-test", notify::Outcome::kRetry,
                         "released by notify-test", wallClockMs(), wallClockMs());
    }
    return fail("notify.failed",
                fmt::format("outbox #{} is queued; the running server will send it", *id));
  }
  auto result = sendOutboxRow((*policy)->config(), (*claimed)->row);
  auto done = queue.finish(*id, "notify-test", result.outcome, result.detail, wallClockMs(),
                           retryAt((*policy)->config(), 1, wallClockMs()));
  if (!done) return std::unexpected(done.error());
  if (result.outcome != notify::Outcome::kSent) {
    return fail("notify.failed", fmt::format("{} to {}: {} ({}; outbox #{})", to.channel, to.target,
                                             notify::toString(result.outcome), result.detail, *id));
  }
  return fmt::format("sent: {} to {}: {} (outbox #{})\n", to.channel, to.target, result.detail,
                     *id);
}

Result<std::string> runWatchdog(const std::filesystem::path& state, std::int64_t nowMs) {
  auto store = openStoreWithPolicy(state);
  if (!store) return std::unexpected(store.error());
  auto report = store->watchdog(nowMs);
  if (!report) return std::unexpected(report.error());
  return fmt::format(
      "watchdog at {}: {} missing-heartbeat ticket(s), {} site ticket(s), {} never-reported "
      "ticket(s), {} certificate-expiring ticket(s), {} escalation(s), {} storm summary(ies)\n",
      formatTimestamp(nowMs), report->missingOpened, report->siteOpened,
      report->neverReportedOpened, report->certificateExpiringOpened, report->escalated,
      report->stormSummaries);
}

Result<std::string> checkHomeConfig(const std::filesystem::path& state) {
  auto file = state / "home.xml";
  auto config = loadHomeConfigFromState(state);
  if (!config) return std::unexpected(config.error());
  if (config->file.empty()) {
    return fmt::format(
        "{}: no such file; the home runs on the defaults (tickets from the code "
        "tables, nobody notified)\n",
        file.string());
  }
  std::size_t contacts = 0;
  for (const auto& c : config->customers) contacts += c.contacts.size();
  return fmt::format(
      "{}: ok ({} customer(s), {} contact(s), {} rule(s) at the top level, smtp "
      "{}, {} SMS gateway(s), {} webhook(s))\n",
      file.string(), config->customers.size(), contacts, config->rules.size(),
      config->smtp ? config->smtp->url : std::string("none"), config->smsGateways.size(),
      config->webhooks.size());
}

Result<Json> changeTicketJson(const std::filesystem::path& state, std::int64_t id,
                              TicketAction action, std::string_view who, std::string_view note,
                              std::int64_t nowMs) {
  auto store = openStoreWithPolicy(state);
  if (!store) return std::unexpected(store.error());
  auto row = store->changeTicket(id, action, who, note, nowMs);
  if (!row) return std::unexpected(row.error());
  return ticketJson(*row);
}

Result<Json> addSilenceJson(const std::filesystem::path& state, const SilenceRow& silence) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto id = store->addSilence(silence);
  if (!id) return std::unexpected(id.error());
  SilenceRow stored = silence;
  stored.id = *id;
  return silenceJson(stored);
}

Result<std::int64_t> parseTime(std::string_view text, std::int64_t nowMs) {
  if (text == "now") return nowMs;
  if (text.size() >= 3 && text[0] == '+') {
    std::int64_t n = 0;
    auto unit = text.back();
    auto digits = text.substr(1, text.size() - 2);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    std::int64_t scale = unit == 'm'   ? 60'000
                         : unit == 'h' ? 3'600'000
                         : unit == 'd' ? 86'400'000
                                       : 0;
    if (ec == std::errc() && end == digits.data() + digits.size() && scale > 0) {
      return nowMs + n * scale;
    }
  }
  // YYYY-MM-DD, then 'T' or ' ', HH:MM, optional :SS, then 'Z' after a 'T'.
  auto number = [&](std::size_t at, std::size_t len) -> std::optional<int> {
    if (at + len > text.size()) return std::nullopt;
    int v = 0;
    auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + len, v);
    if (ec != std::errc() || end != text.data() + at + len) return std::nullopt;
    return v;
  };
  auto year = number(0, 4), month = number(5, 2), day = number(8, 2);
  auto hour = number(11, 2), minute = number(14, 2);
  bool shape = text.size() >= 16 && text[4] == '-' && text[7] == '-' &&
               (text[10] == 'T' || text[10] == ' ') && text[13] == ':';
  std::optional<int> second = 0;
  std::size_t rest = 16;
  if (shape && text.size() >= 19 && text[16] == ':') {
    second = number(17, 2);
    rest = 19;
  }
  bool zoneOk = shape && (text[10] == 'T' ? text.substr(rest) == "Z" : rest == text.size());
  if (shape && zoneOk && year && month && day && hour && minute && second && *hour < 24 &&
      *minute < 60 && *second < 60) {
    date::year_month_day ymd{date::year(*year), date::month(static_cast<unsigned>(*month)),
                             date::day(static_cast<unsigned>(*day))};
    if (ymd.ok()) {
      auto t = date::sys_days(ymd) + std::chrono::hours(*hour) + std::chrono::minutes(*minute) +
               std::chrono::seconds(*second);
      return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }
  }
  return fail("usage.time",
              fmt::format("\"{}\" is not a time: use 2026-11-28T22:00:00Z, \"2026-11-28 22:00\" "
                          "(UTC), now, or +30m, +2h, +1d",
                          text));
}

}  // namespace pass::home
