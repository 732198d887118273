"""The agent under a wrong clock, a quarantine and a full disk: nothing accepted is lost, and
every one of them is said (exit code, stderr, status, the next heartbeat)."""

import json
import os
import pathlib
import resource
import signal
import subprocess
import sys
import time

from passlib import AGENT_BIN, HomeTestCase

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

SERIAL = "470849"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
DAY_MS = 86_400_000

EXIT_CLOCK = 6
EXIT_QUARANTINED = 7
EXIT_STORAGE = 8


def faketime(offset):
    """The environment that runs a program with its clock shifted by `offset` ("+2d")."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    # Under the asan preset the preloaded libfaketime comes before ASan's runtime.
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


class AgentFaultTestCase(HomeTestCase):
    def setUp(self):
        super().setUp()
        self.bundle = self.home.enroll("svp-01")
        self.log = SvpLog(pathlib.Path(self.tmp) / "svp" / "SIM")
        self.bundle.add_array("hitachi-svp", serial=SERIAL, model="DKC710", name="VSP-1",
                              sim_dir=str(self.log.dir), pattern="sim*.log")
        self.state = self.bundle.path / "state"
        # The baseline run: a heartbeat, no events.
        self.run_agent()

    def run_agent(self, expect=0, env=None):
        proc = self.bundle.agent("run", env=env)
        self.assertEqual(expect, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def codes(self):
        return sorted(e["code"] for e in self.home.events(SERIAL))

    def heartbeats(self):
        return [m["payload"] for m in sorted(self.home.messages(self.bundle.agent_id),
                                             key=lambda m: m["seq"])
                if m["type"] == "heartbeat"]

    def agent_state(self):
        return json.loads((self.state / "agent-state.json").read_text())

    def status_text(self):
        proc = self.bundle.agent("status")
        self.assertEqual(0, proc.returncode, proc.stderr)
        return proc.stdout


class ClockTest(AgentFaultTestCase):
    def setUp(self):
        if not os.path.exists(FAKETIME_LIB):
            self.skipTest("libfaketime (Debian package faketime) is not installed")
        super().setUp()

    def test_a_clock_two_days_ahead_holds_the_alert_says_so_and_sends_it_once_fixed(self):
        self.log.raise_sim("DC0123", "Acute", text="Journal group 01 suspended")
        proc = self.run_agent(expect=EXIT_CLOCK, env=faketime("+2d"))
        self.assertIn("ahead of the home's", proc.stderr)
        self.assertIn("2 d", proc.stderr)
        self.assertIn("future", proc.stderr)
        self.assertEqual([], self.codes(), "refused for the clock")
        status = self.bundle.status()
        self.assertEqual((1, 0, 0), (status["held_for_clock"], status["quarantined"],
                                     status["spool_depth"]))
        self.assertIn("ahead of the home's", status["clock_error"])
        self.assertGreater(status["clock_skew_ms"], 2 * DAY_MS - 120_000)
        self.assertIn("1 held for the clock", self.status_text())
        self.assertIn("ahead of the home's", self.status_text())
        self.assertEqual([], self.bundle.quarantine_files())

        # Still wrong: still held, still said.
        self.run_agent(expect=EXIT_CLOCK, env=faketime("+2d"))
        self.assertEqual(1, self.bundle.status()["held_for_clock"])

        # The clock is right again: the held report is sealed anew and delivered, once.
        heartbeats_before = len(self.heartbeats())
        proc = self.run_agent()
        self.assertIn("sealed again", proc.stderr)
        self.assertEqual(["DC0123"], self.codes())
        status = self.bundle.status()
        self.assertEqual((0, 0, 0, ""), (status["held_for_clock"], status["quarantined"],
                                         status["spool_depth"], status["clock_error"]))
        self.assertIsNone(status["clock_skew_ms"])
        # The heartbeat schedule of the wrong clock (2 days ahead) is not trusted: one was sent.
        self.assertEqual(heartbeats_before + 1, len(self.heartbeats()))
        self.assertLess(status["next_heartbeat_due_ms"], time.time() * 1000 + DAY_MS)
        self.run_agent()
        self.assertEqual(["DC0123"], self.codes())

    def test_an_alert_sealed_before_a_long_outage_is_sealed_again_not_lost(self):
        self.home.stop()
        self.log.raise_sim("DC0123", "Acute", text="Journal group 01 suspended")
        # Sealed 31 days before the home's clock: `stale` when the home is back.
        self.run_agent(env=faketime("-31d"))
        self.home.restart()
        proc = self.run_agent()
        self.assertIn("as stale", proc.stderr)
        self.assertIn("sealed again and sent", proc.stderr)
        self.assertEqual(["DC0123"], self.codes())
        status = self.bundle.status()
        self.assertEqual((0, 0, 0, ""), (status["held_for_clock"], status["quarantined"],
                                         status["spool_depth"], status["clock_error"]))


class ScheduleTest(AgentFaultTestCase):
    def test_a_heartbeat_due_time_far_ahead_is_due_now(self):
        state = self.agent_state()
        state["next_heartbeat_due_ms"] = int(time.time() * 1000) + 2 * DAY_MS
        (self.state / "agent-state.json").write_text(json.dumps(state))
        self.run_agent()
        self.assertEqual(2, len(self.heartbeats()))
        # The new due time is one interval from now, so the next run sends none.
        self.run_agent()
        self.assertEqual(2, len(self.heartbeats()))


class QuarantineTest(AgentFaultTestCase):
    def test_the_heartbeat_after_a_quarantine_counts_it_and_the_run_says_so(self):
        self.home.stop()
        self.log.raise_sim("DC0123", "Acute", text="Journal group 01 suspended")
        self.run_agent()
        [spooled] = self.bundle.spool_files()
        data = bytearray(spooled.read_bytes())
        data[48 + 32 + 4 + 3] ^= 0x01  # one bit of the ciphertext: bad_signature
        spooled.write_bytes(bytes(data))
        self.home.restart()
        heartbeats_before = len(self.heartbeats())
        proc = self.run_agent(expect=EXIT_QUARANTINED)
        self.assertIn("refused 1 envelope(s) for good", proc.stderr)
        self.assertEqual(1, self.bundle.status()["quarantined"])
        self.assertIn("quarantine:", self.status_text())
        # The home hears of it at once, from the heartbeat of this very run.
        hbs = self.heartbeats()
        self.assertEqual(heartbeats_before + 1, len(hbs))
        self.assertEqual(1, hbs[-1]["quarantine"]["count"])
        self.assertIn("bad_signature", hbs[-1]["quarantine"]["recent"][0]["reason"])
        # A later run has nothing new to say.
        self.run_agent()


def limited_file_size(limit):
    """preexec_fn: files may not grow beyond `limit` bytes, and a write past it fails (EFBIG)
    instead of killing the process: what a full disk does to each write."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


class FullDiskTest(AgentFaultTestCase):
    def test_a_full_disk_still_delivers_what_is_spooled_and_says_so(self):
        self.home.stop()
        self.log.raise_sim("DC0123", "Acute", text="Journal group 01 suspended")
        self.run_agent()
        self.assertEqual(1, len(self.bundle.spool_files()))
        self.home.restart()
        # Too big to store under the limit; the state file and a heartbeat still fit.
        for i in range(4):
            self.log.raise_sim(f"DC01{i}0", "Serious", text=f"long SIM {i} " + "x" * 1500)
        proc = subprocess.run([AGENT_BIN, "run", "--config", str(self.bundle.config)],
                              capture_output=True, text=True, timeout=120,
                              preexec_fn=limited_file_size(4096))
        self.assertEqual(EXIT_STORAGE, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("could not store new envelopes", proc.stderr)
        self.assertIn("still sent", proc.stderr)
        self.assertEqual(["DC0123"], self.codes(), "what was spooled is delivered")
        self.assertEqual([], self.bundle.spool_files())
        status = self.bundle.status()
        self.assertNotEqual("", status["storage_error"])
        self.assertEqual("storage_error", status["arrays"][0]["state"])
        self.assertIn("storage:", self.status_text())
        self.assertIsNotNone(self.heartbeats()[-1]["storage_error"])
        self.assertEqual([], list((self.state / "spool").glob(".tmp-*")))

        # Room again: the events not stored are collected again, and the error clears.
        self.run_agent()
        self.assertEqual(["DC0100", "DC0110", "DC0120", "DC0123", "DC0130"], self.codes())
        status = self.bundle.status()
        self.assertEqual("", status["storage_error"])
        self.assertEqual("ok", status["arrays"][0]["state"])


class TempFileTest(AgentFaultTestCase):
    def test_leftover_temp_files_of_cursors_and_pins_are_removed_at_start(self):
        cursors = self.state / "cursors"
        self.assertTrue(any(cursors.iterdir()), "the baseline run wrote a cursor")
        stray = cursors / ".tmp-hitachi_svp-470849.json.12345"
        stray.write_text("half a cursor")
        pins = self.state / "pins"
        pins.mkdir(exist_ok=True)
        stray_pin = pins / ".tmp-x.json.1"
        stray_pin.write_text("{")
        self.run_agent()
        self.assertFalse(stray.exists())
        self.assertFalse(stray_pin.exists())
