-- 1: agents, envelopes, heartbeats, events.
-- heartbeats and events have no key of their own: a row is written only for a new envelope,
-- whose (agent_id, seq) the envelopes key (from schema 5: envelope_keys and the writer's recent
-- level) keeps unique. Without a key their rows are appended in arrival order; a key clustered
-- by agent would dirty one page per agent in every commit, which on a busy home multiplies
-- what each COMMIT writes and syncs.
CREATE TABLE agents (
  id TEXT PRIMARY KEY NOT NULL,
  customer TEXT NOT NULL,
  site TEXT NOT NULL,
  name TEXT NOT NULL,
  sign_key BLOB NOT NULL,
  cert_serial TEXT NOT NULL,
  enrolled_ms INTEGER NOT NULL,
  revoked_ms INTEGER,
  last_seq INTEGER,
  last_envelope_ms INTEGER,
  last_heartbeat_ms INTEGER,
  next_heartbeat_due_ms INTEGER
) WITHOUT ROWID;
CREATE TABLE envelopes (
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  type TEXT NOT NULL,
  size INTEGER NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (agent_id, seq)
);
CREATE TABLE heartbeats (
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sent_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  next_due_ms INTEGER,
  payload TEXT NOT NULL
);
CREATE TABLE events (
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  array TEXT,
  code TEXT,
  severity TEXT,
  occurred_ms INTEGER,
  payload TEXT NOT NULL
);
