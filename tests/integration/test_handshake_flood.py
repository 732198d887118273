"""Issue 18, item 2: connections without a certificate cannot lock the agents out
(docs/home.md, "Connections without a certificate").

600 raw TCP connections from other loopback addresses each send a TLS record header and then one
byte every 2 s, and are opened again a second after the home closes them. Meanwhile a real,
enrolled pass-agent must get its envelope accepted within 10 s, every time; the home logs the
refusals as summary lines, never one line per connection."""

import errno
import resource
import selectors
import socket
import threading
import time
import unittest

from passlib import HomeTestCase, wait_for

ATTACK_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 8)]  # Linux routes all of 127/8 to lo
PER_ADDRESS = 100  # 600 connections in all
RECORD_HEADER = b"\x16\x03\x01\x02\x00"  # handshake record, TLS 1.0, 512 bytes to follow
TRICKLE_EVERY_S = 2.0
REOPEN_AFTER_S = 1.0
MOST_CONNECTIONS = 40000  # bounds the attack however fast the home closes connections
PROBES = 5
PROBE_BUDGET_S = 10.0


class Trickler(threading.Thread):
    """Holds PER_ADDRESS connections from each of ATTACK_ADDRESSES to the home's port, each
    sending a TLS record header and then one byte every TRICKLE_EVERY_S; one the home closes is
    opened again REOPEN_AFTER_S later. One thread, non-blocking sockets."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.opened = 0  # connections whose connect completed and whose header went out
        self.closed_by_home = 0
        self.connected = 0
        self.slots = [{"address": a, "sock": None, "due": 0.0, "connecting": False}
                      for a in ATTACK_ADDRESSES for _ in range(PER_ADDRESS)]
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()

    def stop(self):
        self.stopping.set()
        self.join(timeout=20)
        for slot in self.slots:
            if slot["sock"] is not None:
                slot["sock"].close()

    def run(self):
        while not self.stopping.is_set():
            now = time.monotonic()
            for slot in self.slots:
                if slot["due"] > now or slot["connecting"]:
                    continue
                if slot["sock"] is None:
                    if self.opened < MOST_CONNECTIONS:
                        self.open(slot)
                else:
                    self.send(slot, b"\x01")
            for key, events in self.selector.select(timeout=0.05):
                slot = key.data
                if slot["connecting"]:
                    self.connected_or_failed(slot)
                else:
                    self.readable(slot)

    def open(self, slot):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind((slot["address"], 0))
        code = sock.connect_ex(("127.0.0.1", self.port))
        slot["sock"] = sock
        if code in (0, errno.EINPROGRESS):
            slot["connecting"] = True
            self.selector.register(sock, selectors.EVENT_WRITE, slot)
        else:
            self.drop(slot, registered=False)

    def connected_or_failed(self, slot):
        sock = slot["sock"]
        slot["connecting"] = False
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            return self.drop(slot)
        self.selector.modify(sock, selectors.EVENT_READ, slot)
        with self.lock:
            self.opened += 1
            self.connected += 1
        self.send(slot, RECORD_HEADER)

    def send(self, slot, data):
        try:
            slot["sock"].send(data)
            slot["due"] = time.monotonic() + TRICKLE_EVERY_S
        except OSError:
            self.closed(slot)

    def readable(self, slot):
        try:
            data = slot["sock"].recv(4096)
        except OSError:
            data = b""
        if not data:
            self.closed(slot)

    def closed(self, slot):
        with self.lock:
            self.closed_by_home += 1
            self.connected -= 1
        self.drop(slot)

    def drop(self, slot, registered=True):
        if registered:
            self.selector.unregister(slot["sock"])
        slot["sock"].close()
        slot["sock"] = None
        slot["connecting"] = False
        slot["due"] = time.monotonic() + REOPEN_AFTER_S


class UnauthenticatedFlood(HomeTestCase):
    def setUp(self):
        # 600 sockets here; the default soft limit may be 1024 with pass-agent's own files.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        super().setUp()

    def test_an_enrolled_agent_gets_through_while_600_connections_trickle_bytes(self):
        bundle = self.home.enroll("svp-01")
        attack = Trickler(self.home.port)
        started = time.monotonic()
        attack.start()
        try:
            wait_for(lambda: attack.opened >= len(attack.slots), "600 attacking connections",
                     timeout=30)
            # The home is refusing (and so overwhelmed by) the attackers before the first probe.
            wait_for(lambda: self.home.log_events("connections_refused"),
                     "a connections_refused line", timeout=30)
            for i in range(PROBES):
                begun = time.monotonic()
                proc = bundle.agent("test", "--message", f"probe {i} under attack")
                took = time.monotonic() - begun
                self.assertEqual(0, proc.returncode,
                                 f"probe {i} after {took:.1f}s: {proc.stdout}{proc.stderr}")
                self.assertIn("accepted", proc.stdout)
                self.assertLess(took, PROBE_BUDGET_S, f"probe {i}")
                # Spread the probes over more than the handshake deadline (5 s).
                time.sleep(1.5)
            self.assertGreater(attack.connected, 0, "the attack was still holding connections")
        finally:
            closed_by_home = attack.closed_by_home
            attack_seconds = time.monotonic() - started
            self.home.stop()  # before the attackers close: no handshake left to end
            attack.stop()
        self.assertGreater(closed_by_home, 0, "the home closed no attacker")
        self.assertEqual(PROBES, len(self.home.messages(bundle.agent_id)))
        self.assert_refusals_logged_as_summaries(closed_by_home, attack_seconds)

    def assert_refusals_logged_as_summaries(self, closed_by_home, attack_seconds):
        summaries = self.home.log_events("connections_refused")
        # One line at the first refusal, then one per 10 s interval, and the last at the stop.
        self.assertLessEqual(len(summaries), attack_seconds / 10 + 3, summaries)
        refused = sum(s["refused"] for s in summaries)
        # Each connection the home closed is counted: a slot taken over by a less busy address
        # (the agent's), none left, the address's share used up, or the handshake deadline.
        self.assertGreaterEqual(refused, closed_by_home, summaries)
        self.assertEqual(0, sum(s["connection_limit"] for s in summaries), summaries)
        named = {a["address"] for s in summaries for a in s["top_addresses"]}
        self.assertTrue(named <= set(ATTACK_ADDRESSES), named)
        # No line per connection: only the summaries name an attacking address.
        for line in self.home.log_text().splitlines():
            if any(f'"{a}:' in line or f'"{a}"' in line for a in ATTACK_ADDRESSES):
                self.assertIn('"event":"connections_refused"', line)


if __name__ == "__main__":
    unittest.main()
