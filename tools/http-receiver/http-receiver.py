#!/usr/bin/env python3
"""A local HTTP(S) receiver standing in for SMS gateways and webhook endpoints in tests and the
demo. Standard library only; any python3.

    http-receiver.py --port 0 --port-file D/port --log D/requests.jsonl [--self-signed D/tls]
                     [--status CODE] [--fail-first N]

Every request is logged as one JSON line before it is answered: time, method, path, headers (a
list of [name, value] pairs as sent), body (UTF-8 text, undecodable bytes replaced) and, when
the body is not valid UTF-8, body_base64.

Answers: the first --fail-first N requests get 503 (with Retry-After). Then --status CODE when
given; otherwise a Twilio-shaped 201 for POST /2010-04-01/Accounts/{sid}/Messages.json, a
PagerDuty-shaped 202 for POST /v2/enqueue, and 200 {"status": "ok"} for anything else.

Stops cleanly on SIGTERM or SIGINT (exit 0).
"""

import argparse
import base64
import email.utils
import http.server
import json
import os
import pathlib
import re
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

MAX_BODY = 1024 * 1024
TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")


def make_certificate(directory):
    """cert.pem and key.pem for localhost and 127.0.0.1 in `directory`, via the openssl command."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "cert.pem", directory / "key.pem")
    command = ["openssl", "req", "-x509", "-nodes", "-days", "7", "-subj", "/CN=localhost",
               "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
               "-out", str(paths[0]), "-keyout", str(paths[1])]
    subprocess.run(command, check=True, capture_output=True)
    return paths


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, args):
        super().__init__(address, Handler)
        self.args = args
        self.lock = threading.Lock()
        self.failures_left = args.fail_first
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None

    def record(self, entry):
        if self.log_file is None:
            return
        with self.lock:
            self.log_file.write(json.dumps(entry) + "\n")
            self.log_file.flush()

    def take_failure(self):
        with self.lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                return True
            return False


def twilio_answer(account, form):
    """A body shaped like Twilio's Message resource for a queued message."""
    sid = "SM" + secrets.token_hex(16)
    now = email.utils.formatdate(usegmt=True)
    first = lambda name: form.get(name, [""])[0]
    return {
        "account_sid": account, "api_version": "2010-04-01", "body": first("Body"),
        "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
        "error_code": None, "error_message": None, "from": first("From"),
        "messaging_service_sid": None, "num_media": "0", "num_segments": "1", "price": None,
        "price_unit": "USD", "sid": sid, "status": "queued", "to": first("To"),
        "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pass-http-receiver"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.answer(413, {"error": "too_large"})
            return
        body = self.rfile.read(length) if length > 0 else b""
        entry = {"time": time.time(), "method": self.command, "path": self.path,
                 "headers": [[k, v] for k, v in self.headers.items()],
                 "body": body.decode("utf-8", errors="replace")}
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            entry["body_base64"] = base64.b64encode(body).decode()
        self.server.record(entry)

        if self.server.take_failure():
            self.answer(503, {"error": "unavailable", "detail": "--fail-first"}, {"Retry-After": "1"})
            return
        status = self.server.args.status
        path = urllib.parse.urlsplit(self.path).path
        twilio = TWILIO_PATH.match(path)
        if status is not None:
            extra = {"Retry-After": "1"} if status in (429, 503) else {}
            self.answer(status, {"status": status, "message": "--status"}, extra)
        elif self.command == "POST" and twilio:
            form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
            self.answer(201, twilio_answer(twilio.group(1), form))
        elif self.command == "POST" and path == "/v2/enqueue":
            try:
                dedup = json.loads(body).get("dedup_key")
            except (ValueError, AttributeError):
                self.answer(400, {"status": "invalid event", "message": "Event object is invalid"})
                return
            self.answer(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})
        else:
            self.answer(200, {"status": "ok"})

    def answer(self, status, value, headers=None):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, text in (headers or {}).items():
            self.send_header(name, text)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def log_message(self, fmt, *args):
        print(f"http-receiver: {self.address_string()} {fmt % args}", file=sys.stderr, flush=True)


def main(argv):
    p = argparse.ArgumentParser(description="HTTP receiver for PASS tests (SMS gateways, webhooks).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--port-file", help="written once the server listens")
    p.add_argument("--log", help="one JSON line per request")
    p.add_argument("--self-signed", metavar="DIR", help="HTTPS with DIR/cert.pem, made with openssl")
    p.add_argument("--status", type=int, help="answer this status to every request")
    p.add_argument("--fail-first", type=int, default=0, metavar="N", help="503 to the first N requests")
    args = p.parse_args(argv)

    server = Receiver((args.host, args.port), args)
    if args.self_signed:
        cert, key = make_certificate(args.self_signed)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    # shutdown() waits for serve_forever, so the signal handler hands it to another thread.
    stopper = lambda *_: threading.Thread(target=server.shutdown).start()
    signal.signal(signal.SIGTERM, stopper)
    signal.signal(signal.SIGINT, stopper)
    port = server.server_address[1]
    if args.port_file:
        tmp = pathlib.Path(args.port_file + f".{os.getpid()}.tmp")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"http-receiver: listening on {args.host}:{port}{' (TLS)' if args.self_signed else ''}",
          file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
