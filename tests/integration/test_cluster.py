"""Two homes on one PostgreSQL database behind HAProxy, one of them killed with SIGKILL ten times
while 20 agents post 500 envelopes each (docs/scale-out.md, "The cluster test"): every envelope
is stored once, every problem has one ticket, every notification reaches the SMTP server once per
ticket and recipient (by Message-ID), and the database's indexes are sound (amcheck). Then a
silent agent: one heartbeat, and the home that runs the watchdog killed with SIGKILL just before
the agent becomes overdue: the other home takes the watchdog over and opens its one
missing-heartbeat ticket, mailed once to each recipient.

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
# The silent agent's heartbeat interval and the watchdog's grace (home.xml): missing 2 intervals
# after its one heartbeat arrived. Its site has no other agent: no `site_silent` ticket.
HEARTBEAT_SECONDS = 4
GRACE_HEARTBEATS = 1
SILENT_SITE = "Hamburg DC2"


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
  <watchdog interval-seconds="1" grace-heartbeats="{GRACE_HEARTBEATS}"/>
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

    LEASE_HOLDER = ("SELECT holder FROM leases WHERE name = 'time-driven' AND expires_ms >= "
                    "(extract(epoch FROM clock_timestamp()) * 1000)::bigint")

    def message_ids(self, where):
        """The Message-IDs of the outbox rows `where`."""
        return {f"<pass-outbox-{r[0]}.{r[1]}@pass>"
                for r in self.sql(f"SELECT id, created_ms FROM outbox WHERE {where}")}

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

        self.assertEqual(problems * len(RECIPIENTS), int(self.one(
            "SELECT count(*) FROM outbox o JOIN tickets t ON t.id = o.ticket_id "
            "WHERE o.channel = 'email' AND t.kind = 'alert'")))

        silent_ticket, took = self.silent_agent_across_a_killed_watchdog_home()

        # Every notification once per ticket and recipient: one outbox row each, all sent, and
        # in the SMTP server once by Message-ID.
        self.assertEqual([], self.sql("SELECT ticket_id, recipient FROM outbox "
                                      "GROUP BY ticket_id, recipient HAVING count(*) > 1"))
        rows = int(self.one("SELECT count(*) FROM outbox WHERE channel = 'email'"))
        self.assertEqual((problems + 1) * len(RECIPIENTS), rows)
        # A row claimed by a killed home waits for its lease (1 minute) to run out.
        wait_for(lambda: self.one("SELECT count(*) FROM outbox WHERE state <> 'sent'") == "0",
                 "every outbox row sent", timeout=100, interval=0.5)
        ids = self.message_ids("TRUE")
        messages = wait_for(lambda: len(self.mail.message_files()) >= rows and
                            self.mail.messages(), "the mails", timeout=30)
        received = [m["Message-ID"] for m in messages]
        self.assertEqual(ids, set(received))
        duplicates = len(received) - len(set(received))
        # The silent agent's ticket: one mail to each recipient, by Message-ID and by count (the
        # kill was before the ticket existed, so no home died while sending these).
        silent_ids = self.message_ids(f"ticket_id = {silent_ticket}")
        self.assertEqual(len(RECIPIENTS), len(silent_ids))
        silent_mails = [m for m in messages if m["Message-ID"] in silent_ids]
        self.assertEqual(sorted(RECIPIENTS), sorted(m["Delivered-To"] for m in silent_mails))
        for m in silent_mails:
            self.assertIn("missing heartbeat from agent silent", str(m["Subject"]))
        # A receiver that does not deduplicate sees a message twice only when a home died after
        # the SMTP server accepted it and before the row was marked sent (docs/scale-out.md).
        print(f"\ncluster test: {sent} envelopes in {figures['seconds']:.1f} s, {KILLS} kills, "
              f"posted again {figures['resent']}, answered duplicate {figures['duplicates']}, "
              f"{rows} mails, {duplicates} delivered twice to the SMTP server, silent agent's "
              f"ticket {took:.1f} s after the watchdog's home was killed, "
              f"{time.monotonic() - started:.0f} s in all")

        # The database's indexes are sound.
        self.pg.psql("CREATE EXTENSION IF NOT EXISTS amcheck", database=self.database)
        checked = self.one(
            "SELECT count(bt_index_check(c.oid, true)) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
            "WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace")
        self.assertGreater(int(checked), 10)

    def silent_agent_across_a_killed_watchdog_home(self):
        """One heartbeat due in HEARTBEAT_SECONDS, then silence. The home holding the
        `time-driven` lease is killed with SIGKILL two seconds before the agent becomes overdue
        and restarted: it never saw the agent overdue, and nobody runs the watchdog until its
        lease runs out (at most 6 s after its last renewal) and a home takes the lease over
        (the other, or the restarted one) and runs a pass at once: the ticket, opened after the
        kill, is the new leader's. Returns the ticket's id and how long after the kill it was
        opened."""
        silent = self.tmp / "silent"  # pass-bench posts from every bundle of the folder
        bundle = self.home.enroll("silent", endpoints=[self.proxy.url], customer=CUSTOMER,
                                  site=SILENT_SITE, out=silent / "agent-silent")
        agent = bundle.agent_id
        proc = run([BENCH_BIN, "--endpoint", self.proxy.url, "--bundles", str(silent),
                    "--envelopes", "1", "--heartbeat-seconds", str(HEARTBEAT_SECONDS),
                    "--retry-seconds", "30"])
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        # Due and interval on the home's clock, as the watchdog reads them.
        due, interval = map(int, self.sql(
            "SELECT heartbeat_due_home_ms, heartbeat_interval_ms FROM agents "
            f"WHERE id = '{agent}'")[0])
        self.assertEqual(HEARTBEAT_SECONDS * 1000, interval)
        overdue_ms = due + GRACE_HEARTBEATS * interval

        # The watchdog's home: the live holder of the lease (host:pid:random). A home killed
        # above may still be named until its lease runs out and the other takes it.
        homes = {h.proc.pid: h for h in (self.home, self.second)}
        holder = wait_for(lambda: next(iter(
            h for [h] in self.sql(self.LEASE_HOLDER) if int(h.split(":")[-2]) in homes), None),
            "a live home to hold the time-driven lease", timeout=15)
        leader = homes[int(holder.split(":")[-2])]
        wait_for(lambda: time.time() * 1000 >= overdue_ms - 2000,
                 "two seconds before the agent is overdue", timeout=HEARTBEAT_SECONDS * 3)
        missing = f"SELECT id, opened_ms FROM tickets WHERE kind = 'missing_heartbeat' " \
                  f"AND agent_id = '{agent}'"
        self.assertEqual([], self.sql(missing), "not missing before its grace has passed")
        leader.kill()
        killed_ms = time.time() * 1000
        leader.restart()
        self.assertLess(killed_ms, overdue_ms, "killed before the agent was overdue")

        # One ticket, opened after the kill: by a home that took the watchdog over.
        [[ticket, opened_ms]] = wait_for(lambda: self.sql(missing),
                                         "the silent agent's missing-heartbeat ticket",
                                         timeout=30, interval=0.2)
        self.assertGreater(int(opened_ms), killed_ms)
        self.assertNotEqual(holder, self.one(self.LEASE_HOLDER))
        # Several watchdog passes later, still one ticket, and no site ticket.
        next_passes = time.monotonic() + 3
        wait_for(lambda: time.monotonic() >= next_passes, "three more watchdog passes")
        self.assertEqual([ticket], [r[0] for r in self.sql(missing)])
        self.assertEqual([], self.sql("SELECT id FROM tickets WHERE kind = 'site_silent'"))
        return int(ticket), (int(opened_ms) - killed_ms) / 1000


if __name__ == "__main__":
    unittest.main()
