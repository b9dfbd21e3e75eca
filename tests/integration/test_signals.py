"""Signals and the start's log (issue: operations, items 3 and 9, the parts built so far):
SIGHUP neither ends the server nor changes anything (a log line says so; reloading is not
built yet), so an embedded PostgreSQL is never orphaned by it; each DKIM key is logged
once at start, not once per load; an orderly stop logs no error."""
import signal
import smtplib

from harness import (IntegrationTestCase, Sink, Truefrom, client_tls_context, eventually,
                     make_message, postmaster_pid, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


class HangupTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(None, cls.sink.port, name="signals"))
        cls.srv.migrate()
        cls.srv.add_account(ALICE, ALICE_PW)
        cls.srv.add_sender(ALICE, ALICE)
        cls.srv.cli_ok("dkim", "keygen", "example.test", "--selector", "hup1")
        cls.srv.cli_ok("dkim", "activate", "example.test", "hup1")
        cls.srv.start()

    def send_one(self):
        marker = unique("hup")
        with smtplib.SMTP("127.0.0.1", self.srv.submission_port, timeout=15) as s:
            s.starttls(context=client_tls_context())
            s.login(ALICE, ALICE_PW)
            s.sendmail(ALICE, ["rcpt@dest.test"], make_message(ALICE, "rcpt@dest.test", marker))
        return self.sink.wait_for_marker(marker)

    def test_sighup_changes_nothing_and_says_so(self):
        self.send_one()
        # A session open across the signal carries on.
        s = smtplib.SMTP("127.0.0.1", self.srv.submission_port, timeout=15)
        s.starttls(context=client_tls_context())
        s.login(ALICE, ALICE_PW)
        for n in (1, 2):
            self.srv.proc.send_signal(signal.SIGHUP)
            eventually(lambda: self.assertEqual(
                self.srv.log_text().count("SIGHUP: this version does not reload"), n))
        self.assertTrue(self.srv.alive())
        marker = unique("hup-open")
        s.sendmail(ALICE, ["rcpt@dest.test"], make_message(ALICE, "rcpt@dest.test", marker))
        s.quit()
        self.sink.wait_for_marker(marker)
        self.send_one()
        clusters = self.srv.embedded_clusters()
        self.assertTrue(clusters and postmaster_pid(clusters[0]))

    def test_zz_an_orderly_stop_logs_no_error(self):
        # (Runs last in the class: it stops the server.)
        self.send_one()
        serve_from = len(self.srv.log_text())
        self.assertEqual(self.srv.stop(), 0)
        after = self.srv.log_text()[serve_from:]
        self.assertIn("stopped", after)
        self.assertNotIn("error", after, after)

    def test_each_dkim_key_is_logged_once_at_start(self):
        serve_log = self.srv.log_text().split("$ truefrom serve", 1)[1]
        self.assertEqual(serve_log.count("DKIM key hup1._domainkey.example.test (rsa-sha256) "
                                         "active"), 1, serve_log)


if __name__ == "__main__":
    import unittest
    unittest.main()
