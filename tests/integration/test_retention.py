"""Retention and the time-driven lease with real pass-home processes on SQLite
(docs/scale-out.md): `pass-home prune` (dry run and real) reports per table what it pruned, a
serving home takes the `time-driven` lease (a lone home always does), prunes on its own and logs
it, and releases the lease when it stops."""

import shutil
import sqlite3
import tempfile
import time
import unittest

from passlib import HOME_BIN, Home, run, wait_for

DAY_MS = 86_400_000


def fill(db_path, old, new):
    """`old` envelopes received 60 days ago and `new` ones an hour ago (half of each are
    heartbeats, the rest reports with one event each), written straight into home.db."""
    now = int(time.time() * 1000)
    rows = []
    for i in range(1, old + new + 1):
        at = (now - 60 * DAY_MS if i <= old else now - 3_600_000) + i
        rows.append((i, f"agent-{i % 7}", i, at, at + 5, "report" if i % 2 == 0 else "heartbeat"))
    with sqlite3.connect(db_path) as db:
        db.executemany("INSERT INTO envelopes (id, agent_id, seq, created_ms, received_ms, type, "
                       "size, payload) VALUES (?, ?, ?, ?, ?, ?, 100, '{}')", rows)
        db.execute("INSERT INTO envelope_keys (agent_id, seq, envelope_id) "
                   "SELECT agent_id, seq, id FROM envelopes ORDER BY agent_id, seq")
        db.execute("UPDATE envelope_keys_merged SET upto = (SELECT max(id) FROM envelopes)")
        db.execute("INSERT INTO heartbeats (agent_id, seq, sent_ms, received_ms, next_due_ms, "
                   "payload) SELECT agent_id, seq, created_ms, received_ms, NULL, '{}' "
                   "FROM envelopes WHERE type = 'heartbeat'")
        db.execute("INSERT INTO events (agent_id, seq, idx, array, code, severity, occurred_ms, "
                   "payload, family, event_id, kind) SELECT agent_id, seq, 0, '410123', "
                   "'307080', 'acute', created_ms, '{}', 'hitachi_svp', 'e' || id, 'alert' "
                   "FROM envelopes WHERE type = 'report'")


def count(db_path, table):
    with sqlite3.connect(db_path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


class RetentionTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pass-it-")
        self.home = Home(self.tmp)
        self.db = self.home.state / "home.db"
        fill(self.db, old=40, new=10)

    def tearDown(self):
        self.home.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def retention(self, attributes):
        (self.home.state / "home.xml").write_text(
            f'<pass-home schema="1">\n  <retention {attributes}/>\n</pass-home>\n')

    def prune(self, *extra):
        return run([HOME_BIN, "prune", "--state", str(self.home.state), *extra], check=True)

    def test_prune_reports_per_table_and_a_dry_run_prunes_nothing(self):
        self.retention('envelopes-days="31" events-days="31"')
        dry = self.prune("--dry-run")
        self.assertIn("would prune (dry run)", dry.stdout)
        self.assertRegex(dry.stdout, r"envelopes\s+40 \(older than 31 days\)")
        self.assertEqual(count(self.db, "envelopes"), 50)

        done = self.prune()
        self.assertIn("pruned at", done.stdout)
        self.assertRegex(done.stdout, r"envelopes\s+40 ")
        self.assertRegex(done.stdout, r"heartbeats\s+20 ")
        self.assertRegex(done.stdout, r"events\s+20 ")
        self.assertEqual(count(self.db, "envelopes"), 10)
        self.assertEqual(count(self.db, "envelope_keys"), 10)
        self.assertEqual(count(self.db, "events"), 5)
        self.assertEqual(len(self.home.messages()), 10)
        again = self.prune()
        self.assertRegex(again.stdout, r"envelopes\s+0 ")

    def test_without_retention_nothing_is_pruned(self):
        out = self.prune()
        self.assertIn("nothing to prune", out.stdout)
        self.assertEqual(count(self.db, "envelopes"), 50)

    def test_an_envelope_age_under_the_replay_window_is_refused(self):
        self.retention('envelopes-days="7"')
        proc = run([HOME_BIN, "prune", "--state", str(self.home.state)])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("home.xml:2", proc.stderr)
        self.assertIn("envelopes-days", proc.stderr)
        self.assertEqual(count(self.db, "envelopes"), 50)

    def test_serving_home_takes_the_lease_prunes_and_releases_it(self):
        self.retention('envelopes-days="31" events-days="31"')
        self.home.start()
        taken = wait_for(lambda: self.home.log_events("lease_taken"), "lease_taken")
        self.assertEqual(taken[0]["lease"], "time-driven")
        pruned = wait_for(lambda: self.home.log_events("pruned"), "the home to prune")[0]
        self.assertEqual((pruned["envelopes"], pruned["heartbeats"], pruned["events"]),
                         (40, 20, 20))
        self.assertRegex(taken[0]["holder"], r"^.+:\d+:[0-9a-f]{8}$")  # host:pid:random
        self.assertEqual(count(self.db, "envelopes"), 10)
        self.home.stop()
        self.assertEqual(len(self.home.log_events("lease_released")), 1)
        self.assertEqual(self.home.log_events("lease_lost"), [])


if __name__ == "__main__":
    unittest.main()
