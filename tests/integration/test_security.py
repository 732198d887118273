"""Holes an outside review found, closed (docs/security.md, Decisions): TLS 1.2 without CBC or
SHA-1 suites on the ingest port and in the agent's client, the admin API that binds or stops
the home, and agent text printed with its control characters escaped."""

import pathlib
import socket
import ssl
import sys
import tempfile
import threading
import unittest

from passlib import HOME_BIN, Home, run, wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pass-sim"))
from svp_log import SvpLog  # noqa: E402

CBC_SHA1 = "ECDHE-ECDSA-AES128-SHA"
GCM = "ECDHE-ECDSA-AES128-GCM-SHA256"


class Tls(unittest.TestCase):
    def setUp(self):
        self.tmp_dir = tempfile.TemporaryDirectory()
        self.tmp = pathlib.Path(self.tmp_dir.name)
        self.home = Home(self.tmp)
        self.home.start()
        self.bundle = self.home.enroll("svp-1")

    def tearDown(self):
        self.home.stop()
        self.tmp_dir.cleanup()

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
