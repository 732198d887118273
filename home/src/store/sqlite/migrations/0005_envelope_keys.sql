-- 5: the envelopes key in two levels. envelopes keeps rows in arrival order under an id
-- and no other key; envelope_keys is the (agent_id, seq) key of every envelope with
-- id <= envelope_keys_merged.upto, and the writer keeps the later ones' keys in memory and
-- merges them in key order every kMergeRecentAt envelopes. A key clustered by agent on
-- envelopes itself dirtied one page per agent in every commit.
CREATE TABLE envelopes_by_id (
  id INTEGER PRIMARY KEY,
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  type TEXT NOT NULL,
  size INTEGER NOT NULL,
  payload TEXT NOT NULL
);
INSERT INTO envelopes_by_id (id, agent_id, seq, created_ms, received_ms, type, size, payload)
  SELECT rowid, agent_id, seq, created_ms, received_ms, type, size, payload FROM envelopes
  ORDER BY rowid;
CREATE TABLE envelope_keys (
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  envelope_id INTEGER NOT NULL,
  PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
INSERT INTO envelope_keys (agent_id, seq, envelope_id)
  SELECT agent_id, seq, id FROM envelopes_by_id ORDER BY agent_id, seq;
CREATE TABLE envelope_keys_merged (upto INTEGER NOT NULL);
INSERT INTO envelope_keys_merged (upto) SELECT coalesce(max(id), 0) FROM envelopes_by_id;
DROP TABLE envelopes;
ALTER TABLE envelopes_by_id RENAME TO envelopes;
