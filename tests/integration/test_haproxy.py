"""HAProxy in front of two homes (installer/haproxy/haproxy.cfg, docs/scale-out.md): agents reach
the homes through HAProxy's one address, or through the homes' own addresses in their bundles;
either way a dead home is passed by. Two `pass-home serve` processes share one store."""

import os
import shutil
import tempfile
import unittest

from passlib import HaProxy, Home, HomeProcess, wait_for


class HaProxyTestCase(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pass-it-haproxy-")
        self.home = Home(self.tmp).start()
        self.second = HomeProcess(os.path.join(self.tmp, "home2"), self.home.state).start()
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.stop()
        self.second.stop()
        self.home.stop()
        if os.environ.get("PASS_KEEP_TMP"):
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def send_test(self, bundle):
        proc = bundle.agent("test")
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        return proc.stdout

    def stored(self, bundle):
        return len(self.home.messages(bundle.agent_id))

    def test_agents_reach_both_homes_through_haproxys_one_address_and_pass_a_dead_one(self):
        self.proxy = HaProxy(os.path.join(self.tmp, "haproxy"),
                             [self.home.port, self.second.port]).start()
        self.assertEqual(["home1", "home2"], self.proxy.up())
        bundle = self.home.enroll("svp-01", endpoints=[self.proxy.url])
        for _ in range(4):
            self.assertIn(self.proxy.url, self.send_test(bundle))
        # New connections go to the home with fewest: each home served some.
        sessions = {name: int(s["stot"]) for name, s in self.proxy.servers().items()}
        self.assertTrue(all(n >= 1 for n in sessions.values()), sessions)
        self.assertEqual(4, self.stored(bundle))

        # A home dies; before the health check notices, `option redispatch` sends the connection
        # that cannot reach it to the other home.
        self.home.kill()
        self.assertEqual(["home1", "home2"], self.proxy.up())
        for _ in range(2):
            self.assertIn(self.proxy.url, self.send_test(bundle))
        self.assertEqual(6, self.stored(bundle))
        wait_for(lambda: self.proxy.up() == ["home2"], "the health check to mark home1 down")

        # Back on its port, it passes its health check again and takes connections.
        self.home.restart()
        self.proxy.wait_up(2)
        self.assertEqual(["home1", "home2"], self.proxy.up())

    def test_agents_naming_each_homes_address_go_to_the_next_when_one_dies(self):
        bundle = self.home.enroll("svp-01", endpoints=[self.home.url, self.second.url])
        self.assertIn(self.home.url, self.send_test(bundle))
        self.home.kill()
        self.assertIn(self.second.url, self.send_test(bundle))
        self.assertEqual(2, self.stored(bundle))


if __name__ == "__main__":
    unittest.main()
