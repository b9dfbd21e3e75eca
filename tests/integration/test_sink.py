"""The sink itself (contrib/sink/truefrom-sink): the other tests trust what it stores.
Needs no truefrom binary."""
import os
import signal
import smtplib
import subprocess
import unittest

from harness import SINK_SCRIPT, Sink, make_message, unique


class SinkTests(unittest.TestCase):

    def start(self, *args):
        sink = Sink(*args).start()
        self.addCleanup(sink.close)
        return sink

    def test_stores_message_and_envelope(self):
        sink = self.start()
        marker = unique("sink")
        body = b"line\r\n.leading dot\r\nbare\nLF kept as sent\r\n"
        msg = make_message("a@src.test", ["b@dest.test", "c@dest.test"], marker, body)
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            self.assertEqual(s.sendmail("a@src.test", ["b@dest.test", "c@dest.test"], msg), {})
        meta, data = sink.wait_for(1)[0]
        self.assertEqual(data, msg)
        self.assertEqual(meta["mail_from"], "a@src.test")
        self.assertEqual(meta["rcpt_tos"], ["b@dest.test", "c@dest.test"])
        self.assertEqual(meta["peer"][0], "127.0.0.1")
        self.assertIsInstance(meta["ts"], float)
        self.assertEqual(sorted(os.listdir(sink.save_dir)), ["0000000001.eml", "0000000001.json"])

    def test_only_crlf_dot_crlf_ends_data(self):
        sink = self.start()
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            s.ehlo()
            s.docmd("MAIL FROM:<a@src.test>")
            s.docmd("RCPT TO:<b@dest.test>")
            self.assertEqual(s.docmd("DATA")[0], 354)
            s.send(b"x\n.\nMAIL FROM:<a@src.test>\r\nsmuggled\r\n.\r\n")
            self.assertEqual(s.getreply()[0], 250)
        msgs = sink.wait_for(1)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0][1], b"x\n.\nMAIL FROM:<a@src.test>\r\nsmuggled\r\n")

    def test_data_reply_refuses_and_stores_nothing(self):
        sink = self.start("--data-reply", "451 4.3.2 sink says later")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@src.test", ["b@dest.test"], make_message("a@src.test",
                                                                       "b@dest.test", "x"))
        self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                         (451, b"4.3.2 sink says later"))
        self.assertEqual(sink.messages(), [])

    def test_rcpt_reply_refuses_one_recipient(self):
        sink = self.start("--rcpt-reply", "Bob@Dest.test=550 5.1.1 no such user")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            refused = s.sendmail("a@src.test", ["bob@dest.test", "carol@dest.test"],
                                 make_message("a@src.test", "carol@dest.test", "x"))
        self.assertEqual(refused, {"bob@dest.test": (550, b"5.1.1 no such user")})
        self.assertEqual(sink.wait_for(1)[0][0]["rcpt_tos"], ["carol@dest.test"])

    def test_chunking_takes_bdat(self):
        sink = self.start("--pipelining", "--chunking",
                          "--rcpt-reply", "bob@dest.test=550 5.1.1 no such user")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("pipelining") and s.has_extn("chunking"))
            self.assertEqual(s.docmd("MAIL FROM:<a@src.test>")[0], 250)
            self.assertEqual(s.docmd("RCPT TO:<c@dest.test>")[0], 250)
            # BDAT octets are taken as they are: no dot-unstuffing, no end marker
            s.send(b"BDAT 8\r\n.x\r\n.\r\nM")
            self.assertEqual(s.getreply()[0], 250)
            s.send(b"BDAT 4 LAST\r\nAIL\n")
            self.assertEqual(s.getreply()[0], 250)
            # every recipient refused: the chunk is read and refused, the session goes on
            self.assertEqual(s.docmd("MAIL FROM:<a@src.test>")[0], 250)
            self.assertEqual(s.docmd("RCPT TO:<bob@dest.test>")[0], 550)
            s.send(b"BDAT 6 LAST\r\nNOOP\r\n")
            self.assertEqual(s.getreply()[0], 554)
            self.assertEqual(s.docmd("NOOP")[0], 250)
        meta, data = sink.wait_for(1)[0]
        self.assertEqual(data, b".x\r\n.\r\nMAIL\n")
        self.assertEqual((meta["via"], meta["rcpt_tos"]), ("BDAT", ["c@dest.test"]))
        self.assertEqual(len(sink.messages()), 1)

    def test_no_chunking_unless_asked(self):
        sink = self.start()
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            s.ehlo()
            self.assertFalse(s.has_extn("chunking") or s.has_extn("pipelining"))
            s.sendmail("a@src.test", ["b@dest.test"], b"Subject: x\r\n\r\n.dot\r\n")
        meta, data = sink.wait_for(1)[0]
        self.assertEqual((meta["via"], data), ("DATA", b"Subject: x\r\n\r\n.dot\r\n"))

    def test_count_file_and_clean_sigterm(self):
        sink = Sink()
        count_file = sink.tmp / "count"
        sink.extra_args = ["--count-file", str(count_file)]
        sink.start()
        self.addCleanup(sink.close)
        msg = b"Subject: x\r\n\r\n12345\r\n"
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as s:
            s.sendmail("a@src.test", ["b@dest.test"], msg)
        sink.proc.send_signal(signal.SIGTERM)
        self.assertEqual(sink.proc.wait(5), 0)
        self.assertEqual(count_file.read_text(), "1 %d\n" % len(msg))

    def test_bad_arguments(self):
        p = subprocess.run([str(SINK_SCRIPT), "--data-reply", "not a reply"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--data-reply", p.stderr)


if __name__ == "__main__":
    unittest.main()
