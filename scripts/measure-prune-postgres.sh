#!/bin/sh
# Measures retention's batches on PostgreSQL (docs/performance.md, "Retention"): a throwaway
# cluster (tests/integration/pgcluster.py) with the home's schema, N old envelopes (half
# heartbeats), one event per report and N newer envelopes; then the statements of each batch
# of ClusterStore::prune (store/postgres/cluster_store.cpp) as psql runs them, one transaction
# a batch, timed (written before `pass-home init --database` existed; the statements are
# ClusterStore's).
#
#   scripts/measure-prune-postgres.sh [N] (default 100000 old + 100000 new: 200,000 envelopes)
set -eu
n=${1:-100000}
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'python3 "$repo/tests/integration/pgcluster.py" stop "$dir/pg.json" >/dev/null; rm -rf "$dir"' EXIT
url=$(python3 "$repo/tests/integration/pgcluster.py" start "$dir/pg.json" | tail -1)
PGPASSWORD=$(python3 -c "import json,sys; print(open(json.load(open(sys.argv[1]))['password_file']).readline().strip())" "$dir/pg.json")
export PGPASSWORD
psql -q -v ON_ERROR_STOP=1 "$url" -f "$repo/home/src/store/postgres/migrations/0001_schema.sql"
day=86400000
now=$(($(date +%s) * 1000))
old=$((now - 60 * day))
cut=$((now - 31 * day))
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
python3 - "$cut" "$n" >"$dir/batches.sql" <<'PY'
import sys
cut, n = int(sys.argv[1]), int(sys.argv[2])
print("\\timing on")
def batches(table, due, newer, count):
    for b in range(count):
        after, hi = b * 1000, (b + 1) * 1000
        print("BEGIN;")
        print(f"SELECT max(id), count(*) FROM (SELECT id FROM {table} WHERE id > {after} "
              f"ORDER BY id LIMIT 1000) AS batch;")
        print(f"DELETE FROM {table} WHERE id > {after} AND id <= {hi} AND {due};")
        print(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id > {after} AND id <= {hi} "
              f"AND {newer});")
        print("COMMIT;")
batches("envelopes", f"received_ms < {cut} AND created_ms < {cut}", f"received_ms >= {cut}",
        n // 1000 + 1)
batches("heartbeats", f"received_ms < {cut}", f"received_ms >= {cut}", n // 2000 + 1)
batches("events", f"occurred_ms < {cut} AND (coalesce(\"array\", ''), coalesce(code, '')) "
        f"NOT IN (SELECT \"array\", code FROM tickets WHERE state <> 'resolved')",
        f"{cut}::bigint IS NULL", n // 1000 + 1)
PY
psql -q -v ON_ERROR_STOP=1 "$url" -f "$dir/batches.sql" | grep '^Time:' |
  awk '{t += $2; n++; if (n % 5 == 0) {b++; s += t; if (t > m) m = t; t = 0}}
       END {printf "%d batches, the longest %.1f ms, mean %.1f ms, all %.1f s\n", b, m, s / b, s / 1000}'
psql -qAt "$url" -c "SELECT 'left: ' || (SELECT count(*) FROM envelopes) || ' envelopes, ' ||
  (SELECT count(*) FROM heartbeats) || ' heartbeats, ' || (SELECT count(*) FROM events) || ' events'"
