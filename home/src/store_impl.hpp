#pragma once
// Store::Impl, shared by the files that implement Store: store.cpp (envelopes, events,
// agents) and tickets.cpp (tickets, outbox, silences, watchdog).

#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>

#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "sqlite.hpp"

namespace pass::home {

template <typename T>
std::unexpected<Error> propagate(const Result<T>& r) {
  return std::unexpected(r.error());
}

struct Store::Impl {
  using Database = sqlite::Database;
  using Statement = sqlite::Statement;
  using Transaction = sqlite::Transaction;

  Database db;
  std::optional<Statement> insertEnvelope;
  std::optional<Statement> insertHeartbeat;
  std::optional<Statement> insertEvent;
  std::optional<Statement> updateAgentSeq;
  std::optional<Statement> updateAgentHeartbeat;
  std::optional<Statement> selectAuth;
  std::optional<Statement> begin;
  std::optional<Statement> commit;
  std::optional<Statement> rollback;

  // Prepared once per connection: preparing costs more than running these statements.
  Result<Statement*> statement(std::optional<Statement>& slot, std::string_view sql) {
    if (!slot) {
      auto prepared = db.prepare(sql);
      if (!prepared) return propagate(prepared);
      slot = std::move(*prepared);
    }
    return &*slot;
  }

  Status migrate();
  /// Stores a new envelope's rows; with a policy, also what its events and heartbeat do to
  /// tickets and the outbox.
  Status storeNew(const EnvelopeRecord& r);

  /// A statement prepared on first use and kept, keyed by its SQL text's address (a string
  /// literal): for the ticket code's many statements.
  Result<Statement*> cached(const char* sql);

  // --- tickets (tickets.cpp) ---------------------------------------------------------------
  std::shared_ptr<const Policy> policy;
  std::unordered_map<const char*, Statement> statements;
  /// Outbox rows written since the caller last took this count (wakes the outbox worker).
  std::int64_t enqueued = 0;

  /// Tickets for the new events of one envelope (those its insert did not find stored).
  Status onNewEvents(const EnvelopeRecord& r, std::span<const EventRecord* const> events);
  Status onHeartbeat(const EnvelopeRecord& r);
};

}  // namespace pass::home
