#!/usr/bin/env python3
"""Nimble REST simulator: plays an HPE Nimble array's REST API (port 5392) for the nimble collector.

HTTPS with a self-signed certificate (made with the openssl command), token login, paged events
and alarms in the NimbleOS envelope. All state lives in one directory, so that tests in any
language and a field engineer's shell drive the same server:

    nimble.py --dir D serve --port-file D/port &       # listens on 127.0.0.1, port 0
    nimble.py --dir D event --type 2002 --severity critical --summary "Controller takeover"
    nimble.py --dir D alarm open --type 2004 --object-type controller --object-name A
    nimble.py --dir D alarm acknowledge --id ID | clear --id ID | reonset --id ID
    nimble.py --dir D mode unreachable|garbage|slow|normal [--slow-seconds 5]
    nimble.py --dir D rotate-cert                      # a new key: the pin must refuse it
    nimble.py --dir D tokens                           # logins tried, token ids created, deleted

Files in D: state.json (events, alarms, mode; rewritten atomically by each command, read by
the server at every request), tokens.json (written by the server: every login tried, right or
wrong, and the token ids created and deleted), cert-N.pem / key-N.pem.
"""

import argparse
import http.server
import json
import os
import pathlib
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

SEVERITIES = ("critical", "warning", "info", "notice")
DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "admin-secret"
MAX_PAGE = 2048


def _write_json(path, value):
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


class NimbleSim:
    """The simulated array's state: what the tests script and the server serves."""

    def __init__(self, directory, user=DEFAULT_USER, password=DEFAULT_PASSWORD):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "state.json"
        self.tokens_path = self.dir / "tokens.json"
        if not self.state_path.exists():
            _write_json(self.state_path, {
                "user": user, "password": password, "mode": "normal", "slow_seconds": 5,
                "cert_generation": 0, "sort_ok": True, "serial": "AF-123456",
                "next_seq": 0x4800, "events": [], "alarms": []})
        if not self.tokens_path.exists():
            _write_json(self.tokens_path, {"logins": [], "created": [], "deleted": []})
        self.ensure_cert()

    # ---- state --------------------------------------------------------------------------------

    def load(self):
        return json.loads(self.state_path.read_text())

    def _change(self, fn):
        state = self.load()
        result = fn(state)
        _write_json(self.state_path, state)
        return result

    @staticmethod
    def _new_id(state):
        state["next_seq"] += 1
        # NimbleOS ids are 42 hex digits; the trailing digits grow.
        return "2a0df0fe6f7dc7bb16" + f"{state['next_seq']:024x}"

    def add_event(self, type=2002, severity="warning", summary="Simulated event", activity="",
                  target_type="array", target="sim-array", category="hardware", when=None,
                  alarm_id="", record=None):
        """Appends one event; `record` replaces it with any JSON (for unreadable records)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")

        def change(state):
            if record is not None:
                state["events"].append(record)
                return record
            event = {"id": self._new_id(state), "type": type, "name": f"event-{type}",
                     "scope": state["serial"], "target": target, "target_type": target_type,
                     "timestamp": int(when if when is not None else time.time()),
                     "category": category, "severity": severity, "summary": summary,
                     "activity": activity or summary, "alarm_id": alarm_id, "params": [],
                     "tenant_id": ""}
            state["events"].append(event)
            return event
        return self._change(change)

    def open_alarm(self, type=2004, severity="critical", object_type="controller",
                   object_name="A", activity="Simulated alarm", when=None):
        """Opens an alarm and logs its onset event, as the array does."""
        when = int(when if when is not None else time.time())

        def change(state):
            alarm_id = self._new_id(state)
            onset = self._new_id(state)
            state["events"].append({
                "id": onset, "type": type, "name": f"event-{type}", "scope": state["serial"],
                "target": object_name, "target_type": object_type, "timestamp": when,
                "category": "hardware", "severity": severity, "summary": activity,
                "activity": activity, "alarm_id": alarm_id, "params": [], "tenant_id": ""})
            alarm = {"id": alarm_id, "type": type, "array": state["serial"],
                     "curr_onset_event_id": onset, "object_id": "", "object_name": object_name,
                     "object_type": object_type, "onset_time": when, "ack_time": 0,
                     "status": "open", "user_id": "", "user_name": "", "user_full_name": "",
                     "category": "hardware", "severity": severity, "remind_every": 1,
                     "remind_every_unit": "days", "activity": activity,
                     "next_notification_time": when + 86400}
            state["alarms"].append(alarm)
            return alarm
        return self._change(change)

    def _alarm(self, state, alarm_id):
        for alarm in state["alarms"]:
            if alarm["id"] == alarm_id:
                return alarm
        raise KeyError(f"no alarm {alarm_id}")

    def acknowledge_alarm(self, alarm_id):
        def change(state):
            alarm = self._alarm(state, alarm_id)
            alarm["status"] = "acknowledged"
            alarm["ack_time"] = int(time.time())
            alarm["user_name"] = "admin"
        self._change(change)

    def clear_alarm(self, alarm_id):
        def change(state):
            state["alarms"] = [a for a in state["alarms"] if a["id"] != alarm_id]
        self._change(change)

    def reonset_alarm(self, alarm_id, when=None):
        """The condition came back: a new onset event, status open again."""
        def change(state):
            alarm = self._alarm(state, alarm_id)
            alarm["curr_onset_event_id"] = self._new_id(state)
            alarm["onset_time"] = int(when if when is not None else time.time()) + 1
            alarm["status"] = "open"
            alarm["ack_time"] = 0
            return alarm
        return self._change(change)

    def set_mode(self, mode, slow_seconds=None):
        """normal, unreachable (the port stops listening), garbage (lists answer non-JSON) or
        slow (every answer waits slow_seconds)."""
        if mode not in ("normal", "unreachable", "garbage", "slow"):
            raise ValueError(f"unknown mode {mode}")

        def change(state):
            state["mode"] = mode
            if slow_seconds is not None:
                state["slow_seconds"] = slow_seconds
        self._change(change)

    def set_sort_ok(self, ok):
        """False: sortBy is refused with 400 SM_invalid_query_param, as an older array might."""
        self._change(lambda state: state.__setitem__("sort_ok", bool(ok)))

    def rotate_cert(self):
        """A new key pair: a client that pinned the old key must refuse the new one. The pair
        is on disk before the state names it, so the server never loads half of it."""
        generation = self.load()["cert_generation"] + 1
        self.ensure_cert(generation)
        self._change(lambda state: state.__setitem__("cert_generation", generation))
        return generation

    def cert_paths(self, generation=None):
        if generation is None:
            generation = self.load()["cert_generation"]
        return self.dir / f"cert-{generation}.pem", self.dir / f"key-{generation}.pem"

    def ensure_cert(self, generation=None):
        """Makes the pair once: written under temporary names, then the key and last the
        certificate renamed into place, so that an existing certificate means a whole pair."""
        cert, key = self.cert_paths(generation)
        if not cert.exists():
            tag = f".{os.getpid()}.{threading.get_ident()}.tmp"
            tmp_cert, tmp_key = (p.with_name(p.name + tag) for p in (cert, key))
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj",
                 "/CN=nimble-sim", "-keyout", str(tmp_key), "-out", str(tmp_cert)],
                check=True, capture_output=True)
            os.replace(tmp_key, key)
            os.replace(tmp_cert, cert)
        return cert, key

    def tokens(self):
        """{"logins": [user of each POST /v1/tokens, wrong passwords too], "created": [ids],
        "deleted": [ids]}, as the server recorded them."""
        return json.loads(self.tokens_path.read_text())


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NimbleSim/1.0"

    def log_message(self, *args):
        pass

    @property
    def sim(self):
        return self.server.sim

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, code, text):
        self._send(status, {"messages": [{"code": code, "severity": "error", "text": text}]})

    def _prelude(self):
        state = self.sim.load()
        if state["mode"] == "slow":
            time.sleep(state["slow_seconds"])
        return state

    def _authorised(self):
        token = self.headers.get("X-Auth-Token", "")
        with self.server.lock:
            ok = token in self.server.sessions.values()
        if not ok:
            self._error(401, "SM_http_unauthorized", "Unauthorized access")
        return ok

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        state = self._prelude()
        body = self._body()
        if self.path.split("?")[0] != "/v1/tokens":
            return self._error(404, "SM_http_not_found", "Not found")
        try:
            data = json.loads(body)["data"]
            user, password = data["username"], data["password"]
        except (ValueError, KeyError, TypeError):
            data = user = password = None
        with self.server.lock:
            tokens = self.sim.tokens()
            tokens.setdefault("logins", []).append(user)
            _write_json(self.sim.tokens_path, tokens)
        on_login = self.server.owner.on_login
        if on_login is not None:
            on_login(user)
        if data is None:
            return self._error(400, "SM_invalid_arg_value", "Invalid request body")
        if user != state["user"] or password != state["password"]:
            return self._error(401, "SM_http_unauthorized", "Unauthorized access")
        token_id = "1f" + secrets.token_hex(20)
        session = secrets.token_hex(16)
        with self.server.lock:
            self.server.sessions[token_id] = session
            tokens = self.sim.tokens()
            tokens["created"].append(token_id)
            _write_json(self.sim.tokens_path, tokens)
        now = int(time.time())
        self._send(201, {"data": {"id": token_id, "session_token": session, "username": user,
                                  "app_name": data.get("app_name", ""), "source_ip": "127.0.0.1",
                                  "creation_time": now, "last_modified": now}})

    def do_DELETE(self):
        self._prelude()
        parts = self.path.split("?")[0].split("/")
        if len(parts) != 4 or parts[1:3] != ["v1", "tokens"]:
            return self._error(404, "SM_http_not_found", "Not found")
        if not self._authorised():
            return
        token_id = urllib.parse.unquote(parts[3])
        with self.server.lock:
            if token_id not in self.server.sessions:
                return self._error(404, "SM_http_not_found", "No such token")
            del self.server.sessions[token_id]
            tokens = self.sim.tokens()
            tokens["deleted"].append(token_id)
            _write_json(self.sim.tokens_path, tokens)
        self._send(200, {})

    def do_GET(self):
        state = self._prelude()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/")
        lists = {"/v1/events": "events", "/v1/events/detail": "events",
                 "/v1/alarms": "alarms", "/v1/alarms/detail": "alarms"}
        if path not in lists:
            return self._error(404, "SM_http_not_found", "Not found")
        if not self._authorised():
            return
        if state["mode"] == "garbage":
            return self._send(200, b"<html><body>Internal error &#x1F4A5;</body></html>",
                              "text/html")
        query = urllib.parse.parse_qs(url.query)
        try:
            start = int(query.get("startRow", ["0"])[0])
            page = int(query.get("pageSize", [str(MAX_PAGE)])[0])
            end = int(query.get("endRow", [str(start + page)])[0])
        except ValueError:
            return self._error(400, "SM_invalid_query_param", "Invalid query parameter")
        if end < start:
            return self._error(400, "SM_start_row_beyond_end_row", "startRow beyond endRow")
        rows = list(state[lists[path]])
        sort_by = query.get("sortBy", [None])[0]
        if sort_by is not None:
            if not state["sort_ok"] or sort_by not in ("timestamp", "id", "onset_time"):
                return self._error(400, "SM_invalid_query_param", f"Invalid sortBy {sort_by}")
            def key(row):
                value = row.get(sort_by) if isinstance(row, dict) else None
                return (0, value, "") if isinstance(value, int) else (1, 0, str(value))
            rows.sort(key=key)
        else:
            rows.reverse()  # newest first: the collector must not rely on any order
        end = min(end, start + min(page, MAX_PAGE), len(rows))
        data = rows[start:end]
        if not path.endswith("/detail"):
            data = [{"id": r.get("id")} if isinstance(r, dict) else r for r in data]
        self._send(200, {"startRow": start, "endRow": max(end, start), "totalRows": len(rows),
                         "data": data})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that give up (timeouts) are part of the tests


class NimbleServer:
    """Serves a NimbleSim directory on 127.0.0.1. Follows the state between requests: stops
    listening while the mode is unreachable and takes a rotated certificate, on the same port."""

    def __init__(self, sim, port=0, on_login=None):
        """on_login(user) is called for each login, before it is checked (tests use it to see
        what the agent had done by then)."""
        self.sim = sim
        self.port = port
        self.on_login = on_login
        self.sessions = {}  # token id -> session token; survives certificate rotations
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._server = None
        self._generation = None
        self._listening = threading.Event()

    def _open(self, generation):
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.sim, server.sessions, server.lock = self.sim, self.sessions, self.lock
        server.owner = self  # on_login is read at each login: a test may set it any time
        cert, key = self.sim.ensure_cert(generation)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        self.port = server.server_address[1]
        self._server, self._generation = server, generation

    def _close(self):
        if self._server is not None:
            self._server.server_close()
            self._server = None

    def serve(self, port_file=None):
        """Runs until stop(); writes the port to port_file once listening."""
        while not self._stop.is_set():
            state = self.sim.load()
            if state["mode"] == "unreachable":
                self._close()
                self._stop.wait(0.02)
                continue
            if self._server is None or self._generation != state["cert_generation"]:
                self._close()
                self._open(state["cert_generation"])
                if port_file and not self._listening.is_set():
                    tmp = pathlib.Path(str(port_file) + ".tmp")
                    tmp.write_text(str(self.port))
                    os.replace(tmp, port_file)
                self._listening.set()
            self._server.timeout = 0.02
            self._server.handle_request()
        self._close()

    def start(self):
        """Serves in a thread; returns once the port is known."""
        self._thread = threading.Thread(target=self.serve, daemon=True)
        self._thread.start()
        if not self._listening.wait(20):
            raise RuntimeError("the Nimble simulator did not start listening")
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=20)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the simulator's state directory")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the REST API on 127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--port-file", help="write the port here once listening")
    e = sub.add_parser("event", help="append one event")
    e.add_argument("--type", type=int, default=2002)
    e.add_argument("--severity", default="warning", choices=SEVERITIES)
    e.add_argument("--summary", default="Simulated event")
    e.add_argument("--activity", default="")
    e.add_argument("--target-type", default="array")
    e.add_argument("--target", default="sim-array")
    e.add_argument("--when", type=int, help="timestamp, epoch seconds")
    e.add_argument("--raw", help="append this JSON as the record instead")
    a = sub.add_parser("alarm", help="open, acknowledge, clear or re-onset an alarm")
    a.add_argument("action", choices=("open", "acknowledge", "clear", "reonset"))
    a.add_argument("--id", help="the alarm (all actions but open)")
    a.add_argument("--type", type=int, default=2004)
    a.add_argument("--severity", default="critical", choices=("critical", "warning"))
    a.add_argument("--object-type", default="controller")
    a.add_argument("--object-name", default="A")
    a.add_argument("--activity", default="Simulated alarm")
    m = sub.add_parser("mode", help="normal, unreachable, garbage or slow")
    m.add_argument("mode", choices=("normal", "unreachable", "garbage", "slow"))
    m.add_argument("--slow-seconds", type=float)
    o = sub.add_parser("sort", help="accept or refuse sortBy")
    o.add_argument("ok", choices=("accept", "refuse"))
    sub.add_parser("rotate-cert", help="a new key pair")
    sub.add_parser("tokens", help="print the logins tried, created and deleted token ids")
    args = parser.parse_args(argv)
    sim = NimbleSim(args.dir)
    if args.command == "serve":
        NimbleServer(sim, args.port).serve(args.port_file)
    elif args.command == "event":
        record = json.loads(args.raw) if args.raw is not None else None
        print(json.dumps(sim.add_event(args.type, args.severity, args.summary, args.activity,
                                       args.target_type, args.target, when=args.when,
                                       record=record)))
    elif args.command == "alarm":
        if args.action == "open":
            print(json.dumps(sim.open_alarm(args.type, args.severity, args.object_type,
                                            args.object_name, args.activity)))
        elif not args.id:
            parser.error("--id is required")
        elif args.action == "acknowledge":
            sim.acknowledge_alarm(args.id)
        elif args.action == "clear":
            sim.clear_alarm(args.id)
        else:
            print(json.dumps(sim.reonset_alarm(args.id)))
    elif args.command == "mode":
        sim.set_mode(args.mode, args.slow_seconds)
    elif args.command == "sort":
        sim.set_sort_ok(args.ok == "accept")
    elif args.command == "rotate-cert":
        print(sim.rotate_cert())
    else:
        print(json.dumps(sim.tokens()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
