// Background work besides ingest: the outbox worker (send, retry) and the watchdog loop.

#include "pass/home/outbox_worker.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/home/log.hpp"
#include "store/outbox_queue.hpp"

namespace pass::home {

namespace {

/// Rows another home queued are not announced to this one; it looks at least this often.
constexpr std::int64_t kLookAtLeastEveryMs = 30'000;

/// The notification's identity for its receiver (Message-ID, Idempotency-Key, a webhook's dedup
/// key): the same on every attempt and on every home, and new for a new notification even when
/// the outbox's ids start again (a reinstalled home, a database restored from a backup), because
/// a mailbox that drops a repeated Message-ID (Gmail does) would otherwise drop the new one.
std::string messageId(const OutboxRow& row) {
  return fmt::format("pass-outbox-{}.{}", row.id, row.createdMs);
}

}  // namespace

std::int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t retryAt(const HomeConfig& config, std::int64_t attempts, std::int64_t nowMs) {
  std::int64_t wait = config.retryInitialMs;
  for (std::int64_t i = 1; i < attempts && wait < config.retryMaxMs; ++i) wait *= 2;
  return nowMs + std::min(wait, config.retryMaxMs);
}

notify::SendResult sendOutboxRow(const HomeConfig& config, const OutboxRow& row) {
  using notify::Outcome;
  auto json = nlohmann::json::parse(row.notice, nullptr, false);
  if (!json.is_object()) {
    return {Outcome::kPermanent, fmt::format("outbox #{}: the stored notice is not JSON", row.id)};
  }
  notify::Notice notice = noticeFromJson(json);
  notify::Rendered rendered = notify::render(notice);
  auto missing = [&](std::string_view what) {
    return notify::SendResult{Outcome::kPermanent,
                              fmt::format("outbox #{}: {} is not configured in home.xml (any "
                                          "more)",
                                          row.id, what)};
  };
  if (row.channel == "email" || row.channel == "email_sms") {
    if (!config.smtp) return missing("<smtp>");
    if (row.channel == "email") {
      return notify::sendEmail(*config.smtp, {row.target}, rendered, messageId(row));
    }
    return notify::sendEmailToSms(*config.smtp, row.target, rendered, messageId(row));
  }
  if (row.channel == "sms") {
    const notify::HttpSmsSettings* gateway = nullptr;
    const Customer* customer = config.customer(notice.customer);
    if (customer != nullptr && !customer->smsGateway.empty()) {
      auto it = config.smsGateways.find(customer->smsGateway);
      if (it != config.smsGateways.end()) gateway = &it->second;
    } else if (config.smsGateways.size() == 1) {
      gateway = &config.smsGateways.begin()->second;
    }
    if (gateway == nullptr) return missing("the customer's <sms-gateway>");
    return notify::sendSms(*gateway, row.target, rendered, notice.ticket, messageId(row));
  }
  if (row.channel == "webhook") {
    auto it = config.webhooks.find(row.target);
    if (it == config.webhooks.end())
      return missing(fmt::format("<webhook name=\"{}\">", row.target));
    return notify::sendWebhook(it->second, notice, messageId(row));
  }
  return {Outcome::kPermanent, fmt::format("outbox #{}: unknown channel {}", row.id, row.channel)};
}

// --- OutboxWorker ----------------------------------------------------------------------------

OutboxWorker::OutboxWorker(StoreLocation database, std::shared_ptr<const Policy> policy,
                           Logger& log, std::string id, NowMs now)
    : database_(std::move(database)),
      policy_(std::move(policy)),
      log_(log),
      id_(std::move(id)),
      now_(std::move(now)) {}

OutboxWorker::~OutboxWorker() { stop(); }

Status OutboxWorker::start() {
  if (!store_) {
    auto store = Store::open(database_, Store::Mode::kOpenExisting);
    if (!store) return std::unexpected(store.error());
    store_ = std::make_unique<Store>(std::move(*store));
  }
  thread_.start([this] { run(); });
  return {};
}

void OutboxWorker::wake() { thread_.wake(); }

void OutboxWorker::stop() { thread_.stop(); }

Result<bool> OutboxWorker::sendOne() {
  const std::int64_t now = now_();
  OutboxQueue& queue = store_->outboxQueue();
  auto claimed = queue.claim(id_, now, kOutboxLeaseMs);
  if (!claimed) return std::unexpected(claimed.error());
  if (!*claimed) return false;
  const OutboxRow& row = (*claimed)->row;
  notify::SendResult result = sendOutboxRow(policy_->config(), row);
  const std::int64_t done = now_();
  std::int64_t next = retryAt(policy_->config(), row.attempts, done);
  nlohmann::ordered_json fields = {{"outbox", row.id},
                                   {"channel", row.channel},
                                   {"to", row.target},
                                   {"attempt", row.attempts},
                                   {"detail", result.detail}};
  if (row.ticketId) fields["ticket"] = *row.ticketId;
  switch (result.outcome) {
    case notify::Outcome::kSent:
      log_.info("notified", fields);
      break;
    case notify::Outcome::kRetry:
      fields["retry_in_s"] = (next - done) / 1000;
      log_.warning("notify_retry", fields);
      break;
    case notify::Outcome::kPermanent:
      log_.error("notify_failed", fields);
      break;
  }
  if (auto finished = queue.finish(row.id, id_, result.outcome, result.detail, done, next);
      !finished) {
    return std::unexpected(finished.error());
  }
  return true;
}

Result<int> OutboxWorker::drainOnce() {
  if (!store_) {
    auto store = Store::open(database_, Store::Mode::kOpenExisting);
    if (!store) return std::unexpected(store.error());
    store_ = std::make_unique<Store>(std::move(*store));
  }
  int handled = 0;
  while (true) {
    auto sent = sendOne();
    if (!sent) return std::unexpected(sent.error());
    if (!*sent) return handled;
    ++handled;
  }
}

void OutboxWorker::run() {
  while (!thread_.stopping()) {
    auto handled = drainOnce();
    if (!handled) log_.error("outbox_error", {{"message", handled.error().message}});
    std::int64_t now = now_();
    std::int64_t wait = kLookAtLeastEveryMs;
    if (auto due = store_->outboxQueue().nextDue(); due && *due) {
      wait = std::clamp<std::int64_t>(**due - now, 0, kLookAtLeastEveryMs);
    }
    if (!handled) wait = std::max<std::int64_t>(wait, 1000);  // a store error: do not spin
    if (!thread_.sleep(std::chrono::milliseconds(wait))) return;
  }
}

// --- WatchdogLoop ----------------------------------------------------------------------------

WatchdogLoop::WatchdogLoop(StoreLocation database, std::shared_ptr<const Policy> policy,
                           Logger& log, std::function<void()> enqueued, NowMs now)
    : database_(std::move(database)),
      policy_(std::move(policy)),
      log_(log),
      enqueued_(std::move(enqueued)),
      now_(std::move(now)) {}

WatchdogLoop::~WatchdogLoop() { stop(); }

Status WatchdogLoop::start() {
  auto store = Store::open(database_, Store::Mode::kOpenExisting);
  if (!store) return std::unexpected(store.error());
  store_ = std::make_unique<Store>(std::move(*store));
  store_->setPolicy(policy_);
  thread_.start([this] { run(); });
  return {};
}

void WatchdogLoop::wake() { thread_.wake(); }

void WatchdogLoop::stop() { thread_.stop(); }

bool clockJumped(std::int64_t waitedFromMs, std::int64_t nowMs, std::int64_t periodMs) {
  constexpr std::int64_t kMinJumpMs = 60'000;
  std::int64_t off = nowMs - waitedFromMs - periodMs;
  return std::abs(off) > std::max(periodMs, kMinJumpMs);
}

void WatchdogLoop::run() {
  const std::int64_t periodMs = policy_->config().watchdogIntervalMs;
  // The server listens before this loop starts: the home receives from its first pass on.
  std::optional<std::int64_t> receivingSince;
  std::string holdReason = "start";
  std::int64_t jumpMs = 0;
  while (true) {
    const std::int64_t now = now_();
    if (!receivingSince) receivingSince = now;
    // Another home may lead the time-driven work: this one then only waits, and is woken when
    // it takes the lead.
    if (!leading_ || leading_()) {
      auto report = store_->watchdog(now, receivingSince);
      if (!report) {
        log_.error("watchdog_error", {{"message", report.error().message}});
      } else if (report->missingOpened + report->siteOpened + report->escalated +
                     report->stormSummaries + report->certificateExpiringOpened >
                 0) {
        log_.info("watchdog", {{"missing_heartbeat", report->missingOpened},
                               {"site_silent", report->siteOpened},
                               {"certificate_expiring", report->certificateExpiringOpened},
                               {"escalated", report->escalated},
                               {"storm_summaries", report->stormSummaries}});
      }
      if (report && !holdReason.empty()) {
        std::int64_t until = report->holdUntilMs.value_or(*receivingSince);
        nlohmann::ordered_json fields = {{"reason", holdReason}};
        if (holdReason == "clock_jump") fields["jump_ms"] = jumpMs;
        fields["receiving_since"] = formatTimestamp(*receivingSince);
        fields["until"] = formatTimestamp(until);
        fields["overdue_agents"] = report->held;
        fields["detail"] = fmt::format(
            "{}: until {}, no agent is called missing and no site silent before it has had {} of "
            "its heartbeat intervals since {}, when the home began receiving",
            holdReason == "start" ? "the home started"
                                  : fmt::format("the wall clock jumped by {} s", jumpMs / 1000),
            formatTimestamp(until), policy_->config().graceHeartbeats,
            formatTimestamp(*receivingSince));
        log_.info("watchdog_hold", fields);
        holdReason.clear();
      }
    }
    if (store_->takeEnqueued() > 0 && enqueued_) enqueued_();
    const std::int64_t waitedFrom = now_();
    if (!thread_.sleep(std::chrono::milliseconds(periodMs))) return;
    const std::int64_t woke = now_();
    if (clockJumped(waitedFrom, woke, periodMs)) {
      receivingSince = woke;
      holdReason = "clock_jump";
      jumpMs = woke - waitedFrom - periodMs;
    }
  }
}

}  // namespace pass::home
