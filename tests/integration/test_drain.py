"""Drain on SIGTERM (issue: operations, item 3): the listeners close at once; a session
between transactions gets 421 4.3.2 at once; a transaction under way finishes (its client
hears the reply to its message, then 421, and a pipelined next MAIL FROM is not started),
for at most [server] drain_timeout; then every session left gets 421. Exit status 0, and
what got 250 is delivered (it is in the spool: at the next start at the latest)."""
import signal
import socket

from harness import IntegrationTestCase, eventually, make_message, unique

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


class DrainTestCase(IntegrationTestCase):
    server_extra = ""

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])}, server_extra=cls.server_extra)

    def setUp(self):
        if not self.srv.alive():      # each test stops the server
            self.srv.start()

    def open_transaction(self, marker):
        """A session in DATA with the message's head sent, not its end."""
        c = self.srv.session(ALICE, ALICE_PW)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % ALICE).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<rcpt@dest.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        message = make_message(ALICE, "rcpt@dest.test", marker)
        head, body = message.split(b"\r\n\r\n", 1)
        c.send(head + b"\r\n\r\n")
        return c, body

    def sigterm(self):
        log_from = len(self.srv.log_text())
        self.srv.proc.send_signal(signal.SIGTERM)
        eventually(lambda: self.assertIn("stopping: closing listeners",
                                         self.srv.log_text()[log_from:]))


class DrainTests(DrainTestCase):

    def test_idle_sessions_end_at_once_and_a_message_under_way_is_finished(self):
        marker = unique("drain")
        idle = self.srv.session(ALICE, ALICE_PW)
        busy, body = self.open_transaction(marker)
        self.sigterm()
        r = idle.read_reply()
        self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), r)
        idle.read_until_close()
        # Nobody new gets in.
        def refused():
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", self.srv.submission_port), timeout=2)
        eventually(refused)
        # The message under way: its end, and a pipelined next transaction.
        busy.send(body + b".\r\nMAIL FROM:<%s>\r\n" % ALICE.encode())
        r = busy.read_reply()
        self.assertEqual(r.code, 250, r)
        r = busy.read_reply()
        self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), r)
        busy.read_until_close()
        self.assertEqual(self.srv.stop(), 0)
        # Accepted means spooled: delivered now, or after the next start at the latest.
        self.srv.start()
        self.sink.wait_for_marker(marker)
        idle.close()
        busy.close()


class DrainTimeoutTests(DrainTestCase):
    server_extra = "drain_timeout = 2"

    def test_a_stalled_transaction_ends_after_the_drain_timeout(self):
        marker = unique("stalled")
        busy, _ = self.open_transaction(marker)
        self.sigterm()
        r = busy.read_reply()   # nothing comes until the drain time is over
        self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), r)
        self.assertIn("session(s) still open after [server] drain_timeout (2 s)",
                      self.srv.log_text())
        self.assertEqual(self.srv.stop(), 0)
        busy.close()
        self.assertEqual(self.sink.find(marker), [])
