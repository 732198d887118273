"""Onboarding end to end: a new-customer form → pass-home onboard → real pass-agent runs with the
bundles it wrote → the home holds each agent to the form's arrays. docs/onboarding.md.
"""

import datetime
import json
import os
import pathlib
import sys
import unittest

from passlib import HOME_BIN, Bundle, HomeTestCase, run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

CUSTOMER = "ACME Corp"
SITE = "Berlin DC1"


def form_xml(logs):
    """A form with one Hitachi SVP per (svp-host, serial, log) and no appliance."""
    arrays = "".join(
        f'  <array family="hitachi-svp" model="VSP G900" serial="{serial}" name="VSP-{serial}"\n'
        f'         management="10.0.0.{i + 10}" svp-host="{host}" sim-dir="{log.dir}"'
        f' sim-pattern="sim*.log"/>\n'
        for i, (host, serial, log) in enumerate(logs))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<new-customer-form schema="1">
  <customer name="{CUSTOMER}" site="{SITE}">
    <contact name="Mia Manager" email="mia@acme.example"/>
  </customer>
{arrays}</new-customer-form>
"""


class OnboardingTest(HomeTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = pathlib.Path(self.tmp)
        self.logs = [("svp-a", "470849", SvpLog(self.tmp / "logs-a")),
                     ("svp-b", "470850", SvpLog(self.tmp / "logs-b")),
                     ("svp-c", "470851", SvpLog(self.tmp / "logs-c"))]
        for _, _, log in self.logs:
            log.raise_sim("3B1234", text="an old SIM, before the agent")
        self.form = self.tmp / "form.xml"
        self.form.write_text(form_xml(self.logs))
        self.out = self.tmp / "out"

    def cli(self, *args):
        return run([HOME_BIN, *args, "--state", str(self.home.state)])

    def onboard(self):
        proc = run([HOME_BIN, "onboard", "--state", str(self.home.state), "--form", str(self.form),
                    "--out", str(self.out), "--endpoint", self.home.url])
        self.assertEqual(0, proc.returncode, proc.stderr)
        return proc.stdout

    def tickets(self):
        proc = self.cli("tickets", "list", "--all", "--json")
        self.assertEqual(0, proc.returncode, proc.stderr)
        return json.loads(proc.stdout)

    def run_agent(self, bundle):
        proc = bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)

    def test_the_form_s_bundles_report_and_the_home_holds_agents_to_the_form(self):
        printed = self.onboard()
        self.assertEqual(3, printed.count("enrolled "), printed)
        bundles = {host: Bundle(self.out / "svp" / host) for host, _, _ in self.logs}
        for host, serial, _ in self.logs:
            check = bundles[host].agent("check-config")
            self.assertEqual(0, check.returncode, check.stderr)
            self.assertIn("1 array(s)", check.stdout)
        self.assertIn("Mia Manager", (self.out / "home-customer.xml").read_text())

        # svp-a runs as onboarded: its heartbeat lists its array; nothing is missing.
        self.run_agent(bundles["svp-a"])
        self.assertEqual([], self.tickets())
        # Its status prints UTC whatever the local time zone (an appliance in Berlin, say).
        delivered = bundles["svp-a"].status()["last_delivery_ms"]
        status = bundles["svp-a"].agent("status", env={**os.environ, "TZ": "America/New_York"})
        utc = datetime.datetime.fromtimestamp(delivered // 1000, datetime.timezone.utc)
        self.assertIn(f"last delivery:  {utc:%Y-%m-%dT%H:%M:%S}Z", status.stdout)

        # svp-b's agent.xml lost its <arrays> (a bundle re-imported from `enroll`, say).
        config = bundles["svp-b"].config
        text = config.read_text()
        config.write_text(text[:text.index("  <arrays>")] + "</pass-agent>\n")
        self.run_agent(bundles["svp-b"])
        [ticket] = self.tickets()
        self.assertEqual(("array_not_reported", "open", "470850", bundles["svp-b"].agent_id),
                         (ticket["kind"], ticket["state"], ticket["array"], ticket["agent"]))

        # Onboarding again restores the arrays and keeps every identity.
        ids = {host: b.agent_id for host, b in bundles.items()}
        printed = self.onboard()
        self.assertEqual(3, printed.count("updated "), printed)
        self.assertEqual(ids, {host: b.agent_id for host, b in bundles.items()})
        bundles["svp-b"].make_heartbeat_due()
        self.run_agent(bundles["svp-b"])
        [ticket] = self.tickets()
        self.assertEqual(("array_not_reported", "resolved"), (ticket["kind"], ticket["state"]))

        # svp-c never ran: after first-report-days (14), one ticket names it and its array.
        proc = self.cli("watchdog", "--now", "+13d")
        self.assertIn(" 0 never-reported", proc.stdout)
        proc = self.cli("watchdog", "--now", "+15d")
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn(" 1 never-reported", proc.stdout)
        never = [t for t in self.tickets() if t["kind"] == "never_reported"]
        self.assertEqual(1, len(never))
        self.assertEqual(bundles["svp-c"].agent_id, never[0]["agent"])
        shown = json.loads(self.cli("tickets", "show", str(never[0]["id"]), "--json").stdout)
        self.assertIn("470851", json.dumps(shown))

    def test_a_bad_form_names_line_and_field_and_enrolls_nobody(self):
        self.form.write_text(form_xml(self.logs).replace('serial="470850"', 'serial="47 0850"'))
        proc = run([HOME_BIN, "onboard", "--state", str(self.home.state), "--form", str(self.form),
                    "--out", str(self.out)])
        self.assertEqual(2, proc.returncode)
        self.assertIn("form.xml:8: new-customer-form/array/@serial:", proc.stderr)
        self.assertIn("is not a serial number", proc.stderr)
        self.assertEqual({}, self.home.agents())
        self.assertFalse(self.out.exists())


EXAMPLE_FORM = pathlib.Path(__file__).resolve().parents[2] / "docs" / "examples" / "new-customer-form.xml"
PASSWORD = 'password="file:secrets/3par-1612345.txt"'


class FormFileConfinementTest(HomeTestCase):
    """A form comes from outside; what its password="file:..." names lands in the image shipped
    to the customer. Only a regular file inside the form's own folder may be named."""

    def setUp(self):
        super().setUp()
        self.tmp = pathlib.Path(self.tmp)
        self.folder = self.tmp / "customer"
        (self.folder / "secrets").mkdir(parents=True)
        (self.folder / "secrets" / "3par-1612345.txt").write_text("customer-pw\n")
        self.secret = self.tmp / "home-secret.txt"  # stands for STATE/ack.key and the like
        self.secret.write_text("HOME-SECRET-DO-NOT-SHIP\n")
        self.form = self.folder / "form.xml"
        self.out = self.tmp / "out"

    def onboard(self, password):
        self.assertIn(PASSWORD, EXAMPLE_FORM.read_text())
        self.form.write_text(EXAMPLE_FORM.read_text().replace(PASSWORD, f'password="{password}"'))
        return run([HOME_BIN, "onboard", "--state", str(self.home.state), "--form", str(self.form),
                    "--out", str(self.out)])

    def assert_refused(self, password, why):
        proc = self.onboard(password)
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn(f"{self.form}:20: new-customer-form/array/@password: ", proc.stderr)
        self.assertIn(why, proc.stderr)
        self.assertNotIn("HOME-SECRET", proc.stdout + proc.stderr)
        self.assertFalse(self.out.exists(), "onboard wrote into OUT")
        self.assertEqual({}, self.home.agents())

    def test_a_file_inside_the_form_s_folder_is_shipped(self):
        proc = self.onboard("file:secrets/3par-1612345.txt")
        self.assertEqual(0, proc.returncode, proc.stderr)
        shipped = self.out / "appliance" / "secrets" / "hpe_3par-1612345"
        self.assertEqual("customer-pw\n", shipped.read_text())

    def test_dot_dot_is_refused_before_anything_is_enrolled_or_written(self):
        self.assert_refused("file:../home-secret.txt", 'leaves the folder with ".."')
        self.assert_refused("file:secrets/../../home-secret.txt", 'leaves the folder with ".."')

    def test_an_absolute_path_is_refused(self):
        self.assert_refused(f"file:{self.secret}", "is an absolute path")

    def test_a_symlink_out_of_the_folder_is_refused(self):
        (self.folder / "secrets" / "link.txt").symlink_to(self.secret)
        self.assert_refused("file:secrets/link.txt", "outside")
        (self.folder / "up").symlink_to(self.tmp, target_is_directory=True)
        self.assert_refused("file:up/home-secret.txt", "outside")

    def test_a_directory_or_fifo_is_refused(self):
        self.assert_refused("file:secrets", "is not a regular file")
        os.mkfifo(self.folder / "fifo")
        self.assert_refused("file:fifo", "is not a regular file")


if __name__ == "__main__":
    unittest.main()
