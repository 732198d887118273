#!/usr/bin/env python3
"""A throwaway PostgreSQL 15 cluster for the tests, in a temp folder.

initdb and pg_ctl from /usr/lib/postgresql/15/bin (Debian's postgresql-15); the unix socket in
the temp folder, TCP on 127.0.0.1 at an ephemeral port; fsync on, as a real database. initdb
refuses to run as root, and CI runs as root: then the server runs as the `postgres` account
(made by the Debian package) through runuser, with the folder given to it.

The superuser `postgres` connects through the socket without a password (trust: only the
folder's owner reaches the socket); the role `pass` (CREATEDB) owns the database `pass` and
connects over TCP with a random password (scram-sha-256) kept in a file, as a home does.

In Python:

    with PgCluster() as pg:
        url = pg.create_database("t1")     # postgresql://pass@127.0.0.1:PORT/t1
        ... pg.password_file ...

From the shell (the ctest fixture, and the C++ tests' helper):

    pgcluster.py start INFO   starts a cluster, writes INFO (JSON: dir, url, password_file,
                              port, socket_dir) and exits, leaving the server running
    pgcluster.py stop INFO    stops that cluster and deletes its folder and INFO
"""

import json
import os
import pathlib
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = pathlib.Path(os.environ.get("PASS_PG_BIN", "/usr/lib/postgresql/15/bin"))
ROLE = "pass"
DATABASE = "pass"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A PostgreSQL cluster in a temp folder; start() it, stop() removes it again."""

    def __init__(self, root=None, settings=None):
        self.dir = pathlib.Path(root) if root else None
        self.extra_settings = dict(settings or {})  # postgresql.conf settings added
        self.port = None
        self.password = None
        self._owner = None  # the account the server runs as when we are root

    # --- paths and commands ---

    @property
    def data(self):
        return self.dir / "data"

    @property
    def socket_dir(self):
        return self.dir

    @property
    def password_file(self):
        return self.dir / "password"

    @property
    def log_file(self):
        return self.dir / "postgres.log"

    @property
    def url(self):
        return self.url_of(DATABASE)

    def url_of(self, database):
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def _as_server(self, args):
        """args, run as the server's account (root cannot run initdb or postgres)."""
        if self._owner:
            return ["runuser", "-u", self._owner, "--", *args]
        return list(args)

    def _run(self, args, what, timeout=120, stdin=None):
        proc = subprocess.run(self._as_server(args), capture_output=True, text=True,
                              timeout=timeout, cwd=self.dir, input=stdin)
        if proc.returncode != 0:
            raise RuntimeError(f"{what} exited {proc.returncode}: {args}\n{proc.stdout}"
                               f"{proc.stderr}{self._log_tail()}")
        return proc.stdout

    def _log_tail(self):
        if not self.dir or not self.log_file.exists():
            return ""
        return "\npostgres.log:\n" + "\n".join(self.log_file.read_text().splitlines()[-20:])

    def psql(self, sql, database="postgres"):
        """Runs sql as the superuser through the socket; returns psql's unaligned output. The
        SQL goes in on stdin, not the command line (it may carry a password)."""
        return self._run([str(BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                          "-d", database], "psql", stdin=sql).strip()

    # --- life cycle ---

    def start(self, deadline_s=60):
        if not self.dir:
            self.dir = pathlib.Path(tempfile.mkdtemp(prefix="pass-pg-"))
        try:
            self._start(deadline_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, deadline_s):
        if not (BIN / "initdb").exists():
            raise RuntimeError(f"{BIN / 'initdb'} not found: install postgresql-15 "
                               "(scripts/install-deps.sh)")
        if os.geteuid() == 0:
            self._owner = "postgres"
            account = pwd.getpwnam(self._owner)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        os.chmod(self.dir, 0o700)
        # --no-sync: initdb's closing sync of the new files only guards them against an OS
        # crash, which a throwaway cluster does not outlive; the server runs with fsync on.
        self._run([str(BIN / "initdb"), "--no-sync", "-D", str(self.data), "-U", "postgres",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                   "--locale=C.UTF-8"], "initdb")
        # The port is free when read, and may be taken before the server binds it: try again.
        for attempt in range(5):
            self.port = _free_port()
            self._write_config()
            try:
                self._run([str(BIN / "pg_ctl"), "start", "-D", str(self.data), "-l",
                           str(self.log_file), "-w", "-t", str(deadline_s)], "pg_ctl start",
                          timeout=deadline_s + 10)
                break
            except RuntimeError:
                if attempt == 4 or "could not bind" not in self._log_tail():
                    raise
        self._wait_ready(deadline_s)
        self.password = secrets.token_hex(16)
        self.password_file.write_text(self.password + "\n")
        os.chmod(self.password_file, 0o600)
        self.psql(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self.password}'")
        self.psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

    def _write_config(self):
        # postgresql.auto.conf is read last: these settings win over postgresql.conf.
        conf = self.data / "postgresql.auto.conf"
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "100",
            "shared_buffers": "32MB",
            **self.extra_settings,
        }
        text = "".join(f"{k} = '{v}'\n" for k, v in settings.items())
        subprocess.run(self._as_server(["tee", str(conf)]), input=text, text=True,
                       capture_output=True, check=True)

    def _wait_ready(self, deadline_s):
        deadline = time.monotonic() + deadline_s
        while True:
            proc = subprocess.run([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                                   str(self.port), "-t", "1"])
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on 127.0.0.1:{self.port} not ready after "
                                   f"{deadline_s} s{self._log_tail()}")
            time.sleep(0.05)

    def stop(self):
        """Stops the server (fast, then immediate) and deletes the folder."""
        if not self.dir:
            return
        if (self.data / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                try:
                    self._run([str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode,
                               "-w", "-t", "60"], "pg_ctl stop", timeout=70)
                    break
                except (RuntimeError, subprocess.TimeoutExpired):
                    continue
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- for tests ---

    def create_database(self, name):
        """A new empty database owned by `pass`; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url_of(name)

    def info(self):
        return {"dir": str(self.dir), "url": self.url, "password_file": str(self.password_file),
                "port": self.port, "socket_dir": str(self.socket_dir)}

    @classmethod
    def from_info(cls, info):
        cluster = cls(info["dir"])
        cluster.port = info["port"]
        if os.geteuid() == 0:
            cluster._owner = "postgres"
        return cluster


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        print("usage: pgcluster.py start|stop INFO", file=sys.stderr)
        return 2
    info_file = pathlib.Path(argv[2])
    if argv[1] == "start":
        cluster = PgCluster().start()
        try:
            tmp = info_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(cluster.info()))
            tmp.rename(info_file)
        except BaseException:
            cluster.stop()
            raise
        print(cluster.url)
        return 0
    if not info_file.exists():
        print(f"{info_file}: no cluster to stop", file=sys.stderr)
        return 0
    PgCluster.from_info(json.loads(info_file.read_text())).stop()
    info_file.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
