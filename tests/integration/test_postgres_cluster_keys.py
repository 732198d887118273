"""Every home of a cluster has the same keys (docs/scale-out.md, "Every home has the same keys"
and "Adding and removing a home"): `pass-home init --join` makes a home from a copy of a running
home's state, and it serves the same agents; a home initialised apart against the same database
is refused at serve, naming the keys that differ; a rotated HPKE key is the cluster's, and a
home without it is refused until it holds a copy. The PostgreSQL cluster is ctest's fixture."""

import pathlib
import stat
import subprocess
import tempfile
import unittest

from passlib import HOME_BIN, Home, HomeProcess, postgres_database, remove_tmp, run


def tar_copy(source, target):
    """The copy docs/scale-out.md shows (tar, modes kept), to a folder on "the new machine"."""
    target.mkdir(parents=True)
    subprocess.run(f"tar -cpf - -C '{source}' . | tar -xpf - -C '{target}'", shell=True,
                   check=True)


class ClusterKeysTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pass-it-pg-keys-"))
        self.url, self.password_file = postgres_database()
        self.first = Home(self.tmp / "first", database=self.url,
                          password_file=self.password_file).start()
        self.others = []

    def tearDown(self):
        for home in self.others:
            home.stop()
        self.first.stop()
        remove_tmp(self.tmp)

    def join(self, name):
        """A home made by `init --join` from a tar copy of the first home's state."""
        copy = self.tmp / f"{name}-copy"
        tar_copy(self.first.state, copy)
        state = self.tmp / name / "home"
        proc = run([HOME_BIN, "init", "--state", str(state), "--join", str(copy)])
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("joined", proc.stdout)
        home = HomeProcess(self.tmp / name, state)
        self.others.append(home)
        return home

    def refused_serve(self, state):
        """`pass-home serve` on `state`, expected to refuse to start: its stderr."""
        proc = run([HOME_BIN, "serve", "--state", str(state), "--listen", "127.0.0.1:0",
                    "--admin-listen", "127.0.0.1:0"])
        self.assertNotEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('"event":"startup_failed"', proc.stdout + proc.stderr)
        self.assertIn('"code":"cluster_keys"', proc.stdout + proc.stderr)
        return proc.stderr

    def send_test(self, bundle, home):
        bundle.set_endpoints([home.url])
        proc = bundle.agent("test")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn(home.url, proc.stdout)

    def test_a_joined_home_serves_the_agents_of_the_first(self):
        bundle = self.first.enroll("svp-01")
        self.send_test(bundle, self.first)
        second = self.join("second").start()
        for name in ("ca.key", "server.key", "home-hpke.key", "admin.token", "ack.key",
                     "database-password"):
            mode = stat.S_IMODE((second.state / name).stat().st_mode)
            self.assertEqual(0o600, mode, name)
        self.send_test(bundle, second)
        self.assertEqual(2, len(self.first.messages(bundle.agent_id)))
        # The second home's admin API takes the first's token.
        self.assertEqual((self.first.state / "admin.token").read_text(),
                         (second.state / "admin.token").read_text())

    def test_a_home_initialised_apart_is_refused_naming_the_keys(self):
        apart = Home(self.tmp / "apart", database=self.url, password_file=self.password_file)
        why = self.refused_serve(apart.state)
        for named in ("the CA certificate", "the server certificate's key",
                      "the current HPKE key", "the admin token", "the acknowledgement key",
                      "ca.key, ca.crt", "pass-home init --state NEW --join EXISTING_STATE"):
            self.assertIn(named, why)
        # The first home is untouched by the refusal: it restarts with its keys.
        self.first.stop()
        self.first.restart()

    def test_a_rotated_hpke_key_is_the_clusters_until_every_home_holds_it(self):
        bundle = self.first.enroll("svp-01")
        second = self.join("second").start()
        proc = run([HOME_BIN, "rotate-hpke-key", "--state", str(self.first.state)])
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("copy hpke-keys.json and home-hpke.pub", proc.stdout)
        # The home that rotated restarts; the other, without the new key, is refused.
        self.first.stop()
        self.first.restart()
        second.stop()
        why = self.refused_serve(second.state)
        self.assertIn("the current HPKE key", why)
        self.assertIn("hpke-keys.json", why)
        self.assertNotIn("the CA certificate", why)
        # With a copy of the key ring it serves again, and the agents sealing to either key.
        for name in ("hpke-keys.json", "home-hpke.pub"):
            (second.state / name).write_bytes((self.first.state / name).read_bytes())
        (second.state / "home-hpke.key").unlink()
        second.restart()
        self.send_test(bundle, second)

    def test_join_refuses_an_sqlite_home_and_a_state_that_holds_a_home(self):
        sqlite = Home(self.tmp / "sqlite")
        proc = run([HOME_BIN, "init", "--state", str(self.tmp / "new"), "--join",
                    str(sqlite.state)])
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn("SQLite", proc.stderr)
        self.assertIn("pass-home migrate", proc.stderr)
        self.assertFalse((self.tmp / "new").exists())

        proc = run([HOME_BIN, "init", "--state", str(sqlite.state), "--join",
                    str(self.first.state)])
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn("already holds a pass-home state", proc.stderr)

        proc = run([HOME_BIN, "init", "--state", str(self.tmp / "new"), "--join",
                    str(self.first.state), "--database", self.url])
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn("--join", proc.stderr)


if __name__ == "__main__":
    unittest.main()
