-- 4: the arrays each agent should report, written by `pass-home onboard`.
CREATE TABLE expected_arrays (
  agent_id TEXT NOT NULL REFERENCES agents (id),
  family TEXT NOT NULL,
  serial TEXT NOT NULL,
  model TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL DEFAULT '',
  since_ms INTEGER NOT NULL,
  last_reported_ms INTEGER,
  PRIMARY KEY (agent_id, family, serial)
) WITHOUT ROWID;
