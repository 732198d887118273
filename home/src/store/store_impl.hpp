#pragma once
// Store::Impl, shared by the files that implement Store: store.cpp (envelopes, events,
// agents) and tickets.cpp (tickets, silences, watchdog: the calls into TicketEngine and
// Watchdog); the outbox queue is its own class.

#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_set>

#include "pass/home/store.hpp"
#include "pass/home/tickets.hpp"
#include "store/sqlite.hpp"
#include "store/sqlite/outbox_queue.hpp"

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
  std::optional<Statement> selectMergedKey;
  std::optional<Statement> selectMergedUpto;
  std::optional<Statement> selectRecentKeys;
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
    return sqlite::prepareOnce(db, slot, sql);
  }

  Status migrate();

  // --- the envelopes key in two levels (store.cpp, docs/architecture.md) --------------------
  // envelope_keys holds the (agent, seq) of every envelope up to envelope_keys_merged.upto;
  // the envelopes after it are the recent level, whose keys this connection keeps in memory.
  // Both levels together are exact: an (agent, seq) found in either is a duplicate.
  std::unordered_set<std::string> recentKeys;
  /// The upto recentKeys was built against; -1 when they must be read again (a rollback).
  std::int64_t recentUpto = -1;
  /// The highest envelope id whose key is in recentKeys (or merged).
  std::int64_t recentLastId = 0;

  /// Inside a write transaction: brings recentKeys up to date with the database, including
  /// what another connection stored or merged.
  Status syncRecentKeys();
  /// Inside a write transaction, after syncRecentKeys: whether (agent, seq) is stored.
  Result<bool> envelopeStored(const std::string& recentKey, std::string_view agentId,
                              std::int64_t seq);
  /// Inside a write transaction: moves the keys of the envelopes after upto into
  /// envelope_keys, in key order, so that each agent's leaf page is written once per merge.
  Status mergeRecentKeys();
  /// mergeRecentKeys in its own transaction, so that readers find every envelope through
  /// envelope_keys alone.
  Status foldRecentKeys();
  /// Stores a new envelope's rows; with a policy, also what its events and heartbeat do to
  /// tickets and the outbox.
  Status storeNew(const EnvelopeRecord& r);

  /// A statement prepared on first use and kept, keyed by its SQL text's address (a string
  /// literal): for the ticket code's many statements.
  Result<Statement*> cached(const char* sql);

  // --- tickets (tickets.cpp: TicketEngine over store/sqlite/ticket_storage.cpp) ------------
  std::shared_ptr<const Policy> policy;
  sqlite::StatementCache statements;
  /// Outbox rows written since the caller last took this count (wakes the outbox worker).
  std::int64_t enqueued = 0;

  /// TicketEngine's rules for the new events of one envelope (those its insert did not find
  /// stored) and for a heartbeat, in the open write transaction.
  Status onNewEvents(const EnvelopeRecord& r, std::span<const EventRecord* const> events);
  Status onHeartbeat(const EnvelopeRecord& r);

  // --- the outbox queue on this connection (store/sqlite/outbox_queue.cpp) -----------------
  // Declared last: its statements are finalized before the connection closes.
  sqlite::OutboxQueue outboxQueue{db, enqueued};
};

}  // namespace pass::home
