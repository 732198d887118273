#!/bin/sh
# Measures retention on a home on PostgreSQL (docs/performance.md, "Retention"): a throwaway
# cluster (tests/integration/pgcluster.py), a home made by `pass-home init --database`, N old
# envelopes (half heartbeats), one event per report and N newer envelopes written straight into
# the database; then `pass-home prune` prints per table what it pruned and the longest batch.
#
#   tools/bench/prune_postgres.sh [N] (default 100000 old + 100000 new: 200,000 envelopes)
set -eu
PASS_HOME=${PASS_HOME:-build/dev/home/pass-home}
n=${1:-100000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'python3 "$repo/tests/integration/pgcluster.py" stop "$dir/pg.json" >/dev/null; rm -rf "$dir"' EXIT
url=$(python3 "$repo/tests/integration/pgcluster.py" start "$dir/pg.json" | tail -1)
password_file=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['password_file'])" "$dir/pg.json")
PGPASSWORD=$(head -1 "$password_file")
export PGPASSWORD
"$PASS_HOME" init --state "$dir/state" --database "$url" --database-password-file "$password_file" >/dev/null
day=86400000
now=$(($(date +%s) * 1000))
old=$((now - 60 * day))
psql -q -v ON_ERROR_STOP=1 "$url" <<SQL
INSERT INTO envelopes (agent_id, seq, created_ms, received_ms, type, size, payload)
SELECT 'agent-' || (i % 100), i, CASE WHEN i <= $n THEN $old + i ELSE $now - $day + i END,
       CASE WHEN i <= $n THEN $old + i + 5 ELSE $now - $day + i + 5 END,
       CASE WHEN i % 2 = 0 THEN 'report' ELSE 'heartbeat' END, 1000, repeat('0', 900)
FROM generate_series(1, 2 * $n) AS i;
INSERT INTO heartbeats (agent_id, seq, sent_ms, received_ms, next_due_ms, payload)
SELECT agent_id, seq, created_ms, received_ms, created_ms + 14400000, payload FROM envelopes
WHERE type = 'heartbeat';
INSERT INTO events (agent_id, seq, idx, "array", code, severity, occurred_ms, payload, family,
                    event_id, kind)
SELECT agent_id, seq, 0, '410123', '307080', 'acute', created_ms, '{"array":"410123"}',
       'hitachi_svp', 'e' || id, 'alert' FROM envelopes WHERE type = 'report';
ANALYZE envelopes; ANALYZE heartbeats; ANALYZE events;
SQL
cat >"$dir/state/home.xml" <<XML
<pass-home schema="1">
  <retention envelopes-days="31" events-days="31"/>
</pass-home>
XML
echo "$((2 * n)) envelopes, $n heartbeats, $n events"
"$PASS_HOME" prune --state "$dir/state" --dry-run
/usr/bin/time -f '%e s wall, %M KB' "$PASS_HOME" prune --state "$dir/state"
