"""Passthrough relay ([relay] mode = "passthrough"): the client hears the relay's verdict.

One cluster shared by three servers, each with its own relay:
  srv_451   -> a sink that answers every DATA with "451 4.3.2 sink says later"
  srv_554   -> a sink that answers every DATA with "554 5.7.1 sink refuses this"
  srv_down  -> a port where nobody listens (451 4.4.1 expected)
"""
import smtplib
import unittest

from harness import (ClosedPort, IntegrationTestCase, PostgresCluster, Sink, Truefrom,
                     client_tls_context, make_message, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


class ClosedPortFixture(ClosedPort):
    def log_sources(self):
        return []


class RelayReplyTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink_451 = cls.use(Sink("--data-reply", "451 4.3.2 sink says later")).start()
        cls.sink_554 = cls.use(Sink("--data-reply", "554 5.7.1 sink refuses this")).start()
        cls.dead = cls.use(ClosedPortFixture())
        cls.srv_451 = cls.use(Truefrom(cls.pg, cls.sink_451.port, name="relay451",
                                       relay_mode="passthrough"))
        cls.srv_554 = cls.use(Truefrom(cls.pg, cls.sink_554.port, name="relay554",
                                       relay_mode="passthrough"))
        cls.srv_down = cls.use(Truefrom(cls.pg, cls.dead.port, name="relaydown",
                                        relay_mode="passthrough"))
        # the three share one database: migrate must be idempotent
        for srv in (cls.srv_451, cls.srv_554, cls.srv_down):
            srv.migrate()
        cls.srv_451.add_account(ALICE, ALICE_PW)
        cls.srv_451.add_sender(ALICE, ALICE)
        for srv in (cls.srv_451, cls.srv_554, cls.srv_down):
            srv.start()

    def send(self, srv):
        """One transaction; returns (step, reply) for the first reply that is not the usual
        success, step being "MAIL", "RCPT", "DATA" or "end of data"."""
        c = srv.session(ALICE, ALICE_PW)
        try:
            for step, line, ok in [("MAIL", "MAIL FROM:<%s>" % ALICE, 250),
                                   ("RCPT", "RCPT TO:<rcpt@dest.test>", 250),
                                   ("DATA", "DATA", 354)]:
                r = c.cmd(line)
                if r.code != ok:
                    return step, r
            c.send(make_message(ALICE, "rcpt@dest.test", unique("relay")) + b".\r\n")
            r = c.read_reply()
            # the session survives a relay refusal
            self.assertEqual(c.cmd("RSET").code, 250)
            return "end of data", r
        finally:
            c.close()

    def test_relay_temporary_refusal_passed_back(self):
        step, r = self.send(self.srv_451)
        self.assertEqual(step, "end of data", r)
        self.assertReply(r, 451, "4.3.2")

    def test_relay_permanent_refusal_passed_back(self):
        step, r = self.send(self.srv_554)
        self.assertEqual(step, "end of data", r)
        self.assertReply(r, 554, "5.7.1")

    def test_relay_refusal_with_smtplib(self):
        with smtplib.SMTP("127.0.0.1", self.srv_451.submission_port, timeout=15) as s:
            s.starttls(context=client_tls_context())
            s.login(ALICE, ALICE_PW)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail(ALICE, ["rcpt@dest.test"], make_message(ALICE, "rcpt@dest.test", "x"))
            self.assertEqual(cm.exception.smtp_code, 451)
            self.assertTrue(cm.exception.smtp_error.startswith(b"4.3.2"), cm.exception)

    def test_relay_unreachable_451_4_4_1(self):
        step, r = self.send(self.srv_down)     # at whichever step the server contacts the relay
        self.assertReply(r, 451, "4.4.1")
        self.assertTrue(self.srv_down.alive(), "server died when the relay was unreachable")


if __name__ == "__main__":
    unittest.main()
