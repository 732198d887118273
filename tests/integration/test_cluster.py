"""Two homes on one PostgreSQL database behind HAProxy, one of them killed with SIGKILL ten times
while 20 agents post 500 envelopes each (docs/scale-out.md, "The cluster test"): every envelope
is stored once, every problem has one ticket, every notification reaches the SMTP server once per
ticket and recipient (by Message-ID), and the database's indexes are sound (amcheck).

The agents are pass-bench's posters (tools/bench/pass_bench.cpp --endpoint), not 20 pass-agent
processes: 20 enrolled bundles whose envelopes are sealed and signed as an agent does and posted
over HTTPS with their client certificates to HAProxy's one address, each posted again on a new
connection until a home answered it, as an agent's spool does."""

import json
import os
import pathlib
import random
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
from xml.sax.saxutils import quoteattr

from passlib import (HOME_BIN, HaProxy, Home, HomeProcess, MailServer, postgres_database,
                     run, test_postgres, wait_for)

BENCH_BIN = os.environ.get("PASS_BENCH_BIN", "pass-bench")
AGENTS = 20
ENVELOPES = 500
PROBLEMS = 3  # per agent, each on the agent's own array: 60 tickets
KILLS = 10
CUSTOMER = "ACME Corp"
RECIPIENTS = ("mia@acme.example", "eli@acme.example")


def home_xml(mail):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<pass-home schema="1">
  <notifications ack-url="https://pass.example.com:9456" retry-initial-seconds="1"
                 retry-max-seconds="2" storm-threshold="100000" rate-limit-per-hour="100000"/>
  <smtp url="{mail.url}" from="PASS home &lt;pass@example.com&gt;" tls="required"
        user="pass" password-file="smtp.password" ca-file={quoteattr(str(mail.cert))}/>
  <customer name="{CUSTOMER}">
    <contact name="Mia Manager" role="management" email="{RECIPIENTS[0]}"/>
    <contact name="Eli Engineer" role="engineer" email="{RECIPIENTS[1]}"/>
  </customer>
</pass-home>
"""


class ClusterTest(unittest.TestCase):

    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="pass-it-cluster-"))
        self.pg = test_postgres()
        url, password_file = postgres_database()
        self.database = urllib.parse.urlparse(url).path.lstrip("/")
        self.mail = MailServer(self.tmp / "smtpd").start()
        self.home = Home(self.tmp, database=url, password_file=password_file)
        (self.home.state / "smtp.password").write_text("secret\n")
        (self.home.state / "home.xml").write_text(home_xml(self.mail))
        self.home.start()
        # The second home on a state of its own, made as docs/scale-out.md adds a home: `init
        # --join` copies the keys and checks them against the database; home.xml and the file it
        # names are the operator's to copy.
        second_state = self.tmp / "home2" / "home"
        run([HOME_BIN, "init", "--state", str(second_state), "--join", str(self.home.state)],
            check=True)
        for name in ("smtp.password", "home.xml"):
            shutil.copy(self.home.state / name, second_state / name)
        self.second = HomeProcess(self.tmp / "home2", second_state).start()
        # Health checks every 300 ms: a restarted home is back in HAProxy within a second.
        self.proxy = HaProxy(self.tmp / "haproxy", [self.home.port, self.second.port],
                             check_interval="300ms").start()

    def tearDown(self):
        self.proxy.stop()
        self.second.stop()
        self.home.stop()
        self.mail.stop()
        if os.environ.get("PASS_KEEP_TMP"):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def sql(self, query):
        """Rows of `query` on the cluster's database, as the superuser: lists of strings."""
        out = self.pg.psql(query, database=self.database)
        return [line.split("|") for line in out.splitlines() if line]

    def one(self, query):
        [[value]] = self.sql(query)
        return value

    def kill_and_restart(self, kills):
        """Kills a home with SIGKILL at random moments, `KILLS` times, and restarts it on its
        port (where HAProxy's `server` line points): each time the home that holds most agents'
        connections, once HAProxy has both homes up (so that one home is always alive)."""
        rng = random.Random()
        homes = {"home1": self.home, "home2": self.second}
        try:
            self._kill_and_restart(rng, homes, kills)
        except BaseException as e:  # reported by the test's thread
            self.killer_error = e

    def _kill_and_restart(self, rng, homes, kills):
        for _ in range(KILLS):
            self.proxy.wait_up(2)
            time.sleep(rng.uniform(0.1, 1.0))
            servers = self.proxy.servers()
            victim = max(homes, key=lambda name: int(servers[name]["scur"]))
            homes[victim].kill()
            kills.append(victim)
            time.sleep(rng.uniform(0.0, 0.3))
            homes[victim].restart()

    def test_two_homes_one_killed_ten_times_store_each_envelope_ticket_and_mail_once(self):
        for i in range(AGENTS):
            self.home.enroll(f"a{i:02}", endpoints=[self.proxy.url], customer=CUSTOMER)
        bundles = self.home.root  # agent-a00 … agent-a19: the folders with an agent.xml
        figures_file = self.tmp / "bench.json"
        started = time.monotonic()
        with open(self.tmp / "bench.log", "w") as log:
            posting = subprocess.Popen(
                [BENCH_BIN, "--endpoint", self.proxy.url, "--bundles", str(bundles),
                 "--envelopes", str(ENVELOPES), "--problems", str(PROBLEMS),
                 "--retry-seconds", "60", "--json", str(figures_file)],
                stdout=log, stderr=subprocess.STDOUT)
        # The kills begin once the agents are connected and posting.
        wait_for(lambda: posting.poll() is not None or sum(
            int(s["stot"]) for s in self.proxy.servers().values()) >= AGENTS,
            "the agents to connect", timeout=60)
        kills = []
        self.killer_error = None
        killer = threading.Thread(target=self.kill_and_restart, args=(kills,))
        killer.start()
        try:
            posting.wait(timeout=150)
        finally:
            killer.join()
        if self.killer_error:
            raise self.killer_error
        bench_log = (self.tmp / "bench.log").read_text()
        self.assertEqual(0, posting.returncode, bench_log)
        self.assertEqual(KILLS, len(kills))
        figures = json.loads(figures_file.read_text())
        sent = AGENTS * ENVELOPES
        self.assertEqual(sent, figures["answered"], bench_log)
        self.assertEqual(sent, figures["accepted"] + figures["duplicates"], bench_log)

        # Every envelope stored exactly once.
        total, distinct = self.sql(
            "SELECT count(*), count(DISTINCT (agent_id, seq)) FROM envelopes")[0]
        self.assertEqual((sent, sent), (int(total), int(distinct)))
        per_agent = self.sql("SELECT count(*), min(seq), max(seq) FROM envelopes GROUP BY agent_id")
        self.assertEqual(AGENTS, len(per_agent))
        self.assertTrue(all(row == [str(ENVELOPES), "1", str(ENVELOPES)] for row in per_agent),
                        per_agent)

        # Every problem one ticket, each counting every one of its alerts.
        problems = AGENTS * PROBLEMS
        self.assertEqual([], self.sql("SELECT dedup_key FROM tickets GROUP BY dedup_key "
                                      "HAVING count(*) > 1"))
        tickets, counted = self.sql("SELECT count(*), sum(count) FROM tickets "
                                    "WHERE kind = 'alert'")[0]
        self.assertEqual((problems, sent), (int(tickets), int(counted)))

        # Every notification once per ticket and recipient: one outbox row each, all sent, and
        # in the SMTP server once by Message-ID.
        self.assertEqual([], self.sql("SELECT ticket_id, recipient FROM outbox "
                                      "GROUP BY ticket_id, recipient HAVING count(*) > 1"))
        rows = int(self.one("SELECT count(*) FROM outbox WHERE channel = 'email'"))
        self.assertEqual(problems * len(RECIPIENTS), rows)
        # A row claimed by a killed home waits for its lease (1 minute) to run out.
        wait_for(lambda: self.one("SELECT count(*) FROM outbox WHERE state <> 'sent'") == "0",
                 "every outbox row sent", timeout=100, interval=0.5)
        ids = {f"<pass-outbox-{r[0]}.{r[1]}@pass>"
               for r in self.sql("SELECT id, created_ms FROM outbox")}
        messages = wait_for(lambda: len(self.mail.message_files()) >= rows and
                            self.mail.messages(), "the mails", timeout=30)
        received = [m["Message-ID"] for m in messages]
        self.assertEqual(ids, set(received))
        duplicates = len(received) - len(set(received))
        # A receiver that does not deduplicate sees a message twice only when a home died after
        # the SMTP server accepted it and before the row was marked sent (docs/scale-out.md).
        print(f"\ncluster test: {sent} envelopes in {figures['seconds']:.1f} s, {KILLS} kills, "
              f"posted again {figures['resent']}, answered duplicate {figures['duplicates']}, "
              f"{rows} mails, {duplicates} delivered twice to the SMTP server, "
              f"{time.monotonic() - started:.0f} s in all")

        # The database's indexes are sound.
        self.pg.psql("CREATE EXTENSION IF NOT EXISTS amcheck", database=self.database)
        checked = self.one(
            "SELECT count(bt_index_check(c.oid, true)) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
            "WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace")
        self.assertGreater(int(checked), 10)


if __name__ == "__main__":
    unittest.main()
