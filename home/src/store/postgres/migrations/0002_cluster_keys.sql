-- What every home of a cluster must hold alike (docs/scale-out.md, "Every home has the same
-- keys"): one row per key, name -> the SHA-256 (hex) of what identifies it: the CA certificate,
-- the server certificate's public key, the current HPKE public key, the admin token and the
-- acknowledgement key. Never the keys themselves. The first home that serves records them
-- (INSERT ... ON CONFLICT DO NOTHING); every home compares its own with them before it listens;
-- `pass-home rotate-hpke-key` replaces the HPKE row.
CREATE TABLE cluster_keys (
  name TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  recorded_ms BIGINT NOT NULL
);
