"""Simulated HPE 3PAR (Debian's sshd + a TLS WSAPI) → real pass-agent → real pass-home."""

import json
import pathlib
import sys

from array_pins import TlsPinChecks
from passlib import AGENT_BIN, HomeTestCase, run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402
from threepar import SshServer, ThreePar, WsapiServer  # noqa: E402

SERIAL = "1400123"
SVP_SERIAL = "470849"


class ThreeParCase(HomeTestCase):
    def setUp(self):
        super().setUp()
        self.bundle = self.home.enroll("appliance-01")
        self.dir = pathlib.Path(self.tmp) / "3par"
        self.dir.mkdir()
        self.array = ThreePar(self.dir / "state.json")

    def start_ssh(self):
        self.ssh = SshServer(self.array, self.dir / "ssh").start()
        self.addCleanup(self.ssh.stop)

    def start_wsapi(self, user="3paradm"):
        self.wsapi = WsapiServer(self.array, self.dir / "wsapi", user=user).start()
        self.addCleanup(self.wsapi.stop)

    def add_3par(self, **extra):
        attrs = dict(serial=SERIAL, model="8200", name="3PAR-1", address="127.0.0.1")
        attrs.update(extra)
        self.bundle.add_array("hpe-3par", **attrs)

    def add_ssh_array(self, **extra):
        self.add_3par(user=self.ssh.user, key_file=str(self.ssh.client_key),
                      ssh_port=self.ssh.port, timeout_seconds=20, **extra)

    def add_wsapi_array(self, password=None, **extra):
        secret = self.dir / "wsapi-password"
        secret.write_text((password or self.wsapi.password) + "\n")
        self.add_3par(user=self.wsapi.user, password_file=str(secret), source="wsapi",
                      wsapi_port=self.wsapi.port, timeout_seconds=20, **extra)

    def run_agent(self, *args):
        proc = self.bundle.agent("run", *args)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def events(self):
        return self.home.events(SERIAL)

    def ids(self):
        return sorted((e["event"]["id"], e["event"]["kind"]) for e in self.events())

    def state_of(self, serial=SERIAL):
        arrays = {a["serial"]: a for a in self.bundle.status()["arrays"]}
        return arrays[serial]["state"], arrays[serial].get("message", "")


class SshCollectorTest(ThreeParCase):
    def setUp(self):
        super().setUp()
        self.start_ssh()

    def test_a_new_alert_is_stored_once_and_its_fix_is_a_recovery(self):
        old = self.array.raise_alert("0x27001e", "Major", "CPG growth non admin limit", "cpg1")
        self.array.acknowledge(old)
        open_before = self.array.raise_alert("0x0360002", "Critical", "Write cache degraded",
                                             "Node 1")
        self.add_ssh_array()
        self.assertEqual(0, run([AGENT_BIN, "check-config", "--config",
                                 str(self.bundle.config)]).returncode)
        first = self.run_agent()
        self.assertIn("first run", first.stdout + first.stderr)
        self.assertEqual([(str(open_before), "alert")], self.ids(),
                         "the open New alert is reported, the acknowledged one is history")

        new = self.array.raise_alert()  # 0x2200de Degraded, the delfin fixture's alert
        self.run_agent()
        events = [e for e in self.events() if e["event"]["id"] == str(new)]
        self.assertEqual(1, len(events))
        e = events[0]
        self.assertEqual(("hpe_3par", "0x02200de", "degraded"),
                         (e["family"], e["code"], e["severity"]))
        self.assertEqual("Node 0, Power Supply 1, Battery 0 Degraded", e["event"]["text"])
        self.assertEqual("Node 0 Power Supply 1", e["event"]["component"])
        self.assertIsNotNone(e["occurred_ms"], "PDT is in the zone table")
        self.assertEqual("0x02200de", e["decoded"]["code"], "decoded with vendor-codes/")
        self.assertEqual("Component state change", e["decoded"]["meaning"])
        self.assertIn("MessageCode : 0x2200de", e["event"]["raw"])

        self.run_agent()
        self.array.fix(new)
        self.run_agent()
        self.run_agent()
        self.home.stop()
        self.home.restart()
        self.run_agent()
        self.assertEqual(sorted([(str(open_before), "alert"), (str(new), "alert"),
                                 (f"{new}:fixed", "recovery")]), self.ids(),
                         "each once, across reruns and a home restart")
        self.assertEqual("ok", self.state_of()[0])

    def test_unreachable_and_garbage_are_its_status_and_the_svp_goes_on(self):
        log = SvpLog(pathlib.Path(self.tmp) / "svp")
        self.bundle.add_array("hitachi-svp", serial=SVP_SERIAL, model="DKC710", name="VSP-1",
                              sim_dir=str(log.dir), pattern="sim*.log")
        self.add_ssh_array()
        self.run_agent()

        self.array.garbage("Error: CLI internal error\n")
        log.raise_sim("307080", "Moderate")
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("bad_output", state, message)
        self.assertIn("Error: CLI internal error", message)
        self.assertEqual("ok", self.state_of(SVP_SERIAL)[0])
        self.assertEqual(["307080"], [e["code"] for e in self.home.events(SVP_SERIAL)])

        self.array.garbage(None)
        self.ssh.stop()
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("unreachable", state, message)
        self.assertIn(f"hpe_3par {SERIAL}", message)
        self.assertIn(f"127.0.0.1:{self.ssh.port}", message)
        self.assertEqual("ok", self.state_of(SVP_SERIAL)[0])

        self.ssh.start(self.ssh.port)
        alert = self.array.raise_alert()
        self.run_agent()
        self.assertEqual("ok", self.state_of()[0])
        self.assertEqual([(str(alert), "alert")], self.ids(), "the cursor stayed put meanwhile")

    def test_a_non_zero_exit_status_is_bad_output(self):
        self.add_ssh_array()
        self.array.exit_status(2)
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("bad_output", state, message)
        self.assertIn("status 2", message)

    def test_a_slow_array_is_a_timeout(self):
        self.add_ssh_array()
        self.bundle.config.write_text(self.bundle.config.read_text().replace(
            'timeout-seconds="20"', 'timeout-seconds="2"'))
        self.array.slow(6)
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("timeout", state, message)

    def test_a_changed_host_key_is_refused_until_forgotten(self):
        self.add_ssh_array()
        self.run_agent()
        pinned = self.ssh.fingerprint()
        self.ssh.change_host_key()
        alert = self.array.raise_alert()
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("pin_mismatch", state, message)
        self.assertIn(pinned, message)
        self.assertIn(self.ssh.fingerprint(), message)
        self.assertIn("forget-pin", message)
        self.assertEqual([], self.ids(), "nothing is read from a host that is not the array")

        proc = self.bundle.agent("forget-pin", "--array", SERIAL)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.run_agent()
        self.assertEqual("ok", self.state_of()[0])
        self.assertEqual([(str(alert), "alert")], self.ids())

    def test_a_dry_run_pins_the_host_key_and_refuses_another(self):
        self.add_ssh_array()
        self.run_agent("--dry-run")  # the first contact
        pinned = self.ssh.fingerprint()
        self.assertEqual({"ssh": pinned}, self.bundle.pins(SERIAL))
        self.ssh.change_host_key()
        dry = self.bundle.agent("run", "--dry-run")
        self.assertEqual(1, dry.returncode, dry.stdout + dry.stderr)
        self.assertIn(f"dry-run: hpe_3par {SERIAL}: pin_mismatch", dry.stderr)
        self.assertIn(pinned, dry.stderr)
        self.assertIn(self.ssh.fingerprint(), dry.stderr)

    def test_dry_run_prints_new_events_and_advances_nothing(self):
        self.add_ssh_array()
        self.run_agent()
        alert = self.array.raise_alert()
        dry = self.run_agent("--dry-run")
        lines = [json.loads(line) for line in dry.stdout.splitlines() if line.startswith("{")]
        self.assertEqual([str(alert)], [e["id"] for e in lines])
        self.assertEqual("0x02200de", lines[0]["code"])
        self.assertEqual([], self.ids(), "a dry run sends nothing")
        self.run_agent()
        self.assertEqual([(str(alert), "alert")], self.ids(), "the real run still reports it")


class WsapiCollectorTest(TlsPinChecks, ThreeParCase):
    SERIAL, FAMILY, PIN_NAME = SERIAL, "hpe_3par", "wsapi"

    def setUp(self):
        super().setUp()
        self.start_wsapi()

    def test_eventlog_alerts_share_the_cli_ids_and_every_session_is_deleted(self):
        self.array.raise_alert("0x27001e", "Major", "CPG growth non admin limit", "cpg1")
        self.add_wsapi_array()
        self.run_agent()
        self.assertEqual([], self.ids(), "the event log before installation is history")

        alert = self.array.raise_alert()
        self.run_agent()
        events = self.events()
        self.assertEqual([(str(alert), "alert")], self.ids())
        self.assertEqual(("0x02200de", "degraded"), (events[0]["code"], events[0]["severity"]))
        self.assertEqual("Component state change", events[0]["decoded"]["meaning"])

        self.array.fix(alert)
        self.run_agent()
        self.run_agent()
        self.assertEqual([(str(alert), "alert"), (f"{alert}:fixed", "recovery")], self.ids())
        self.assertEqual(4, len(self.wsapi.created))
        self.assertEqual([], self.wsapi.open_sessions(), "every session key was DELETEd")
        self.assertEqual("ok", self.state_of()[0])

    def test_a_wrong_password_is_login_failed(self):
        self.add_wsapi_array(password="wrong")
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("login_failed", state, message)
        self.assertIn("invalid username or password", message)
        self.assertEqual([], self.wsapi.created)

    def test_garbage_is_bad_output_and_the_session_is_still_deleted(self):
        self.add_wsapi_array()
        self.run_agent()
        self.array.garbage("<html>503 Service Unavailable</html>")
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("bad_output", state, message)
        self.assertIn("503 Service Unavailable", message)
        self.assertEqual(2, len(self.wsapi.created))
        self.assertEqual([], self.wsapi.open_sessions())

    def test_a_changed_certificate_is_refused(self):
        self.add_wsapi_array()
        self.run_agent()
        self.wsapi.change_certificate()
        self.run_agent()
        state, message = self.state_of()
        self.assertEqual("pin_mismatch", state, message)
        self.assertIn("forget-pin", message)
        self.assertEqual(1, len(self.wsapi.created), "no password went to the new key")

    # ---- TlsPinChecks ----------------------------------------------------------------------
    def add_pinned_array(self):
        self.add_wsapi_array()

    def presented_cert(self):
        return self.wsapi.cert

    def watch_logins(self, callback):
        self.wsapi.on_login = callback

    def login_count(self):
        return self.wsapi.requests.count(("POST", "/api/v1/credentials"))

    def present_another_key(self):
        self.wsapi.change_certificate()

    def array_state(self):
        return self.state_of()[0]

    def test_unreachable_wsapi(self):
        self.add_wsapi_array()
        self.wsapi.stop()
        self.run_agent()
        self.assertEqual("unreachable", self.state_of()[0])


class BothSourcesTest(ThreeParCase):
    def test_cli_and_eventlog_agree_on_ids(self):
        self.start_ssh()
        self.start_wsapi(user=self.ssh.user)  # one account for the CLI and the WSAPI
        secret = self.dir / "password"
        secret.write_text(self.wsapi.password + "\n")
        self.add_3par(user=self.ssh.user, key_file=str(self.ssh.client_key),
                      ssh_port=self.ssh.port, password_file=str(secret), source="both",
                      wsapi_port=self.wsapi.port, timeout_seconds=20)
        self.run_agent()
        alert = self.array.raise_alert()
        dry = self.run_agent("--dry-run")
        lines = [json.loads(line) for line in dry.stdout.splitlines() if line.startswith("{")]
        self.assertEqual([str(alert)], [e["id"] for e in lines], "one event for both sources")
        self.run_agent()
        self.array.fix(alert)
        self.run_agent()
        self.assertEqual([(str(alert), "alert"), (f"{alert}:fixed", "recovery")], self.ids())
        self.assertEqual([], self.wsapi.open_sessions())


class ParseCommandTest(HomeTestCase):
    def test_parse_showalert_and_eventlog_captures(self):
        array = ThreePar(pathlib.Path(self.tmp) / "state.json")
        a = array.raise_alert()
        b = array.raise_alert("0x27001e", "Major", "CPG growth non admin limit", "cpg1")
        array.fix(b)
        out, _, _ = array.showalert(["-d", "-all"])
        capture = pathlib.Path(self.tmp) / "showalert.txt"
        capture.write_text(out)
        proc = run([AGENT_BIN, "parse", "--family", "hpe_3par", "--source", "showalert",
                    str(capture)])
        self.assertEqual(0, proc.returncode, proc.stderr)
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual([str(a), f"{b}:fixed"], [e["id"] for e in events])
        self.assertEqual(["0x02200de", "0x027001e"], [e["code"] for e in events])
        for key in ("family", "id", "code", "severity", "occurred_ms", "component", "text"):
            self.assertIn(key, events[0])

        log = pathlib.Path(self.tmp) / "eventlog.json"
        log.write_text(json.dumps(array.eventlog()))
        proc = run([AGENT_BIN, "parse", "--family", "hpe_3par", "--source", "eventlog",
                    str(log)])
        self.assertEqual(0, proc.returncode, proc.stderr)
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual([str(a), str(b), f"{b}:fixed"], [e["id"] for e in events])

        garbage = pathlib.Path(self.tmp) / "garbage.txt"
        garbage.write_text("Error: not a showalert\n")
        proc = run([AGENT_BIN, "parse", "--family", "hpe_3par", "--source", "showalert",
                    str(garbage)])
        self.assertEqual(1, proc.returncode)
        self.assertIn("line 1", proc.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
