"""Holes an outside review found, closed (docs/security.md, Decisions): TLS 1.2 without CBC or
SHA-1 suites on the ingest port and in the agent's client, the admin API that binds or stops
the home, agent text printed with its control characters escaped, and a revoked agent refused
in the TLS handshake, its open connections closed."""

import pathlib
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest

from passlib import HOME_BIN, Home, run, wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

CBC_SHA1 = "ECDHE-ECDSA-AES128-SHA"
GCM = "ECDHE-ECDSA-AES128-GCM-SHA256"


class EnrolledHome(unittest.TestCase):
    """A running home with one enrolled agent, `self.bundle`."""

    def setUp(self):
        self.tmp_dir = tempfile.TemporaryDirectory()
        self.tmp = pathlib.Path(self.tmp_dir.name)
        self.home = Home(self.tmp)
        self.home.start()
        self.bundle = self.home.enroll("svp-1")

    def tearDown(self):
        self.home.stop()
        self.tmp_dir.cleanup()


class Tls(EnrolledHome):
    def handshake(self, cipher, version=ssl.TLSVersion.TLSv1_2):
        ctx = self.bundle.tls_context()
        ctx.check_hostname = False
        ctx.minimum_version = version
        ctx.maximum_version = version
        if version == ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers(cipher)
        with socket.create_connection(("127.0.0.1", self.home.port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as tls:
                return tls.version(), tls.cipher()[0]

    def test_ingest_refuses_a_cbc_sha1_suite_on_tls_1_2(self):
        with self.assertRaises(ssl.SSLError):
            self.handshake(CBC_SHA1)

    def test_ingest_accepts_ecdhe_with_aes_gcm_and_tls_1_3(self):
        self.assertEqual(("TLSv1.2", GCM), self.handshake(GCM))
        self.assertEqual("TLSv1.3", self.handshake(None, ssl.TLSVersion.TLSv1_3)[0])

    def serve_once(self, cipher):
        """A TLS 1.2 server with the home's certificate offering only `cipher`; the agent is
        pointed at it. Returns the thread and a dict that says how its handshake ended."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.home.state / "server.crt"), str(self.home.state / "server.key"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        result = {}

        def serve():
            conn, _ = listener.accept()
            with conn:
                try:
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        result["cipher"] = tls.cipher()[0]
                except (ssl.SSLError, OSError) as e:
                    result["error"] = str(e)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self.bundle.set_endpoints([f"https://127.0.0.1:{listener.getsockname()[1]}"])
        return thread, result

    def test_the_agent_refuses_a_home_that_offers_only_cbc_sha1(self):
        thread, result = self.serve_once(CBC_SHA1)
        proc = self.bundle.agent("test")
        thread.join(timeout=30)
        self.assertNotEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertNotIn("cipher", result, "the agent agreed to a CBC/SHA-1 suite")
        self.assertIn("error", result)

    def test_the_agent_agrees_to_aes_gcm(self):
        thread, result = self.serve_once(GCM)
        self.bundle.agent("test")  # the stand-in answers no HTTP: only the handshake counts
        thread.join(timeout=30)
        self.assertEqual(GCM, result.get("cipher"), result)


class Revocation(EnrolledHome):
    """`pass-home revoke` while `serve` runs: the agent's certificate fails the handshake and
    its open connections are closed within a second, without a restart."""

    def revoke(self):
        """Runs `pass-home revoke`; returns when it started."""
        started = time.monotonic()
        run([HOME_BIN, "revoke", "--state", str(self.home.state), "--agent",
             self.bundle.agent_id], check=True)
        return started

    def context(self, version):
        ctx = self.bundle.tls_context()
        ctx.check_hostname = False
        ctx.minimum_version = version
        ctx.maximum_version = version
        return ctx

    def connect(self, version, ctx=None, session=None):
        """A completed TLS handshake with the agent's certificate (resuming `session`, made
        with `ctx`, when given), or the ssl.SSLError."""
        ctx = ctx or self.context(version)
        raw = socket.create_connection(("127.0.0.1", self.home.port), timeout=10)
        try:
            return ctx.wrap_socket(raw, session=session)
        except BaseException:
            raw.close()
            raise

    def request(self, tls):
        """One request on a kept-alive connection; returns the status line."""
        tls.sendall(b"POST /v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/vnd.pass.envelope.v1\r\nContent-Length: 1\r\n"
                    b"\r\nx")
        return tls.recv(65536).split(b"\r\n", 1)[0]

    def refused_as_revoked(self, version):
        """True when a new connection is refused with a certificate_revoked alert: on TLS 1.2
        in the handshake, on TLS 1.3 (where the server checks the client's certificate after
        the client's handshake is done) at the first read."""
        try:
            with self.connect(version) as tls:
                self.request(tls)
        except ssl.SSLError as e:
            self.assertIn("CERTIFICATE_REVOKED", str(e).upper().replace(" ", "_"))
            return True
        return False

    def test_a_revoked_agents_certificate_fails_the_tls_handshake(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            self.assertFalse(self.refused_as_revoked(version), "before the revocation")
        revoked_at = self.revoke()
        wait_for(lambda: self.refused_as_revoked(ssl.TLSVersion.TLSv1_2),
                 "the handshake to fail", timeout=5)
        print(f"\nrevoked: a new TLS 1.2 handshake fails after "
              f"{time.monotonic() - revoked_at:.3f} s", file=sys.stderr)
        self.assertLess(time.monotonic() - revoked_at, 1.0)
        with self.assertRaises(ssl.SSLError) as raised:
            self.connect(ssl.TLSVersion.TLSv1_2)
        self.assertIn("certificate revoked", str(raised.exception))
        self.assertTrue(self.refused_as_revoked(ssl.TLSVersion.TLSv1_3))
        refusals = wait_for(lambda: [line for line in self.home.log_events("tls_refused")
                                     if line.get("reason") == "revoked"], "tls_refused")
        self.assertEqual(self.bundle.agent_id, refusals[0]["agent"])
        # The agent says why, and keeps its envelope.
        proc = self.bundle.agent("test")
        self.assertNotEqual(0, proc.returncode)
        self.assertIn("revoked", (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr)

    def test_a_revoked_agent_resuming_an_earlier_tls_session_is_closed_unanswered(self):
        # A resumed session skips the certificate check of the handshake: the home reads the
        # session's certificate once the handshake is done and closes the connection.
        ctx = self.context(ssl.TLSVersion.TLSv1_2)
        with self.connect(ssl.TLSVersion.TLSv1_2, ctx) as tls:
            self.assertEqual(b"HTTP/1.1 400 Bad Request", self.request(tls))
            session = tls.session
        self.revoke()
        wait_for(lambda: self.refused_as_revoked(ssl.TLSVersion.TLSv1_2),
                 "the handshake to fail", timeout=5)
        with self.connect(ssl.TLSVersion.TLSv1_2, ctx, session) as tls:
            self.assertTrue(tls.session_reused)
            try:
                answer = self.request(tls)
            except (ssl.SSLError, ConnectionError):
                answer = b""
        self.assertEqual(b"", answer, "a revoked agent's request was answered")

    def test_a_revoked_agents_open_connection_is_closed_within_a_second(self):
        with self.connect(ssl.TLSVersion.TLSv1_3) as tls:
            self.assertEqual(b"HTTP/1.1 400 Bad Request", self.request(tls))
            revoked_at = self.revoke()
            tls.settimeout(5)
            try:
                closed = tls.recv(1) == b""
            except (ssl.SSLError, ConnectionError):
                closed = True
            except socket.timeout:
                closed = False
            elapsed = time.monotonic() - revoked_at
        print(f"\nrevoked: the open connection closed {elapsed:.3f} s after `pass-home revoke`",
              file=sys.stderr)
        self.assertTrue(closed, "the connection stayed open")
        self.assertLess(elapsed, 1.0)
        closes = self.home.log_events("revoked_sessions_closed")
        self.assertEqual([(self.bundle.agent_id, 1)],
                         [(line["agent"], line["sessions"]) for line in closes])


class AdminListener(unittest.TestCase):
    def setUp(self):
        self.tmp_dir = tempfile.TemporaryDirectory()
        self.tmp = pathlib.Path(self.tmp_dir.name)
        self.home = Home(self.tmp)

    def tearDown(self):
        self.home.stop()
        self.tmp_dir.cleanup()

    def serve(self, *args):
        return run([HOME_BIN, "serve", "--state", str(self.home.state), "--listen", "127.0.0.1:0",
                    *args])

    def test_serve_stops_naming_the_address_when_the_admin_port_is_taken(self):
        with socket.create_server(("127.0.0.1", 0)) as squatter:
            port = squatter.getsockname()[1]
            proc = self.serve("--admin-listen", f"127.0.0.1:{port}")
        self.assertEqual(1, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn(f"127.0.0.1:{port}", proc.stderr)

    def test_the_default_admin_address_taken_stops_serve_too(self):
        try:
            squatter = socket.create_server(("127.0.0.1", 9456))
        except OSError:
            squatter = None  # taken already by someone else: the same case for the home
        try:
            proc = self.serve()
        finally:
            if squatter:
                squatter.close()
        self.assertEqual(1, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("127.0.0.1:9456", proc.stderr)

    def test_admin_listen_off_serves_without_it(self):
        self.home.start(extra=("--admin-listen", "off"))
        self.assertIsNone(self.home.proc.poll())


class ControlCharacters(unittest.TestCase):
    def test_agent_text_reaches_the_terminal_escaped(self):
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = pathlib.Path(tmp_name)
            home = Home(tmp)
            home.start()
            try:
                log = SvpLog(tmp / "SIM")
                bundle = home.enroll("svp-1")
                bundle.add_array("hitachi-svp", serial="470849", model="DKC710",
                                 name="VSP-470849", sim_dir=str(log.dir), pattern="sim*.log")
                self.assertEqual(0, bundle.agent("run").returncode)
                hostile = "\x1b]0;owned\x07fan \x1b[2J\u009b31m"
                log.raise_sim("3073F1", "Acute", part="FAN", text=hostile)
                proc = bundle.agent("run")
                self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
                wait_for(lambda: any(e.get("code") == "3073F1" for e in home.events()),
                         "the SIM at the home")
                # --json keeps the exact text.
                stored = [e for e in home.events() if e.get("code") == "3073F1"][0]
                self.assertEqual(hostile, stored["event"]["text"])
                for command in (["events"], ["tickets", "list"], ["messages"]):
                    out = run([HOME_BIN, *command, "--state", str(home.state)], check=True).stdout
                    for raw in ("\x1b", "\x07", "\u009b"):
                        self.assertNotIn(raw, out, f"pass-home {' '.join(command)}")
                events = run([HOME_BIN, "events", "--state", str(home.state)], check=True).stdout
                self.assertIn(r"\x1B]0;owned\x07fan \x1B[2J\u009B31m", events)
                tickets = run([HOME_BIN, "tickets", "list", "--state", str(home.state)],
                              check=True).stdout
                ticket_id = [line.split()[0] for line in tickets.splitlines()[1:]
                             if "3073F1" in line or "owned" in line]
                self.assertTrue(ticket_id, tickets)
                shown = run([HOME_BIN, "tickets", "show", ticket_id[0], "--state",
                             str(home.state)], check=True).stdout
                self.assertNotIn("\x1b", shown)
                self.assertIn(r"\x1B]0;owned", shown)
            finally:
                home.stop()


if __name__ == "__main__":
    unittest.main()
