"""The throwaway PostgreSQL cluster of the tests (pgcluster.py): a real, durable server that an
unprivileged account runs, reachable as the home reaches it, and gone afterwards."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

from passlib import wait_for
from pgcluster import BIN, PgCluster


def running(pid):
    """True while the process runs (a zombie its parent has not reaped yet has ended)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class PgClusterTest(unittest.TestCase):

    def tcp_query(self, pg, sql, database="pass"):
        """sql as the role `pass` over TCP with its password, as a home connects."""
        with tempfile.TemporaryDirectory() as tmp:
            pgpass = pathlib.Path(tmp) / "pgpass"
            pgpass.write_text(f"127.0.0.1:{pg.port}:*:pass:{pg.password_file.read_text().strip()}\n")
            pgpass.chmod(0o600)
            env = dict(os.environ, PGPASSFILE=str(pgpass))
            proc = subprocess.run([str(BIN / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                   pg.url_of(database), "-c", sql],
                                  capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return proc.stdout.strip()

    def test_a_cluster_serves_over_tcp_with_fsync_and_is_removed(self):
        with PgCluster() as pg:
            folder = pg.dir
            self.assertEqual(self.tcp_query(pg, "SELECT current_user"), "pass")
            self.assertEqual(self.tcp_query(pg, "SHOW fsync"), "on")
            self.assertEqual(self.tcp_query(pg, "SHOW synchronous_commit"), "on")
            self.assertEqual(self.tcp_query(pg, "SHOW listen_addresses"), "127.0.0.1")
            self.assertEqual(self.tcp_query(pg, "SHOW server_version_num")[:2], "15")
            # The server runs as an account that is not root.
            pid = int((pg.data / "postmaster.pid").read_text().split()[0])
            self.assertNotEqual(os.stat(f"/proc/{pid}").st_uid, 0)
            # Tests make databases of their own.
            url = pg.create_database("t_other")
            self.assertTrue(url.endswith(f":{pg.port}/t_other"), url)
            self.assertEqual(self.tcp_query(pg, "SELECT current_database()", "t_other"),
                             "t_other")
            # The password is kept from other accounts.
            self.assertEqual(pg.password_file.stat().st_mode & 0o077, 0)
        self.assertFalse(folder.exists())
        wait_for(lambda: not running(pid), f"the server (pid {pid}) to end", timeout=30)

    def test_the_script_starts_and_stops_a_cluster_for_ctest(self):
        script = pathlib.Path(__file__).with_name("pgcluster.py")
        with tempfile.TemporaryDirectory() as tmp:
            info_file = pathlib.Path(tmp) / "pg.json"
            started = subprocess.run([sys.executable, str(script), "start", str(info_file)],
                                     capture_output=True, text=True, timeout=180)
            self.assertEqual(started.returncode, 0, started.stderr)
            info = json.loads(info_file.read_text())
            try:
                self.assertEqual(started.stdout.strip(), info["url"])
                pg = PgCluster.from_info(info)
                self.assertEqual(self.tcp_query(pg, "SELECT 40 + 2"), "42")
            finally:
                stopped = subprocess.run([sys.executable, str(script), "stop", str(info_file)],
                                         capture_output=True, text=True, timeout=180)
            self.assertEqual(stopped.returncode, 0, stopped.stderr)
            self.assertFalse(info_file.exists())
            self.assertFalse(pathlib.Path(info["dir"]).exists())

    def test_a_failed_start_leaves_nothing_behind(self):
        pg = PgCluster()
        # A server that cannot start: its configuration names a setting that does not exist.
        original = pg._write_config

        def broken_config():
            original()
            with open(pg.data / "postgresql.auto.conf", "a") as conf:
                conf.write("no_such_setting = 1\n")

        pg._write_config = broken_config
        with self.assertRaises(RuntimeError) as raised:
            pg.start(deadline_s=20)
        self.assertIn("no_such_setting", str(raised.exception))
        self.assertIsNone(pg.dir)


if __name__ == "__main__":
    unittest.main()
