-- The home's schema on PostgreSQL: SQLite's at its version 6 (home/src/store/store.cpp,
-- migrations 1 to 6 folded into one), with the same table and column names so that the SQL of
-- both backends stays recognisably the same. docs/scale-out.md says how the two differ.
--
-- Types: INTEGER columns of SQLite are BIGINT (times in ms since the epoch, sequence numbers,
-- counts), BLOB is BYTEA, SQLite's INTEGER PRIMARY KEY is BIGSERIAL. A table SQLite keeps
-- without a key of its own (events, heartbeats: ordered by their implicit rowid) gets that
-- rowid as an explicit id. "array" is quoted: it is a reserved word in PostgreSQL (SQLite
-- accepts the quotes too).
--
-- The runner (home/src/store/postgres/migrate.cpp) applies each file in one transaction and
-- records it in schema_version.

CREATE TABLE schema_version (
  version BIGINT PRIMARY KEY,
  name TEXT NOT NULL,
  applied_ms BIGINT NOT NULL
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  customer TEXT NOT NULL,
  site TEXT NOT NULL,
  name TEXT NOT NULL,
  sign_key BYTEA NOT NULL,
  cert_serial TEXT NOT NULL,
  enrolled_ms BIGINT NOT NULL,
  revoked_ms BIGINT,
  last_seq BIGINT,
  last_envelope_ms BIGINT,
  last_heartbeat_ms BIGINT,
  next_heartbeat_due_ms BIGINT,
  heartbeat_received_ms BIGINT,
  heartbeat_due_home_ms BIGINT,
  heartbeat_interval_ms BIGINT,
  clock_skew_ms BIGINT,
  clock_warning TEXT,
  cert_expires_ms BIGINT,
  cert_renewed_ms BIGINT,
  previous_cert_serial TEXT,
  previous_cert_until_ms BIGINT
);

-- One row per envelope, in arrival order. SQLite keeps its (agent_id, seq) key in separate
-- tables (envelope_keys, envelope_keys_merged, and the writer's recent keys in memory) because
-- a SQLite commit writes every page it dirtied, and a key clustered by agent dirtied one page
-- per agent in every commit. PostgreSQL writes a small WAL record per index entry, not the
-- page, so this UNIQUE constraint is the key, and what makes (agent, seq) unique across every
-- home of a cluster: the second home's INSERT of the same envelope fails with 23505.
CREATE TABLE envelopes (
  id BIGSERIAL PRIMARY KEY,
  agent_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  type TEXT NOT NULL,
  size BIGINT NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (agent_id, seq)
);

CREATE TABLE heartbeats (
  id BIGSERIAL PRIMARY KEY,
  agent_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  sent_ms BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  next_due_ms BIGINT,
  payload TEXT NOT NULL
);

-- A repeat of an event with a collector id (same family, array and id) is dropped by the
-- partial unique index (INSERT … ON CONFLICT DO NOTHING here, INSERT OR IGNORE in SQLite).
CREATE TABLE events (
  id BIGSERIAL PRIMARY KEY,
  agent_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  idx BIGINT NOT NULL,
  "array" TEXT,
  code TEXT,
  severity TEXT,
  occurred_ms BIGINT,
  payload TEXT NOT NULL,
  family TEXT,
  event_id TEXT,
  kind TEXT
);
CREATE UNIQUE INDEX events_by_id ON events (family, "array", event_id)
  WHERE event_id IS NOT NULL;

-- Tickets (docs/tickets.md). At most one live (not resolved) ticket per dedup_key is the
-- database's constraint, so that concurrent envelopes and several homes on one database cannot
-- open a second.
CREATE TABLE tickets (
  id BIGSERIAL PRIMARY KEY,
  dedup_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  customer TEXT NOT NULL,
  site TEXT NOT NULL,
  family TEXT NOT NULL DEFAULT '',
  "array" TEXT NOT NULL DEFAULT '',
  agent_id TEXT NOT NULL DEFAULT '',
  problem TEXT NOT NULL,
  title TEXT NOT NULL,
  code TEXT NOT NULL DEFAULT '',
  severity TEXT NOT NULL DEFAULT '',
  component TEXT NOT NULL DEFAULT '',
  urgent BIGINT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
  count BIGINT NOT NULL DEFAULT 1,
  first_seen_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL,
  opened_ms BIGINT NOT NULL,
  acked_ms BIGINT,
  acked_by TEXT NOT NULL DEFAULT '',
  resolved_ms BIGINT,
  resolved_by TEXT NOT NULL DEFAULT '',
  escalation_level BIGINT NOT NULL DEFAULT 1,
  escalate_at_ms BIGINT,
  parent_id BIGINT REFERENCES tickets (id),
  silenced_by BIGINT,
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX tickets_one_live ON tickets (dedup_key) WHERE state <> 'resolved';
CREATE INDEX tickets_by_key ON tickets (dedup_key, resolved_ms);
CREATE INDEX tickets_by_site ON tickets (customer, site, opened_ms);
CREATE INDEX tickets_to_escalate ON tickets (escalate_at_ms) WHERE state = 'open';

-- The tickets' audit log, append-only: triggers refuse UPDATE and DELETE row by row, and
-- TRUNCATE (which fires no row trigger) as a statement.
CREATE TABLE ticket_log (
  id BIGSERIAL PRIMARY KEY,
  ticket_id BIGINT NOT NULL REFERENCES tickets (id),
  at_ms BIGINT NOT NULL,
  who TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ticket_log_by_ticket ON ticket_log (ticket_id, id);
CREATE FUNCTION ticket_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ticket_log is append-only' USING ERRCODE = 'raise_exception';
END
$$;
CREATE TRIGGER ticket_log_no_update BEFORE UPDATE ON ticket_log
  FOR EACH ROW EXECUTE FUNCTION ticket_log_append_only();
CREATE TRIGGER ticket_log_no_delete BEFORE DELETE ON ticket_log
  FOR EACH ROW EXECUTE FUNCTION ticket_log_append_only();
CREATE TRIGGER ticket_log_no_truncate BEFORE TRUNCATE ON ticket_log
  FOR EACH STATEMENT EXECUTE FUNCTION ticket_log_append_only();

-- Notifications to send. A home claims a row by setting claimed_by and claim_until_ms (the
-- lease); another home may take it over once claim_until_ms has passed.
CREATE TABLE outbox (
  id BIGSERIAL PRIMARY KEY,
  ticket_id BIGINT REFERENCES tickets (id),
  created_ms BIGINT NOT NULL,
  channel TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'email_sms', 'webhook')),
  target TEXT NOT NULL,
  recipient TEXT NOT NULL,
  notice TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'suppressed')),
  not_before_ms BIGINT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  claimed_by TEXT,
  claim_until_ms BIGINT,
  sent_ms BIGINT,
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (not_before_ms) WHERE state = 'pending';
CREATE INDEX outbox_by_target ON outbox (channel, target, created_ms);
CREATE INDEX outbox_by_ticket ON outbox (ticket_id);

CREATE TABLE silences (
  id BIGSERIAL PRIMARY KEY,
  customer TEXT NOT NULL DEFAULT '',
  site TEXT NOT NULL DEFAULT '',
  "array" TEXT NOT NULL DEFAULT '',
  code TEXT NOT NULL DEFAULT '',
  starts_ms BIGINT NOT NULL,
  ends_ms BIGINT NOT NULL,
  author TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  removed_ms BIGINT,
  removed_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE storms (
  customer TEXT NOT NULL,
  site TEXT NOT NULL,
  started_ms BIGINT NOT NULL,
  last_ms BIGINT NOT NULL,
  tickets BIGINT NOT NULL,
  PRIMARY KEY (customer, site)
);

-- The arrays each agent should report, written by `pass-home onboard`.
CREATE TABLE expected_arrays (
  agent_id TEXT NOT NULL REFERENCES agents (id),
  family TEXT NOT NULL,
  serial TEXT NOT NULL,
  model TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL DEFAULT '',
  since_ms BIGINT NOT NULL,
  last_reported_ms BIGINT,
  PRIMARY KEY (agent_id, family, serial)
);

-- Cluster-wide leases (PostgreSQL only): the home named by holder owns the work called name
-- (the watchdog, escalations, retention) until expires_ms, and renews it before then; when it
-- dies, another home takes the lease over once it has expired.
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_ms BIGINT NOT NULL
);
