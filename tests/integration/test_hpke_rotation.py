"""`pass-home rotate-hpke-key` with real processes (docs/security.md, "Rotating the home's HPKE
key"): the home opens envelopes sealed to every key it holds, the answer to one sealed to an
older key names the current one, the agent seals to that from then on, and a retired key is
deleted once no envelope sealed to it can still be inside the replay window."""

import json
import os
import pathlib
import tempfile
import unittest

from passlib import (FAKETIME_LIB, HOME_BIN, Home, faketime_env, post_envelope, run,
                     wait_for)

DEBUG = ["--log-level", "debug"]  # "accepted" lines carry the key id each envelope was sealed to


class HpkeRotation(unittest.TestCase):
    def setUp(self):
        self.tmp_dir = tempfile.TemporaryDirectory()
        self.tmp = pathlib.Path(self.tmp_dir.name)
        self.home = Home(self.tmp)
        self.home.start(extra=DEBUG)
        self.bundle = self.home.enroll("svp-1")

    def tearDown(self):
        self.home.stop()
        self.tmp_dir.cleanup()

    def keys(self):
        return self.home.json("hpke-keys")

    def current_key(self):
        [current] = [k for k in self.keys() if k["current"]]
        return current["key_id"]

    def sealed_to(self):
        """seq → key id of every envelope the home accepted, from its log."""
        return {e["seq"]: e["key_id"] for e in self.home.log_events("accepted")}

    def run_agent(self):
        self.bundle.make_heartbeat_due()
        proc = self.bundle.agent("run")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def spool_while_home_is_down(self):
        """A heartbeat sealed to the home's key of now, left in the agent's spool while the home
        is down; returns its seq and bytes. The home is started again (same port)."""
        self.home.stop()
        self.bundle.make_heartbeat_due()
        self.bundle.agent("run")
        [spooled] = self.bundle.spool_files()
        self.home.start(port=self.home.port, extra=DEBUG)
        return int(spooled.name.split(".")[0]), spooled.read_bytes()

    def rotate(self):
        proc = run([HOME_BIN, "rotate-hpke-key", "--state", str(self.home.state)], check=True)
        return proc.stdout

    def test_rotation_while_an_agent_is_enrolled(self):
        k0 = self.current_key()
        self.run_agent()
        self.assertEqual({k0}, set(self.sealed_to().values()))
        old_seq, old_envelope = self.spool_while_home_is_down()

        # Rotated while the home serves: it picks the new key up without a restart.
        said = self.rotate()
        k1 = self.current_key()
        self.assertNotEqual(k0, k1)
        self.assertIn(f"current key {k1}", said)
        self.assertEqual([(k0, False), (k1, True)],
                         [(k["key_id"], k["current"]) for k in self.keys()])

        proc = self.run_agent()
        self.assertIn(f"the home's HPKE key is now {k1}", proc.stdout)
        sealed = self.sealed_to()
        # The envelope spooled before the rotation opened with the old key; the heartbeat
        # sealed after its answer went to the new one.
        self.assertEqual(k0, sealed[old_seq])
        newer = [seq for seq in sealed if seq > old_seq]
        self.assertEqual(1, len(newer), sealed)
        self.assertEqual(k1, sealed[newer[0]])

        # The agent keeps the key in its state, the bundle's file stays as installed.
        learned = json.loads((self.bundle.path / "state" / "home-hpke.json").read_text())
        self.assertEqual(k1, learned["key_id"])
        self.assertEqual(64, len(learned["public"]))
        bundle_pub = self.bundle.path / "home-hpke.pub"
        self.assertNotEqual((self.home.state / "home-hpke.pub").read_text(),
                            bundle_pub.read_text())

        # The answer to an envelope sealed to the old key names the current one; one sealed to
        # the current key carries nothing more.
        status, body = post_envelope(self.bundle, self.home.port, old_envelope)
        self.assertEqual(200, status, body)
        self.assertEqual("duplicate", body["status"])
        self.assertEqual(k1, body["home_key"]["key_id"])
        self.assertEqual(learned["public"], body["home_key"]["public"])
        proc = self.bundle.agent("test", "--message", "after rotation")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertNotIn("home_key", proc.stdout)
        self.assertEqual(k1, self.sealed_to()[max(self.sealed_to())])

        # Another rotation: the agent follows again, the first key is still held.
        self.rotate()
        k2 = self.current_key()
        proc = self.run_agent()
        self.assertIn(f"the home's HPKE key is now {k2}", proc.stdout)
        self.assertEqual([k0, k1, k2], [k["key_id"] for k in self.keys()])

    @unittest.skipUnless(os.path.exists(FAKETIME_LIB), "libfaketime (Debian faketime) missing")
    def test_a_retired_key_past_the_window_is_deleted_and_its_envelopes_refused(self):
        k0 = self.current_key()
        _, old_envelope = self.spool_while_home_is_down()
        self.rotate()
        k1 = self.current_key()
        # 31 days later (30 days of replay window, 1 day of agent clock ahead) and a bit.
        self.home.stop()
        self.home.start(port=self.home.port, extra=DEBUG, env=faketime_env("+32d"))
        changes = wait_for(lambda: [e["change"] for e in self.home.log_events("hpke_keys")
                                    if "change" in e], "the home to log the deletion")
        self.assertIn(f"deleted {k0}", changes)
        self.assertEqual([k1], [k["key_id"] for k in self.keys()])
        self.assertNotIn(k0, (self.home.state / "hpke-keys.json").read_text())
        self.assertFalse((self.home.state / "home-hpke.key").exists())

        status, body = post_envelope(self.bundle, self.home.port, old_envelope)
        self.assertEqual(400, status, body)
        self.assertEqual("unknown_key_id", body["error"])
        self.assertIn(k0, body["detail"])
        self.assertIn(k1, body["detail"])


if __name__ == "__main__":
    unittest.main()
