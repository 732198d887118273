"""A home on PostgreSQL end to end: `pass-home init --database`, serve, an agent's alert, a
ticket that `pass-home tickets` shows from the database (docs/scale-out.md, "The state's
database"). The PostgreSQL cluster is ctest's fixture (or one started for a run by hand)."""

import os
import pathlib
import shutil
import stat
import sys
import tempfile
import unittest

from passlib import HOME_BIN, Home, postgres_database, run, test_postgres

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

SERIAL = "470849"
ACUTE_CODE = "DC0123"


class PostgresHomeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pass-it-pg-"))
        self.url, self.password_file = postgres_database()
        self.home = Home(self.tmp, database=self.url, password_file=self.password_file)

    def tearDown(self):
        self.home.stop()
        if os.environ.get("PASS_KEEP_TMP"):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def cli(self, *args):
        return run([HOME_BIN, *args, "--state", str(self.home.state)])

    def sql(self, query):
        return test_postgres().psql(query, database=self.url.rsplit("/", 1)[1])

    def test_init_records_the_database_in_the_state(self):
        state = self.home.state
        self.assertFalse((state / "home.db").exists(), "no SQLite store beside PostgreSQL")
        text = (state / "database.xml").read_text()
        self.assertIn(f'url="{self.url}"', text)
        self.assertIn('password-file="database-password"', text)
        copied = state / "database-password"
        self.assertEqual(pathlib.Path(self.password_file).read_text().splitlines()[0],
                         copied.read_text().strip())
        self.assertEqual(0o600, stat.S_IMODE(copied.stat().st_mode))
        # init migrated the database.
        self.assertEqual("1", self.sql("SELECT count(*) FROM schema_version WHERE version = 1"))

    def test_an_alert_becomes_a_ticket_in_postgresql(self):
        self.home.start()
        log = SvpLog(self.tmp / "svp" / "SIM")
        bundle = self.home.enroll("svp-01")
        bundle.add_array("hitachi-svp", serial=SERIAL, model="DKC710", name=f"VSP-{SERIAL}",
                         sim_dir=str(log.dir), pattern="sim*.log")
        proc = bundle.agent("run")  # the baseline
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        log.raise_sim(ACUTE_CODE, "Acute", part="DKC", text="Journal group 01 suspended")
        proc = bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)

        [t] = self.home.json("tickets", "list")
        self.assertEqual(("alert", "open", SERIAL, ACUTE_CODE),
                         (t["kind"], t["state"], t["array"], t["code"]))
        self.assertEqual([bundle.agent_id], list(self.home.agents()))
        self.assertTrue(any(e["array"] == SERIAL for e in self.home.events()))
        # ... and they are PostgreSQL's rows.
        self.assertEqual(f"{t['id']}|{ACUTE_CODE}", self.sql("SELECT id, code FROM tickets"))
        self.assertEqual(bundle.agent_id, self.sql("SELECT id FROM agents"))

    def test_a_bad_database_xml_names_file_line_and_field(self):
        (self.home.state / "database.xml").write_text(
            '<pass-home-database schema="1">\n'
            '  <postgresql url="mysql://db/pass" password-file="database-password"/>\n'
            '</pass-home-database>\n')
        proc = self.cli("agents")
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn(f"{self.home.state / 'database.xml'}:2: ", proc.stderr)
        self.assertIn("url", proc.stderr)
        (self.home.state / "database.xml").write_text(
            '<pass-home-database schema="1">\n  <postgresql/>\n</pass-home-database>\n')
        proc = self.cli("tickets", "list")
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn("database.xml:2", proc.stderr)
        self.assertIn("url", proc.stderr)


class PostgresInitRefusalTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pass-it-pg-init-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def init(self, *args):
        return run([HOME_BIN, "init", "--state", str(self.tmp / "home"), *args])

    def test_an_unusable_database_fails_before_anything_is_written(self):
        url, password_file = postgres_database()
        wrong = self.tmp / "wrong-password"
        wrong.write_text("not-the-password\n")
        for args, says in [
            (["--database", url, "--database-password-file", str(wrong)],
             "password authentication failed"),
            (["--database", url, "--database-password-file", str(self.tmp / "missing")],
             "cannot read the password"),
            (["--database", url.replace("pass@", "pass:secret@"),
              "--database-password-file", str(password_file)], "carries a password"),
            (["--database", url + "-no-such-db", "--database-password-file",
              str(password_file)], "does not exist"),
        ]:
            with self.subTest(says):
                proc = self.init(*args)
                self.assertNotEqual(0, proc.returncode)
                self.assertIn(says, proc.stderr)
                self.assertNotIn("not-the-password", proc.stderr)
                self.assertFalse((self.tmp / "home" / "ca.key").exists())

    def test_a_password_file_needs_a_database(self):
        proc = self.init("--database-password-file", "/dev/null")
        self.assertEqual(2, proc.returncode)
        self.assertIn("--database-password-file needs --database", proc.stderr)


if __name__ == "__main__":
    unittest.main()
