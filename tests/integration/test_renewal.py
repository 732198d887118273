"""Agents renew their TLS certificate without a site visit (docs/security.md, "Certificate
renewal"): a real pass-home, real pass-agent runs, real certificates. An agent enrolled with
`--test-cert-seconds 120` has a certificate valid 120 s after its 5 minutes of back-dating,
so it is past two thirds of its life at once: its next run renews it. No clock is faked."""

import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import time
import unittest

from passlib import AGENT_BIN, HOME_BIN, HomeTestCase, post_envelope, run

YEAR_MS = 365 * 86_400_000


def cert_fields(pem_path):
    """Serial (lower-case hex), subject CN and the public key of the PEM certificate."""
    def openssl(*args):
        return subprocess.run(["openssl", "x509", "-in", str(pem_path), "-noout", *args],
                              capture_output=True, text=True, check=True).stdout
    serial = openssl("-serial").strip().split("=", 1)[1].lower().lstrip("0")
    cn = re.search(r"CN\s*=\s*([0-9a-f-]{36})", openssl("-subject")).group(1)
    pubkey = subprocess.run(["openssl", "x509", "-in", str(pem_path), "-noout", "-pubkey"],
                            capture_output=True, text=True, check=True).stdout
    return serial, cn, pubkey


def pem_body(text, label):
    """The base64 of the first PEM block `label` in text, without line breaks."""
    match = re.search(rf"-----BEGIN {label}-----(.*?)-----END {label}-----", text, re.S)
    assert match, f"no {label} block"
    return "".join(match.group(1).split())


class CertificateRenewalTest(HomeTestCase):
    def cli_json(self, *args):
        proc = run([HOME_BIN, *args, "--state", str(self.home.state), "--json"], check=True)
        return json.loads(proc.stdout)

    def tickets(self, agent_id):
        return [t for t in self.cli_json("tickets", "list", "--all")
                if t["kind"] == "certificate_expiring" and t["agent"] == agent_id]

    def watchdog(self):
        run([HOME_BIN, "watchdog", "--state", str(self.home.state)], check=True)

    def test_agent_past_two_thirds_renews_and_both_certificates_work(self):
        bundle = self.home.enroll("svp-renew", extra=["--test-cert-seconds", "120"])
        agent_id = bundle.agent_id
        old_serial, old_cn, old_pubkey = cert_fields(bundle.path / "agent-tls.crt")
        before = self.home.agents()[agent_id]
        now_ms = time.time() * 1000
        self.assertLess(abs(before["cert_expires_ms"] - (now_ms + 120_000)), 60_000)

        # Expiring within 30 days and not renewed: a ticket.
        self.watchdog()
        opened = self.tickets(agent_id)
        self.assertEqual(len(opened), 1, opened)
        self.assertEqual(opened[0]["state"], "open")
        self.assertIn("certificate expires in", opened[0]["title"])

        # The same agent as it was before renewing, for the grace period below.
        old_copy = self.home.root / "agent-svp-renew-old"
        shutil.copytree(bundle.path, old_copy)

        proc = bundle.agent("run")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("TLS certificate renewed", proc.stdout)

        renewed = bundle.path / "state" / "tls" / "agent-tls.pem"
        self.assertEqual(stat.S_IMODE(os.stat(renewed).st_mode), 0o600)
        new_serial, new_cn, new_pubkey = cert_fields(renewed)
        self.assertNotEqual(new_serial, old_serial)
        self.assertEqual(new_cn, old_cn)
        self.assertEqual(new_cn, agent_id)
        self.assertNotEqual(new_pubkey, old_pubkey)
        # The bundle is left as it was: the fallback.
        self.assertEqual(cert_fields(bundle.path / "agent-tls.crt")[0], old_serial)

        # The new private key never left the agent: it is nowhere in the home's files or log.
        secret = pem_body(renewed.read_text(), "PRIVATE KEY")
        for path in self.home.state.rglob("*"):
            if path.is_file():
                self.assertNotIn(secret.encode(), path.read_bytes(), path)
        self.assertNotIn(secret, self.home.log_text())
        logged = self.home.log_events("certificate_renewed")
        self.assertEqual(len(logged), 1, logged)
        self.assertEqual(logged[0]["serial"].lstrip("0"), new_serial)

        # The home shows the new expiry, five years out.
        after = self.home.agents()[agent_id]
        self.assertGreater(after["cert_expires_ms"], now_ms + 4.9 * YEAR_MS)
        self.assertIsNotNone(after["cert_renewed_ms"])
        table = run([HOME_BIN, "agents", "--state", str(self.home.state)], check=True).stdout
        self.assertIn("CERT_EXPIRES", table.splitlines()[0])
        expires_year = time.gmtime(after["cert_expires_ms"] / 1000).tm_year
        row = next(line for line in table.splitlines() if line.startswith(agent_id))
        self.assertIn(str(expires_year), row)

        # The next envelope goes with the new certificate: the bundle's key is no longer needed.
        (bundle.path / "agent-tls.key").write_text("not a key any more\n")
        proc = bundle.agent("test", "--message", "after renewal")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("test: accepted", proc.stdout)

        # The old certificate still works during the grace period.
        proc = run([AGENT_BIN, "test", "--message", "old certificate", "--config",
                    str(old_copy / "agent.xml")])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

        # Renewed: the watchdog resolves the ticket, and the next run renews nothing.
        self.watchdog()
        resolved = self.tickets(agent_id)
        self.assertEqual([t["state"] for t in resolved], ["resolved"])
        proc = bundle.agent("run")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn("renewed", proc.stdout)
        self.assertEqual(cert_fields(renewed)[0], new_serial)

    def test_agent_with_a_young_certificate_does_not_renew(self):
        bundle = self.home.enroll("svp-young")
        proc = bundle.agent("run")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn("renewed", proc.stdout)
        self.assertFalse((bundle.path / "state" / "tls" / "agent-tls.pem").exists())
        self.watchdog()
        self.assertEqual(self.tickets(bundle.agent_id), [])

    def test_a_certificate_request_over_16_kib_is_refused_as_too_large(self):
        # The route's limit holds for a body with Content-Length too (before, only --max-body
        # was checked with the header, and 16 KiB of garbage reached the CSR parser).
        bundle = self.home.enroll("svp-big")
        status, body = post_envelope(bundle, self.home.port, b"x" * (16 * 1024 + 1),
                                     content_type="application/pkcs10", path="/v1/certificate")
        self.assertEqual((status, body["error"]), (413, "too_large"))
        self.assertIn("16384 bytes", body["detail"])
        status, body = post_envelope(bundle, self.home.port, b"x" * (16 * 1024),
                                     content_type="application/pkcs10", path="/v1/certificate")
        self.assertEqual((status, body["error"]), (400, "bad_csr"))

    def test_the_home_refuses_requests_it_cannot_use(self):
        bundle = self.home.enroll("svp-bad")
        status, body = post_envelope(bundle, self.home.port, b"garbage",
                                     content_type="application/pkcs10", path="/v1/certificate")
        self.assertEqual((status, body["error"]), (400, "bad_csr"))
        status, body = post_envelope(bundle, self.home.port, b"garbage",
                                     content_type="application/json", path="/v1/certificate")
        self.assertEqual((status, body["error"]), (415, "unsupported_media_type"))
        # The key of the certificate it comes with: a renewal must bring a new key.
        der = subprocess.run(
            ["openssl", "req", "-new", "-key", str(bundle.path / "agent-tls.key"), "-subj",
             f"/CN={bundle.agent_id}", "-outform", "DER"],
            capture_output=True, check=True).stdout
        status, body = post_envelope(bundle, self.home.port, der,
                                     content_type="application/pkcs10", path="/v1/certificate")
        self.assertEqual((status, body["error"]), (400, "key_reused"))
        # Nothing changed for the agent.
        self.assertIsNone(self.home.agents()[bundle.agent_id]["cert_renewed_ms"])
        # Revoked: no renewal.
        run([HOME_BIN, "revoke", "--state", str(self.home.state), "--agent", bundle.agent_id],
            check=True)
        new_key = self.home.root / "new.key"
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", str(new_key)], check=True,
                       capture_output=True)
        der = subprocess.run(
            ["openssl", "req", "-new", "-key", str(new_key), "-subj", "/CN=x", "-outform", "DER"],
            capture_output=True, check=True).stdout
        try:
            status, body = post_envelope(bundle, self.home.port, der,
                                         content_type="application/pkcs10",
                                         path="/v1/certificate")
        except (ssl.SSLError, ConnectionError):
            return  # a home that refuses a revoked certificate in the handshake already
        self.assertEqual((status, body["error"]), (403, "revoked"))


if __name__ == "__main__":
    unittest.main()
