"""Slow clients (issue: hardening): [server] idle_timeout bounds the time from our reply to
the client's next whole command, not the time between its octets, and DATA content must
keep coming in blocks (16 KiB per idle_timeout), so a client trickling one octet every few
seconds is dropped with 421 while a slow but steady message goes through."""
import select
import time
import unittest

from harness import IntegrationTestCase, make_message, unique

ALICE, ALICE_PW = "alice@example.test", "alice-pass"
IDLE = 2  # seconds


class SlowClientTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])}, server_extra="idle_timeout = %d" % IDLE)

    def trickle_until_dropped(self, c, data, interval=0.4, limit=20):
        """Sends `data` one octet per `interval` until the server speaks; returns what it
        said and how long after the first octet (fails after `limit` seconds)."""
        t0 = time.monotonic()
        for i in range(10 ** 6):
            if time.monotonic() - t0 > limit:
                self.fail("still connected after %ds of trickling" % limit)
            readable, _, _ = select.select([c.sock], [], [], interval)
            if readable:
                return c.read_until_close(timeout=5), time.monotonic() - t0
            try:
                c.send(data[i % len(data):i % len(data) + 1])
            except OSError:
                return b"", time.monotonic() - t0
        raise AssertionError("unreachable")

    def test_a_command_trickled_one_octet_at_a_time_is_dropped(self):
        c = self.srv.connect()
        try:
            c.expect(220)
            said, took = self.trickle_until_dropped(c, b"EHLO slow.example.test\r\n"[:-2])
        finally:
            c.close()
        self.assertTrue(said.startswith(b"421 4.4.2"), said)
        self.assertLess(took, IDLE + 5, "dropped only after %.1fs" % took)

    def test_data_trickled_one_octet_at_a_time_is_dropped(self):
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<bob@example.net>"), 250, "2.1.5")
            self.assertEqual(c.cmd("DATA").code, 354)
            said, took = self.trickle_until_dropped(c, b"Subject: slow\r\n\r\nxxxxxxxx")
        finally:
            c.close()
        self.assertTrue(said.startswith(b"421 4.4.2"), said)
        self.assertLess(took, IDLE + 5, "dropped only after %.1fs" % took)

    def test_a_slow_but_steady_message_goes_through(self):
        # 96 KiB at 16 KiB/s: three times idle_timeout in all, but every 16 KiB block well
        # within it.
        marker = unique("steady")
        message = make_message(ALICE, ["bob@example.net"], marker,
                               body=("x" * 70 + "\r\n") * 1400)
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<bob@example.net>"), 250, "2.1.5")
            self.assertEqual(c.cmd("DATA").code, 354)
            t0 = time.monotonic()
            for i in range(0, len(message), 4096):
                c.send(message[i:i + 4096])
                time.sleep(0.25)
            c.send(b".\r\n")
            self.assertReply(c.read_reply(), 250, "2.0.0")
            self.assertGreater(time.monotonic() - t0, 2 * IDLE)
            self.assertReply(c.quit(), 221, "2.0.0")
        finally:
            c.close()
        self.sink.wait_for_marker(marker)


if __name__ == "__main__":
    unittest.main()
