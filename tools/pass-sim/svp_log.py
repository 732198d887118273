#!/usr/bin/env python3
"""SVP SIM log writer: plays the Hitachi SVP software for the hitachi_svp collector.

It appends SIM records in PASS's line profiles (vendor-codes/hitachi_svp/sim-log-profiles.json)
and rotates the log the ways log writers do. Tests import it; field engineers can drive it from
the shell to rehearse an installation:

    svp_log.py --dir DIR raise --rc 307080 --severity Moderate --part DKC --text "Processor failure"
    svp_log.py --dir DIR rotate            # rename sim.log to sim.1.log, start a new sim.log
    svp_log.py --dir DIR copy-truncate     # copy sim.log to sim.1.log, truncate sim.log
"""

import argparse
import datetime
import os
import pathlib
import shutil
import sys

LOG_NAME = "sim.log"
SEVERITIES = ("Acute", "Serious", "Moderate", "Service")


class SvpLog:
    """One SVP's SIM log directory."""

    def __init__(self, directory, name=LOG_NAME):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / name

    def raise_sim(self, rc, severity="Moderate", part="DKC", text="SIM raised", when=None,
                  partial=False):
        """Appends one SIM line in the pass-csv profile; `partial` leaves out its newline, as a
        writer caught in the middle of a line does."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")
        when = when or datetime.datetime.now()
        line = f"{when:%Y/%m/%d},{when:%H:%M:%S},{rc},{severity},{part},{text}"
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(line if partial else line + "\n")
            f.flush()
            os.fsync(f.fileno())
        return line

    def finish_line(self, rest=""):
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(rest + "\n")

    def _next_rotated(self):
        n = 1
        while (self.dir / f"sim.{n}.log").exists():
            n += 1
        return self.dir / f"sim.{n}.log"

    def rotate(self):
        """Rename rotation: the current file keeps its identity under a new name."""
        os.rename(self.path, self._next_rotated())
        self.path.touch()

    def copy_truncate(self):
        """Copy-truncate rotation: the copy is a new file, the original is emptied."""
        shutil.copyfile(self.path, self._next_rotated())
        with open(self.path, "r+b") as f:
            f.truncate(0)

    def garbage(self, text="\x00\x01 not a SIM record"):
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(text + "\n")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the SIM log directory")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("raise", help="append one SIM record")
    r.add_argument("--rc", required=True, help="reference code, e.g. 307080")
    r.add_argument("--severity", default="Moderate", choices=SEVERITIES)
    r.add_argument("--part", default="DKC")
    r.add_argument("--text", default="SIM raised")
    sub.add_parser("rotate", help="rename rotation")
    sub.add_parser("copy-truncate", help="copy-truncate rotation")
    sub.add_parser("garbage", help="append a line no profile reads")
    args = parser.parse_args(argv)
    log = SvpLog(args.dir)
    if args.command == "raise":
        print(log.raise_sim(args.rc, args.severity, args.part, args.text))
    elif args.command == "rotate":
        log.rotate()
    elif args.command == "copy-truncate":
        log.copy_truncate()
    else:
        log.garbage()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
