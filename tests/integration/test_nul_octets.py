"""NUL octets in DATA: never relayed (a lenient relay might take CRLF NUL "." CRLF for the end
of data: outbound smuggling). A message holding a NUL anywhere is refused like one with a
bare LF (550 5.6.0, at the real end of data), and the session stays usable."""
import unittest

from harness import IntegrationTestCase, make_message, unique

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


class NulOctetTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])})

    def test_nul_anywhere_is_refused_and_the_session_goes_on(self):
        positions = {
            "start of the body": lambda body: b"\0" + body,
            "middle of a line": lambda body: body[:5] + b"\0" + body[5:],
            "start of a line after CRLF": lambda body: body + b"\0",
            "before the final dot (CRLF NUL . CRLF)": lambda body: body + b"\0.\r\n",
            "in a header field": None,
        }
        c = self.srv.session(ALICE, ALICE_PW)
        markers = []
        try:
            for name, place in positions.items():
                with self.subTest(position=name):
                    marker = unique("nul")
                    markers.append(marker)
                    head = (b"From: <alice@example.test>\r\nTo: <bob@example.net>\r\n"
                            b"Subject: " + marker.encode() + b"\r\n")
                    body = b"hello there\r\n"
                    if place is None:
                        data = head + b"X-Nul: a\0b\r\n\r\n" + body
                    else:
                        data = head + b"\r\n" + place(body)
                    if not data.endswith(b"\r\n"):
                        data += b"\r\n"
                    self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
                    self.assertReply(c.cmd("RCPT TO:<bob@example.net>"), 250, "2.1.5")
                    self.assertEqual(c.cmd("DATA").code, 354)
                    c.send(data + b".\r\n")
                    self.assertReply(c.read_reply(), 550, "5.6.0", "NUL")
            # The same session sends a clean message: it was never left in a broken state.
            sentinel = unique("after-nul")
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<bob@example.net>"), 250, "2.1.5")
            self.assertReply(c.send_data(make_message(ALICE, ["bob@example.net"], sentinel)),
                             250, "2.0.0")
            self.assertReply(c.quit(), 221, "2.0.0")
        finally:
            c.close()
        # Once the sentinel (sent last) is at the sink, nothing refused before it is there.
        self.sink.wait_for_marker(sentinel)
        for marker in markers:
            self.assertEqual(self.sink.find(marker), [], "a message with NUL reached the relay")


if __name__ == "__main__":
    unittest.main()
