"""Input before the greeting (issue: hardening): a client must wait for our 220 (RFC 5321
3.1); one that talks first, as spambots do, gets 554 5.5.0 instead of the greeting and the
close, nothing it sent is served, and the log says so. On the implicit-TLS port the check
comes after the handshake. A client that waits is served as always."""
import base64
import unittest

from harness import IntegrationTestCase, make_message, unique

ALICE, ALICE_PW = "alice@example.test", "alice-pass"
DELAY_MS = 400


class InputBeforeGreetingTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])},
                        server_extra="greeting_delay_ms = %d" % DELAY_MS)

    def talk_first(self, implicit_tls):
        c = self.srv.connect(implicit_tls=implicit_tls)
        try:
            token = base64.b64encode(("\0%s\0%s" % (ALICE, ALICE_PW)).encode()).decode()
            # A whole pipelined submission, sent before the server said anything.
            c.send("EHLO bot.example.test\r\nAUTH PLAIN %s\r\nMAIL FROM:<%s>\r\n"
                   "RCPT TO:<victim@example.net>\r\nDATA\r\n" % (token, ALICE))
            return c.read_until_close(timeout=10)
        finally:
            c.close()

    def assertRefusedBeforeGreeting(self, said):
        self.assertTrue(said.startswith(b"554 5.5.0 "), said)
        self.assertEqual(said.count(b"\r\n"), 1, "more than the one reply: %r" % said)
        self.assertNotIn(b"220", said)

    def test_a_client_that_talks_first_gets_554_and_the_close(self):
        said = self.talk_first(implicit_tls=False)
        self.assertRefusedBeforeGreeting(said)
        self.assertRegex(self.srv.log_text(), r"refused 127\.0\.0\.1:\d+: it sent \d+ octets "
                                              r"before the greeting")

    def test_on_the_implicit_tls_port_too(self):
        said = self.talk_first(implicit_tls=True)
        self.assertRefusedBeforeGreeting(said)
        self.assertRegex(self.srv.log_text(), r"refused 127\.0\.0\.1:\d+: it sent .* before the "
                                              r"greeting")

    def test_a_client_that_waits_is_served(self):
        for implicit in (False, True):
            marker = unique("waits")
            c = self.srv.session(ALICE, ALICE_PW, implicit_tls=implicit)
            try:
                self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
                self.assertReply(c.cmd("RCPT TO:<bob@example.net>"), 250, "2.1.5")
                r = c.send_data(make_message(ALICE, "bob@example.net", marker))
                self.assertReply(r, 250, "2.0.0")
                c.quit()
            finally:
                c.close()
            self.sink.wait_for_marker(marker)

    def test_nothing_sent_first_is_relayed(self):
        marker = unique("early")
        c = self.srv.connect()
        try:
            token = base64.b64encode(("\0%s\0%s" % (ALICE, ALICE_PW)).encode()).decode()
            msg = make_message(ALICE, "bob@example.net", marker)
            c.send(("EHLO bot.example.test\r\nAUTH PLAIN %s\r\nMAIL FROM:<%s>\r\n"
                    "RCPT TO:<bob@example.net>\r\nDATA\r\n" % (token, ALICE)).encode()
                   + msg + b".\r\nQUIT\r\n")
            said = c.read_until_close(timeout=10)
        finally:
            c.close()
        self.assertRefusedBeforeGreeting(said)
        # A message that waited for its greeting, sent after: once it is in the sink, the
        # early one would have been too.
        self.test_a_client_that_waits_is_served()
        self.assertEqual(self.sink.find(marker), [])


if __name__ == "__main__":
    unittest.main()
