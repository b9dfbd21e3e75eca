"""Suspension of a compromised account (issue: abuse controls), with the real binary, a real
PostgreSQL, real TLS sessions and a real sink: suspended by the CLI and by SQL, each
automatic trigger, the admins' notification at the sink, the held queue and its release.
Loopback addresses 127.0.x.1 stand for different /24 networks."""
import socket

from harness import (IntegrationTestCase, PostgresCluster, SMTPConn, Sink, Truefrom,
                     eventually, free_port, make_message, sql_quote, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"
BOB, BOB_PW = "bob@example.test", "bob-pass"
CAROL, CAROL_PW = "carol@example.test", "carol-pass"
DAVE, DAVE_PW = "dave@example.test", "dave-pass"
ACCOUNTS = ((ALICE, ALICE_PW), (BOB, BOB_PW), (CAROL, CAROL_PW), (DAVE, DAVE_PW))
CONTACT = "call support at +1 555 0100"
ADMIN = "abuse@isp.test"


class SourceConn(SMTPConn):
    """SMTPConn from a chosen loopback source address."""

    def __init__(self, port, source, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.tls = False
        self.extensions = {}


def start_server(cls, relay_port, suspension, queue="retry_first = 1\nretry_max = 2\n"):
    cls.srv = cls.use(Truefrom(cls.pg, relay_port, name="suspension"))
    cls.srv.extra_config = "\n[suspension]\ncontact = %s\nnotify = [%s]\n%s\n[queue]\n%s" % (
        '"%s"' % CONTACT, '"%s"' % ADMIN, suspension, queue)
    cls.srv.write_config()
    cls.srv.migrate()
    for login, pw in ACCOUNTS:
        cls.srv.add_account(login, pw)
        cls.srv.add_sender(login, login)
    cls.srv.start()


class SuspensionCase(IntegrationTestCase):

    def suspended(self, login):
        """accounts.suspended_reason, or None."""
        out = self.pg.psql("SELECT coalesce(suspended_reason, '<none>') FROM accounts "
                           "WHERE login = %s" % sql_quote(login)).strip()
        return None if out == "<none>" else out

    def source_session(self, source, login, pw):
        c = SourceConn(self.srv.submission_port, source)
        c.expect(220)
        c.ehlo()
        c.starttls()
        c.ehlo()
        self.assertReply(c.auth_plain(login, pw), 235, None)
        return c

    def assertRefusedAsSuspended(self, login):
        c = self.srv.session(login, {ALICE: ALICE_PW, BOB: BOB_PW, CAROL: CAROL_PW,
                                     DAVE: DAVE_PW}[login])   # still authenticates
        try:
            r = c.cmd("MAIL FROM:<%s>" % login)
            self.assertReply(r, 550, "5.7.1", "account %s is suspended" % login, CONTACT)
        finally:
            c.close()


class ManualSuspensionTests(SuspensionCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        start_server(cls, cls.sink.port, "")

    def test_cli_suspend_ends_open_sessions_refuses_mail_and_resume_undoes_it(self):
        open_session = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(open_session.cmd("NOOP"), 250, None)
            out = self.srv.cli_ok("account", "suspend", ALICE, "--reason", "phished").stdout
            self.assertIn("account %s suspended" % ALICE, out)
            self.assertEqual(self.suspended(ALICE), "by the administrator: phished")

            # The open session ends at its next command (once the change has arrived:
            # before that, NOOP is still answered 250).
            def ended():
                r = open_session.cmd("NOOP")
                self.assertReply(r, 421, "4.7.1", "account %s is suspended" % ALICE, CONTACT)
            eventually(ended, timeout=3)
            self.assertEqual(open_session.read_until_close(), b"")
        finally:
            open_session.close()
        self.assertRefusedAsSuspended(ALICE)
        listed = self.srv.cli_ok("account", "list").stdout
        self.assertRegex(listed, r"%s\t\(suspended \d{4}-\d\d-\d\d \d\d:\d\d UTC: by the "
                                 r"administrator: phished\)" % ALICE)
        self.assertIn("1 suspended account(s)", listed)
        self.assertIn("resumed", self.srv.cli_ok("account", "resume", ALICE).stdout)
        self.assertIsNone(self.suspended(ALICE))

        def sends_again():
            c = self.srv.session(ALICE, ALICE_PW)
            try:
                self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            finally:
                c.close()
        eventually(sends_again, timeout=3)

    def test_suspension_with_sql_applies_within_a_second(self):
        c = self.srv.session(BOB, BOB_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % BOB), 250, "2.1.0")
            self.assertReply(c.cmd("RSET"), 250, None)
            self.pg.psql("UPDATE accounts SET suspended_at = now(), suspended_reason = 'sql' "
                         "WHERE login = %s" % sql_quote(BOB))

            def refused():
                r = c.cmd("MAIL FROM:<%s>" % BOB)
                if r.code == 250:
                    c.cmd("RSET")
                    raise AssertionError("not yet")
                # The session ends at this command (421), or MAIL FROM is refused (550).
                self.assertIn(r.code, (421, 550), r)
                self.assertIn("suspended", r.text)
            eventually(refused, timeout=1.5, interval=0.05)
        finally:
            c.close()
        self.assertRefusedAsSuspended(BOB)
        self.srv.cli_ok("account", "resume", BOB)

    def test_cli_errors(self):
        p = self.srv.cli("account", "suspend", "nobody@example.test")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no account nobody@example.test", p.stderr)
        p = self.srv.cli("account", "resume", ALICE, "--reason", "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--reason belongs to: truefrom account suspend", p.stderr)
        p = self.srv.cli("queue", "hold", "--account", ALICE, "0123456789ABCDEF")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--account LOGIN (no ID)", p.stderr)


class HeldQueueTests(SuspensionCase):
    """The relay is down at first: the account's messages wait in the queue. Suspending it
    holds them; nothing is delivered while it is suspended; after resume and release they
    are delivered once each."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.relay_port = free_port()
        start_server(cls, cls.relay_port, "")

    def queue_list(self, login):
        return self.srv.cli_ok("queue", "list", "--account", login).stdout

    def test_held_while_suspended_then_released(self):
        markers = [unique("held") for _ in range(3)]
        c = self.srv.session(CAROL, CAROL_PW)
        try:
            for m in markers:
                self.assertReply(c.cmd("MAIL FROM:<%s>" % CAROL), 250, None)
                self.assertReply(c.cmd("RCPT TO:<x@remote.test>"), 250, None)
                self.assertReply(c.send_data(make_message(CAROL, ["x@remote.test"], m)), 250,
                                 "2.0.0")
        finally:
            c.close()
        # Another account's message, which must not be touched.
        c = self.srv.session(DAVE, DAVE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % DAVE), 250, None)
            self.assertReply(c.cmd("RCPT TO:<x@remote.test>"), 250, None)
            dave_marker = unique("dave")
            self.assertReply(c.send_data(make_message(DAVE, ["x@remote.test"], dave_marker)),
                             250, "2.0.0")
        finally:
            c.close()
        eventually(lambda: self.assertEqual(self.queue_list(CAROL).count("  deferred  "), 3),
                   timeout=10)
        self.srv.cli("account", "suspend", CAROL)   # holds what it can at once
        # What was being attempted at that moment is held by the server at its next try.
        eventually(lambda: self.assertEqual(self.queue_list(CAROL).count("  held  "), 3),
                   timeout=10)
        self.assertIn("3 message(s) of " + CAROL, self.queue_list(CAROL))
        # The relay comes back: dave's message goes, carol's stay held.
        sink = self.use(Sink(port=self.relay_port)).start()
        sink.wait_for_marker(dave_marker, timeout=15)
        p = self.srv.cli("queue", "release", "--account", CAROL)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is suspended: its messages would be held again", p.stderr)
        self.assertEqual(self.queue_list(CAROL).count("  held  "), 3)
        self.assertEqual(sink.find(markers[0]), [])
        self.srv.cli_ok("account", "resume", CAROL)
        out = self.srv.cli_ok("queue", "release", "--account", CAROL).stdout
        self.assertIn("3 message(s) of %s released" % CAROL, out)
        for m in markers:
            sink.wait_for_marker(m, timeout=15)
        eventually(lambda: self.assertIn("0 message(s) of " + CAROL, self.queue_list(CAROL)),
                   timeout=10)

    def test_by_sql_suspended_the_server_holds_at_the_next_attempt(self):
        login, pw = BOB, BOB_PW
        marker = unique("sqlheld")
        c = self.srv.session(login, pw)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % login), 250, None)
            self.assertReply(c.cmd("RCPT TO:<x@remote.test>"), 250, None)
            self.assertReply(c.send_data(make_message(login, ["x@remote.test"], marker)), 250,
                             None)
        finally:
            c.close()
        eventually(lambda: self.assertIn("  deferred  ", self.queue_list(login)), timeout=10)
        self.pg.psql("UPDATE accounts SET suspended_at = now() WHERE login = %s"
                     % sql_quote(login))
        eventually(lambda: self.assertIn("  held  ", self.queue_list(login)), timeout=10)
        self.assertRegex(self.srv.log_text(), r"queue: \w+ from %s held: the account is "
                                              r"suspended" % login)
        self.srv.cli_ok("account", "resume", login)
        self.srv.cli_ok("queue", "delete", "--account", login)

    def test_delete_by_account(self):
        c = self.srv.session(DAVE, DAVE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % DAVE), 250, None)
            self.assertReply(c.cmd("RCPT TO:<x@remote.test>"), 250, None)
            self.assertReply(c.send_data(make_message(DAVE, ["x@remote.test"], unique("d"))),
                             250, None)
        finally:
            c.close()
        self.srv.cli_ok("account", "suspend", DAVE)
        eventually(lambda: self.assertIn("  held  ", self.queue_list(DAVE)), timeout=10)
        out = self.srv.cli_ok("queue", "delete", "--account", DAVE).stdout
        self.assertIn("1 message(s) of %s deleted" % DAVE, out)
        self.assertIn("0 message(s) of " + DAVE, self.queue_list(DAVE))
        self.srv.cli_ok("account", "resume", DAVE)


class TriggerTests(SuspensionCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        start_server(cls, cls.sink.port,
                     "binding_refusals = 3\nlogin_networks = 2\nlimit_hours = 1\n")
        cls.srv.limits = "messages_per_hour = 2\nsync_interval_ms = 200"
        cls.srv.stop()
        cls.srv.write_config()
        cls.srv.start()

    def notification(self, login, rule):
        meta, data = self.sink.wait_for_marker(
            "Subject: truefrom: account %s suspended (%s)" % (login, rule), timeout=10)
        self.assertEqual(meta["rcpt_tos"], [ADMIN], meta)
        self.assertEqual(meta["mail_from"], "<>", meta)   # the null sender: never bounces
        return data.decode()

    def test_refused_senders_suspend(self):
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            for i in range(4):
                r = c.cmd("MAIL FROM:<ceo%d@bank.test>" % i)
                self.assertIn(r.code, (553, 421), r)
        finally:
            c.close()
        eventually(lambda: self.assertIsNotNone(self.suspended(ALICE)), timeout=5)
        self.assertIn("automatic (sender binding): 4 refused senders within an hour (limit 3)",
                      self.suspended(ALICE))
        text = self.notification(ALICE, "sender binding")
        self.assertIn("MAIL FROM <ceo3@bank.test>", text)
        self.assertIn("truefrom account resume " + ALICE, text)
        self.assertRefusedAsSuspended(ALICE)
        self.assertIn("suspended automatically", self.srv.log_text())

    def test_logins_from_three_networks_suspend(self):
        for n in range(3):
            c = self.source_session("127.0.%d.1" % (n + 1), BOB, BOB_PW)
            c.close()
        eventually(lambda: self.assertIsNotNone(self.suspended(BOB)), timeout=5)
        self.assertIn("automatic (login networks): successful logins from 3 networks",
                      self.suspended(BOB))
        text = self.notification(BOB, "login networks")
        for n in range(3):
            self.assertIn("127.0.%d.0/24" % (n + 1), text)
        self.assertRefusedAsSuspended(BOB)

    def test_hourly_limit_reached_suspends(self):
        c = self.srv.session(CAROL, CAROL_PW)
        try:
            for _ in range(2):
                self.assertReply(c.cmd("MAIL FROM:<%s>" % CAROL), 250, None)
                self.assertReply(c.cmd("RCPT TO:<x@remote.test>"), 250, None)
                self.assertReply(c.send_data(make_message(CAROL, ["x@remote.test"],
                                                          unique("lim"))), 250, None)
            self.assertReply(c.cmd("MAIL FROM:<%s>" % CAROL), 451, "4.7.1")
        finally:
            c.close()
        eventually(lambda: self.assertIsNotNone(self.suspended(CAROL)), timeout=5)
        self.assertIn("automatic (hourly limit): the hourly message limit was reached in 1 "
                      "hours within a day", self.suspended(CAROL))
        self.notification(CAROL, "hourly limit")
        self.assertRefusedAsSuspended(CAROL)
