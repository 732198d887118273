"""`pass-home migrate --to postgresql://…`: an SQLite home with agents, tickets in every state
with their log, events, sent and pending notifications and a silence, copied into PostgreSQL,
serves the same answers, and goes on deduplicating into the tickets it had
(docs/scale-out.md, "Moving an SQLite home to PostgreSQL")."""

import hashlib
import pathlib
import sys
import tempfile
import unittest

from passlib import (HOME_BIN, Home, MailServer, RefusedPort, postgres_database, remove_tmp,
                     run, test_postgres, wait_for)
from test_tickets import ACUTE_CODE, home_xml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

SERIALS = ["470849", "470850", "470851"]
OTHER_CODE = "DC0124"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class MigrateTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pass-it-migrate-"))
        self.home = Home(self.tmp)
        self.mail = MailServer(self.tmp / "smtpd").start()
        (self.home.state / "smtp.password").write_text("secret\n")
        (self.home.state / "twilio.token").write_text("token-1\n")
        # Nobody listens for the SMS gateway: its messages stay pending, retried. The port is
        # held, so that no server of a test running beside this one can answer on it.
        self.sms_port = RefusedPort()
        sms_url = f"http://127.0.0.1:{self.sms_port.port}/2010-04-01/Accounts/AC1/Messages.json"
        (self.home.state / "home.xml").write_text(home_xml(self.mail, sms_url))
        self.url, self.password_file = postgres_database()

    def tearDown(self):
        self.home.stop()
        self.mail.stop()
        self.sms_port.close()
        remove_tmp(self.tmp)

    def cli(self, *args):
        return run([HOME_BIN, *args, "--state", str(self.home.state)])

    def migrate(self, *args, url=None, password_file=None):
        return self.cli("migrate", "--to", url or self.url, "--password-file",
                        str(password_file or self.password_file), *args)

    def run_agent(self, bundle):
        proc = bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)

    def svp_agent(self, name, logs):
        bundle = self.home.enroll(name)
        for serial, log in logs:
            bundle.add_array("hitachi-svp", serial=serial, model="DKC710", name=f"VSP-{serial}",
                             sim_dir=str(log.dir), pattern="sim*.log")
        self.run_agent(bundle)  # the baseline
        return bundle

    def views(self):
        """What the operator sees, command by command."""
        tickets = self.home.json("tickets", "list", "--all")
        return {
            "tickets": tickets,
            "shown": [self.home.json("tickets", "show", str(t["id"])) for t in tickets],
            "agents": self.home.json("agents"),
            "events": self.home.json("events"),
            "messages": self.home.json("messages"),
            "silences": self.home.json("silence", "list", "--all"),
        }


class MigrateTest(MigrateTestCase):
    def test_a_migrated_home_serves_the_same_and_dedups_into_its_live_tickets(self):
        self.home.start()
        logs = {s: SvpLog(self.tmp / f"svp-{s}" / "SIM") for s in SERIALS}
        first = self.svp_agent("svp-01", [(s, logs[s]) for s in SERIALS[:2]])
        second = self.svp_agent("svp-02", [(SERIALS[2], logs[SERIALS[2]])])
        self.home.enroll("never-heard-of")
        for s in SERIALS:
            logs[s].raise_sim(ACUTE_CODE, "Acute", part="DKC", text=f"journal on {s}")
        self.run_agent(first)
        self.run_agent(second)
        by_array = {t["array"]: t for t in self.home.json("tickets", "list")}
        self.assertEqual(set(SERIALS), set(by_array))
        acked, resolved, live = (by_array[s]["id"] for s in SERIALS)
        for verb, n in (("ack", acked), ("resolve", resolved)):
            proc = self.cli("tickets", verb, str(n), "--by", "eli", "--note", "seen")
            self.assertEqual(0, proc.returncode, proc.stderr)
        proc = self.cli("silence", "add", "--array", "470899", "--until", "+2h", "--reason",
                        "disk swap", "--by", "eli")
        self.assertEqual(0, proc.returncode, proc.stderr)

        def outbox():
            return [m for t in self.home.json("tickets", "list", "--all")
                    for m in self.home.json("tickets", "show", str(t["id"]))["messages"]]
        # Two mails per ticket are sent, and the resolved ticket's two "resolved" mails (the
        # outbox worker sends those at its next look, a second or two after the CLI queued
        # them); the SMS stay pending (their gateway is down).
        def mails(state):
            return sum(m["channel"] == "email" and m["state"] == state for m in outbox())
        wait_for(lambda: mails("sent") == 8, "8 mails sent")
        self.assertEqual(0, mails("pending"))
        self.home.stop()
        states = {m["state"] for m in outbox()}
        self.assertEqual({"sent", "pending"}, states)

        before = self.views()
        sqlite_hash = sha256(self.home.state / "home.db")
        proc = self.migrate()
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertRegex(proc.stdout, r"(?m)^tickets +3$")
        self.assertRegex(proc.stdout, r"(?m)^agents +3$")
        self.assertIn(self.url, proc.stdout)
        self.assertTrue((self.home.state / "database.xml").exists())
        self.assertEqual(sqlite_hash, sha256(self.home.state / "home.db"),
                         "the SQLite store is kept as it was")
        after = self.views()
        for view in before:
            self.assertEqual(before[view], after[view], view)
        database = self.url.rsplit("/", 1)[1]
        self.assertEqual("3", test_postgres().psql("SELECT count(*) FROM tickets", database))

        # Served from PostgreSQL now: the same problem counts into its migrated live ticket, a
        # new problem gets the next ticket number.
        self.home.restart()  # on its port, where the bundles point
        logs[SERIALS[2]].raise_sim(ACUTE_CODE, "Acute", part="DKC", text="again")
        logs[SERIALS[0]].raise_sim(OTHER_CODE, "Acute", part="DKC", text="another problem")
        self.run_agent(second)
        self.run_agent(first)
        tickets = {t["id"]: t for t in self.home.json("tickets", "list", "--all")}
        self.assertEqual(2, tickets[live]["count"])
        self.assertEqual("open", tickets[live]["state"])
        new = max(tickets)
        self.assertEqual(max(live, acked, resolved) + 1, new)
        self.assertEqual((SERIALS[0], OTHER_CODE), (tickets[new]["array"], tickets[new]["code"]))
        self.assertEqual(4, len(tickets))


class MigrateRefusalTest(MigrateTestCase):
    def assertRefused(self, proc, says):
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn(says, proc.stderr)
        self.assertFalse((self.home.state / "database.xml").exists(), "the state is unchanged")

    def test_a_non_empty_target_is_refused(self):
        other = Home(self.tmp / "other", database=self.url, password_file=self.password_file)
        other.enroll("someone")
        self.assertRefused(self.migrate(), "table agents holds 1 rows")

    def test_a_bad_url_or_password_file_is_refused(self):
        self.assertRefused(self.migrate(url="mysql://pass@127.0.0.1/pass"), "postgresql://")
        self.assertRefused(self.migrate(url=self.url.replace("pass@", "pass:pw@")),
                           "carries a password")
        self.assertRefused(self.migrate(password_file=self.tmp / "missing"),
                           "cannot read the password")

    def test_a_serving_home_is_refused(self):
        self.home.start()
        self.assertRefused(self.migrate(), "a pass-home serve is running")
        self.home.stop()
        proc = self.migrate()
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        again = self.migrate()
        self.assertEqual(2, again.returncode, again.stderr)
        self.assertIn("PostgreSQL already", again.stderr)


if __name__ == "__main__":
    unittest.main()
