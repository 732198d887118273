#pragma once
// The outbox queue on PostgreSQL, on the Store's connection (Store::outboxQueue()).

#include <cstdint>

#include "store/outbox_queue.hpp"
#include "store/postgres/pg.hpp"

namespace pass::home::postgres {

class OutboxQueue final : public home::OutboxQueue {
 public:
  /// `db` must outlive the queue; `enqueued` counts the rows it queued (Store::takeEnqueued).
  OutboxQueue(Connection& db, std::int64_t& enqueued) : db_(db), enqueued_(enqueued) {}

  Result<std::int64_t> enqueueTest(const Recipient& to, std::string_view detail,
                                   std::int64_t nowMs) override;
  Result<std::optional<OutboxClaim>> claim(std::string_view worker, std::int64_t nowMs,
                                           std::int64_t leaseMs) override;
  Status finish(std::int64_t id, std::string_view worker, notify::Outcome outcome,
                std::string_view detail, std::int64_t nowMs, std::int64_t retryAtMs) override;
  Result<std::optional<std::int64_t>> nextDue() override;
  Result<std::vector<OutboxRow>> rows(std::optional<std::int64_t> ticketId) override;

 private:
  Connection& db_;
  std::int64_t& enqueued_;
};

}  // namespace pass::home::postgres
