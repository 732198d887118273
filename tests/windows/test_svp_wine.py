"""pass-svp.exe under Wine against a real Linux pass-home on 127.0.0.1: a SIM raised on the
"SVP" reaches the home as a sealed envelope and is stored; the task is registered and removed
through the Task Scheduler API; paths with spaces and non-ASCII letters work throughout.

Run by scripts/test-windows.sh with PASS_SVP_EXE (the cross-built exe), PASS_HOME_BIN (the
Linux pass-home) and WINEPREFIX set."""

import json
import os
import pathlib
import subprocess
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE.parents[1] / "tools" / "pass-sim"))
from passlib import HomeTestCase  # noqa: E402
from svp_log import SvpLog  # noqa: E402

SVP_EXE = os.environ.get("PASS_SVP_EXE", "pass-svp.exe")
WINE = os.environ.get("WINE", "/usr/lib/wine/wine64")
SERIAL = "470849"


def windows_path(path):
    """Wine shows the Linux root as drive Z:."""
    return "Z:" + str(path).replace("/", "\\")


class SvpUnderWineTest(HomeTestCase):
    def setUp(self):
        super().setUp()
        # A folder with a space and non-ASCII letters, as on a French or German SVP.
        self.root = pathlib.Path(self.tmp) / "Programmdaten PASS Ü"
        self.config = self.root / "agent.xml"
        self.bundle = self.home.enroll("svp-01")
        self.log = SvpLog(pathlib.Path(self.tmp) / "SVP Logs" / "Données")
        self.bundle.add_array("hitachi-svp", serial=SERIAL, model="DKC810I", name="VSP G1000",
                              sim_dir=windows_path(self.log.dir), pattern="sim*.log")

    def svp(self, *args):
        env = dict(os.environ, WINEDEBUG="-all")
        proc = subprocess.run([WINE, SVP_EXE, *args, "--config", windows_path(self.config)],
                              capture_output=True, text=True, env=env, timeout=120)
        return proc

    def ok(self, *args):
        proc = self.svp(*args)
        self.assertEqual(0, proc.returncode, f"{args}: {proc.stdout}{proc.stderr}")
        return proc

    def test_a_sim_reaches_the_home_and_the_task_is_registered(self):
        self.log.raise_sim("DC0123", "Serious", text="before installation")
        imported = self.ok("import-bundle", "--from", windows_path(self.bundle.path))
        self.assertIn(f"agent {self.bundle.agent_id} installed", imported.stdout)
        self.ok("check-config")

        answer = self.ok("test", "--message", "hello from the SVP")
        self.assertIn("accepted", answer.stdout)

        first = self.ok("run")
        self.assertIn("first run", first.stderr)
        self.log.raise_sim("307080", "Moderate", part="DKC", text="Processor failure")
        self.ok("run")
        events = self.home.events(SERIAL)
        self.assertEqual([("hitachi_svp", "307080", "moderate")],
                         [(e["family"], e["code"], e["severity"]) for e in events])
        self.assertEqual("Processor failure", events[0]["event"]["text"])
        self.ok("run")
        self.assertEqual(1, len(self.home.events(SERIAL)), "a SIM is reported once")

        status = json.loads(self.ok("status", "--json").stdout)
        self.assertEqual(0, status["spool_depth"])
        self.assertEqual("ok", status["arrays"][0]["state"])

        log = (self.root / "logs" / "pass-svp.log").read_text(encoding="utf-8")
        self.assertIn("run: run: heartbeat", log)
        self.assertIn("exit 0", log)

        installed = self.ok("install-task", "--every", "10")
        self.assertIn("every 10 minute(s) as SYSTEM", installed.stdout)
        tasks = pathlib.Path(os.environ["WINEPREFIX"]) / "drive_c" / "windows" / "system32" / "tasks"
        self.assertTrue((tasks / "PASS Agent").exists(), "Wine keeps the registered task's name")
        self.assertIn("removed", self.ok("remove-task").stdout)
        self.assertFalse((tasks / "PASS Agent").exists())
        self.assertIn("was not registered", self.ok("remove-task").stdout)

    def test_errors_name_what_is_wrong_and_exit_non_zero(self):
        proc = self.svp("import-bundle", "--from", windows_path(pathlib.Path(self.tmp) / "nope"))
        self.assertEqual(2, proc.returncode)
        self.assertIn("the bundle has no agent.xml", proc.stderr)
        proc = self.svp("run")
        self.assertEqual(2, proc.returncode)
        self.assertIn("cannot open the configuration file", proc.stderr)
        self.ok("import-bundle", "--from", windows_path(self.bundle.path))
        proc = self.svp("install-task", "--every", "0")
        self.assertEqual(2, proc.returncode)
        self.assertIn("1 to 1440", proc.stderr)


if __name__ == "__main__":
    unittest.main()
