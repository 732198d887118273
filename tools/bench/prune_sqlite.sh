#!/bin/sh
# Measures retention on an SQLite home (docs/performance.md, "Retention"): a fresh home with
# N old envelopes (half heartbeats), one event per report, and N newer envelopes that stay,
# written straight into home.db; then `pass-home prune` prints per table what it pruned and
# the longest batch transaction.
#
#   tools/bench/prune_sqlite.sh [N] (default 100000 old + 100000 new: 200,000 envelopes)
set -eu
PASS_HOME=${PASS_HOME:-build/dev/home/pass-home}
n=${1:-100000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PASS_HOME" init --state "$dir/state" >/dev/null
day=86400000
now=$(($(date +%s) * 1000))
old=$((now - 60 * day))
payload=$(printf '%0900d' 0)
sqlite3 "$dir/state/home.db" <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2 * $n)
INSERT INTO envelopes (id, agent_id, seq, created_ms, received_ms, type, size, payload)
SELECT i, 'agent-' || (i % 100), i,
       CASE WHEN i <= $n THEN $old + i ELSE $now - $day + i END,
       CASE WHEN i <= $n THEN $old + i + 5 ELSE $now - $day + i + 5 END,
       CASE WHEN i % 2 = 0 THEN 'report' ELSE 'heartbeat' END, 1000, '$payload' FROM n;
INSERT INTO envelope_keys (agent_id, seq, envelope_id)
SELECT agent_id, seq, id FROM envelopes ORDER BY agent_id, seq;
UPDATE envelope_keys_merged SET upto = (SELECT max(id) FROM envelopes);
INSERT INTO heartbeats (agent_id, seq, sent_ms, received_ms, next_due_ms, payload)
SELECT agent_id, seq, created_ms, received_ms, created_ms + 14400000, payload FROM envelopes
WHERE type = 'heartbeat';
INSERT INTO events (agent_id, seq, idx, array, code, severity, occurred_ms, payload, family,
                    event_id, kind)
SELECT agent_id, seq, 0, '410123', '307080', 'acute', created_ms, '{"array":"410123"}',
       'hitachi_svp', 'e' || id, 'alert' FROM envelopes WHERE type = 'report';
COMMIT;
SQL
cat >"$dir/state/home.xml" <<XML
<pass-home schema="1">
  <retention envelopes-days="31" events-days="31"/>
</pass-home>
XML
echo "home.db: $(du -h "$dir/state/home.db" | cut -f1), $((2 * n)) envelopes, $n heartbeats, $n events"
"$PASS_HOME" prune --state "$dir/state" --dry-run
/usr/bin/time -f '%e s wall, %M KB' "$PASS_HOME" prune --state "$dir/state"
