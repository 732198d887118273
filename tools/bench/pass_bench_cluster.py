#!/usr/bin/env python3
"""pass-bench three ways in one run on one machine (docs/performance.md, issue 19): one home on
SQLite, one home on PostgreSQL, and two homes on PostgreSQL behind HAProxy. Each way gets fresh
enrolled agents and the same load (pass-bench --endpoint: N agents, each posting M sealed
envelopes one after another on its keep-alive mutual-TLS connection); prints envelopes/s,
p50/p99 and each process's CPU per envelope (the homes, PostgreSQL's postmaster with all its
backends, haproxy, pass-bench itself), and a Markdown table of them.

    tools/bench/pass_bench_cluster.py --build build/dev --agents 32 --envelopes 300
    tools/bench/pass_bench_cluster.py --only postgres --pg-stats   # where PostgreSQL's time goes

It starts a throwaway PostgreSQL (tests/integration/pgcluster.py) and HAProxy
(installer/haproxy/haproxy.cfg, through tests/integration/passlib.py), all on 127.0.0.1, and
removes them at the end.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))


def pg_statements(pg, db):
    """The 15 statements the server spent longest on: calls, total ms, µs per call, rows."""
    rows = pg.psql("SELECT calls, round(total_exec_time::numeric, 1), "
                   "round((total_exec_time / calls * 1000)::numeric, 1), rows, "
                   "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) "
                   "FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' "
                   "ORDER BY total_exec_time DESC LIMIT 15", db)
    lines = ["calls | total ms | µs/call | rows | statement"]
    lines += [" | ".join(line.split("|", 4)) for line in rows.splitlines()]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build/dev", help="the build folder")
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--envelopes", type=int, default=300, help="per agent")
    parser.add_argument("--events", type=int, default=1, help="per envelope")
    parser.add_argument("--only", choices=("sqlite", "postgres", "cluster"), action="append",
                        help="run only this way (repeatable)")
    parser.add_argument("--pg-stats", action="store_true",
                        help="load pg_stat_statements and print, after each PostgreSQL way, "
                             "the statements that took the server longest")
    args = parser.parse_args()
    build = pathlib.Path(args.build).resolve()
    os.environ.setdefault("PASS_HOME_BIN", str(build / "home" / "pass-home"))
    os.environ.setdefault("PASS_AGENT_BIN", str(build / "linux-appliance" / "pass-agent"))
    bench = build / "tools" / "bench" / "pass-bench"

    import passlib  # after PASS_HOME_BIN is set
    import pgcluster

    ways = args.only or ["sqlite", "postgres", "cluster"]
    results = {}
    settings = {"shared_preload_libraries": "pg_stat_statements"} if args.pg_stats else {}
    pg = (pgcluster.PgCluster(settings=settings).start()
          if {"postgres", "cluster"} & set(ways) else None)
    try:
        for way in ways:
            root = pathlib.Path(tempfile.mkdtemp(prefix=f"pass-bench-{way}-"))
            processes = []
            try:
                database = {}
                if way != "sqlite":
                    database = {"database": pg.create_database(f"bench_{way}"),
                                "password_file": pg.password_file}
                # Every agent connects from 127.0.0.1, directly or through HAProxy: the
                # per-address handshake limit as behind HAProxy (docs/scale-out.md).
                serve = ["--max-handshakes-per-address", "256"]
                home = passlib.Home(root, **database).start(extra=serve)
                processes.append(home)
                watched = [f"home={home.proc.pid}"]
                endpoint = home.url
                if way == "cluster":
                    second = passlib.HomeProcess(root / "home2", home.state).start(extra=serve)
                    processes.append(second)
                    proxy = passlib.HaProxy(root / "haproxy", [home.port, second.port]).start()
                    processes.append(proxy)
                    watched = [f"home1={home.proc.pid}", f"home2={second.proc.pid}",
                               f"haproxy={proxy.proc.pid}"]
                    endpoint = proxy.url
                if pg and way != "sqlite":
                    postmaster = (pg.data / "postmaster.pid").read_text().split()[0]
                    watched.append(f"postgres={postmaster}")
                for i in range(args.agents):
                    home.enroll(f"b{i:03}", endpoints=[endpoint], customer="Bench", site="Lab")
                if args.pg_stats and way != "sqlite":
                    db = database["database"].rsplit("/", 1)[1]
                    pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", db)
                    pg.psql("SELECT pg_stat_statements_reset()", db)
                figures = root / "figures.json"
                command = [str(bench), "--endpoint", endpoint, "--bundles", str(root),
                           "--envelopes", str(args.envelopes), "--events", str(args.events),
                           "--problems", "1", "--json", str(figures)]
                for w in watched:
                    command += ["--cpu", w]
                print(f"== {way}: {' '.join(command)}", flush=True)
                subprocess.run(command, check=True)
                results[way] = json.loads(figures.read_text())
                if args.pg_stats and way != "sqlite":
                    print(pg_statements(pg, database["database"].rsplit("/", 1)[1]), flush=True)
            finally:
                for p in reversed(processes):
                    p.stop()
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if pg:
            pg.stop()

    print("\n| set-up | envelopes/s | p50 ms | p99 ms | CPU µs per envelope |")
    print("| --- | ---: | ---: | ---: | --- |")
    names = {"sqlite": "one home, SQLite", "postgres": "one home, PostgreSQL",
             "cluster": "two homes, PostgreSQL, HAProxy"}
    for way, f in results.items():
        cpu = ", ".join(f"{name} {us:.0f}" for name, us in f["cpu_us_per_envelope"].items())
        print(f"| {names[way]} | {f['envelopes_per_s']:.0f} | {f['p50_ms']:.2f} | "
              f"{f['p99_ms']:.2f} | {cpu} |")
    if "sqlite" in results and "cluster" in results:
        ratio = results["cluster"]["envelopes_per_s"] / results["sqlite"]["envelopes_per_s"]
        print(f"\ntwo homes on PostgreSQL: {ratio:.0%} of one SQLite home's rate (target ≥ 50 %)")
    return 0 if all(f["failures"] == 0 for f in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
