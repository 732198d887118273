"""Simulated Nimble array (REST over TLS) → real pass-agent → real pass-home."""

import json
import pathlib
import ssl
import sys

from array_pins import TlsPinChecks
from passlib import AGENT_BIN, HomeTestCase, run, wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from nimble import NimbleServer, NimbleSim  # noqa: E402
from svp_log import SvpLog  # noqa: E402

SERIAL = "AF-123456"
SVP_SERIAL = "470849"


class NimbleCollectorTest(TlsPinChecks, HomeTestCase):
    SERIAL, FAMILY, PIN_NAME = SERIAL, "nimble", "rest"

    def setUp(self):
        super().setUp()
        self.bundle = self.home.enroll("nimble-01")
        self.sim = NimbleSim(pathlib.Path(self.tmp) / "nimble")
        self.server = NimbleServer(self.sim).start()
        password = pathlib.Path(self.tmp) / "nimble-password"
        password.write_text("admin-secret\n")
        self.bundle.add_array("nimble", serial=SERIAL, model="AF40", name="nimble-1",
                              address="127.0.0.1", rest_port=self.server.port, user="admin",
                              password_file=str(password), timeout_seconds=5)

    def tearDown(self):
        self.server.stop()  # before the temp dir with its state goes
        super().tearDown()

    def run_agent(self, *args):
        proc = self.bundle.agent("run", *args)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def stored(self):
        return self.home.events(SERIAL)

    def array_state(self, serial=SERIAL):
        return {a["serial"]: a for a in self.bundle.status()["arrays"]}[serial]["state"]

    def assert_tokens_ended(self):
        tokens = self.sim.tokens()
        self.assertTrue(tokens["created"])
        self.assertEqual(sorted(tokens["created"]), sorted(tokens["deleted"]))

    def test_an_event_is_stored_once_and_an_alarm_recovers(self):
        self.sim.add_event(2006, "info", "Old event before installation")
        self.assertEqual(0, run([AGENT_BIN, "check-config", "--config",
                                 str(self.bundle.config)]).returncode)
        first = self.run_agent()
        self.assertIn("first run", first.stderr)
        self.assertEqual([], self.stored(), "history before installation is not reported")

        raised = self.sim.add_event(2002, "critical", "Controller takeover",
                                    target_type="controller", target="A")
        self.run_agent()
        events = self.stored()
        self.assertEqual(1, len(events))
        e = events[0]
        self.assertEqual(("nimble", "2002", "critical"), (e["family"], e["code"], e["severity"]))
        self.assertEqual("Controller takeover", e["event"]["text"])
        self.assertEqual("controller A", e["event"]["component"])
        self.assertEqual(raised["timestamp"] * 1000, e["occurred_ms"])
        self.assertEqual("2002", e["decoded"]["code"], "decoded with vendor-codes/nimble")
        self.assertIn("NIMBLE-TRAP-MIB", e["decoded"]["source"])

        self.run_agent()
        self.home.stop()
        self.home.restart()
        self.run_agent()
        self.assertEqual(1, len(self.stored()), "nothing new after reruns and a restart")

        alarm = self.sim.open_alarm(2004, "critical", "controller", "B", "Standby unavailable")
        self.run_agent()
        kinds = sorted((e["code"], e["event"]["id"].split(":")[0]) for e in self.stored())
        self.assertEqual([("2002", "event"), ("2004", "alarm"), ("2004", "event")], kinds)
        self.sim.acknowledge_alarm(alarm["id"])
        self.run_agent()
        self.assertEqual(3, len(self.stored()), "acknowledging is not a recovery")
        self.sim.clear_alarm(alarm["id"])
        self.run_agent()
        recoveries = [e for e in self.stored() if e["event"].get("kind") == "recovery"]
        self.assertEqual(1, len(recoveries), self.stored())
        self.run_agent()
        self.assertEqual(4, len(self.stored()))
        self.assert_tokens_ended()

    def test_unreachable_and_garbage_are_its_status_and_an_svp_goes_on(self):
        log = SvpLog(pathlib.Path(self.tmp) / "svp" / "SIM")
        self.bundle.add_array("hitachi-svp", serial=SVP_SERIAL, model="DKC710", name="VSP-1",
                              sim_dir=str(log.dir), pattern="sim*.log")
        self.run_agent()
        self.assertEqual("ok", self.array_state())

        self.sim.add_event(2002, "critical", "Controller takeover")
        self.sim.set_mode("garbage")
        log.raise_sim("307080")
        self.run_agent()
        self.assertEqual("bad_output", self.array_state())
        self.assertEqual("ok", self.array_state(SVP_SERIAL))
        self.assertEqual(["307080"], [e["code"] for e in self.home.events(SVP_SERIAL)])
        self.assertEqual([], self.stored())
        self.assert_tokens_ended()

        self.sim.set_mode("unreachable")
        wait_for(lambda: self._refused(), "the simulator to stop listening")
        self.run_agent()
        self.assertEqual("unreachable", self.array_state())

        self.sim.set_mode("normal")
        wait_for(lambda: not self._refused(), "the simulator to listen again")
        self.run_agent()
        self.assertEqual("ok", self.array_state())
        self.assertEqual(["2002"], [e["code"] for e in self.stored()],
                         "the event held back by garbage arrives once the array answers")

    def _refused(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=1):
                return False
        except OSError:
            return True

    def test_a_rotated_key_is_refused_until_forgotten(self):
        self.run_agent()
        self.present_another_key()
        self.run_agent()
        self.assertEqual("pin_mismatch", self.array_state())
        proc = self.bundle.agent("forget-pin", "--array", SERIAL)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.run_agent()
        self.assertEqual("ok", self.array_state())

    # ---- TlsPinChecks ----------------------------------------------------------------------
    def add_pinned_array(self):
        pass  # setUp added it

    def presented_cert(self):
        return self.sim.cert_paths()[0]

    def watch_logins(self, callback):
        self.server.on_login = callback

    def login_count(self):
        return len(self.sim.tokens()["logins"])

    def present_another_key(self):
        self.sim.rotate_cert()
        cert = self.presented_cert().read_text().strip()

        def presented():
            try:
                return ssl.get_server_certificate(("127.0.0.1", self.server.port), timeout=2)
            except OSError:
                return None

        wait_for(lambda: (presented() or "").strip() == cert,
                 "the simulator to present its new key")

    def test_dry_run_prints_new_events_and_advances_nothing(self):
        self.run_agent()
        self.sim.add_event(2002, "critical", "Controller takeover")
        dry = self.run_agent("--dry-run")
        lines = [json.loads(line) for line in dry.stdout.splitlines()]
        self.assertEqual(["2002"], [e["code"] for e in lines])
        self.assertEqual([], self.stored(), "a dry run sends nothing")
        self.run_agent()
        self.assertEqual(["2002"], [e["code"] for e in self.stored()])

    def test_a_refused_login_is_login_failed(self):
        (pathlib.Path(self.tmp) / "nimble-password").write_text("wrong\n")
        self.run_agent()
        self.assertEqual("login_failed", self.array_state())


class NimbleParseCommandTest(HomeTestCase):
    def test_parse_prints_one_json_line_per_record(self):
        capture = pathlib.Path(self.tmp) / "events.json"
        capture.write_text(json.dumps({"startRow": 0, "endRow": 2, "totalRows": 2, "data": [
            {"id": "2a0df0fe6f7dc7bb16000000000000000000004817", "type": 2002,
             "timestamp": 1700000000, "severity": "critical", "summary": "Controller takeover",
             "target_type": "controller", "target": "A"},
            {"summary": "no id"}]}))
        proc = run([AGENT_BIN, "parse", "--family", "nimble", "--source", "events",
                    str(capture)])
        self.assertEqual(0, proc.returncode, proc.stderr)
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(["2002", "unparsed"], [e["code"] for e in events])
        self.assertEqual(1700000000000, events[0]["occurred_ms"])
        self.assertEqual("controller A", events[0]["component"])

        alarms = pathlib.Path(self.tmp) / "alarms.json"
        alarms.write_text(json.dumps({"data": [
            {"id": "al1", "type": 2004, "curr_onset_event_id": "ev1", "onset_time": 1700000000,
             "status": "open", "severity": "critical", "activity": "Standby unavailable"}]}))
        proc = run([AGENT_BIN, "parse", "--family", "nimble", "--source", "alarms", str(alarms)])
        self.assertEqual(0, proc.returncode, proc.stderr)
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(["alarm:al1:ev1"], [e["id"] for e in events])

        garbage = pathlib.Path(self.tmp) / "garbage.json"
        garbage.write_text("<html>")
        proc = run([AGENT_BIN, "parse", "--family", "nimble", "--source", "events",
                    str(garbage)])
        self.assertEqual(1, proc.returncode)
        self.assertIn("not JSON", proc.stderr)
