-- 3: tickets (docs/tickets.md). At most one live (not resolved) ticket per dedup_key is the
-- store's constraint, so concurrent envelopes and several homes on one database cannot
-- open a second. ticket_log is append-only, enforced by triggers.
ALTER TABLE events ADD COLUMN kind TEXT;
ALTER TABLE agents ADD COLUMN heartbeat_received_ms INTEGER;
ALTER TABLE agents ADD COLUMN heartbeat_due_home_ms INTEGER;
ALTER TABLE agents ADD COLUMN heartbeat_interval_ms INTEGER;
ALTER TABLE agents ADD COLUMN clock_skew_ms INTEGER;
ALTER TABLE agents ADD COLUMN clock_warning TEXT;
CREATE TABLE tickets (
  id INTEGER PRIMARY KEY,
  dedup_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  customer TEXT NOT NULL,
  site TEXT NOT NULL,
  family TEXT NOT NULL DEFAULT '',
  array TEXT NOT NULL DEFAULT '',
  agent_id TEXT NOT NULL DEFAULT '',
  problem TEXT NOT NULL,
  title TEXT NOT NULL,
  code TEXT NOT NULL DEFAULT '',
  severity TEXT NOT NULL DEFAULT '',
  component TEXT NOT NULL DEFAULT '',
  urgent INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
  count INTEGER NOT NULL DEFAULT 1,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  opened_ms INTEGER NOT NULL,
  acked_ms INTEGER,
  acked_by TEXT NOT NULL DEFAULT '',
  resolved_ms INTEGER,
  resolved_by TEXT NOT NULL DEFAULT '',
  escalation_level INTEGER NOT NULL DEFAULT 1,
  escalate_at_ms INTEGER,
  parent_id INTEGER REFERENCES tickets (id),
  silenced_by INTEGER,
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX tickets_one_live ON tickets (dedup_key) WHERE state <> 'resolved';
CREATE INDEX tickets_by_key ON tickets (dedup_key, resolved_ms);
CREATE INDEX tickets_by_site ON tickets (customer, site, opened_ms);
CREATE INDEX tickets_to_escalate ON tickets (escalate_at_ms) WHERE state = 'open';
CREATE TABLE ticket_log (
  id INTEGER PRIMARY KEY,
  ticket_id INTEGER NOT NULL REFERENCES tickets (id),
  at_ms INTEGER NOT NULL,
  who TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ticket_log_by_ticket ON ticket_log (ticket_id, id);
CREATE TRIGGER ticket_log_no_update BEFORE UPDATE ON ticket_log
BEGIN SELECT RAISE(ABORT, 'ticket_log is append-only'); END;
CREATE TRIGGER ticket_log_no_delete BEFORE DELETE ON ticket_log
BEGIN SELECT RAISE(ABORT, 'ticket_log is append-only'); END;
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY,
  ticket_id INTEGER REFERENCES tickets (id),
  created_ms INTEGER NOT NULL,
  channel TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'email_sms', 'webhook')),
  target TEXT NOT NULL,
  recipient TEXT NOT NULL,
  notice TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'suppressed')),
  not_before_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  claimed_by TEXT,
  claim_until_ms INTEGER,
  sent_ms INTEGER,
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (not_before_ms) WHERE state = 'pending';
CREATE INDEX outbox_by_target ON outbox (channel, target, created_ms);
CREATE INDEX outbox_by_ticket ON outbox (ticket_id);
CREATE TABLE silences (
  id INTEGER PRIMARY KEY,
  customer TEXT NOT NULL DEFAULT '',
  site TEXT NOT NULL DEFAULT '',
  array TEXT NOT NULL DEFAULT '',
  code TEXT NOT NULL DEFAULT '',
  starts_ms INTEGER NOT NULL,
  ends_ms INTEGER NOT NULL,
  author TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  removed_ms INTEGER,
  removed_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE storms (
  customer TEXT NOT NULL,
  site TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  last_ms INTEGER NOT NULL,
  tickets INTEGER NOT NULL,
  PRIMARY KEY (customer, site)
);
