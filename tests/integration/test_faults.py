"""Errors inside the server do not crash it or leak what they held (issue: bookkeeping that
survives exceptions). Uses the fault points of debug builds (submission/runtime/
fault_injection.hpp, armed by TRUEFROM_FAULT_POINTS): a session whose coroutine throws gives
its connection slot back; a decision step (AUTH) and a worker job (DKIM signing at the end
of DATA) that throw are answered with a temporary failure, and the same session goes on."""
import os
import unittest

from harness import IntegrationTestCase, eventually, make_message, unique

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


@unittest.skipUnless(os.environ.get("TRUEFROM_FAULT_INJECTION") == "1",
                     "needs a debug build of truefrom (fault points; CTest sets this)")
class FaultTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        # session: the first STARTTLS throws out of the session's coroutine; decide: the
        # first decision step (AUTH) throws; sign: the first signing job throws.
        os.environ["TRUEFROM_FAULT_POINTS"] = "session:1,decide:1,sign:1"
        try:
            # One connection slot: a slot that is not given back refuses every later session.
            cls.start_stack({ALICE: (ALICE_PW, [ALICE])}, server_extra="max_connections = 1")
        finally:
            del os.environ["TRUEFROM_FAULT_POINTS"]

    def greeted(self):
        """A connection that got its 220 (the port probe's session may still hold the one
        slot for a moment: retried until it is free)."""
        holder = []

        def connect():
            c = self.srv.connect()
            try:
                r = c.read_reply()
            except OSError as e:  # refused: closed without a greeting
                c.close()
                raise AssertionError("no greeting: %s" % e)
            if r.code != 220:
                c.close()
                raise AssertionError("no greeting: %s" % r)
            holder.append(c)
        eventually(connect, timeout=15, interval=0.2)
        return holder[0]

    def test_faults_are_contained(self):
        c = self.greeted()
        c.ehlo()
        c.send(b"STARTTLS\r\n")
        # The session's coroutine throws: the connection ends without an answer.
        self.assertEqual(c.read_until_close(timeout=10), b"")
        c.close()
        eventually(lambda: self.assertIn("session ended by an exception", self.srv.log_text()))

        # Its slot was given back: a new session is greeted (with the slot leaked, every
        # connection would be refused from now on).
        c = self.greeted()
        try:
            c.ehlo()
            c.starttls()
            c.ehlo()
            # AUTH's step throws: a temporary failure, not a closed connection.
            self.assertReply(c.auth_plain(ALICE, ALICE_PW), 454, "4.7.0")
            self.assertReply(c.auth_plain(ALICE, ALICE_PW), 235, "2.7.0")
            marker = unique("fault")
            message = make_message(ALICE, ["bob@example.net"], marker)
            for expected in ((451, "4.3.0"), (250, "2.0.0")):
                self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
                self.assertReply(c.cmd("RCPT TO:<bob@example.net>"), 250, "2.1.5")
                # First: the signing job throws on the workers (answered 451, nothing
                # queued); then the same message goes through.
                self.assertReply(c.send_data(message), *expected)
            self.assertReply(c.quit(), 221, "2.0.0")
        finally:
            c.close()
        self.sink.wait_for_marker(marker)
        self.assertEqual(len([d for _, d in self.sink.messages() if marker.encode() in d]), 1)
        log = self.srv.log_text()
        self.assertIn("internal error in a worker job: fault injected at sign", log)
        self.assertIn("fault injected at decide", log)
        self.assertTrue(self.srv.alive())
        # Shutdown does not wait for a leaked session: SIGTERM ends it at once.
        self.assertEqual(self.srv.stop(timeout=8), 0)


if __name__ == "__main__":
    unittest.main()
