"""Helpers for the integration tests: real pass-home and pass-agent processes on 127.0.0.1."""

import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

HOME_BIN = os.environ.get("PASS_HOME_BIN", "pass-home")
AGENT_BIN = os.environ.get("PASS_AGENT_BIN", "pass-agent")
CONTENT_TYPE = "application/vnd.pass.envelope.v1"


def wait_for(predicate, what, timeout=20.0, interval=0.02):
    """Polls until predicate() is truthy; fails with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def terminate(proc, timeout=20):
    """SIGTERM to a child that still runs, SIGKILL after `timeout` s; waits for it."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port():
    """A port nobody listens on: bound, read back, closed. Free for now only: another process
    may take it later; a test that needs a port to stay dead holds a RefusedPort."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RefusedPort:
    """A port held bound and not listening for as long as the test keeps it: a connection to
    it is refused at once, and no other process (a server of a test running beside this one)
    can take it meanwhile."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def run(args, env=None, check=False):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def remove_tmp(path):
    """Deletes a test's temp dir, or keeps it and says where when PASS_KEEP_TMP is set."""
    if os.environ.get("PASS_KEEP_TMP"):
        print(f"kept {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


_own_postgres = None  # the cluster test_postgres() started when ctest gave none


def test_postgres():
    """The tests' PostgreSQL cluster (pgcluster.PgCluster): ctest's fixture `postgres` when
    PASS_TEST_POSTGRES names its info file, else one started for this process (stopped at
    exit), so that a test also runs by hand."""
    global _own_postgres
    import atexit
    import pgcluster
    info = os.environ.get("PASS_TEST_POSTGRES")
    if info:
        return pgcluster.PgCluster.from_info(json.loads(pathlib.Path(info).read_text()))
    if _own_postgres is None:
        _own_postgres = pgcluster.PgCluster().start()
        atexit.register(_own_postgres.stop)
    return _own_postgres


def postgres_database():
    """A fresh, empty database of the tests' cluster: (url, password_file)."""
    cluster = test_postgres()
    name = "it_" + os.urandom(6).hex()
    return cluster.create_database(name), cluster.password_file


class Home:
    """A pass-home state directory and, when started, its server process. With `database`
    (a postgresql:// URL, e.g. from postgres_database()) and `password_file`, the home keeps
    its store in that PostgreSQL database (`pass-home init --database`); else in SQLite."""

    def __init__(self, root, database=None, password_file=None):
        self.root = pathlib.Path(root)
        self.state = self.root / "home"
        self.proc = None
        self.port = None
        self.log_path = self.root / "home.log"
        args = [HOME_BIN, "init", "--state", str(self.state)]
        if database:
            args += ["--database", database]
        if password_file:
            args += ["--database-password-file", str(password_file)]
        run(args, check=True)

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def start(self, port=0, extra=(), env=None):
        """Starts `pass-home serve`; `env` adds to the environment (e.g. faketime's)."""
        port_file = self.root / "home.port"
        if port_file.exists():
            port_file.unlink()
        self.log = open(self.log_path, "a")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        # Tests run side by side: each home's admin API on a port of its own.
        admin = [] if any(a.startswith("--admin-listen") for a in extra) else [
            "--admin-listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [HOME_BIN, "serve", "--state", str(self.state), "--listen", f"127.0.0.1:{port}",
             "--port-file", str(port_file), *admin, *extra],
            stdout=self.log, stderr=self.log, env=full_env)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"pass-home exited {self.proc.returncode}:\n"
                                     + self.log_path.read_text())
            text = port_file.read_text().strip() if port_file.exists() else ""
            return int(text) if text else None

        self.port = wait_for(ready, "pass-home to listen")
        return self

    def restart(self, env=None):
        """Starts the server again on the port it had, where the agents' bundles point."""
        return self.start(port=self.port, env=env)

    def stop(self):
        terminate(self.proc)
        if self.proc:
            self.log.close()
        self.proc = None

    def kill(self):
        """SIGKILL, as a machine that dies: nothing is flushed or closed."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def enroll(self, name, endpoints=None, customer="ACME Corp", site="Berlin DC1", extra=(),
               out=None):
        """The bundle goes to `out`, by default ROOT/agent-NAME."""
        out = pathlib.Path(out) if out else self.root / f"agent-{name}"
        if endpoints is None:
            endpoints = [self.url]
        args = [HOME_BIN, "enroll", "--state", str(self.state), "--customer", customer,
                "--site", site, "--agent", name, "--out", str(out), *extra]
        for e in endpoints:
            args += ["--endpoint", e]
        run(args, check=True)
        return Bundle(out)

    def json(self, *args):
        proc = run([HOME_BIN, *args, "--state", str(self.state), "--json"], check=True)
        return json.loads(proc.stdout)

    def messages(self, agent=None):
        args = ["messages"] + (["--agent", agent] if agent else [])
        return self.json(*args)

    def agents(self):
        return {a["id"]: a for a in self.json("agents")}

    def events(self, array=None):
        return self.json("events", *(["--array", array] if array else []))

    def log_text(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_events(self, event):
        """The home's JSON log lines of `event`, oldest first, parsed."""
        found = []
        for line in self.log_text().splitlines():
            if f'"event":"{event}"' in line:
                found.append(json.loads(line))
        return found


class Bundle:
    """An enrolled agent's bundle directory."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.config = self.path / "agent.xml"

    @property
    def agent_id(self):
        text = self.config.read_text()
        start = text.index('id="') + 4
        return text[start:start + 36]

    def agent(self, *args, env=None):
        return run([AGENT_BIN, *args, "--config", str(self.config)], env=env)

    def status(self):
        proc = self.agent("status", "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def pins(self, serial):
        """{name: value} of the keys the agent pinned for the array with that serial ({} when
        it pinned none)."""
        files = list((self.path / "state" / "pins").glob(f"*-{serial}.json"))
        if not files:
            return {}
        assert len(files) == 1, files
        return {name: pin["value"] for name, pin in json.loads(files[0].read_text())["pins"].items()}

    def make_heartbeat_due(self):
        """Simulates the passing of a heartbeat interval between two runs."""
        state_file = self.path / "state" / "agent-state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            state["next_heartbeat_due_ms"] = 0
            state_file.write_text(json.dumps(state))

    def set_heartbeat_minutes(self, minutes):
        """Sets <heartbeat interval-minutes> in agent.xml."""
        import re
        text = self.config.read_text()
        text, n = re.subn(r'(<heartbeat\b[^>]*\binterval-minutes=")\d+(")', rf"\g<1>{minutes}\2",
                          text)
        assert n == 1, text
        self.config.write_text(text)

    def spool_files(self):
        spool = self.path / "state" / "spool"
        return sorted(p for p in spool.glob("*.env")) if spool.exists() else []

    def quarantine_files(self):
        q = self.path / "state" / "spool" / "quarantine"
        return sorted(q.glob("*.env")) if q.exists() else []

    def set_endpoints(self, endpoints, proxy=None):
        """Rewrites the <home> element of agent.xml."""
        text = self.config.read_text()
        start = text.index("<home")
        end = text.index("</home>") + len("</home>")
        head = text[start:text.index(">", start) + 1]
        inner = "".join(f'\n    <endpoint url="{e}"/>' for e in endpoints)
        if proxy:
            inner += f'\n    <proxy url="{proxy}"/>'
        self.config.write_text(text[:start] + head + inner + "\n  </home>" + text[end:])

    def add_array(self, element, **attributes):
        """Adds one array to agent.xml: add_array("hitachi-svp", serial="470849", sim_dir=...);
        underscores in attribute names become dashes."""
        from xml.sax.saxutils import quoteattr
        text = self.config.read_text()
        attrs = "".join(f" {k.replace('_', '-')}={quoteattr(str(v))}" for k, v in attributes.items())
        line = f"\n    <{element}{attrs}/>"
        if "<arrays>" in text:
            text = text.replace("\n  </arrays>", line + "\n  </arrays>", 1)
        else:
            text = text.replace("</pass-agent>", f"  <arrays>{line}\n  </arrays>\n</pass-agent>", 1)
        self.config.write_text(text)

    def tls_context(self):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.path / "home-ca.crt"))
        ctx.load_cert_chain(str(self.path / "agent-tls.crt"), str(self.path / "agent-tls.key"))
        return ctx


def post_envelope(bundle, port, body, content_type=CONTENT_TYPE, path="/v1/envelopes"):
    """POSTs raw bytes with the bundle's client certificate; returns (status, parsed JSON body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=bundle.tls_context(), timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        data = resp.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return resp.status, parsed
    finally:
        conn.close()


def post_header_only(bundle, port, content_length, content_type=CONTENT_TYPE):
    """Sends only the header of a POST announcing content_length bytes and reads the answer,
    as a client using "Expect: 100-continue" does: the home refuses an oversized body from the
    header alone and closes the connection."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    with bundle.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall((f"POST /v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n"
                     f"Expect: 100-continue\r\n\r\n").encode())
        resp = http.client.HTTPResponse(tls)
        resp.begin()
        data = resp.read()
        return resp.status, json.loads(data) if data else None


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that counts the tunnels it opened."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.tunnels = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        with client:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            line = request.split(b"\r\n", 1)[0].decode()
            method, target, _ = line.split(" ", 2)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            self.tunnels.append(target)
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
                pump.start()
                self._pump(client, upstream)
                pump.join(timeout=5)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.sock.close()


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faketime_env(spec):
    """The environment that runs a process under libfaketime (Debian package faketime) with
    FAKETIME=`spec` ("+10h", "+10h x10"); steady clocks stay real."""
    # Under the asan preset the preloaded libfaketime comes before ASan's runtime, which ASan
    # refuses unless told that this order is intended.
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": spec, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


class HomeTestCase(unittest.TestCase):
    """Each test gets a temp dir with an initialized, running home."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pass-it-")
        self.home = Home(self.tmp)
        self.home.start()

    def tearDown(self):
        self.home.stop()
        if os.environ.get("PASS_KEEP_TMP"):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- Servers for the tickets tests: pass-smtpd (Maildir) and http-receiver (SMS, webhooks) ---

REPO = pathlib.Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-aiosmtpd is installed for this one only


class _ChildServer:
    """A test server child on 127.0.0.1 that writes its port to a file once it listens."""

    def __init__(self, root, name):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port_file = self.root / "port"
        self.log_path = self.root / f"{name}.log"
        self.proc = None
        self.port = None

    def _start(self, args):
        if self.port_file.exists():
            self.port_file.unlink()
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n"
                                     + self.log_path.read_text())
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            return int(text) if text else None

        self.port = wait_for(ready, f"{self.name} to listen")
        return self

    def stop(self):
        terminate(self.proc)
        self.proc = None


class MailServer(_ChildServer):
    """tools/smtpd/pass-smtpd.py delivering into ROOT/mail (Maildir). With `tls`, STARTTLS is
    required with a self-signed certificate (ROOT/tls/cert.pem, for the home's ca-file); with
    `auth` = (user, password), AUTH is required. A restart keeps the certificate and can keep
    the port."""

    def __init__(self, root, tls=True, auth=("pass", "secret")):
        super().__init__(root, "pass-smtpd")
        self.maildir = self.root / "mail"
        self.tls_dir = self.root / "tls"
        self.events_path = self.root / "events.jsonl"
        self.tls = tls
        self.auth = auth

    @property
    def cert(self):
        return self.tls_dir / "cert.pem"

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def start(self, port=0):
        args = [SYSTEM_PYTHON, str(REPO / "tools" / "smtpd" / "pass-smtpd.py"), "--port", str(port),
                "--port-file", str(self.port_file), "--maildir", str(self.maildir),
                "--events", str(self.events_path)]
        if self.tls:
            if self.cert.exists():
                args += ["--tls-cert", str(self.cert), "--tls-key", str(self.tls_dir / "key.pem")]
            else:
                args += ["--self-signed", str(self.tls_dir)]
            args += ["--require-starttls"]
        if self.auth:
            args += ["--auth-user", self.auth[0], "--auth-password", self.auth[1]]
        return self._start(args)

    def restart(self):
        """Starts again on the port it had, where the home's <smtp url> points."""
        return self.start(port=self.port)

    def message_files(self):
        new = self.maildir / "new"
        return sorted(new.iterdir()) if new.exists() else []

    def messages(self):
        """The delivered messages, oldest first, as email.message.EmailMessage."""
        import email
        import email.policy
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in self.message_files()]


class HttpReceiver(_ChildServer):
    """tools/http-receiver/http-receiver.py logging every request to ROOT/requests.jsonl."""

    def __init__(self, root, extra=()):
        super().__init__(root, "http-receiver")
        self.log_file = self.root / "requests.jsonl"
        self.extra = list(extra)

    def start(self, port=0):
        return self._start([SYSTEM_PYTHON, str(REPO / "tools" / "http-receiver" / "http-receiver.py"),
                            "--port", str(port), "--port-file", str(self.port_file),
                            "--log", str(self.log_file), *self.extra])

    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def requests(self):
        """The logged requests, oldest first (complete lines only)."""
        if not self.log_file.exists():
            return []
        lines = self.log_file.read_text(encoding="utf-8").split("\n")
        return [json.loads(line) for line in lines[:-1] if line.strip()]


class HomeProcess(Home):
    """Another `pass-home serve` on an existing state directory (a second process on one
    database); its own port file and log under `root`."""

    def __init__(self, root, state):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = pathlib.Path(state)
        self.proc = None
        self.port = None
        self.log_path = self.root / "home.log"


# --- HAProxy in front of several homes (installer/haproxy/haproxy.cfg) ---

HAPROXY_BIN = os.environ.get("PASS_HAPROXY_BIN", shutil.which("haproxy") or "/usr/sbin/haproxy")
HAPROXY_CFG = REPO / "installer" / "haproxy" / "haproxy.cfg"


class HaProxy:
    """Debian's haproxy as the current user, not the system service: the shipped
    installer/haproxy/haproxy.cfg with its `bind` on 127.0.0.1 at an ephemeral port, one `server`
    line per home port, its log on stdout (ROOT/haproxy.log), a stats socket in ROOT, `maxconn`
    1000, and without chroot, user, group and daemon."""

    def __init__(self, root, home_ports, check_interval=None):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.home_ports = list(home_ports)
        self.check_interval = check_interval  # e.g. "300ms" instead of the shipped 2 s
        self.config = self.root / "haproxy.cfg"
        self.socket = self.root / "stats.sock"
        self.log_path = self.root / "haproxy.log"
        self.proc = None
        self.port = None

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def _render(self):
        dropped = ("chroot ", "user ", "group ", "daemon", "stats socket ", "server ")
        lines = []
        for line in HAPROXY_CFG.read_text().splitlines():
            setting = line.strip()
            if setting.startswith(dropped):
                continue
            if setting.startswith("log /dev/log"):
                line = "    log stdout format raw local0"
            elif setting.startswith("maxconn "):
                line = "    maxconn 1000"  # within the test account's file limit
            elif setting.startswith("bind "):
                line = f"    bind 127.0.0.1:{self.port}"
            elif setting.startswith("default-server ") and self.check_interval:
                line = re.sub(r"\binter \S+", f"inter {self.check_interval}", line)
            lines.append(line)
            if setting == "global":
                lines.append(f"    stats socket {self.socket} mode 600 level admin")
        assert any(line.startswith("backend ") for line in lines), HAPROXY_CFG
        lines += [f"    server home{i + 1} 127.0.0.1:{port}"
                  for i, port in enumerate(self.home_ports)]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, up=None):
        """Starts haproxy and waits until its stats socket answers and `up` homes (all, by
        default) pass their health check. The port is free when read and may be taken before
        haproxy binds it: then it tries another."""
        for attempt in range(5):
            self.port = free_port()
            self._render()
            run([HAPROXY_BIN, "-c", "-q", "-f", str(self.config)], check=True)
            self.log = open(self.log_path, "a")
            self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", str(self.config)],
                                         stdout=self.log, stderr=self.log)
            try:
                self.wait_up(len(self.home_ports) if up is None else up)
                return self
            except AssertionError:
                if self.proc.poll() is None or "cannot bind" not in self.log_text() or attempt == 4:
                    raise
                self.log.close()
        return self

    def log_text(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def command(self, line):
        """One command on the stats socket; its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def servers(self):
        """{server name: its `show stat` row} of the homes' backend (status, stot, ...)."""
        text = self.command("show stat")
        header, *rows = [line for line in text.splitlines() if line]
        names = header.lstrip("# ").split(",")
        found = {}
        for row in rows:
            stat = dict(zip(names, row.split(",")))
            if stat["svname"] not in ("FRONTEND", "BACKEND"):
                found[stat["svname"]] = stat
        return found

    def up(self):
        """The names of the homes whose health check passes."""
        return sorted(name for name, s in self.servers().items() if s["status"] == "UP")

    def wait_up(self, count, timeout=30):
        """Waits until exactly `count` homes are up (down ones included in the count of all)."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited {self.proc.returncode}:\n" + self.log_text())
            try:
                return len(self.up()) == count
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        wait_for(ready, f"haproxy with {count} home(s) up", timeout=timeout)

    def stop(self):
        terminate(self.proc)
        if self.proc:
            self.log.close()
        self.proc = None
