"""PostgreSQL unreachable: AUTH answers 454 4.7.0 (temporary), never 235 or 535, the server
stays up, and it recovers once PostgreSQL is back.  Own cluster, because the test stops it."""
import time
import unittest

from harness import IntegrationTestCase, eventually

ALICE, ALICE_PW = "alice@example.test", "alice-pass"
# never used before the database goes away, so no cache can know it
FRESH, FRESH_PW = "fresh@example.test", "fresh-pass"


class DatabaseDownTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE]), FRESH: (FRESH_PW, [])})

    def test_auth_while_postgresql_is_down(self):
        self.assertReply(self.srv.try_auth(ALICE, ALICE_PW), 235, "2.7.0")
        self.pg.stop()
        try:
            t0 = time.monotonic()
            r = self.srv.try_auth(FRESH, FRESH_PW)
            took = time.monotonic() - t0
            self.assertReply(r, 454, "4.7.0")
            self.assertLess(took, 30, "AUTH took %.1fs with PostgreSQL down" % took)
            # a wrong password must not turn into a permanent 535 either
            self.assertReply(self.srv.try_auth(FRESH, "wrong"), 454, "4.7.0")
            self.assertTrue(self.srv.alive(), "server died while PostgreSQL was down")
        finally:
            self.pg.start()
        eventually(lambda: self.assertReply(self.srv.try_auth(FRESH, FRESH_PW), 235, "2.7.0"),
                   timeout=20, interval=0.5)


if __name__ == "__main__":
    unittest.main()
