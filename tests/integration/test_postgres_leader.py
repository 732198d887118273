"""Two pass-home processes on one PostgreSQL database elect one of them to run the time-driven
work (docs/scale-out.md, "Time-driven work on one home"): the first takes the `time-driven`
lease; killed with SIGKILL, the other takes it over within 10 s; stopped cleanly, at once."""

import os
import pathlib
import shutil
import tempfile
import time
import unittest

from passlib import Home, postgres_database, test_postgres, wait_for


class CopiedHome(Home):
    """A second home of the cluster: a copy of the first one's state (same CA, keys, secrets
    and database.xml), not initialized again."""

    def __init__(self, root, state):
        self.root = pathlib.Path(root)
        self.state = self.root / "home"
        shutil.copytree(state, self.state)
        self.proc = None
        self.port = None
        self.log_path = self.root / "home.log"


class TwoHomesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pass-it-lead-"))
        self.url, password_file = postgres_database()
        self.a = Home(self.tmp / "a", database=self.url, password_file=password_file)
        self.a.start()  # writes STATE/ack.key, which the copy then shares
        self.b = CopiedHome(self.tmp / "b", self.a.state)
        self.holder_a = wait_for(lambda: self.a.log_events("lease_taken"),
                                 "the first home to take the lease")[0]["holder"]
        self.b.start()

    def tearDown(self):
        for home in (self.a, self.b):
            home.stop()
        if os.environ.get("PASS_KEEP_TMP"):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def holder(self):
        rows = test_postgres().psql(
            "SELECT holder FROM leases WHERE name = 'time-driven' AND expires_ms >= "
            "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            database=self.url.rsplit("/", 1)[1]).strip()
        return rows or None

    def test_a_leader_killed_with_sigkill_is_replaced_within_10_s(self):
        self.assertEqual(self.holder(), self.holder_a)
        self.assertEqual(self.b.log_events("lease_taken"), [])
        self.a.proc.kill()  # SIGKILL: no goodbye, the lease stays until it runs out
        self.a.proc.wait()
        killed = time.monotonic()
        taken = wait_for(lambda: self.b.log_events("lease_taken"), "the second home to take over",
                         timeout=15)
        took = time.monotonic() - killed
        print(f"take-over after SIGKILL: {took:.1f} s")
        self.assertLess(took, 10)
        self.assertRegex(taken[0]["holder"], r"^.+:\d+:[0-9a-f]{8}$")
        self.assertNotEqual(taken[0]["holder"], self.holder_a)
        self.assertEqual(self.holder(), taken[0]["holder"])

    def test_a_clean_stop_hands_the_lease_over_at_once(self):
        self.a.stop()
        self.assertEqual(len(self.a.log_events("lease_released")), 1)
        stopped = time.monotonic()
        wait_for(lambda: self.b.log_events("lease_taken"), "the second home to take over",
                 timeout=15)
        self.assertLess(time.monotonic() - stopped, 4)  # one renewal (2 s), not the lease (6 s)


if __name__ == "__main__":
    unittest.main()
