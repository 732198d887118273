"""End to end: init → enroll → serve → agent, over mutual TLS on 127.0.0.1."""

import http.client
import os
import socket
import ssl
import stat
import tempfile
import unittest

from passlib import (AGENT_BIN, ConnectProxy, Home, HomeTestCase, RefusedPort, post_envelope,
                     post_header_only, run, wait_for)

BUNDLE_FILES = {"agent.xml", "agent-sign.key", "agent-tls.key", "agent-tls.crt", "home-ca.crt",
                "home-hpke.pub"}


class EnrollmentTest(HomeTestCase):
    def test_bundle_holds_exactly_the_six_files_with_private_keys_0600(self):
        bundle = self.home.enroll("svp-01")
        self.assertEqual(BUNDLE_FILES, {p.name for p in bundle.path.iterdir()})
        for key in ("agent-sign.key", "agent-tls.key"):
            mode = stat.S_IMODE(os.stat(bundle.path / key).st_mode)
            self.assertEqual(0o600, mode, key)
        self.assertIn(bundle.agent_id, self.home.agents())
        proc = bundle.agent("check-config")
        self.assertEqual(0, proc.returncode, proc.stderr)

    def test_enroll_refuses_a_non_empty_output_directory(self):
        self.home.enroll("svp-01")
        again = run([os.environ.get("PASS_HOME_BIN", "pass-home"), "enroll", "--state",
                     str(self.home.state), "--customer", "C", "--site", "S", "--agent", "x",
                     "--out", str(self.home.root / "agent-svp-01")])
        self.assertNotEqual(0, again.returncode)
        self.assertIn("agent-svp-01", again.stderr)


class DeliveryTest(HomeTestCase):
    def test_agent_test_message_is_accepted_and_listed_by_the_home(self):
        bundle = self.home.enroll("svp-01")
        proc = bundle.agent("test", "--message", "hello from the field")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("accepted", proc.stdout)
        messages = self.home.messages(bundle.agent_id)
        self.assertEqual(1, len(messages))
        self.assertEqual("test", messages[0]["type"])
        self.assertEqual("hello from the field", messages[0]["payload"]["message"])
        self.assertEqual(messages[0]["seq"], self.home.agents()[bundle.agent_id]["last_seq"])

    def test_run_sends_a_heartbeat_that_says_when_the_next_is_due(self):
        bundle = self.home.enroll("svp-01")
        proc = bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        agent = self.home.agents()[bundle.agent_id]
        self.assertIsNotNone(agent["last_heartbeat_ms"])
        [hb] = self.home.messages(bundle.agent_id)
        self.assertEqual("heartbeat", hb["type"])
        self.assertEqual(hb["payload"]["next_due_ms"], agent["next_heartbeat_due_ms"])
        self.assertEqual(240 * 60, hb["payload"]["interval_s"])
        self.assertEqual([], bundle.spool_files())
        # Not due again: a second run sends nothing.
        self.assertEqual(0, bundle.agent("run").returncode)
        self.assertEqual(1, len(self.home.messages(bundle.agent_id)))

    def test_replayed_envelope_is_a_duplicate_and_stored_once(self):
        bundle = self.home.enroll("svp-01")
        self.home.stop()
        self.assertEqual(0, bundle.agent("run").returncode)
        [spooled] = bundle.spool_files()
        captured = spooled.read_bytes()
        self.home.restart()
        self.assertEqual(0, bundle.agent("run").returncode)
        self.assertEqual([], bundle.spool_files())
        status, body = post_envelope(bundle, self.home.port, captured)
        self.assertEqual(200, status)
        self.assertEqual("duplicate", body["status"])
        self.assertEqual(1, len(self.home.messages(bundle.agent_id)))

    def test_tampered_envelope_is_refused_and_quarantined_by_the_agent(self):
        bundle = self.home.enroll("svp-01")
        self.home.stop()
        self.assertEqual(0, bundle.agent("run").returncode)
        [spooled] = bundle.spool_files()
        data = bytearray(spooled.read_bytes())
        data[48 + 32 + 4 + 3] ^= 0x01  # one bit of the ciphertext
        spooled.write_bytes(bytes(data))
        self.home.restart()
        proc = bundle.agent("run")
        self.assertEqual(7, proc.returncode, proc.stdout + proc.stderr)  # quarantined
        self.assertIn("refused 1 envelope(s) for good", proc.stderr)
        self.assertEqual([], bundle.spool_files())
        [quarantined] = bundle.quarantine_files()
        reason = quarantined.with_name(quarantined.name + ".reason").read_text()
        self.assertIn("bad_signature", reason)
        self.assertIn("403", reason)
        self.assertEqual(1, bundle.status()["quarantined"])
        self.assertIn("bad_signature", self.home.log_text())
        # The heartbeat of the same run, sealed after the flush, reports it to the home.
        [hb] = self.home.messages(bundle.agent_id)
        self.assertEqual("heartbeat", hb["type"])
        self.assertEqual(1, hb["payload"]["quarantine"]["count"])
        self.assertIn("bad_signature", hb["payload"]["quarantine"]["recent"][0]["reason"])
        # And every later one.
        bundle.make_heartbeat_due()
        self.assertEqual(0, bundle.agent("run").returncode)
        latest = max(self.home.messages(bundle.agent_id), key=lambda m: m["seq"])
        self.assertEqual(1, latest["payload"]["quarantine"]["count"])

    def test_home_down_the_run_succeeds_and_the_spool_grows_then_delivers_in_order(self):
        bundle = self.home.enroll("svp-01")
        self.home.stop()
        for expected_depth in (1, 2, 3):
            bundle.make_heartbeat_due()
            proc = bundle.agent("run")
            self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
            self.assertIn("not reachable", proc.stdout)
            self.assertEqual(expected_depth, bundle.status()["spool_depth"])
        self.assertNotEqual("", bundle.status()["last_error"])
        self.home.restart()
        proc = bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertEqual(0, bundle.status()["spool_depth"])
        messages = self.home.messages(bundle.agent_id)
        self.assertEqual(3, len(messages))
        by_seq = sorted(messages, key=lambda m: m["seq"])
        received = [m["received_ms"] for m in by_seq]
        self.assertEqual(sorted(received), received, "delivered out of order")
        self.assertEqual("", bundle.status()["last_error"])


class RefusalTest(HomeTestCase):
    def test_revoked_agent_is_refused(self):
        bundle = self.home.enroll("svp-01")
        self.assertEqual(0, bundle.agent("test").returncode)
        run([os.environ.get("PASS_HOME_BIN", "pass-home"), "revoke", "--state",
             str(self.home.state), "--agent", bundle.agent_id], check=True)
        self.assertTrue(self.home.agents()[bundle.agent_id]["revoked"])
        proc = bundle.agent("test")
        # A running home reads the revoked agents every 250 ms (docs/security.md): before that
        # the envelope is refused `revoked` (exit 4), after it the TLS handshake fails with a
        # certificate_revoked alert, which the agent treats like any TLS failure: it keeps the
        # envelope and exits 5. Either way it names the revocation and nothing is stored.
        self.assertIn(proc.returncode, (4, 5), proc.stdout + proc.stderr)
        self.assertIn("revoked", proc.stdout + proc.stderr)
        self.assertEqual(1, len(self.home.messages(bundle.agent_id)))

    def test_client_certificate_from_another_ca_is_refused(self):
        other_root = tempfile.mkdtemp(prefix="pass-it-other-", dir=self.tmp)
        other = Home(other_root)
        stranger = other.enroll("stranger", endpoints=[self.home.url])
        # The stranger trusts only its own home's CA, so it refuses our server first ...
        proc = stranger.agent("test")
        self.assertEqual(5, proc.returncode, proc.stdout + proc.stderr)
        # ... and a client that trusts our server but shows a foreign certificate is refused.
        ours = self.home.enroll("svp-01")
        self.post_with_a_foreign_certificate(ours, stranger)
        self.assertEqual({ours.agent_id}, set(self.home.agents()))

    def post_with_a_foreign_certificate(self, ours, stranger):
        """POSTs trusting our home but showing `stranger`'s certificate: the home refuses it."""
        ctx = ours.tls_context()
        ctx.load_cert_chain(str(stranger.path / "agent-tls.crt"),
                            str(stranger.path / "agent-tls.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.home.port, context=ctx, timeout=10)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            conn.request("POST", "/v1/envelopes", body=b"x" * 200,
                         headers={"Content-Type": "application/vnd.pass.envelope.v1"})
            conn.getresponse().read()
        conn.close()

    def test_a_peer_closing_during_the_handshake_is_logged_as_such_not_as_a_refusal(self):
        ours = self.home.enroll("svp-01")
        # 1. Connect and close without a byte (a port check, an agent killed while connecting).
        socket.create_connection(("127.0.0.1", self.home.port), timeout=10).close()
        # 2. Send the ClientHello, then close before the handshake completes.
        hello_ctx = ours.tls_context()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = hello_ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        with socket.create_connection(("127.0.0.1", self.home.port), timeout=10) as raw:
            raw.sendall(outgoing.read())
            raw.recv(1)  # the server's answer has begun: the handshake is under way
        closed = wait_for(lambda: len(self.home.log_events("tls_closed")) >= 2 and
                          self.home.log_events("tls_closed"), "two tls_closed lines")
        self.assertEqual(2, len(closed), closed)
        for line in closed:
            self.assertEqual("info", line["level"], line)
            self.assertEqual("the peer closed the connection during the TLS handshake",
                             line["reason"], line)
        self.assertEqual([], self.home.log_events("tls_refused"),
                         "closing is not a refusal")
        # 3. A real refusal still is one: a client certificate from no CA the home knows.
        other = Home(tempfile.mkdtemp(prefix="pass-it-other-", dir=self.tmp))
        stranger = other.enroll("stranger", endpoints=[self.home.url])
        self.post_with_a_foreign_certificate(ours, stranger)
        [refused] = wait_for(lambda: self.home.log_events("tls_refused"), "a tls_refused line")
        self.assertEqual("warning", refused["level"], refused)
        self.assertIn("certificate verify failed", refused["reason"])
        self.assertEqual(2, len(self.home.log_events("tls_closed")))

    def test_envelope_of_another_agent_is_refused(self):
        alice = self.home.enroll("alice")
        bob = self.home.enroll("bob")
        self.home.stop()
        self.assertEqual(0, alice.agent("run").returncode)
        [spooled] = alice.spool_files()
        self.home.start()
        status, body = post_envelope(bob, self.home.port, spooled.read_bytes())
        self.assertEqual(403, status)
        self.assertEqual("agent_mismatch", body["error"])

    def test_body_limit_content_type_and_path(self):
        bundle = self.home.enroll("svp-01")
        status, body = post_header_only(bundle, self.home.port, 2 * 1024 * 1024)
        self.assertEqual(413, status)
        self.assertEqual("too_large", body["error"])
        status, _ = post_envelope(bundle, self.home.port, b"PASS", content_type="text/plain")
        self.assertEqual(415, status)
        status, _ = post_envelope(bundle, self.home.port, b"PASS", path="/v1/other")
        self.assertEqual(404, status)
        status, body = post_envelope(bundle, self.home.port, b"NOPE" + b"\0" * 200)
        self.assertEqual(400, status)
        self.assertEqual("bad_magic", body["error"])


class TransportTest(HomeTestCase):
    def refused_port(self):
        """A port that refuses connections until the test ends."""
        port = RefusedPort()
        self.addCleanup(port.close)
        return port.port

    def test_proxy_environment_variables_are_ignored(self):
        bundle = self.home.enroll("svp-01")
        dead = f"http://127.0.0.1:{self.refused_port()}"
        env = {k: dead for k in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                 "ALL_PROXY")}
        proc = bundle.agent("test", env=env)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)

    def test_explicit_connect_proxy_is_used(self):
        bundle = self.home.enroll("svp-01")
        proxy = ConnectProxy()
        try:
            bundle.set_endpoints([self.home.url], proxy=f"http://127.0.0.1:{proxy.port}")
            proc = bundle.agent("test")
            self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
            self.assertEqual([f"127.0.0.1:{self.home.port}"], proxy.tunnels)
        finally:
            proxy.close()

    def test_failover_to_the_next_endpoint_in_order(self):
        bundle = self.home.enroll("svp-01")
        bundle.set_endpoints([f"https://127.0.0.1:{self.refused_port()}", self.home.url])
        proc = bundle.agent("test")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn(self.home.url, proc.stdout)

    def test_no_endpoint_reachable_test_exits_5(self):
        bundle = self.home.enroll("svp-01")
        bundle.set_endpoints([f"https://127.0.0.1:{self.refused_port()}"])
        proc = bundle.agent("test")
        self.assertEqual(5, proc.returncode, proc.stdout + proc.stderr)


class ConfigErrorTest(unittest.TestCase):
    def test_bad_config_exits_2_naming_file_line_and_key(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "agent.xml")
            with open(path, "w") as f:
                f.write('<?xml version="1.0"?>\n<pass-agent schema="1">\n'
                        '  <identity id="not-a-uuid" customer="C" site="S" name="N"/>\n'
                        '  <home><endpoint url="https://127.0.0.1:9455"/></home>\n'
                        '</pass-agent>\n')
            proc = run([AGENT_BIN, "check-config", "--config", path])
            self.assertEqual(2, proc.returncode)
            self.assertIn(f"{path}:3", proc.stderr)
            self.assertIn("id", proc.stderr)


if __name__ == "__main__":
    unittest.main()
