"""Simulated arrays → agent → home: each new alert is stored once, whatever happens between."""

import json
import os
import pathlib
import sys
import tempfile

from passlib import AGENT_BIN, HomeTestCase, run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

SERIAL = "470849"


class SvpCollectorTest(HomeTestCase):
    def setUp(self):
        super().setUp()
        self.bundle = self.home.enroll("svp-01")
        self.log = SvpLog(pathlib.Path(self.tmp) / "svp" / "SIM")

    def add_svp(self, serial=SERIAL, sim_dir=None, **extra):
        self.bundle.add_array("hitachi-svp", serial=serial, model="DKC710", name="VSP-1",
                              sim_dir=str(sim_dir or self.log.dir), pattern="sim*.log", **extra)

    def run_agent(self, *args):
        proc = self.bundle.agent("run", *args)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def codes(self):
        return sorted(e["code"] for e in self.home.events(SERIAL))

    def test_a_new_sim_is_stored_once_across_runs_and_restarts(self):
        self.log.raise_sim("DC0123", "Serious", text="old, before installation")
        self.add_svp()
        self.assertEqual(0, run([AGENT_BIN, "check-config", "--config",
                                 str(self.bundle.config)]).returncode)
        first = self.run_agent()
        self.assertIn("first run", first.stderr)
        self.assertEqual([], self.codes(), "history before installation is not reported")

        self.log.raise_sim("307080", "Moderate", part="DKC", text="Processor failure")
        self.run_agent()
        events = self.home.events(SERIAL)
        self.assertEqual(1, len(events))
        e = events[0]
        self.assertEqual(("hitachi_svp", "307080", "moderate"), (e["family"], e["code"],
                                                                 e["severity"]))
        self.assertEqual("Processor failure", e["event"]["text"])
        self.assertEqual("DKC", e["event"]["component"])
        self.assertIsNotNone(e["occurred_ms"])
        self.assertEqual("307080", e["decoded"]["code"], "decoded with vendor-codes/")
        self.assertIn("source", e["decoded"])

        self.run_agent()
        self.home.stop()
        self.home.restart()
        self.run_agent()
        self.assertEqual(["307080"], self.codes(), "nothing new after reruns and a restart")

    def test_rotation_and_truncation_lose_nothing_and_repeat_nothing(self):
        self.add_svp()
        self.run_agent()
        self.log.raise_sim("100001")
        self.log.raise_sim("100002", partial=True)  # the writer is mid-line at rotation time
        self.run_agent()
        self.log.finish_line()
        self.log.rotate()
        self.log.raise_sim("100003")
        self.run_agent()
        self.log.raise_sim("100004")
        self.log.copy_truncate()  # the copy is a new file holding 100003 and 100004 again
        self.log.raise_sim("100005")
        self.run_agent()
        self.run_agent()
        self.assertEqual(["100001", "100002", "100003", "100004", "100005"], self.codes())

    def test_a_missing_array_is_its_status_and_the_others_go_on(self):
        self.add_svp()
        self.add_svp(serial="999999", sim_dir=pathlib.Path(self.tmp) / "no-such-dir")
        self.add_svp(serial="888888", profile="no-such-profile")  # cannot even be built
        self.run_agent()
        self.log.raise_sim("307080")
        self.bundle.make_heartbeat_due()
        proc = self.run_agent()
        self.assertIn("999999: config", proc.stdout)
        self.assertEqual(["307080"], self.codes())

        heartbeats = [m for m in self.home.messages(self.bundle.agent_id)
                      if m["type"] == "heartbeat"]
        arrays = {a["serial"]: a for a in heartbeats[-1]["payload"]["arrays"]}
        self.assertEqual("ok", arrays[SERIAL]["state"])
        self.assertEqual(1, arrays[SERIAL]["new_events"])
        self.assertEqual("config", arrays["999999"]["state"])
        self.assertIn("no-such-dir", arrays["999999"]["message"])
        self.assertGreater(arrays["999999"]["last_run_ms"], 0)
        self.assertIsNone(arrays["999999"]["last_success_ms"])
        self.assertEqual("config", arrays["888888"]["state"])
        self.assertIn("no-such-profile", arrays["888888"]["message"])
        self.assertGreater(arrays["888888"]["last_run_ms"], 0)
        status = self.bundle.status()
        self.assertEqual({"ok", "config"}, {a["state"] for a in status["arrays"]})
        self.assertEqual(3, len(status["arrays"]))

    def test_dry_run_prints_new_events_and_advances_nothing(self):
        self.add_svp()
        self.run_agent()
        self.log.raise_sim("307080", text="Processor failure")
        dry = self.run_agent("--dry-run")
        lines = [json.loads(line) for line in dry.stdout.splitlines()]
        self.assertEqual(["307080"], [e["code"] for e in lines])
        self.assertEqual([], self.codes(), "a dry run sends nothing")
        self.run_agent()
        self.assertEqual(["307080"], self.codes(), "and leaves the event for the real run")

    def test_a_garbage_line_still_arrives_marked_unparsed(self):
        self.add_svp()
        self.run_agent()
        self.log.garbage("this is not a SIM record")
        self.run_agent()
        events = self.home.events(SERIAL)
        self.assertEqual(["unparsed"], [e["code"] for e in events])
        self.assertIsNone(events[0]["decoded"], "an unknown code flows through undecoded")
        self.assertEqual("this is not a SIM record", events[0]["event"]["raw"])

    def test_a_bad_array_setting_fails_check_config_with_its_line(self):
        self.add_svp(profile="no-such-profile")
        proc = run([AGENT_BIN, "check-config", "--config", str(self.bundle.config)])
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("agent.xml:", proc.stderr)
        self.assertIn("no-such-profile", proc.stderr)


class CheckConfigPrerequisitesTest(HomeTestCase):
    """check-config also checks what the arrays' settings name on this machine (password and key
    files, the SIM folder, the SNM2 CLI), and lists every problem in one pass."""

    def check(self, config, *extra):
        return run([AGENT_BIN, "check-config", "--config", config, *extra])

    def test_each_missing_file_is_named_until_everything_is_in_place(self):
        bundle = self.home.enroll("appliance-01")
        site = pathlib.Path(self.tmp) / "site"
        bundle.add_array("hitachi-svp", serial="470849", model="DKC710", name="VSP-1",
                         sim_dir=str(site / "SIM"))
        bundle.add_array("hitachi-df", serial="91110206", model="HUS110", name="HUS-1",
                         snm2_dir=str(site / "snm2"), unit="HUS110_91110206")
        bundle.add_array("hpe-3par", serial="1400123", model="8200", name="3PAR-1",
                         address="127.0.0.1", user="passmon", key_file=str(site / "3par-1.key"))
        bundle.add_array("nimble", serial="AF-109084", model="AF40", name="Nimble-1",
                         address="127.0.0.1", user="passmon", password_file=str(site / "nimble-1"))
        config = str(bundle.config)

        proc = self.check(config)
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        self.assertEqual("", proc.stdout, "no ok line while something is missing")
        problems = [line for line in proc.stderr.splitlines() if "agent.xml:" in line]
        for needle in (f"the SIM log directory {site / 'SIM'} does not exist",
                       f"snm2-dir: there is no folder {site / 'snm2'}",
                       f"key-file: cannot open {site / '3par-1.key'}",
                       f"password-file: cannot open {site / 'nimble-1'}"):
            self.assertEqual(1, sum(needle in line for line in problems), (needle, proc.stderr))
        self.assertIn("4 problem(s)", proc.stderr)

        only = self.check(config, "--config-only")
        self.assertEqual(0, only.returncode, only.stdout + only.stderr)
        self.assertIn("4 array(s)); the arrays' files were not checked (--config-only)", only.stdout)

        (site / "SIM").mkdir(parents=True)
        (site / "3par-1.key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        (site / "nimble-1").write_text("\n")
        (site / "snm2").mkdir()
        for command in ("auunitinfo", "auparts"):
            (site / "snm2" / command).write_text("#!/bin/sh\n")
        (site / "snm2" / "auunitinfo").chmod(0o755)
        proc = self.check(config)
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn(f"password-file: the first line of {site / 'nimble-1'} is empty", proc.stderr)
        self.assertIn(f"snm2-dir: {site / 'snm2' / 'auparts'} is missing or this user may not run it",
                      proc.stderr)
        self.assertIn("2 problem(s)", proc.stderr)

        (site / "nimble-1").write_text("not-a-real-password\n")
        (site / "snm2" / "auparts").chmod(0o755)
        proc = self.check(config)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("agent.xml: ok", proc.stdout)


class ParseCommandTest(HomeTestCase):
    def test_parse_prints_one_json_line_per_sim(self):
        log = SvpLog(pathlib.Path(self.tmp) / "capture")
        log.raise_sim("307080", "Acute", part="CHA-1E", text="Channel port blocking, port 1E")
        log.raise_sim("212051", "Service")
        proc = run([AGENT_BIN, "parse", "--family", "hitachi_svp", "--source", "sim-log",
                    str(log.path)])
        self.assertEqual(0, proc.returncode, proc.stderr)
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(["307080", "212051"], [e["code"] for e in events])
        for key in ("family", "id", "code", "severity", "occurred_ms", "component", "text"):
            self.assertIn(key, events[0])
        self.assertEqual("Channel port blocking, port 1E", events[0]["text"])
        self.assertEqual("acute", events[0]["severity"])

    def test_parse_refuses_an_unknown_family_or_source(self):
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write("x\n")
        try:
            proc = run([AGENT_BIN, "parse", "--family", "nope", "--source", "x", f.name])
            self.assertEqual(2, proc.returncode)
            self.assertIn("hitachi_svp", proc.stderr)
            proc = run([AGENT_BIN, "parse", "--family", "hitachi_svp", "--source", "nope", f.name])
            self.assertEqual(2, proc.returncode)
            self.assertIn("sim-log", proc.stderr)
            proc = run([AGENT_BIN, "parse", "--family", "hitachi_svp", "--source", "sim-log",
                        f.name])
            self.assertEqual(1, proc.returncode)
            self.assertIn("line 1", proc.stderr)
        finally:
            os.unlink(f.name)
