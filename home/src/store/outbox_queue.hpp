#pragma once
// The notification outbox as a queue (docs/tickets.md, "Notifications"): a worker claims one
// due row under a lease, sends it, and finishes it with the outcome. Backend-neutral; the
// SQLite queue is store/sqlite/outbox_queue.cpp. The ticket rules write the rows, in the
// transaction of the change that caused them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pass/home/notify.hpp"
#include "pass/home/tickets.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// One row taken by one worker: the worker's until leaseUntilMs. After that another worker may
/// take it (this one crashed or hangs), and this one's finish fails.
struct OutboxClaim {
  OutboxRow row;  // row.attempts counts this attempt
  std::string worker;
  std::int64_t leaseUntilMs = 0;
};

/// The notice of a test message (OutboxQueue::enqueueTest), as the outbox stores it.
inline std::string testNoticeJson(std::string_view detail, std::int64_t nowMs) {
  notify::Notice n;
  n.kind = "test";
  n.problem = "test message from PASS";
  n.detail = std::string(detail);
  n.firstSeenMs = nowMs;
  n.lastSeenMs = nowMs;
  return noticeToJson(n).dump();
}

/// Each call is atomic on its own (one statement, or one transaction), so that any number of
/// workers — threads, processes, homes on one database — share the queue without a lock in
/// memory: a backend claims with one conditional UPDATE (SQLite) or with
/// SELECT … FOR UPDATE SKIP LOCKED (PostgreSQL). One queue is one connection: use it from one
/// thread at a time.
class OutboxQueue {
 public:
  virtual ~OutboxQueue() = default;

  /// Queues a test message to one recipient, due now; returns its outbox id.
  virtual Result<std::int64_t> enqueueTest(const Recipient& to, std::string_view detail,
                                           std::int64_t nowMs) = 0;
  /// Takes the oldest due pending row that no lease holds at `nowMs` for `worker` until
  /// nowMs + leaseMs and counts the attempt, or nullopt when none is due.
  virtual Result<std::optional<OutboxClaim>> claim(std::string_view worker, std::int64_t nowMs,
                                                   std::int64_t leaseMs) = 0;
  /// Records a send's outcome and releases the claim: sent, failed for good, or pending again
  /// from `retryAtMs`. A ticket's sent or failed message goes into its log in the same
  /// transaction. Fails with "outbox.claim" when `worker` no longer holds the row's claim.
  virtual Status finish(std::int64_t id, std::string_view worker, notify::Outcome outcome,
                        std::string_view detail, std::int64_t nowMs, std::int64_t retryAtMs) = 0;
  /// The earliest not_before_ms of the pending rows (claimed or not), or nullopt when none is.
  virtual Result<std::optional<std::int64_t>> nextDue() = 0;
  /// The rows, of one ticket or all, oldest first.
  virtual Result<std::vector<OutboxRow>> rows(std::optional<std::int64_t> ticketId) = 0;
};

}  // namespace pass::home
