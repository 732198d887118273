#!/usr/bin/env python3
"""scripts/demo.sh --cluster: two homes on one PostgreSQL database behind HAProxy
(docs/scale-out.md). A throwaway PostgreSQL, the two homes and HAProxy on 127.0.0.1; an SVP
agent whose bundle names HAProxy's one address follows a simulated SVP's SIM log. One home is
killed with SIGKILL; the SVP raises a SIM; the agent's run reaches the live home through HAProxy,
which opens one ticket, and the local SMTP server receives each mail once. The killed home comes
back and HAProxy takes it in again. Leaves the state in ./demo-state-cluster (PostgreSQL is
stopped and removed at the end).

    scripts/demo.sh --cluster        (builds first)
    scripts/demo_cluster.py BUILD_DIR
"""

import json
import os
import pathlib
import shutil
import sys
from xml.sax.saxutils import quoteattr

REPO = pathlib.Path(__file__).resolve().parents[1]
build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build" / "dev").resolve()
os.environ.setdefault("PASS_HOME_BIN", str(build / "home" / "pass-home"))
os.environ.setdefault("PASS_AGENT_BIN", str(build / "linux-appliance" / "pass-agent"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tools" / "pass-sim"))

from passlib import HOME_BIN, HaProxy, Home, HomeProcess, MailServer, run, wait_for  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from svp_log import SvpLog  # noqa: E402

STATE = pathlib.Path("demo-state-cluster").resolve()


def step(text):
    print(f"== {text}", flush=True)


def show(home, *args):
    proc = run([HOME_BIN, *args, "--state", str(home.state)], check=True)
    print(proc.stdout, end="", flush=True)


def home_json(home, *args):
    return json.loads(run([HOME_BIN, *args, "--state", str(home.state), "--json"],
                          check=True).stdout)


def main():
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir()
    running = []
    pg = PgCluster(STATE / "postgres")
    (STATE / "postgres").mkdir()
    try:
        step("a throwaway PostgreSQL 15 (tests/integration/pgcluster.py)")
        pg.start()
        running.append(pg)
        print(f"database {pg.url}, password in {pg.password_file}")

        step("a local mail server (tools/smtpd: STARTTLS, AUTH)")
        mail = MailServer(STATE / "smtpd").start()
        running.append(mail)

        step("pass-home init --database: the first home's state, its store in PostgreSQL")
        home = Home(STATE / "home1", database=pg.url, password_file=pg.password_file)
        (home.state / "smtp.password").write_text("secret\n")
        (home.state / "home.xml").write_text(f"""<pass-home schema="1">
  <notifications ack-url="https://pass.example.com:9456" retry-initial-seconds="1"
                 retry-max-seconds="2"/>
  <smtp url="{mail.url}" from="PASS &lt;pass@home.example&gt;" user="pass"
        password-file="smtp.password" ca-file={quoteattr(str(mail.cert))}/>
  <customer name="ACME Corp">
    <contact name="Mia Manager" role="management" email="mia@acme.example"/>
    <contact name="Eli Engineer" role="engineer" email="eli@acme.example"/>
  </customer>
</pass-home>
""")
        step("two homes serving, on one database (the second on the same keys and settings)")
        home.start()
        running.append(home)
        second = HomeProcess(STATE / "home2", home.state).start()
        running.append(second)
        print(f"home1 {home.url}, home2 {second.url}")

        step("HAProxy in front (installer/haproxy/haproxy.cfg, TCP mode, health checks)")
        proxy = HaProxy(STATE / "haproxy", [home.port, second.port]).start()
        running.append(proxy)
        print(f"HAProxy {proxy.url}; homes up: {', '.join(proxy.up())}")

        step("an SVP agent whose bundle names HAProxy's one address")
        sim = SvpLog(STATE / "svp-sim" / "SIM")
        bundle = home.enroll("svp-berlin-01", endpoints=[proxy.url])
        bundle.add_array("hitachi-svp", serial="470849", model="DKC710", name="VSP-1",
                         sim_dir=str(sim.dir), pattern="sim*.log")
        for args in (("test", "--message", "hello through HAProxy"), ("run",)):
            proc = bundle.agent(*args)
            print(proc.stdout, end="")
            if proc.returncode != 0:
                sys.exit(proc.stderr)

        step("home1 dies (SIGKILL)")
        home.kill()
        running.remove(home)
        wait_for(lambda: proxy.up() == ["home2"], "HAProxy to mark home1 down")
        print(f"homes up: {', '.join(proxy.up())}")

        step("the SVP raises a SIM; the agent's run reaches home2 through HAProxy")
        sim.raise_sim("DC0123", "Acute", part="DKC", text="Journal pair suspended")
        proc = bundle.agent("run")
        print(proc.stdout, end="")
        if proc.returncode != 0:
            sys.exit(proc.stderr)

        step("one ticket; its mails sent (the outbox drains)")
        tickets = home_json(home, "tickets", "list", "--all")
        show(home, "tickets", "list", "--all")

        def all_sent():
            rows = [m for t in tickets for m in home_json(home, "tickets", "show",
                                                            str(t["id"]))["messages"]]
            return rows if rows and all(r["state"] == "sent" for r in rows) else None
        rows = wait_for(all_sent, "every message sent", timeout=60)
        show(home, "tickets", "show", str(tickets[0]["id"]))

        step("the SMTP server received each mail once (by Message-ID)")
        messages = wait_for(lambda: len(mail.message_files()) >= len(rows) and mail.messages(),
                            "the mails")
        for m in messages:
            print(f"{m['Message-ID']}  to {m['To']}: {m['Subject']}")
        ids = [m["Message-ID"] for m in messages]
        print(f"{len(tickets)} ticket(s), {len(rows)} outbox row(s), {len(messages)} mail(s), "
              f"{len(ids) - len(set(ids))} delivered twice")

        step("home1 comes back; HAProxy's health check takes it in again")
        home.restart()
        running.append(home)
        proxy.wait_up(2)
        print(f"homes up: {', '.join(proxy.up())}")
        step(f"done: state in {STATE}, logs in {STATE}/home1/home.log, {STATE}/home2/home.log, "
             f"{STATE}/haproxy/haproxy.log; mail in {mail.maildir}/new/")
    finally:
        for p in reversed(running):
            p.stop()


if __name__ == "__main__":
    main()
