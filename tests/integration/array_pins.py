"""The checks every array reached over HTTPS must pass: its TLS key is pinned before the login
with the password leaves, in a run and in a dry run, and another key gets no login."""

import base64
import hashlib
import subprocess


def tls_pin(cert_file):
    """The agent's pin of a TLS certificate's key, computed by the openssl command apart from the
    agent's code: "sha256//" + base64 of the SHA-256 of its SubjectPublicKeyInfo (curl's format)."""
    spki = subprocess.run(["openssl", "x509", "-in", str(cert_file), "-pubkey", "-noout"],
                          capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=spki,
                         capture_output=True, check=True).stdout
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


class TlsPinChecks:
    """Mixed into a HomeTestCase whose array is served by a simulator. The case sets SERIAL,
    FAMILY (as the agent prints it) and PIN_NAME, and provides: add_pinned_array() (configures
    the array in self.bundle), presented_cert() (the certificate file the simulator presents
    now), watch_logins(callback) (callback(user) at each login, before the simulator checks
    it), login_count() (the logins the simulator recorded), present_another_key() (returns once
    the simulator presents a new key), array_state() and run_agent(*args) (asserting exit 0)."""

    def test_the_key_is_pinned_before_the_password_leaves_in_a_run_and_a_dry_run(self):
        self.add_pinned_array()
        key = {self.PIN_NAME: tls_pin(self.presented_cert())}
        pins_at_login = []
        self.watch_logins(lambda user: pins_at_login.append(self.bundle.pins(self.SERIAL)))
        self.run_agent("--dry-run")
        self.assertEqual([key], pins_at_login, "the dry run's login went to a pinned key")
        self.assertEqual(key, self.bundle.pins(self.SERIAL), "a dry run keeps the pin it made")

        proc = self.bundle.agent("forget-pin", "--array", self.SERIAL)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.run_agent()
        self.assertEqual([key, key], pins_at_login, "the run's login went to a pinned key")
        self.assertEqual("ok", self.array_state())

    def test_another_key_gets_no_login_from_a_dry_run_or_a_run(self):
        self.add_pinned_array()
        pinned = tls_pin(self.presented_cert())
        self.run_agent("--dry-run")  # the first contact
        self.present_another_key()
        other = tls_pin(self.presented_cert())
        self.assertNotEqual(pinned, other)
        logins = self.login_count()

        dry = self.bundle.agent("run", "--dry-run")
        self.assertEqual(1, dry.returncode, dry.stdout + dry.stderr)
        self.assertIn(f"dry-run: {self.FAMILY} {self.SERIAL}: pin_mismatch", dry.stderr)
        for part in (pinned, other, f"forget-pin --array {self.SERIAL}"):
            self.assertIn(part, dry.stderr)
        self.run_agent()
        self.assertEqual("pin_mismatch", self.array_state())
        self.assertEqual(logins, self.login_count(), "no login reached the new key")
        self.assertEqual({self.PIN_NAME: pinned}, self.bundle.pins(self.SERIAL))
