// The home's store on SQLite: schema and migrations, agents, envelopes, events, heartbeats.

#include "store/sqlite/store.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include <fmt/format.h>

#include "store/sqlite/envelope_keys.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/sqlite/ticket_storage.hpp"

namespace pass::home::sqlite {
namespace {

// The recent level of the envelopes key is merged into envelope_keys once it holds this many
// keys: each merge writes each active agent's leaf page once, where a per-envelope insert
// wrote it once per commit. At ~80 bytes a key the recent level stays under 400 KB.
constexpr std::size_t kMergeRecentAt = 4096;

std::string recentKey(std::string_view agentId, std::int64_t seq) {
  return fmt::format("{}/{}", agentId, seq);
}

}  // namespace

Status SqliteStore::migrate() {
  // busy_timeout first: the other pragmas may need a lock another process holds.
  // synchronous=FULL makes each COMMIT durable (fsync of the WAL) before we answer.
  if (auto done = db.exec("PRAGMA busy_timeout = 10000"); !done) return done;
  if (auto done = db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL"); !done) {
    return done;
  }
  auto version = db.queryInt("PRAGMA user_version");
  if (!version) return propagate(version);
  if (*version > kSchemaVersion) {
    return fail("store.version",
                fmt::format("{}: schema version {} is newer than this pass-home knows ({}); "
                            "run a newer pass-home",
                            db.file(), *version, kSchemaVersion));
  }
  // Migration N brings user_version from N-1 to N (home/src/store/sqlite/migrations/).
  if (std::ssize(kSqliteMigrations) != kSchemaVersion) {
    return fail("store", fmt::format("this pass-home embeds {} migrations for schema version {}",
                                     kSqliteMigrations.size(), kSchemaVersion));
  }
  for (auto v = *version; v < kSchemaVersion; ++v) {
    auto tx = Transaction::beginImmediate(db);
    if (!tx) return propagate(tx);
    // Re-check inside the write lock: another process may have migrated meanwhile.
    auto current = db.queryInt("PRAGMA user_version");
    if (!current) return propagate(current);
    if (*current > v) continue;
    const EmbeddedSql& migration = kSqliteMigrations[static_cast<std::size_t>(v)];
    if (auto done = db.exec(migration.sql); !done) {
      return fail("store", fmt::format("migration {} ({}): {}", migration.number, migration.file,
                                       done.error().message));
    }
    if (auto done = db.exec(fmt::format("PRAGMA user_version = {}", v + 1)); !done) return done;
    if (auto done = tx->commit(); !done) return done;
  }
  return {};
}

Status SqliteStore::syncRecentKeys() {
  auto upto = statement(selectMergedUpto, "SELECT upto FROM envelope_keys_merged");
  if (!upto) return propagate(upto);
  auto row = (*upto)->step();
  if (!row) return propagate(row);
  if (!*row) {
    return fail("store", fmt::format("{}: table envelope_keys_merged has no row (pass-home "
                                     "writes it once, in migration 5): was the database edited "
                                     "by hand?",
                                     db.file()));
  }
  auto merged = (*upto)->columnInt(0);
  (*upto)->reset();
  if (merged != recentUpto) {
    // First use, a rollback, or another connection merged: read the recent level again.
    recentKeys.clear();
    recentUpto = merged;
    recentLastId = merged;
  }
  auto recent = statement(selectRecentKeys,
                          "SELECT id, agent_id, seq FROM envelopes WHERE id > ?1 ORDER BY id");
  if (!recent) return propagate(recent);
  auto& s = **recent;
  s.bind(1, recentLastId);
  while (true) {
    auto more = s.step();
    if (!more) return propagate(more);
    if (!*more) break;
    recentLastId = s.columnInt(0);
    recentKeys.insert(recentKey(s.columnText(1), s.columnInt(2)));
  }
  s.reset();
  return {};
}

Result<bool> SqliteStore::envelopeStored(const std::string& key, std::string_view agentId,
                                         std::int64_t seq) {
  if (recentKeys.contains(key)) return true;
  auto merged =
      statement(selectMergedKey, "SELECT 1 FROM envelope_keys WHERE agent_id = ?1 AND seq = ?2");
  if (!merged) return propagate(merged);
  (*merged)->bind(1, agentId).bind(2, seq);
  auto row = (*merged)->step();
  (*merged)->reset();
  return row;
}

Status SqliteStore::mergeRecentKeys() {
  if (auto done = db.exec(kMergeRecentKeys); !done) return done;
  // The next sync starts from the new upto, with nothing after it to read.
  recentKeys.clear();
  recentUpto = -1;
  return {};
}

Status SqliteStore::foldRecentKeys() {
  auto tx = Transaction::beginImmediate(db);
  if (!tx) return propagate(tx);
  if (auto done = mergeRecentKeys(); !done) return done;
  return tx->commit();
}

Status SqliteStore::storeNew(const EnvelopeRecord& r) {
  auto seq = static_cast<std::int64_t>(r.seq);
  if (r.type == "heartbeat") {
    auto hb = statement(insertHeartbeat,
                        "INSERT INTO heartbeats (agent_id, seq, sent_ms, received_ms, "
                        "next_due_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!hb) return propagate(hb);
    (*hb)->bind(1, r.agentId).bind(2, seq).bind(3, r.createdMs).bind(4, r.receivedMs);
    (*hb)->bind(5, r.nextDueMs).bind(6, r.payload);
    if (auto done = (*hb)->run(); !done) return done;
    // Only a newer heartbeat moves the due time: spooled ones may arrive late. The due time
    // on the home's clock is the time to the next heartbeat added to the arrival, so that a
    // skewed agent clock never makes a heartbeat look missing. The interval (the grace's unit
    // and what the ticket says) is the one the agent is set to, when its heartbeat says it
    // (interval_s); next_due - created is a little less, the time it took to seal.
    auto upd = statement(updateAgentHeartbeat,
                         "UPDATE agents SET last_heartbeat_ms = ?1, next_heartbeat_due_ms = ?2, "
                         "heartbeat_received_ms = ?4, "
                         "heartbeat_due_home_ms = CASE WHEN ?2 IS NULL THEN NULL "
                         "ELSE ?4 + min(max(?2 - ?1, 0), ?5) END, "
                         "heartbeat_interval_ms = CASE WHEN ?2 IS NULL THEN NULL "
                         "WHEN ?6 > 0 THEN min(?6, ?5) ELSE min(max(?2 - ?1, 0), ?5) END "
                         "WHERE id = ?3 AND (last_heartbeat_ms IS NULL OR "
                         "last_heartbeat_ms <= ?1)");
    if (!upd) return propagate(upd);
    (*upd)->bind(1, r.createdMs).bind(2, r.nextDueMs).bind(3, r.agentId).bind(4, r.receivedMs);
    (*upd)->bind(5, kMaxHeartbeatIntervalMs).bind(6, r.intervalMs);
    if (auto done = (*upd)->run(); !done) return done;
    if (policy && db.changes() > 0) {
      if (auto done = onHeartbeat(r); !done) return done;
    }
  }
  if (!r.events.empty()) {
    auto ev = statement(insertEvent,
                        "INSERT OR IGNORE INTO events (agent_id, seq, idx, array, code, "
                        "severity, occurred_ms, payload, family, event_id, kind) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!ev) return propagate(ev);
    std::int64_t idx = 0;
    std::vector<const EventRecord*> fresh;
    fresh.reserve(r.events.size());
    for (const auto& e : r.events) {
      (*ev)->bind(1, r.agentId).bind(2, seq).bind(3, idx++).bind(4, e.array).bind(5, e.code);
      (*ev)->bind(6, e.severity).bind(7, e.occurredMs).bind(8, e.payload);
      (*ev)->bind(9, e.family).bind(10, e.id).bind(11, e.kind);
      if (auto done = (*ev)->run(); !done) return done;
      // A repeat (same family, array and id) changes no ticket.
      if (db.changes() > 0) fresh.push_back(&e);
    }
    if (policy && !fresh.empty()) {
      if (auto done = onNewEvents(r, fresh); !done) return done;
    }
  }
  auto upd = statement(updateAgentSeq,
                       "UPDATE agents SET last_seq = max(coalesce(last_seq, ?1), ?1), "
                       "last_envelope_ms = max(coalesce(last_envelope_ms, ?2), ?2) "
                       "WHERE id = ?3");
  if (!upd) return propagate(upd);
  (*upd)->bind(1, seq).bind(2, r.receivedMs).bind(3, r.agentId);
  return (*upd)->run();
}

Result<std::unique_ptr<Store::Impl>> openSqliteStore(const std::filesystem::path& file,
                                                     Store::Mode mode) {
  auto db = Database::open(
      file, mode == Store::Mode::kCreate ? Database::Mode::kCreate : Database::Mode::kOpenExisting);
  if (!db) return propagate(db);
  auto store = std::make_unique<SqliteStore>(std::move(*db));
  if (auto done = store->migrate(); !done) return std::unexpected(done.error());
  return store;
}

Result<std::int64_t> SqliteStore::schemaVersion() { return db.queryInt("PRAGMA user_version"); }

Status SqliteStore::addAgent(const NewAgent& agent) {
  auto stmt = db.prepare(
      "INSERT OR IGNORE INTO agents (id, customer, site, name, sign_key, cert_serial, "
      "enrolled_ms, cert_expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, nullif(?8, 0))");
  if (!stmt) return propagate(stmt);
  stmt->bind(1, agent.id).bind(2, agent.customer).bind(3, agent.site).bind(4, agent.name);
  stmt->bindBlob(5, agent.signKey).bind(6, agent.certSerial).bind(7, agent.enrolledMs);
  stmt->bind(8, agent.certExpiresMs);
  if (auto done = stmt->run(); !done) return done;
  if (db.changes() == 0) {
    return fail("agent_exists",
                fmt::format("{}: agent {} is already enrolled", db.file(), agent.id));
  }
  return {};
}

Result<std::optional<AgentAuth>> SqliteStore::agentAuth(std::string_view agentId) {
  auto stmt =
      statement(selectAuth,
                "SELECT sign_key, cert_serial, revoked_ms, coalesce(previous_cert_serial, ''), "
                "previous_cert_until_ms FROM agents WHERE id = ?1");
  if (!stmt) return propagate(stmt);
  auto& s = **stmt;
  s.bind(1, agentId);
  auto row = s.step();
  if (!row) return propagate(row);
  std::optional<AgentAuth> auth;
  if (*row) {
    auth = AgentAuth{s.columnBlob(0), s.columnText(1), s.columnOptInt(2), s.columnText(3),
                     s.columnOptInt(4)};
  }
  // Reset ends the read transaction, so the next call sees the latest commit.
  s.reset();
  return auth;
}

Status SqliteStore::revokeAgent(std::string_view agentId, std::int64_t nowMs) {
  auto stmt = db.prepare("UPDATE agents SET revoked_ms = coalesce(revoked_ms, ?1) WHERE id = ?2");
  if (!stmt) return propagate(stmt);
  stmt->bind(1, nowMs).bind(2, agentId);
  if (auto done = stmt->run(); !done) return done;
  if (db.changes() == 0) {
    return fail("unknown_agent", fmt::format("{}: no enrolled agent {}", db.file(), agentId));
  }
  return {};
}

Result<std::vector<std::string>> SqliteStore::revokedAgents() {
  auto stmt = db.prepare("SELECT id FROM agents WHERE revoked_ms IS NOT NULL ORDER BY id");
  if (!stmt) return propagate(stmt);
  return stmt->rows([](const Statement& r) { return r.columnText(0); });
}

Status SqliteStore::renewCertificate(const CertificateRenewal& renewal) {
  // Compare and set: the requester's serial must still be one the row accepts, so that two
  // renewals racing cannot both win.
  auto stmt = db.prepare(
      "UPDATE agents SET "
      "previous_cert_serial = CASE WHEN cert_serial = ?2 THEN cert_serial "
      "ELSE previous_cert_serial END, "
      "previous_cert_until_ms = ?6, cert_serial = ?3, cert_expires_ms = ?4, cert_renewed_ms = ?5 "
      "WHERE id = ?1 AND revoked_ms IS NULL AND (cert_serial = ?2 OR "
      "(previous_cert_serial = ?2 AND previous_cert_until_ms > ?5))");
  if (!stmt) return propagate(stmt);
  stmt->bind(1, renewal.agentId).bind(2, renewal.requesterSerial).bind(3, renewal.newSerial);
  stmt->bind(4, renewal.expiresMs).bind(5, renewal.nowMs).bind(6, renewal.nowMs + renewal.graceMs);
  if (auto done = stmt->run(); !done) return done;
  if (db.changes() == 0) {
    return fail("certificate_mismatch",
                fmt::format("{}: agent {} is revoked, unknown, or no longer accepts certificate "
                            "{}",
                            db.file(), renewal.agentId, renewal.requesterSerial));
  }
  return {};
}

Result<std::vector<ExpectedArray>> SqliteStore::expectedArrays(std::string_view agentId) {
  SqliteTicketStorage storage(db, statements);
  return storage.expectedArrays(agentId);
}

Status SqliteStore::setExpectedArrays(std::string_view agentId,
                                      std::span<const ExpectedArray> arrays, std::int64_t nowMs) {
  auto tx = Transaction::beginImmediate(db);
  if (!tx) return propagate(tx);
  auto known = db.prepare("SELECT count(*) FROM agents WHERE id = ?1");
  if (!known) return propagate(known);
  known->bind(1, agentId);
  if (auto row = known->step(); !row) return propagate(row);
  if (known->columnInt(0) == 0) {
    return fail("unknown_agent", fmt::format("{}: no enrolled agent {}", db.file(), agentId));
  }
  // Upsert what the form lists and drop the rest; a kept array keeps its dates.
  auto current = expectedArrays(agentId);
  if (!current) return std::unexpected(current.error());
  auto drop =
      db.prepare("DELETE FROM expected_arrays WHERE agent_id = ?1 AND family = ?2 AND serial = ?3");
  if (!drop) return propagate(drop);
  for (const auto& old : *current) {
    bool kept = std::any_of(arrays.begin(), arrays.end(), [&](const ExpectedArray& a) {
      return a.family == old.family && a.serial == old.serial;
    });
    if (kept) continue;
    drop->bind(1, agentId).bind(2, old.family).bind(3, old.serial);
    if (auto done = drop->run(); !done) return done;
    drop->reset();
  }
  auto upsert = db.prepare(
      "INSERT INTO expected_arrays (agent_id, family, serial, model, name, since_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (agent_id, family, serial) "
      "DO UPDATE SET model = excluded.model, name = excluded.name");
  if (!upsert) return propagate(upsert);
  for (const auto& a : arrays) {
    upsert->bind(1, agentId).bind(2, a.family).bind(3, a.serial).bind(4, a.model);
    upsert->bind(5, a.name).bind(6, nowMs);
    if (auto done = upsert->run(); !done) return done;
    upsert->reset();
  }
  return tx->commit();
}

Result<std::vector<AgentSummary>> SqliteStore::agents() {
  if (auto done = foldRecentKeys(); !done) return std::unexpected(done.error());
  auto stmt = db.prepare(
      "SELECT id, customer, site, name, enrolled_ms, revoked_ms, last_seq, last_envelope_ms, "
      "last_heartbeat_ms, next_heartbeat_due_ms, "
      "(SELECT count(*) FROM envelope_keys k WHERE k.agent_id = a.id), heartbeat_due_home_ms, "
      "clock_skew_ms, coalesce(clock_warning, ''), cert_expires_ms, cert_renewed_ms "
      "FROM agents a ORDER BY customer, site, name, id");
  if (!stmt) return propagate(stmt);
  return stmt->rows([](const Statement& r) {
    AgentSummary a;
    a.id = r.columnText(0);
    a.customer = r.columnText(1);
    a.site = r.columnText(2);
    a.name = r.columnText(3);
    a.enrolledMs = r.columnInt(4);
    a.revokedMs = r.columnOptInt(5);
    a.lastSeq = r.columnOptInt(6);
    a.lastEnvelopeMs = r.columnOptInt(7);
    a.lastHeartbeatMs = r.columnOptInt(8);
    a.nextHeartbeatDueMs = r.columnOptInt(9);
    a.envelopes = r.columnInt(10);
    a.heartbeatDueHomeMs = r.columnOptInt(11);
    a.clockSkewMs = r.columnOptInt(12);
    a.clockWarning = r.columnText(13);
    a.certExpiresMs = r.columnOptInt(14);
    a.certRenewedMs = r.columnOptInt(15);
    return a;
  });
}

Result<std::vector<StoredEnvelope>> SqliteStore::envelopes(
    const std::optional<std::string>& agentId) {
  if (auto done = foldRecentKeys(); !done) return std::unexpected(done.error());
  auto stmt = db.prepare(
      agentId ? "SELECT k.agent_id, k.seq, type, created_ms, received_ms, size, payload FROM "
                "envelope_keys k JOIN envelopes v ON v.id = k.envelope_id "
                "WHERE k.agent_id = ?1 ORDER BY k.agent_id, k.seq"
              : "SELECT k.agent_id, k.seq, type, created_ms, received_ms, size, payload FROM "
                "envelope_keys k JOIN envelopes v ON v.id = k.envelope_id "
                "ORDER BY k.agent_id, k.seq");
  if (!stmt) return propagate(stmt);
  if (agentId) stmt->bind(1, std::string_view(*agentId));
  return stmt->rows([](const Statement& r) {
    StoredEnvelope e;
    e.agentId = r.columnText(0);
    e.seq = static_cast<std::uint64_t>(r.columnInt(1));
    e.type = r.columnText(2);
    e.createdMs = r.columnInt(3);
    e.receivedMs = r.columnInt(4);
    e.size = static_cast<std::uint64_t>(r.columnInt(5));
    e.payload = r.columnText(6);
    return e;
  });
}

Result<std::vector<StoredEvent>> SqliteStore::events(const std::optional<std::string>& array) {
  if (auto done = foldRecentKeys(); !done) return std::unexpected(done.error());
  auto stmt = db.prepare(
      "SELECT e.agent_id, e.seq, e.family, e.array, e.event_id, e.code, e.severity, "
      "e.occurred_ms, v.received_ms, e.payload FROM events e LEFT JOIN envelope_keys k "
      "ON k.agent_id = e.agent_id AND k.seq = e.seq LEFT JOIN envelopes v ON v.id = k.envelope_id "
      "WHERE ?1 IS NULL OR e.array = ?1 ORDER BY e.rowid");
  if (!stmt) return propagate(stmt);
  stmt->bind(1, array);
  return stmt->rows([](const Statement& r) {
    StoredEvent stored;
    stored.agentId = r.columnText(0);
    stored.seq = static_cast<std::uint64_t>(r.columnInt(1));
    // 0 once retention pruned the event's envelope.
    stored.receivedMs = r.columnOptInt(8).value_or(0);
    auto& e = stored.event;
    e.family = r.columnOptText(2);
    e.array = r.columnOptText(3);
    e.id = r.columnOptText(4);
    e.code = r.columnOptText(5);
    e.severity = r.columnOptText(6);
    e.occurredMs = r.columnOptInt(7);
    e.payload = r.columnText(9);
    return stored;
  });
}

Result<std::vector<CommitResult>> SqliteStore::commit(
    std::span<const EnvelopeRecord* const> batch) {
  // Prepared once: BEGIN and COMMIT run for every batch.
  auto begin = statement(beginStatement, "BEGIN IMMEDIATE");
  if (!begin) return propagate(begin);
  auto commit = statement(commitStatement, "COMMIT");
  if (!commit) return propagate(commit);
  auto rollback = statement(rollbackStatement, "ROLLBACK");
  if (!rollback) return propagate(rollback);
  auto insert = statement(
      insertEnvelope,
      "INSERT INTO envelopes (agent_id, seq, created_ms, received_ms, type, size, payload) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!insert) return propagate(insert);

  if (auto begun = (*begin)->run(); !begun) return std::unexpected(begun.error());
  auto abort = [&](const Error& error) -> std::unexpected<Error> {
    (void)(*rollback)->run();
    recentUpto = -1;  // the recent keys may name rolled-back envelopes
    return std::unexpected(error);
  };
  if (auto done = syncRecentKeys(); !done) return abort(done.error());
  std::vector<CommitResult> results;
  results.reserve(batch.size());
  for (const EnvelopeRecord* r : batch) {
    auto seq = static_cast<std::int64_t>(r->seq);
    auto key = recentKey(r->agentId, seq);
    auto stored = envelopeStored(key, r->agentId, seq);
    if (!stored) return abort(stored.error());
    if (*stored) {
      results.push_back(CommitResult::kDuplicate);
      continue;
    }
    auto& s = **insert;
    s.bind(1, r->agentId).bind(2, seq).bind(3, r->createdMs);
    s.bind(4, r->receivedMs).bind(5, r->type).bind(6, static_cast<std::int64_t>(r->size));
    s.bind(7, r->payload);
    if (auto done = s.run(); !done) return abort(done.error());
    recentLastId = db.lastInsertRowid();
    recentKeys.insert(std::move(key));
    if (auto done = storeNew(*r); !done) return abort(done.error());
    results.push_back(CommitResult::kAccepted);
  }
  if (recentKeys.size() >= kMergeRecentAt) {
    if (auto done = mergeRecentKeys(); !done) return abort(done.error());
  }
  // A failed COMMIT may leave the transaction open; ROLLBACK then ends it.
  if (auto done = (*commit)->run(); !done) return abort(done.error());
  return results;
}

}  // namespace pass::home::sqlite
