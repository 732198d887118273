#!/usr/bin/env python3
"""HPE 3PAR simulator: plays an array's CLI over SSH and its WSAPI for the hpe_3par collector.

The alerts live in a JSON state file, so that the CLI (a forced command of a real OpenSSH sshd
from Debian) and the WSAPI (an HTTPS server in this process) show the same array. Tests import
it; field engineers can drive it from the shell to rehearse an installation:

    threepar.py --state S.json raise --code 0x2200de --severity Degraded --message "..."
    threepar.py --state S.json ack ID | fix ID | remove ID
    threepar.py --state S.json garbage "text"      # showalert and eventlog answer this instead
    threepar.py --state S.json slow SECONDS        # both answer that much later
    threepar.py --state S.json serve --dir DIR     # start sshd and the WSAPI, print their ports
    threepar.py --state S.json serve-cli           # the sshd ForceCommand ($SSH_ORIGINAL_COMMAND)

showalert -d prints what HPE documents (delfin's test fixture): one block per alert, keys
padded to a column, a blank line between alerts, Time like "2015-07-17 20:14:29 PDT".
"""

import argparse
import datetime
import json
import os
import pathlib
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time

SEVERITIES = ("Fatal", "Critical", "Major", "Minor", "Degraded", "Informational", "Debug")
STATES = ("New", "Acknowledged", "Fixed")
WSAPI_STATE = {"New": 1, "Acknowledged": 2, "Fixed": 3}
SSHD = "/usr/sbin/sshd"
SESSION_HEADER = "X-HP3PAR-WSAPI-SessionKey"


def wait_for(predicate, what, timeout=20.0, interval=0.02):
    """Polls until predicate() is truthy; raises after the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreePar:
    """One simulated array: its alerts and event log in a JSON state file."""

    def __init__(self, state_file, zone=("PDT", -7 * 3600)):
        self.path = pathlib.Path(state_file)
        if not self.path.exists():
            self._save({"next_id": 1, "next_log": 208293700, "zone": list(zone), "alerts": [],
                        "eventlog": [], "garbage": None, "slow": 0, "exit_status": 0})

    # --- state -----------------------------------------------------------------------------
    def _load(self):
        return json.loads(self.path.read_text())

    def _save(self, state):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.path)

    def _log(self, state, alert, when, wsapi_state=None):
        info = {"alertId": str(alert["id"]), "messageCode": alert["code"]}
        if wsapi_state is not None:
            info["state"] = wsapi_state
        state["eventlog"].append({
            "time": self._iso(state, when), "timeSecs": int(when), "id": str(state["next_log"]),
            "category": 2, "class": 1, "severity": SEVERITIES.index(alert["severity"]) + 1,
            "type": alert["type"], "isDataChanged": False, "components": alert["component"],
            "resource": 0, "component": 0, "componentName": alert["component"],
            "description": alert["message"], "alertInfo": info})
        state["next_log"] += 1

    def raise_alert(self, code=0x2200de, severity="Degraded", message="Node 0, Power Supply 1, "
                    "Battery 0 Degraded", component="Node 0 Power Supply 1",
                    type_="Component state change", when=None, state_name="New"):
        """Adds one alert; returns its Id. `code` is an int or "0x..." text."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")
        code = int(code, 16) if isinstance(code, str) else int(code)
        when = time.time() if when is None else when
        state = self._load()
        alert = {"id": state["next_id"], "state": state_name, "code": code, "time": int(when),
                 "severity": severity, "type": type_, "message": message,
                 "component": component}
        state["next_id"] += 1
        state["alerts"].append(alert)
        self._log(state, alert, when)
        self._save(state)
        return alert["id"]

    def _set_state(self, alert_id, new_state):
        state = self._load()
        for alert in state["alerts"]:
            if alert["id"] == int(alert_id):
                alert["state"] = new_state
                self._log(state, alert, time.time(), WSAPI_STATE[new_state])
                self._save(state)
                return
        raise KeyError(f"no alert {alert_id}")

    def acknowledge(self, alert_id):
        self._set_state(alert_id, "Acknowledged")

    def fix(self, alert_id):
        self._set_state(alert_id, "Fixed")

    def remove(self, alert_id):
        state = self._load()
        state["alerts"] = [a for a in state["alerts"] if a["id"] != int(alert_id)]
        self._save(state)

    def garbage(self, text="Error: internal CLI failure\x00\x01"):
        """Both interfaces answer `text` instead of their data; None returns to normal."""
        state = self._load()
        state["garbage"] = text
        self._save(state)

    def slow(self, seconds):
        state = self._load()
        state["slow"] = seconds
        self._save(state)

    def exit_status(self, status):
        state = self._load()
        state["exit_status"] = status
        self._save(state)

    # --- rendering -------------------------------------------------------------------------
    @staticmethod
    def _local(state, when):
        name, offset = state["zone"]
        tz = datetime.timezone(datetime.timedelta(seconds=offset))
        return datetime.datetime.fromtimestamp(when, tz), name

    def _iso(self, state, when):
        local, _ = self._local(state, when)
        return local.isoformat(timespec="seconds")

    def showalert(self, args):
        """`showalert [-d] [-n|-a|-f|-all]`: (stdout, stderr, exit status)."""
        state = self._load()
        if state["slow"]:
            time.sleep(state["slow"])
        if state["garbage"] is not None:
            return state["garbage"], "", 0
        if state["exit_status"]:
            return "", "Error: simulated CLI failure\n", state["exit_status"]
        wanted = {"New"}
        if "-a" in args:
            wanted = {"Acknowledged"}
        if "-f" in args:
            wanted = {"Fixed"}
        if "-all" in args:
            wanted = set(STATES)
        alerts = [a for a in state["alerts"] if a["state"] in wanted]
        if not alerts:
            return "No alerts.\n", "", 0
        blocks = []
        for a in alerts:
            local, zone = self._local(state, a["time"])
            fields = [("Id", a["id"]), ("State", a["state"]), ("MessageCode", hex(a["code"])),
                      ("Time", f"{local:%Y-%m-%d %H:%M:%S} {zone}"), ("Severity", a["severity"]),
                      ("Type", a["type"]), ("Message", a["message"]),
                      ("Component", a["component"])]
            blocks.append("".join(f"{k:<11} : {v}\n" for k, v in fields))
        return "\n".join(blocks), "", 0

    def eventlog(self):
        state = self._load()
        members = state["eventlog"]
        return {"total": len(members), "members": members}


# --- the CLI over SSH ----------------------------------------------------------------------
def current_user():
    return pwd.getpwuid(os.geteuid()).pw_name


def keygen(path, kind="ed25519"):
    for p in (path, pathlib.Path(str(path) + ".pub")):
        if p.exists():
            p.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "pass-sim", "-f", str(path)],
                   check=True, capture_output=True)


class SshServer:
    """Debian's sshd on 127.0.0.1 as the current user, its only command the simulated CLI."""

    def __init__(self, array, directory):
        self.array = array
        self.dir = pathlib.Path(directory).resolve()  # sshd re-executes itself from /
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "client_key"
        self.config = self.dir / "sshd_config"
        self.log_path = self.dir / "sshd.log"
        self.port = None
        self.proc = None
        self.user = current_user()
        keygen(self.host_key)
        keygen(self.client_key)
        (self.dir / "authorized_keys").write_text(
            pathlib.Path(str(self.client_key) + ".pub").read_text())

    def _write_config(self):
        script = pathlib.Path(__file__).resolve()
        # -S: no site initialisation (stdlib only), so a login costs less of the CPU the
        # agent-run benchmark shares with the simulators.
        command = " ".join(shlex.quote(p) for p in (sys.executable, "-S", str(script), "--state",
                                                    str(self.array.path.resolve()), "serve-cli"))
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}", f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "UsePAM no", "StrictModes no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            "AllowTcpForwarding no", "X11Forwarding no", "PrintMotd no", "LogLevel ERROR",
            # sshd runs the forced command through the user's shell, and bash started by
            # sshd as a top-level shell reads ~/.bashrc (on this VM ~0.3 s of
            # `pyenv init` per login). SHLVL=1 makes it a second-level shell, which does not.
            "SetEnv SHLVL=1",
            f"ForceCommand {command}", ""]))

    def start(self, port=None):
        """Starts sshd (on `port`, or a free one) and waits until it greets."""
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            # sshd started as root insists on its privilege separation directory, which
            # Debian's service unit normally creates.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.port = port or free_port()
        self._write_config()
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                     stdout=self.log, stderr=self.log)

        def greets():
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: "
                                   + self.log_path.read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    return s.recv(64).startswith(b"SSH-")
            except OSError:
                return False

        wait_for(greets, "sshd to accept connections")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None

    def change_host_key(self):
        """A new host key on the same port: what a replaced controller (or an impostor) shows."""
        self.stop()
        keygen(self.host_key)
        self.start(self.port)

    def fingerprint(self):
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key)],
                             check=True, capture_output=True, text=True).stdout
        return out.split()[1]


def serve_cli(array):
    """The sshd ForceCommand: runs the command the client asked for."""
    words = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    if not words or words[0] != "showalert":
        sys.stderr.write(f"Error: the simulator knows only showalert, not {words[:1]}\n")
        return 1
    out, err, status = array.showalert(words[1:])
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.stdout.flush()
    return status


# --- the WSAPI over HTTPS ------------------------------------------------------------------
def self_signed(directory):
    directory = pathlib.Path(directory)
    key, cert = directory / "wsapi.key", directory / "wsapi.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "30", "-subj", "/CN=3par-sim",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


# The WSAPI's modules are imported where it is built: every SSH login runs this file as the
# forced command, and importing http.server and ssl would cost it ~70 ms of CPU.
class WsapiServer:
    """The WSAPI's credentials and eventlog resources; records every request (`requests`) and
    every session it hands out. on_login(user) is called for each POST /api/v1/credentials
    before it is checked (tests use it to see what the agent had done by then)."""

    def __init__(self, array, directory, user="3paradm", password="3pardata", on_login=None):
        self.array = array
        self.on_login = on_login
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password
        self.created = []
        self.deleted = []
        self.requests = []
        self.port = None
        self.httpd = None
        self.thread = None
        self.cert, self.key = self_signed(self.dir)

    def open_sessions(self):
        return [k for k in self.created if k not in self.deleted]

    def _handler(self):
        import http.server
        import secrets
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=()):
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _delay(self):
                slow = server.array._load()["slow"]
                if slow:
                    time.sleep(slow)

            def do_POST(self):
                server.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/api/v1/credentials":
                    return self._send(404, {"code": 0, "desc": "not found"})
                self._delay()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if server.on_login is not None:
                    server.on_login(body.get("user") if isinstance(body, dict) else None)
                if not isinstance(body, dict):
                    return self._send(400, {"code": 1, "desc": "malformed JSON"})
                if body.get("user") != server.user or body.get("password") != server.password:
                    return self._send(403, {"code": 5, "desc": "invalid username or password"})
                key = secrets.token_hex(16)
                server.created.append(key)
                self._send(201, {"key": key},
                           [("Location", f"/api/v1/credentials/{key}")])

            def _session(self):
                key = self.headers.get(SESSION_HEADER)
                return key if key in server.created and key not in server.deleted else None

            def do_GET(self):
                server.requests.append(("GET", self.path))
                if not self.path.startswith("/api/v1/eventlog"):
                    return self._send(404, {"code": 0, "desc": "not found"})
                if self._session() is None:
                    return self._send(403, {"code": 6, "desc": "invalid session key"})
                self._delay()
                garbage = server.array._load()["garbage"]
                if garbage is not None:
                    return self._send(200, garbage.encode())
                self._send(200, server.array.eventlog())

            def do_DELETE(self):
                server.requests.append(("DELETE", self.path))
                prefix = "/api/v1/credentials/"
                key = self.path[len(prefix):] if self.path.startswith(prefix) else ""
                if key not in server.created or key in server.deleted:
                    return self._send(404, {"code": 7, "desc": "no such session"})
                server.deleted.append(key)
                self._send(200, {})

        return Handler

    def start(self, port=0):
        import http.server
        import ssl
        import threading
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=10)
        self.httpd = None

    def change_certificate(self):
        """A new self-signed certificate and key on the same port."""
        self.stop()
        self.cert, self.key = self_signed(self.dir)
        self.start(self.port)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="the simulated array's state file")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("raise", help="add one alert in state New")
    r.add_argument("--code", default="0x2200de")
    r.add_argument("--severity", default="Degraded", choices=SEVERITIES)
    r.add_argument("--message", default="Node 0, Power Supply 1, Battery 0 Degraded")
    r.add_argument("--component", default="Node 0 Power Supply 1")
    r.add_argument("--type", default="Component state change")
    for name in ("ack", "fix", "remove"):
        sub.add_parser(name).add_argument("id", type=int)
    sub.add_parser("garbage").add_argument("text", nargs="?")
    sub.add_parser("slow").add_argument("seconds", type=float)
    sub.add_parser("serve-cli", help="sshd ForceCommand: answer $SSH_ORIGINAL_COMMAND")
    s = sub.add_parser("serve", help="run sshd and the WSAPI until interrupted")
    s.add_argument("--dir", required=True)
    s.add_argument("--user", default="3paradm")
    s.add_argument("--password", default="3pardata")
    args = parser.parse_args(argv)
    array = ThreePar(args.state)
    if args.command == "serve-cli":
        return serve_cli(array)
    if args.command == "raise":
        print(array.raise_alert(args.code, args.severity, args.message, args.component,
                                args.type))
    elif args.command == "ack":
        array.acknowledge(args.id)
    elif args.command == "fix":
        array.fix(args.id)
    elif args.command == "remove":
        array.remove(args.id)
    elif args.command == "garbage":
        array.garbage(args.text)
    elif args.command == "slow":
        array.slow(args.seconds)
    elif args.command == "serve":
        # A plain kill must stop sshd too, not orphan it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        ssh = SshServer(array, pathlib.Path(args.dir) / "ssh").start()
        wsapi = WsapiServer(array, pathlib.Path(args.dir) / "wsapi", args.user,
                            args.password).start()
        print(json.dumps({"ssh_port": ssh.port, "ssh_user": ssh.user,
                          "key_file": str(ssh.client_key), "wsapi_port": wsapi.port}),
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            ssh.stop()
            wsapi.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
