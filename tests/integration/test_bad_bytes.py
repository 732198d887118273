"""Bytes that are not UTF-8 are data, not a reason to stop (issue 17, section 1): a SIM log line
in Latin-1 or Shift-JIS reaches the home decoded, with its exact bytes, and costs neither the
SIMs around it nor another array's alarm nor the heartbeat."""

import base64
import datetime
import pathlib
import sys

from passlib import HomeTestCase

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from snm2 import Snm2  # noqa: E402
from svp_log import SvpLog  # noqa: E402

SVP_SERIAL = "470849"
DF_SERIAL = "91110206"
UNIT = "HUS110_91110206"
FFFD = "\ufffd"


def sim_line(rc, text, part=b"DKC"):
    """One pass-csv SIM line as bytes, so that the test chooses every byte."""
    when = datetime.datetime.now()
    head = f"{when:%Y/%m/%d},{when:%H:%M:%S},{rc},Moderate,".encode()
    return head + part + b"," + text


class BadBytesTest(HomeTestCase):
    def setUp(self):
        super().setUp()
        self.bundle = self.home.enroll("svp-01")
        self.log = SvpLog(pathlib.Path(self.tmp) / "svp" / "SIM")
        self.snm2 = Snm2(pathlib.Path(self.tmp) / "snm2").add_unit(UNIT, DF_SERIAL)

    def add_svp(self, **extra):
        self.bundle.add_array("hitachi-svp", serial=SVP_SERIAL, model="DKC710", name="VSP-1",
                              sim_dir=str(self.log.dir), pattern="sim*.log", **extra)

    def add_df(self):
        self.bundle.add_array("hitachi-df", serial=DF_SERIAL, model="HUS110", name="HUS-1",
                              snm2_dir=str(self.snm2.dir), unit=UNIT)

    def write(self, *lines):
        with open(self.log.path, "ab") as f:
            for line in lines:
                f.write(line + b"\n")

    def run_agent(self):
        proc = self.bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertNotIn("unexpected error", proc.stderr)
        return proc

    def heartbeats(self):
        return [m for m in self.home.messages(self.bundle.agent_id) if m["type"] == "heartbeat"]

    def test_a_latin1_byte_costs_neither_the_other_sims_nor_the_other_array_nor_the_heartbeat(self):
        self.add_svp()
        self.add_df()
        self.run_agent()  # the first run follows the SIM log from its end
        before = len(self.heartbeats())

        bad = sim_line("200002", b"L\xfcfter 1 failed", part=b"L\xfcfter")
        self.write(sim_line("200001", b"before"), bad, sim_line("200003", b"after"))
        self.snm2.raise_fault(UNIT, "Fan", "0/1")
        self.bundle.make_heartbeat_due()
        proc = self.run_agent()
        self.assertIn(f"hitachi_svp {SVP_SERIAL}: 3 new event(s)", proc.stdout)

        svp = {e["code"]: e["event"] for e in self.home.events(SVP_SERIAL)}
        self.assertEqual(["200001", "200002", "200003"], sorted(svp))
        self.assertEqual(f"L{FFFD}fter 1 failed", svp["200002"]["text"])
        self.assertEqual(f"L{FFFD}fter", svp["200002"]["component"])
        self.assertEqual(bad.decode("utf-8", "replace"), svp["200002"]["raw"])
        self.assertEqual(bad, base64.b64decode(svp["200002"]["raw_b64"]), "the exact bytes")
        self.assertNotIn("raw_b64", svp["200001"], "clean lines carry no copy")
        self.assertEqual(["fan.alarm"], [e["code"] for e in self.home.events(DF_SERIAL)])

        self.assertEqual(before + 1, len(self.heartbeats()))
        arrays = {a["serial"]: a for a in self.heartbeats()[-1]["payload"]["arrays"]}
        self.assertEqual(("ok", 3), (arrays[SVP_SERIAL]["state"], arrays[SVP_SERIAL]["new_events"]))
        self.assertEqual(("ok", 1), (arrays[DF_SERIAL]["state"], arrays[DF_SERIAL]["new_events"]))
        self.assertEqual([], self.bundle.spool_files())
        self.assertEqual([], self.bundle.quarantine_files())

        # And the runs after it go on as before.
        self.write(sim_line("200004", b"later"))
        self.run_agent()
        self.assertIn("200004", [e["code"] for e in self.home.events(SVP_SERIAL)])

    def test_nul_bytes_and_a_2_mib_line_arrive_without_stopping_the_log(self):
        self.add_svp()
        self.run_agent()
        self.write(sim_line("300001", b"fan\x00\x00"), b"\xfc" * (2 << 20),
                   sim_line("300002", b"after"))
        self.run_agent()
        events = self.home.events(SVP_SERIAL)
        codes = [e["code"] for e in events]
        self.assertIn("300001", codes)
        self.assertIn("300002", codes)
        nul = next(e["event"] for e in events if e["code"] == "300001")
        self.assertEqual(f"fan{FFFD}{FFFD}", nul["text"])
        pieces = [e["event"] for e in events if e["code"] == "unparsed"]
        self.assertGreater(len(pieces), 1, "the long line comes in pieces")
        self.assertEqual(2 << 20, sum(len(base64.b64decode(p["raw_b64"])) for p in pieces))
        self.assertEqual([], self.bundle.quarantine_files(), "no report beyond the home's limit")

    def test_a_shift_jis_log_is_decoded_with_the_arrays_encoding(self):
        self.add_svp(encoding="shift_jis")
        self.run_agent()
        text = "ファン障害"  # fan failure
        line = sim_line("400001", text.encode("cp932"))
        self.write(line)
        self.run_agent()
        [event] = [e["event"] for e in self.home.events(SVP_SERIAL)]
        self.assertEqual(text, event["text"])
        self.assertEqual(line.decode("cp932"), event["raw"])
        self.assertEqual(line, base64.b64decode(event["raw_b64"]))

    def test_status_names_an_array_that_could_not_be_collected(self):
        self.bundle.add_array("hitachi-svp", serial="999999", model="DKC710", name="VSP-2",
                              sim_dir=str(pathlib.Path(self.tmp) / "no-such-dir"))
        self.run_agent()
        proc = self.bundle.agent("status")
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertNotIn("last error:     none", proc.stdout)
        self.assertIn("last error:     hitachi_svp 999999: config:", proc.stdout)
