"""Fake SNM2 CLI → pass-agent (hitachi_df) → pass-home: a component fault is stored once, its
recovery once, and a failing CLI is the array's status without touching the other arrays."""

import json
import pathlib
import sys

from passlib import AGENT_BIN, HomeTestCase, run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from snm2 import Snm2  # noqa: E402
from svp_log import SvpLog  # noqa: E402

SERIAL = "91110206"
UNIT = "HUS110_91110206"
SVP_SERIAL = "470849"


class DfCollectorTest(HomeTestCase):
    def setUp(self):
        super().setUp()
        self.bundle = self.home.enroll("appliance-01")
        self.snm2 = Snm2(pathlib.Path(self.tmp) / "snm2").add_unit(UNIT, SERIAL)

    def add_df(self, serial=SERIAL, **extra):
        self.bundle.add_array("hitachi-df", serial=serial, model="HUS110", name="HUS-1",
                              snm2_dir=str(self.snm2.dir), unit=UNIT, **extra)

    def run_agent(self, *args):
        proc = self.bundle.agent("run", *args)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def events(self):
        return sorted((e["event"]["kind"], e["code"]) for e in self.home.events(SERIAL))

    def states(self):
        return {a["serial"]: a for a in self.bundle.status()["arrays"]}

    def test_a_fault_and_its_recovery_are_stored_once_across_runs_and_restarts(self):
        self.snm2.raise_fault(UNIT, "Fan", "0/1")  # already failed when the agent is installed
        self.add_df()
        self.assertEqual(0, run([AGENT_BIN, "check-config", "--config",
                                 str(self.bundle.config)]).returncode)
        first = self.run_agent()
        self.assertIn("first run", first.stderr)
        events = self.home.events(SERIAL)
        self.assertEqual(1, len(events), "the current fault is reported on the first run")
        e = events[0]
        self.assertEqual(("hitachi_df", "fan.alarm", "moderate"),
                         (e["family"], e["code"], e["severity"]))
        self.assertEqual("Fan/Unit 0/Fan 1", e["event"]["component"])
        self.assertEqual("Fan/Unit 0/Fan 1 is Alarm", e["event"]["text"])
        self.assertEqual("     0       1   Alarm", e["event"]["raw"])
        self.assertEqual("fan.alarm", e["decoded"]["code"], "decoded with vendor-codes/")
        self.assertIn("fan", e["decoded"]["meaning"].lower())
        self.assertIn("Checkmk", e["decoded"]["source"])

        self.run_agent()
        self.assertEqual([("alert", "fan.alarm")], self.events(), "nothing new on a rerun")

        self.snm2.raise_fault(UNIT, "Host Connector", "1B")
        self.snm2.clear(UNIT, "Fan", "0/1")
        self.run_agent()
        self.run_agent()
        self.home.stop()
        self.home.restart()
        self.run_agent()
        self.assertEqual([("alert", "fan.alarm"), ("alert", "host_connector.alarm"),
                          ("recovery", "fan.normal")], self.events())

        calls = self.snm2.calls()
        self.assertEqual(1, sum(c.startswith("auunitinfo") for c in calls),
                         "the serial is checked on the first run only")
        self.assertEqual(5, sum(c.startswith(f"auparts -unit {UNIT} |") for c in calls))
        self.assertIn(f"STONAVM_HOME={self.snm2.dir} STONAVM_ACT=on STONAVM_RSP_PASS=on",
                      calls[-1])

    def test_a_failing_cli_is_the_arrays_status_and_the_others_go_on(self):
        log = SvpLog(pathlib.Path(self.tmp) / "svp" / "SIM")
        self.bundle.add_array("hitachi-svp", serial=SVP_SERIAL, model="DKC710", name="VSP-1",
                              sim_dir=str(log.dir), pattern="sim*.log")
        self.add_df(timeout_seconds=2)
        self.run_agent()
        self.assertEqual({"ok"}, {a["state"] for a in self.states().values()})

        # A fault raised while the CLI cannot reach the array is reported once it can again.
        self.snm2.unreachable()
        self.snm2.raise_fault(UNIT, "Controller", "1")
        log.raise_sim("307080")
        proc = self.run_agent()
        self.assertIn(f"{SERIAL}: unreachable", proc.stdout)
        states = self.states()
        self.assertEqual("unreachable", states[SERIAL]["state"])
        self.assertIn("cannot communicate with the unit", states[SERIAL]["message"])
        self.assertEqual("ok", states[SVP_SERIAL]["state"])
        self.assertEqual(["307080"], [e["code"] for e in self.home.events(SVP_SERIAL)])

        self.snm2.garbage()
        self.run_agent()
        self.assertEqual("bad_output", self.states()[SERIAL]["state"])
        self.assertIn("not an SNM2 answer", self.states()[SERIAL]["message"])

        self.snm2.normal()
        self.snm2.slow(30)
        proc = self.run_agent()
        self.assertEqual("timeout", self.states()[SERIAL]["state"])
        self.assertEqual("ok", self.states()[SVP_SERIAL]["state"])

        self.snm2.normal()
        self.assertEqual([], self.events(), "nothing while the CLI failed")
        self.run_agent()
        self.assertEqual("ok", self.states()[SERIAL]["state"])
        self.assertEqual([("alert", "controller.alarm")], self.events())

    def test_a_unit_name_of_another_array_is_a_config_error(self):
        self.add_df(serial="91110999")
        proc = self.run_agent()
        self.assertIn("91110999: config", proc.stdout)
        state = self.states()["91110999"]
        self.assertEqual("config", state["state"])
        self.assertIn(f"unit \"{UNIT}\" is the array with serial {SERIAL}", state["message"])
        self.assertIn("agent.xml:", state["message"])

    def test_dry_run_prints_new_events_and_advances_nothing(self):
        self.add_df()
        self.run_agent()
        self.snm2.raise_fault(UNIT, "AC PS", "0/1")
        dry = self.run_agent("--dry-run")
        lines = [json.loads(line) for line in dry.stdout.splitlines()]
        self.assertEqual(["ac_ps.alarm"], [e["code"] for e in lines])
        self.assertEqual("serious", lines[0]["severity"])
        self.assertEqual([], self.events(), "a dry run sends nothing")
        self.run_agent()
        self.assertEqual([("alert", "ac_ps.alarm")], self.events(),
                         "and leaves the event for the real run")

    def test_a_bad_setting_fails_check_config(self):
        self.bundle.add_array("hitachi-df", serial=SERIAL, snm2_dir=str(self.snm2.dir))
        proc = run([AGENT_BIN, "check-config", "--config", str(self.bundle.config)])
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("agent.xml:", proc.stderr)
        self.assertIn("unit", proc.stderr)


class DfParseCommandTest(HomeTestCase):
    def test_parse_prints_the_components_that_are_not_normal(self):
        snm2 = Snm2(pathlib.Path(self.tmp) / "snm2").add_unit(UNIT, SERIAL)
        snm2.raise_fault(UNIT, "Interface Board", "1/1")
        snm2.raise_fault(UNIT, "Battery", "0", status="Detached")
        capture = pathlib.Path(self.tmp) / "auparts.txt"
        capture.write_text(snm2.auparts_text(UNIT).replace("\n", "\r\n"))
        proc = run([AGENT_BIN, "parse", "--family", "hitachi_df", "--source", "auparts",
                    str(capture)])
        self.assertEqual(0, proc.returncode, proc.stderr)
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(["interface_board.alarm", "battery.detached"],
                         [e["code"] for e in events])
        self.assertEqual("Interface Board/CTL 1/Interface Board 1", events[0]["component"])
        self.assertEqual("moderate", events[1]["severity"], "an unknown word: its section's")
        for key in ("family", "id", "kind", "code", "severity", "component", "text", "raw"):
            self.assertIn(key, events[0])

        capture.write_text("not an auparts answer\n")
        proc = run([AGENT_BIN, "parse", "--family", "hitachi_df", "--source", "auparts",
                    str(capture)])
        self.assertEqual(1, proc.returncode)
        self.assertIn("no section with a Status column", proc.stderr)
