#pragma once
// The SQLite envelopes key in two levels (store/sqlite/store.cpp, docs/architecture.md): the
// statement that merges the recent level into envelope_keys, run by the writer and by
// retention (store/sqlite/cluster_store.cpp) inside a write transaction.

#include <string_view>

namespace pass::home::sqlite {

/// Moves the keys of the envelopes after envelope_keys_merged.upto into envelope_keys, in key
/// order, and moves upto to the last envelope. A plain INSERT: the key's uniqueness still holds
/// in the database, and a clash here would be a bug worth failing loudly for. Inside the write
/// lock, max(id) is the last recent envelope.
inline constexpr std::string_view kMergeRecentKeys =
    "INSERT INTO envelope_keys (agent_id, seq, envelope_id) SELECT agent_id, seq, id FROM "
    "envelopes WHERE id > (SELECT upto FROM envelope_keys_merged) ORDER BY agent_id, seq;"
    "UPDATE envelope_keys_merged SET upto = (SELECT coalesce(max(id), upto) FROM envelopes)";

}  // namespace pass::home::sqlite
