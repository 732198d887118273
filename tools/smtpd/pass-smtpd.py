#!/usr/bin/python3
"""A real SMTP server for PASS's tests and demo: accepts mail with aiosmtpd into a Maildir.

Runs under Debian's python3 (python3-aiosmtpd). Listens on 127.0.0.1; with --port 0 the kernel
picks the port, which is written to --port-file once the server listens.

    pass-smtpd.py --port 0 --port-file D/port --maildir D/mail \\
        --self-signed D/tls --require-starttls --auth-user pass --auth-password secret

Each accepted message becomes one file in MAILDIR/new/ (written in MAILDIR/tmp/, then renamed),
with Return-Path and one Delivered-To per recipient in front of the message as received.
Failure modes for tests: --reject-rcpt ADDR answers 550 to that recipient, --tempfail N answers
451 to the first N messages (after their DATA). --events FILE gets one JSON line per AUTH
attempt, rejected recipient, temporary failure and accepted message, so that a test can check
what the client did (e.g. that it never sent AUTH in clear text). A message's line also has
received_ns, the wall-clock time (time.time_ns()) at which its DATA had arrived whole, before
the server stored or answered it, and its Subject (unfolded), so that a benchmark can tell when
the mail for a given alert arrived.

Stops cleanly on SIGTERM or SIGINT (exit 0). Exit 2: bad arguments or TLS files.
"""

import argparse
import asyncio
import email.parser
import email.policy
import json
import logging
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def log(text):
    print(f"pass-smtpd: {text}", file=sys.stderr, flush=True)


def write_atomically(path, data):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def self_signed(directory):
    """A fresh self-signed certificate for localhost and 127.0.0.1, made by the openssl command."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "7", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Events:
    """The --events file: one JSON object a line, flushed before the client gets its answer."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8") if path else None

    def __call__(self, event, **fields):
        if self.file is None:
            return
        self.file.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        self.file.flush()


class Maildir:
    def __init__(self, root):
        self.root = pathlib.Path(root)
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.count = 0

    def deliver(self, data):
        self.count += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self.count}.{socket.gethostname()}"
        tmp = self.root / "tmp" / name
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.root / "new" / name)
        return self.root / "new" / name


class Handler:
    def __init__(self, args, maildir, events):
        self.reject = {a.lower() for a in args.reject_rcpt}
        self.tempfail_left = args.tempfail
        self.maildir = maildir
        self.events = events

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            self.events("rejected_rcpt", rcpt=address)
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received_ns = time.time_ns()
        if self.tempfail_left > 0:
            self.tempfail_left -= 1
            self.events("tempfail", mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos)
            log(f"451 for a message from {envelope.mail_from} (tempfail)")
            return "451 4.3.0 Temporary failure, try again later"
        # A Maildir holds LF line ends, like a local delivery agent writes them.
        body = envelope.original_content.replace(b"\r\n", b"\n")
        head = f"Return-Path: <{envelope.mail_from}>\n"
        head += "".join(f"Delivered-To: {rcpt}\n" for rcpt in envelope.rcpt_tos)
        path = self.maildir.deliver(head.encode() + body) if self.maildir else None
        tls = server._tls_protocol is not None
        self.events("message", mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos,
                    bytes=len(body), tls=tls, login=session_login(session),
                    file=str(path) if path else None, received_ns=received_ns,
                    subject=subject_of(envelope.original_content))
        log(f"accepted {len(body)} bytes from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}"
            f"{' over TLS' if tls else ''}{f' into {path.name}' if path else ''}")
        return "250 2.0.0 OK: queued"


def subject_of(message):
    """The Subject header unfolded and RFC 2047-decoded, or None."""
    head = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(message)
    subject = head["Subject"]
    return str(subject) if subject is not None else None


def session_login(session):
    data = getattr(session, "auth_data", None)
    return data.login.decode(errors="replace") if isinstance(data, LoginPassword) else None


def authenticator_for(args, events):
    def authenticate(server, session, envelope, mechanism, auth_data):
        tls = server._tls_protocol is not None
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == args.auth_user.encode()
              and auth_data.password == args.auth_password.encode())
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else None
        events("auth", mechanism=mechanism, login=login, tls=tls, success=ok)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return authenticate


def parse_args(argv):
    p = argparse.ArgumentParser(description="SMTP server for PASS tests (aiosmtpd, Maildir).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--port-file", help="written once the server listens")
    p.add_argument("--maildir", help="deliver accepted messages into DIR/new/")
    p.add_argument("--tls-cert", help="PEM certificate: STARTTLS is offered")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--self-signed", metavar="DIR",
                   help="make DIR/cert.pem and DIR/key.pem with openssl and offer STARTTLS")
    p.add_argument("--require-starttls", action="store_true",
                   help="refuse every command but EHLO/NOOP/QUIT before STARTTLS")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--reject-rcpt", action="append", default=[], metavar="ADDR",
                   help="550 for this recipient (repeatable)")
    p.add_argument("--tempfail", type=int, default=0, metavar="N",
                   help="451 to the first N messages")
    p.add_argument("--events", metavar="FILE", help="JSON lines: auth, rejected_rcpt, tempfail, message")
    args = p.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if args.self_signed and args.tls_cert:
        p.error("--self-signed or --tls-cert/--tls-key, not both")
    if (args.auth_user is None) != (args.auth_password is None):
        p.error("--auth-user and --auth-password go together")
    if args.require_starttls and not (args.tls_cert or args.self_signed):
        p.error("--require-starttls needs a certificate (--tls-cert/--tls-key or --self-signed)")
    return args


async def serve(args):
    tls_context = None
    if args.self_signed:
        args.tls_cert, args.tls_key = self_signed(args.self_signed)
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    events = Events(args.events)
    handler = Handler(args, Maildir(args.maildir) if args.maildir else None, events)
    auth = args.auth_user is not None
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(handler, hostname="pass-smtpd", tls_context=tls_context,
                    require_starttls=args.require_starttls,
                    auth_required=auth,
                    # AUTH only after STARTTLS when the server has TLS; without TLS it is offered
                    # in clear text, so that tests can check a client refuses to use it.
                    auth_require_tls=tls_context is not None,
                    authenticator=authenticator_for(args, events) if auth else None,
                    loop=loop)

    server = await loop.create_server(factory, host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.port_file:
        write_atomically(pathlib.Path(args.port_file), f"{port}\n".encode())
    log(f"listening on {args.host}:{port}{' with STARTTLS' if tls_context else ''}"
        f"{' and AUTH' if auth else ''}")
    await stop.wait()
    server.close()
    await server.wait_closed()
    log("stopped")


def main(argv):
    args = parse_args(argv)
    # aiosmtpd logs a deprecation warning at every AUTH (its own use of Session.login_data);
    # this script logs what matters itself.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(args))
    except (OSError, ssl.SSLError, subprocess.CalledProcessError) as e:
        log(f"cannot start: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
