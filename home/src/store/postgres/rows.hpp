#pragma once
// Reading libpq rows into the home's structs, for the PostgreSQL store's files (store.cpp,
// ticket_storage.cpp, outbox_queue.cpp).

#include <optional>
#include <type_traits>
#include <vector>

#include "pass/home/tickets.hpp"
#include "store/postgres/pg.hpp"

namespace pass::home::postgres {

/// The columns readTicket() reads, in its order.
#define PASS_PG_TICKET_COLUMNS                                                               \
  "id, kind, customer, site, family, \"array\", agent_id, problem, title, code, "            \
  "severity, component, urgent, state, count, first_seen_ms, last_seen_ms, opened_ms, "      \
  "acked_ms, acked_by, resolved_ms, resolved_by, escalation_level, parent_id, silenced_by, " \
  "detail "

inline TicketRow readTicket(const Rows& r, int i) {
  TicketRow t;
  t.id = r.integer(i, 0);
  t.kind = r.text(i, 1);
  t.customer = r.text(i, 2);
  t.site = r.text(i, 3);
  t.family = r.text(i, 4);
  t.array = r.text(i, 5);
  t.agentId = r.text(i, 6);
  t.problem = r.text(i, 7);
  t.title = r.text(i, 8);
  t.code = r.text(i, 9);
  t.severity = r.text(i, 10);
  t.component = r.text(i, 11);
  t.urgent = r.integer(i, 12) != 0;
  t.state = r.text(i, 13);
  t.count = r.integer(i, 14);
  t.firstSeenMs = r.integer(i, 15);
  t.lastSeenMs = r.integer(i, 16);
  t.openedMs = r.integer(i, 17);
  t.ackedMs = r.optInteger(i, 18);
  t.ackedBy = r.text(i, 19);
  t.resolvedMs = r.optInteger(i, 20);
  t.resolvedBy = r.text(i, 21);
  t.escalationLevel = r.integer(i, 22);
  t.parentId = r.optInteger(i, 23);
  t.silencedBy = r.optInteger(i, 24);
  t.detail = r.text(i, 25);
  return t;
}

/// Every row, as `read(rows, i)` makes it.
template <typename Read>
auto all(Result<Rows> rows, Read read)
    -> Result<std::vector<std::invoke_result_t<Read&, const Rows&, int>>> {
  if (!rows) return std::unexpected(rows.error());
  std::vector<std::invoke_result_t<Read&, const Rows&, int>> out;
  out.reserve(static_cast<std::size_t>(rows->size()));
  for (int i = 0; i < rows->size(); ++i) out.push_back(read(*rows, i));
  return out;
}

/// The first row as `read(rows, 0)` makes it, or nullopt when there is none.
template <typename Read>
auto first(Result<Rows> rows, Read read)
    -> Result<std::optional<std::invoke_result_t<Read&, const Rows&, int>>> {
  if (!rows) return std::unexpected(rows.error());
  if (rows->size() == 0) return std::nullopt;
  return read(*rows, 0);
}

/// The integer in the first column of the first row (a count).
inline Result<std::int64_t> single(Result<Rows> rows) {
  if (!rows) return std::unexpected(rows.error());
  return rows->size() == 0 ? 0 : rows->integer(0, 0);
}

inline Status done(Result<Rows> rows) {
  if (!rows) return std::unexpected(rows.error());
  return {};
}

inline std::int64_t readInt(const Rows& r, int i) { return r.integer(i, 0); }

}  // namespace pass::home::postgres
