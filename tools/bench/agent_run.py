#!/usr/bin/env python3
"""One pass-agent run over many simulated arrays of the four families: wall time, CPU, peak RSS.

Sets up, in a temporary directory, a real pass-home (serving on 127.0.0.1), one enrolled agent
and the simulators of tools/pass-sim/: a SIM log directory per Hitachi SVP, one fake SNM2
installation holding every Hitachi DF unit, one sshd (and state) for all the HPE 3PARs and one
Nimble REST server for all the Nimbles; each array has its own serial. An unmeasured first run
learns the pins and starts the cursors. Before each measured run every array gets new events
(the cursors are never reset, so each run is the steady-state run of a scheduled agent):

    hitachi_svp  20 SIM lines appended to its log                        20 events
    hitachi_df   2 components go to Alarm, the 2 of the run before recover   4 events
    hpe_3par     3 New alerts (the simulator shares them between arrays)    3 events
    nimble       5 events and 1 alarm opened (its onset event and alarm)    7 events

Each run is checked: exit status 0, exactly the expected new events stored at the home for
every array, and every array's state "ok" in `pass-agent status --json`. A run that fails a
check stops the benchmark with exit status 1; the targets (< 5 s wall, < 16 MiB peak RSS) are
reported, not asserted.

    tools/bench/agent_run.py [--agent build/dev/linux-appliance/pass-agent]
        [--home build/dev/home/pass-home] [--arrays 100] [--runs 5] [--keep DIR]
        [--families hitachi_svp,hitachi_df,hpe_3par,nimble]

Figures per run: wall time (monotonic clock from start to exit); CPU and peak RSS from wait4(),
which on Linux include the agent's own children (the SNM2 CLI simulator it runs per DF array,
a Python program of about 15 MiB); the agent's own CPU, from /proc/PID/stat of the zombie; its
own VmHWM, sampled from /proc/PID/status every 5 ms (a lower bound); the CPU the simulators and
the home spent meanwhile; and how many of the machine's cores all of them kept busy, since
the simulators run on the same cores as the agent. The agent is started as a grandchild (see
spawn_clean) so that ru_maxrss is not this script's own peak. The agent's "collect:" lines
give each array's collection time.
"""

import argparse
import ctypes
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tools" / "pass-sim"))

import passlib  # noqa: E402
from nimble import NimbleSim  # noqa: E402
from snm2 import Snm2  # noqa: E402
from svp_log import SvpLog  # noqa: E402
from threepar import SshServer, ThreePar  # noqa: E402

WALL_TARGET_S = 5.0
RSS_TARGET_MIB = 16.0
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
HWM_POLL_S = 0.005
PR_SET_CHILD_SUBREAPER = 36
SIM_CODES = ("307080", "212051", "DC0123", "3A2101", "451120")


# --- the simulated fleet ------------------------------------------------------------------------
class SvpFleet:
    """One SIM log directory per SVP."""

    family = "hitachi_svp"
    per_run = 20

    def __init__(self, root, count):
        self.logs = []
        for i in range(count):
            serial = str(470000 + i)
            log = SvpLog(root / "svp" / serial / "SIM")
            log.raise_sim("DC0123", "Serious", text="history, before the agent was installed")
            self.logs.append((serial, log))
        self.serials = [s for s, _ in self.logs]

    def configure(self, bundle):
        for i, (serial, log) in enumerate(self.logs):
            bundle.add_array("hitachi-svp", serial=serial, model="DKC710", name=f"VSP-{i}",
                             sim_dir=str(log.dir), pattern="sim*.log")

    def first_run_events(self):
        return 0  # history before installation is not reported

    def raise_events(self, run):
        for _, log in self.logs:
            for j in range(self.per_run):
                log.raise_sim(SIM_CODES[j % len(SIM_CODES)], "Moderate", part="DKC",
                              text=f"bench run {run} SIM {j}")


class DfFleet:
    """One fake SNM2 installation with every unit; two pairs of components take turns."""

    family = "hitachi_df"
    per_run = 4
    PAIRS = ((("Fan", "0/0"), ("Fan", "0/1")), (("AC PS", "0/0"), ("AC PS", "0/1")))

    def __init__(self, root, count):
        self.snm2 = Snm2(root / "snm2") if count else None
        self.units = []
        for i in range(count):
            serial = str(91110000 + i)
            unit = f"HUS110_{serial}"
            self.snm2.add_unit(unit, serial)
            self.units.append((serial, unit))
        self.serials = [s for s, _ in self.units]
        self._set(0, "Alarm")  # the faults present at installation: reported on the first run

    def _set(self, pair, status):
        for _, unit in self.units:
            for section, ident in self.PAIRS[pair]:
                self.snm2.set_status(unit, section, ident, status)

    def configure(self, bundle):
        for i, (serial, unit) in enumerate(self.units):
            bundle.add_array("hitachi-df", serial=serial, model="HUS110", name=f"HUS-{i}",
                             snm2_dir=str(self.snm2.dir), unit=unit, timeout_seconds=30)

    def first_run_events(self):
        return 2

    def raise_events(self, run):
        # A fault that clears and returns gets a new event id (the snapshot generation).
        previous, current = (run - 1) % 2, run % 2
        self._set(previous, "Normal")
        self._set(current, "Alarm")


class ThreeParFleet:
    """One sshd and one alert list shared by every 3PAR; each array has its own serial, pins and
    cursor, so each stores every alert."""

    family = "hpe_3par"
    per_run = 3

    def __init__(self, root, count):
        self.serials = [str(1400000 + i) for i in range(count)]
        self.ssh = None
        if not count:
            return
        directory = root / "3par"
        directory.mkdir(parents=True)
        self.array = ThreePar(directory / "state.json")
        self.array.raise_alert("0x27001e", "Major", "CPG growth non admin limit", "cpg1",
                               state_name="Acknowledged")  # history
        self.ssh = SshServer(self.array, directory / "ssh").start()

    def configure(self, bundle):
        for i, serial in enumerate(self.serials):
            bundle.add_array("hpe-3par", serial=serial, model="8200", name=f"3PAR-{i}",
                             address="127.0.0.1", user=self.ssh.user,
                             key_file=str(self.ssh.client_key), ssh_port=self.ssh.port,
                             timeout_seconds=30)

    def first_run_events(self):
        return 0

    def raise_events(self, run):
        if not self.serials:
            return
        for _ in range(self.per_run):
            self.array.raise_alert()

    def processes(self):
        return [self.ssh.proc.pid] if self.ssh else []

    def stop(self):
        if self.ssh:
            self.ssh.stop()


class NimbleFleet:
    """One Nimble REST server (its own process, so that its CPU can be told apart) for all."""

    family = "nimble"
    per_run = 7  # 5 events + the alarm's onset event + the alarm

    def __init__(self, root, count):
        self.serials = [f"AF-{123000 + i}" for i in range(count)]
        self.proc = None
        if not count:
            return
        self.dir = root / "nimble"
        self.sim = NimbleSim(self.dir)
        self.sim.add_event(2006, "info", "history, before the agent was installed")
        self.password = root / "nimble-password"
        self.password.write_text("admin-secret\n")
        port_file = self.dir / "port"
        self.log = open(root / "nimble.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "pass-sim" / "nimble.py"), "--dir",
             str(self.dir), "serve", "--port-file", str(port_file)],
            stdout=self.log, stderr=self.log)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Nimble simulator exited {self.proc.returncode}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            return int(text) if text else None

        self.port = passlib.wait_for(ready, "the Nimble simulator to listen")

    def configure(self, bundle):
        for i, serial in enumerate(self.serials):
            bundle.add_array("nimble", serial=serial, model="AF40", name=f"nimble-{i}",
                             address="127.0.0.1", rest_port=self.port, user="admin",
                             password_file=str(self.password), timeout_seconds=30)

    def first_run_events(self):
        return 0

    def raise_events(self, run):
        if not self.serials:
            return
        for j in range(5):
            self.sim.add_event(2002 + j % 3, "warning", f"bench run {run} event {j}",
                               target_type="controller", target="A")
        self.sim.open_alarm(2004, "critical", "controller", "B", f"bench run {run} alarm")

    def processes(self):
        return [self.proc.pid] if self.proc else []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()


FLEETS = {f.family: f for f in (SvpFleet, DfFleet, ThreeParFleet, NimbleFleet)}


def split(total, families):
    """{family: count}: an equal share each (25 of each of four for 100), the remainder going to
    the first families listed."""
    n = len(families)
    return {f: total // n + (1 if i < total % n else 0) for i, f in enumerate(families)}


def collect_ms(log_text):
    """{family: [ms per array]} from the agent's "collect: FAMILY SERIAL: ... in N ms" lines."""
    out = {}
    for line in log_text.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "collect:" and words[-1] == "ms":
            out.setdefault(words[1], []).append(int(words[-2]))
    return out


# --- measuring one child ------------------------------------------------------------------------
def proc_cpu_s(pid):
    """(own, children's) CPU seconds of a live or zombie process, from /proc/PID/stat."""
    text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / CLOCK_TICK, (cutime + cstime) / CLOCK_TICK


def total_cpu_s(pids):
    total = 0.0
    for pid in pids:
        own, children = proc_cpu_s(pid)
        total += own + children
    return total


def vm_hwm_kib(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None  # gone, or a zombie (its memory is already released)


def become_subreaper():
    """Orphaned descendants become our children, so that we can wait4() a grandchild."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def spawn_clean(args, out):
    """Starts args as a grandchild through /bin/sh, which exits at once; returns its pid.

    Not a direct child: subprocess starts children with vfork() (posix_spawn is the same), and
    exec() records the peak RSS of the memory it leaves in the child's ru_maxrss. For a vfork()
    child that is this Python process's peak (25-30 MiB here), which would be reported as the
    agent's. The grandchild leaves the copy of a small shell's memory instead; we adopt it as
    subreaper when the shell exits.
    """
    sh = subprocess.Popen(["/bin/sh", "-c", '"$@" 2>&1 </dev/null & echo $! >&2', "sh", *args],
                          stdout=out, stderr=subprocess.PIPE, text=True)
    pid = int(sh.stderr.read())
    sh.wait()
    return pid


def measure(args, out_path, sim_pids, home_pid):
    """Runs args to completion; returns its figures and exit code."""
    sims_before = total_cpu_s(sim_pids)
    home_before = total_cpu_s([home_pid])
    with open(out_path, "w") as out:
        start = time.monotonic()
        pid = spawn_clean(args, out)
        hwm = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                value = vm_hwm_kib(pid)
                if value is None:
                    return
                hwm[0] = max(hwm[0], value)
                done.wait(HWM_POLL_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # a zombie: /proc still has it
        wall = time.monotonic() - start
        done.set()
        own_cpu, children_cpu = proc_cpu_s(pid)
        _, status, usage = os.wait4(pid, 0)
        sampler.join()
    figures = {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "agent_cpu_s": own_cpu,
        "children_cpu_s": children_cpu,
        "maxrss_mib": usage.ru_maxrss / 1024,
        "hwm_mib": hwm[0] / 1024,
        "sims_cpu_s": total_cpu_s(sim_pids) - sims_before,
        "home_cpu_s": total_cpu_s([home_pid]) - home_before,
    }
    # The agent, its CLI children, the simulators and the home share the machine's cores.
    figures["cores_busy"] = (figures["cpu_s"] + figures["sims_cpu_s"] +
                             figures["home_cpu_s"]) / wall
    return figures


# --- checks -------------------------------------------------------------------------------------
def stored_per_serial(home):
    counts = {}
    for e in home.events():
        counts[e["array"]] = counts.get(e["array"], 0) + 1
    return counts


def check_run(figures, out_path, bundle, home, before, expected):
    """Returns (events stored by this run, problems)."""
    problems = []
    if figures["exit"] != 0:
        problems.append(f"pass-agent run exited {figures['exit']}:\n{out_path.read_text()}")
    after = stored_per_serial(home)
    wrong = {s: (after.get(s, 0) - before.get(s, 0), n) for s, n in expected.items()
             if after.get(s, 0) - before.get(s, 0) != n}
    if wrong:
        sample = ", ".join(f"{s}: {got} stored, {want} expected"
                           for s, (got, want) in list(wrong.items())[:8])
        problems.append(f"{len(wrong)} arrays did not store what was raised ({sample})")
    status = bundle.status()
    bad = [(a["serial"], a["state"], a.get("message", "")) for a in status["arrays"]
           if a["state"] != "ok"]
    if bad or len(status["arrays"]) != len(expected):
        problems.append(f"pass-agent status: {len(status['arrays'])} arrays, not ok: {bad[:8]}")
    return sum(after.values()) - sum(before.values()), problems


# --- report -------------------------------------------------------------------------------------
COLUMNS = (("run", "{}"), ("wall s", "{:.2f}"), ("CPU s", "{:.2f}"), ("agent CPU s", "{:.2f}"),
           ("CLI children CPU s", "{:.2f}"), ("peak RSS MiB", "{:.1f}"),
           ("agent VmHWM MiB", "{:.1f}"), ("events", "{}"), ("simulators CPU s", "{:.2f}"),
           ("home CPU s", "{:.2f}"), ("cores busy", "{:.2f}"))
KEYS = ("wall_s", "cpu_s", "agent_cpu_s", "children_cpu_s", "maxrss_mib", "hwm_mib", "events",
        "sims_cpu_s", "home_cpu_s", "cores_busy")


def row(label, figures):
    cells = [label] + [figures[k] for k in KEYS]
    return "| " + " | ".join(fmt.format(v) for (_, fmt), v in zip(COLUMNS, cells)) + " |"


def print_table(first, runs):
    print("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    print(row("first (unmeasured setup run)", first))
    for i, r in enumerate(runs, 1):
        print(row(str(i), r))
    if not runs:
        return
    median = {k: statistics.median(r[k] for r in runs) for k in KEYS}
    median["events"] = int(median["events"])
    print(row("**median**", median))
    print(row("**max**", {k: max(r[k] for r in runs) for k in KEYS}))
    wall = statistics.median(r["wall_s"] for r in runs)
    rss = statistics.median(r["maxrss_mib"] for r in runs)
    print()
    print("collection time per array, ms (the agent collects 8 arrays at a time):")
    print("| family | arrays | median | max | sum per run (median) |")
    print("| --- | --- | --- | --- | --- |")
    for family in runs[0]["collect_ms"]:
        times = [ms for r in runs for ms in r["collect_ms"].get(family, [])]
        sums = [sum(r["collect_ms"].get(family, [])) for r in runs]
        print(f"| {family} | {len(runs[0]['collect_ms'][family])} | "
              f"{statistics.median(times):.0f} | {max(times)} | {statistics.median(sums):.0f} |")
    print()
    print(f"wall time: median {wall:.2f} s, max {max(r['wall_s'] for r in runs):.2f} s "
          f"(target < {WALL_TARGET_S:g} s: {'met' if wall < WALL_TARGET_S else 'NOT met'})")
    print(f"peak RSS:  median {rss:.1f} MiB, max {max(r['maxrss_mib'] for r in runs):.1f} MiB "
          f"(target < {RSS_TARGET_MIB:g} MiB: {'met' if rss < RSS_TARGET_MIB else 'NOT met'})")


# --- main ---------------------------------------------------------------------------------------
def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default=str(ROOT / "build/dev/linux-appliance/pass-agent"))
    parser.add_argument("--home", default=str(ROOT / "build/dev/home/pass-home"))
    parser.add_argument("--arrays", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--families", default=",".join(FLEETS),
                        help="comma-separated subset of the families to simulate (default: all)")
    parser.add_argument("--keep", help="work in this directory (new or empty) and keep it")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FLEETS]
    if unknown or not families:
        parser.error(f"--families: unknown {unknown}; choose from {', '.join(FLEETS)}")
    if args.arrays < 1 or args.runs < 1:
        parser.error("--arrays and --runs must be at least 1")
    for path in (args.agent, args.home):
        if not os.access(path, os.X_OK):
            parser.error(f"{path} is not an executable; build it first")
    passlib.AGENT_BIN = str(pathlib.Path(args.agent).resolve())
    passlib.HOME_BIN = str(pathlib.Path(args.home).resolve())
    become_subreaper()

    if args.keep:
        root = pathlib.Path(args.keep).resolve()
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()):
            parser.error(f"--keep {root}: the directory is not empty")
    else:
        root = pathlib.Path(tempfile.mkdtemp(prefix="pass-bench-agent-"))

    home, fleets = None, []
    try:
        setup_start = time.monotonic()
        home = passlib.Home(root).start()
        bundle = home.enroll("bench-01")
        counts = split(args.arrays, families)
        fleets = [FLEETS[f](root, n) for f, n in counts.items()]
        for fleet in fleets:
            fleet.configure(bundle)
        check = passlib.run([passlib.AGENT_BIN, "check-config", "--config", str(bundle.config)])
        if check.returncode != 0:
            raise RuntimeError(f"check-config exited {check.returncode}:\n{check.stderr}")
        sim_pids = [p for f in fleets if hasattr(f, "processes") for p in f.processes()]
        mix = ", ".join(f"{n} {f}" for f, n in counts.items())
        print(f"{args.arrays} arrays ({mix}) set up in {time.monotonic() - setup_start:.1f} s "
              f"under {root}", flush=True)

        run_args = [passlib.AGENT_BIN, "run", "--config", str(bundle.config)]
        results, failed = [], False
        load_before = f"{os.getloadavg()[0]:.2f}"
        for k in range(args.runs + 1):
            if k > 0:
                for fleet in fleets:
                    fleet.raise_events(k)
            expected = {s: (f.per_run if k else f.first_run_events())
                        for f in fleets for s in f.serials}
            before = stored_per_serial(home)
            out_path = root / f"agent-run-{k}.log"
            figures = measure(run_args, out_path, sim_pids, home.proc.pid)
            figures["events"], problems = check_run(figures, out_path, bundle, home, before,
                                                     expected)
            if problems:
                print(f"run {k or 'first'} failed:\n  " + "\n  ".join(problems), file=sys.stderr)
                failed = True
                break
            figures["collect_ms"] = collect_ms(out_path.read_text())
            results.append(figures)
            print(f"run {k or 'first'}: {figures['wall_s']:.2f} s wall, "
                  f"{figures['events']} events", flush=True)

        print()
        if failed:
            print("STOPPED: a run failed its checks (see above); figures of the runs before it")
        print(f"pass-agent run over {args.arrays} arrays, {len(results) - 1} measured runs; "
              f"{os.cpu_count()} CPUs, load average {load_before} before, "
              f"{os.getloadavg()[0]:.2f} after:")
        if results:
            print_table(results[0], results[1:])
        return 1 if failed else 0
    except (RuntimeError, AssertionError, OSError) as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    finally:
        for fleet in fleets:
            if hasattr(fleet, "stop"):
                fleet.stop()
        if home:
            home.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
