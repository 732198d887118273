#!/usr/bin/env python3
"""Fake SNM2 CLI: plays Hitachi Storage Navigator Modular 2 for the hitachi_df collector.

A simulator directory holds executables named auunitref, auunitinfo and auparts (small wrapper
scripts that call this file) and a state file, snm2-state.json, with the registered units,
their components and statuses. Point the collector's snm2-dir at the directory. Tests import
the Snm2 class; field engineers can drive it from the shell to rehearse an installation:

    snm2.py --dir DIR init --unit HUS110_91110206 --serial 91110206
    snm2.py --dir DIR raise --unit HUS110_91110206 --section "Fan" --id 0/1 --status Alarm
    snm2.py --dir DIR clear --unit HUS110_91110206 --section "Fan" --id 0/1
    snm2.py --dir DIR unreachable    # the CLI's own error text on stderr, exit status 1
    snm2.py --dir DIR garbage        # exit status 0, but not an auparts table
    snm2.py --dir DIR slow 30        # every command waits 30 s before answering
    snm2.py --dir DIR normal         # undo unreachable / garbage / slow
    DIR/auparts -unit HUS110_91110206

The table layout is modelled on a public HUS110 capture (delfin fork guankecheng/netapp,
test_constans.py STATUS_INFO): section name as a heading, a column header indented by two
spaces, numeric columns right-aligned under their header, text columns left-aligned.

How the real CLI reports errors is not public. Our assumption, which the collector relies on
only as far as "non-zero exit status = failure, stderr says why": an error is one line on
standard error ("auparts: ..."), nothing on standard output, and exit status 1. A command run
without STONAVM_HOME set fails the same way, as SNM2 cannot find its configuration then.
"""

import argparse
import json
import os
import pathlib
import stat
import sys
import time

STATE_NAME = "snm2-state.json"
CALLS_NAME = "calls.log"
COMMANDS = ("auunitref", "auunitinfo", "auparts")

# Header lines verbatim from the public sample (Fan and ENC were empty there); per column "r"
# (right-aligned under its name) or "l" (left-aligned at its name).
LAYOUTS = {
    "Controller": ("  CTL   Status", "rl"),
    "Cache": ("  CTL      Slot   Capacity(MB)   Status", "rrrl"),
    "Interface Board": ("  CTL       Interface Board  Type           Status", "rrll"),
    "Battery": ("  Battery   Status", "rl"),
    "Host Connector": ("  Port  Status", "rl"),
    "Fan": ("  Unit     Fan   Status", "rrl"),
    "AC PS": ("  Unit   AC PS   Status", "rrl"),
    "ENC": ("  Unit  ENC   Type                   Status", "rrll"),
    "Unit": ("  Unit  Type              Serial Number", "rll"),
}


def default_sections(serial):
    """A healthy dual-controller HUS110, as in the public sample (plus two fans and ENCs)."""
    rows = {
        "Controller": [["0", "Normal"], ["1", "Normal"]],
        "Cache": [["0", "0", "4096", "Normal"], ["1", "0", "4096", "Normal"]],
        "Interface Board": [["0", "1", "iSCSI", "Normal"], ["1", "1", "iSCSI", "Normal"]],
        "Battery": [["0", "Normal"], ["1", "Normal"]],
        "Host Connector": [[p, "Normal"] for p in ("0A", "0B", "0C", "0D", "1A", "1B", "1C", "1D")],
        "Fan": [["0", "0", "Normal"], ["0", "1", "Normal"]],
        "AC PS": [["0", "0", "Normal"], ["0", "1", "Normal"]],
        "ENC": [["0", "0", "SAS(6Gbps)", "Normal"], ["0", "1", "SAS(6Gbps)", "Normal"]],
        "Unit": [["0", "StandardS", serial]],
    }
    return [{"name": name, "rows": r} for name, r in rows.items()]


def header_columns(header):
    """(name, start) of each column: names are separated by two or more spaces."""
    cols, i = [], 0
    while i < len(header):
        if header[i] == " ":
            i += 1
            continue
        start = i
        while i < len(header) and not (header[i] == " " and header[i + 1:i + 2] in (" ", "")):
            i += 1
        cols.append((header[start:i], start))
    return cols


def render_row(header, aligns, values):
    line = ""
    for (name, start), align, value in zip(header_columns(header), aligns, values):
        pos = start + len(name) - len(value) if align == "r" else start
        pos = max(pos, len(line) + (1 if line else 0))  # an overflowing value still stands apart
        line += " " * (pos - len(line)) + value
    return line


def render_auparts(sections):
    blocks = []
    for section in sections:
        header, aligns = LAYOUTS.get(section["name"], (section.get("header", ""), ""))
        lines = [section["name"], header]
        lines += [render_row(header, aligns, row) for row in section["rows"]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


class Snm2:
    """One fake SNM2 installation (a STONAVM_HOME directory)."""

    def __init__(self, directory, write_wrappers=True):
        self.dir = pathlib.Path(directory).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / STATE_NAME
        if not self.state_path.exists():
            self._save({"mode": "normal", "slow": 0, "units": {}})
        if write_wrappers:
            self._write_wrappers()

    # ---- state -------------------------------------------------------------------------------

    def _load(self):
        return json.loads(self.state_path.read_text())

    def _save(self, state):
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    def _write_wrappers(self):
        me = pathlib.Path(__file__).resolve()
        for command in COMMANDS:
            path = self.dir / command
            # -S: no site initialisation; this stdlib-only program starts in a fifth of the time.
            path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{me}" --dir "{self.dir}" '
                            f'cli {command} "$@"\n')
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def add_unit(self, unit, serial, model="HUS110", ips=("192.168.3.96", "192.168.3.97")):
        state = self._load()
        state["units"][unit] = {"serial": str(serial), "model": model, "ips": list(ips),
                                "sections": default_sections(str(serial))}
        self._save(state)
        return self

    def _row(self, state, unit, section, ident):
        """The row of `section` whose identifying values joined by '/' are `ident` (or whose last
        identifying value is, when that is unique)."""
        sections = state["units"][unit]["sections"]
        sec = next((s for s in sections if s["name"].lower() == section.lower()), None)
        if sec is None:
            raise KeyError(f"unit {unit} has no section {section!r}")
        header, aligns = LAYOUTS[sec["name"]]
        names = [n for n, _ in header_columns(header)]
        status = names.index("Status")
        ids = [i for i, n in enumerate(names) if i != status and n not in ("Type", "Capacity(MB)")]
        matches = [r for r in sec["rows"] if "/".join(r[i] for i in ids) == ident]
        if not matches:
            matches = [r for r in sec["rows"] if r[ids[-1]] == ident]
        if len(matches) != 1:
            raise KeyError(f"{section} has {len(matches)} rows matching id {ident!r}")
        return matches[0], status

    def set_status(self, unit, section, ident, status):
        state = self._load()
        row, col = self._row(state, unit, section, ident)
        row[col] = status
        self._save(state)

    def raise_fault(self, unit, section, ident, status="Alarm"):
        self.set_status(unit, section, ident, status)

    def clear(self, unit, section, ident):
        self.set_status(unit, section, ident, "Normal")

    def remove(self, unit, section, ident):
        state = self._load()
        row, _ = self._row(state, unit, section, ident)
        for sec in state["units"][unit]["sections"]:
            if row in sec["rows"]:
                sec["rows"].remove(row)
        self._save(state)

    def set_mode(self, mode, slow=None):
        state = self._load()
        state["mode"] = mode
        if slow is not None:
            state["slow"] = slow
        self._save(state)

    def unreachable(self):
        self.set_mode("unreachable")

    def garbage(self):
        self.set_mode("garbage")

    def slow(self, seconds):
        self.set_mode(self._load()["mode"], slow=seconds)

    def normal(self):
        self.set_mode("normal", slow=0)

    def calls(self):
        """The commands run so far, one "command args | STONAVM_HOME=..." line each."""
        path = self.dir / CALLS_NAME
        return path.read_text().splitlines() if path.exists() else []

    def auparts_text(self, unit):
        return render_auparts(self._load()["units"][unit]["sections"])

    # ---- the CLI -----------------------------------------------------------------------------

    def run_cli(self, command, args, out=sys.stdout, err=sys.stderr):
        """Answers one CLI call; returns the exit status."""
        with open(self.dir / CALLS_NAME, "a") as log:
            log.write(f"{command} {' '.join(args)} | STONAVM_HOME={os.environ.get('STONAVM_HOME', '')}"
                      f" STONAVM_ACT={os.environ.get('STONAVM_ACT', '')}"
                      f" STONAVM_RSP_PASS={os.environ.get('STONAVM_RSP_PASS', '')}\n")
        state = self._load()
        if state.get("slow"):
            time.sleep(float(state["slow"]))

        def error(text):
            err.write(f"{command}: {text}\n")
            return 1

        if not os.environ.get("STONAVM_HOME"):
            return error("STONAVM_HOME is not set; cannot find the SNM2 configuration")
        if state["mode"] == "garbage":
            out.write("%%% PASS simulator: this is not an SNM2 answer %%%\n\x01\x02 \xff\n")
            return 0
        if command == "auunitref":
            out.write("Name Group Type Construction Connection Type Error Monitoring "
                      "Communication Type IP Address/Host Name/Device Name\n")
            for name, u in state["units"].items():
                out.write(f" {name} --- Dual TCP/IP(LAN) Enable Non-secure {' '.join(u['ips'])}\n")
            return 0
        if len(args) != 2 or args[0] != "-unit":
            return error("usage: " + command + " -unit unit_name")
        unit = state["units"].get(args[1])
        if unit is None:
            return error(f"the unit {args[1]} is not registered")
        if state["mode"] == "unreachable":
            return error(f"cannot communicate with the unit {args[1]} "
                         f"({', '.join(unit['ips'])}: connection timed out)")
        if command == "auunitinfo":
            out.write(f"Array Unit Type             : {unit['model']}\n"
                      "H/W Rev.                    : 0100\n"
                      "Construction                : Dual\n"
                      f"Serial Number               : {unit['serial']}\n"
                      f"Array ID                    : {unit['serial']}\n"
                      "Firmware Revision(CTL0)     : 0988/H-W\n"
                      "Firmware Revision(CTL1)     : 0988/H-W\n")
            return 0
        out.write(render_auparts(unit["sections"]))
        return 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the simulated SNM2 folder (STONAVM_HOME)")
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="register a unit with all components Normal")
    i.add_argument("--unit", required=True)
    i.add_argument("--serial", required=True)
    i.add_argument("--model", default="HUS110")
    for name in ("raise", "clear", "remove"):
        p = sub.add_parser(name, help=f"{name} one component's fault")
        p.add_argument("--unit", required=True)
        p.add_argument("--section", required=True, help='e.g. "Fan", "Host Connector"')
        p.add_argument("--id", required=True, help="identifying values joined by /, e.g. 0/1")
        if name == "raise":
            p.add_argument("--status", default="Alarm")
    sub.add_parser("unreachable", help="every command fails as if the array did not answer")
    sub.add_parser("garbage", help="auparts and auunitinfo print something else")
    s = sub.add_parser("slow", help="every command waits before answering")
    s.add_argument("seconds", type=float)
    sub.add_parser("normal", help="answer normally again")
    c = sub.add_parser("cli", help="what the wrapper scripts run")
    c.add_argument("name", choices=COMMANDS)
    c.add_argument("args", nargs=argparse.REMAINDER)
    a = parser.parse_args(argv)

    sim = Snm2(a.dir, write_wrappers=a.command != "cli")
    try:
        if a.command == "init":
            sim.add_unit(a.unit, a.serial, a.model)
        elif a.command == "raise":
            sim.raise_fault(a.unit, a.section, a.id, a.status)
        elif a.command == "clear":
            sim.clear(a.unit, a.section, a.id)
        elif a.command == "remove":
            sim.remove(a.unit, a.section, a.id)
        elif a.command in ("unreachable", "garbage", "normal"):
            getattr(sim, a.command)()
        elif a.command == "slow":
            sim.slow(a.seconds)
        elif a.command == "cli":
            return sim.run_cli(a.name, a.args)
    except KeyError as e:
        print(f"snm2.py: {e.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
