"""SMTP smuggling and STARTTLS command injection.

Smuggling (CVE-2023-51764 and friends): a sender hides a second message behind an end-of-data
sequence that is not CRLF.CRLF.  truefrom must treat only CRLF "." CRLF as the end of DATA,
refuse a message with a bare LF or bare CR anywhere (550 5.6.0, at the real end of data), and
never let the hidden message reach the relay.

STARTTLS injection (CVE-2011-0411 style): commands sent in the same packet as STARTTLS must be
discarded, not executed once TLS is up.
"""
import base64
import ssl
import unittest

from harness import (IntegrationTestCase, client_tls_context,
                     make_message, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"

# end-of-data look-alikes that must never end DATA
FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "CR.LF": b"\r.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
}


class SmugglingTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])})

    def open_transaction(self):
        c = self.srv.session(ALICE, ALICE_PW)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<victim@dest.test>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA").code, 354)
        return c

    def remaining_replies(self, c):
        """QUIT, then everything the server still says: must be just the 221 (or nothing,
        if the server chose to close the connection after the refusal)."""
        try:
            c.send("QUIT\r\n")
        except OSError:
            pass
        rest = c.read_until_close()
        c.close()
        return rest

    def send_control_message(self):
        """A clean message after the attack, waited for at the sink: once it is there, the
        server has had its turn to relay anything the attack made it accept, so an absence
        at the sink asserted afterwards means something."""
        marker = unique("control")
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<rcpt@dest.test>"), 250, "2.1.5")
            self.assertEqual(c.send_data(make_message(ALICE, "rcpt@dest.test", marker)).code,
                             250)
        finally:
            c.close()
        self.sink.wait_for_marker(marker)

    def test_smuggling_variants_never_end_data(self):
        for name, fake_end in FAKE_ENDS.items():
            with self.subTest(fake_end=name):
                marker = unique("smuggle")
                hidden = unique("smuggled")
                c = self.open_transaction()
                try:
                    c.send(b"From: <alice@example.test>\r\nTo: <victim@dest.test>\r\n"
                           b"Subject: " + marker.encode() + b"\r\n\r\nhello" + fake_end +
                           b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<x@y>\r\nDATA\r\n" +
                           b"From: <alice@example.test>\r\nSubject: spoof\r\n\r\n" +
                           hidden.encode() + b"\r\n.\r\n")
                    r = c.read_reply()
                    self.assertReply(r, 550, "5.6.0")
                    rest = self.remaining_replies(c)
                    self.assertTrue(rest == b"" or rest.startswith(b"221"),
                                    "replies after the 550 other than QUIT's: %r" % rest)
                finally:
                    c.close()
                self.send_control_message()
                self.assertEqual(self.sink.find(hidden), [], "smuggled message reached the relay")
                self.assertEqual(self.sink.find(marker), [], "tainted message reached the relay")

    def test_bare_lf_in_message_refused(self):
        self.check_refused(b"line one\nline two\r\n")

    def test_bare_lf_in_header_refused(self):
        self.check_refused(b"body\r\n", extra_header=b"X-Test: a\nX-Other: b\r\n")

    def test_bare_cr_in_message_refused(self):
        self.check_refused(b"line one\rline two\r\n")

    def test_bare_cr_at_end_of_last_line_refused(self):
        self.check_refused(b"line one\r\nlast\r")

    def check_refused(self, body, extra_header=b""):
        marker = unique("bare")
        c = self.open_transaction()
        try:
            c.send(b"From: <alice@example.test>\r\nTo: <victim@dest.test>\r\n" + extra_header +
                   b"Subject: " + marker.encode() + b"\r\n\r\n" + body + b"\r\n.\r\n")
            self.assertReply(c.read_reply(), 550, "5.6.0")
            # the session goes on
            self.assertEqual(c.cmd("NOOP").code, 250)
        finally:
            c.close()
        self.send_control_message()
        self.assertEqual(self.sink.find(marker), [])

    def starttls_with_injection(self, injected):
        c = self.srv.connect()
        c.expect(220)
        c.ehlo()
        c.send(b"STARTTLS\r\n" + injected)
        r = c.read_reply()
        self.assertEqual(r.code, 220, r)
        # nothing else may come in clear text: the injected command must not be answered
        self.assertEqual(c.buf, b"", "server answered the injected command in clear text")
        # The fact that shows no answer came later either: the TLS handshake succeeds. The
        # injected command came before the ClientHello, so a clear-text answer to it would
        # reach the client before the ServerHello and break the handshake (and a server that
        # fed the injected bytes to TLS would fail it too).
        try:
            c.sock = client_tls_context().wrap_socket(c.sock)
        except ssl.SSLError as e:
            self.fail("TLS handshake after the 220 to STARTTLS failed (%s): the server sent "
                      "something before its ServerHello, e.g. an answer to the injected "
                      "command in clear text" % e)
        c.tls = True
        return c

    def test_starttls_pipelined_noop_is_discarded(self):
        c = self.starttls_with_injection(b"NOOP\r\n")
        try:
            r = c.cmd("EHLO client.example.test")
            self.assertEqual(r.code, 250, r)
            self.assertGreater(len(r.lines), 1,
                               "first reply after TLS is not the EHLO reply (injected NOOP "
                               "executed?): %s" % r)
            self.assertTrue(r.lines[0].startswith("mail.example.test"), r)
            self.assertEqual(c.cmd("VRFY alice").code, 252)
            self.assertEqual(c.quit().code, 221)
        finally:
            c.close()

    def test_starttls_pipelined_auth_is_discarded(self):
        token = base64.b64encode(("\0%s\0%s" % (ALICE, ALICE_PW)).encode())
        c = self.starttls_with_injection(b"AUTH PLAIN " + token + b"\r\n")
        try:
            r = c.cmd("EHLO client.example.test")
            self.assertEqual(r.code, 250, r)
            self.assertGreater(len(r.lines), 1, "first reply after TLS is not EHLO's: %s" % r)
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 530, "5.7.0")
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
