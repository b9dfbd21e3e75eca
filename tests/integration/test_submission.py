"""End-to-end submission tests: real PostgreSQL, real truefrom, real clients, real sink.

One cluster, one sink and one server for the whole class (see harness.py).  Every test that
sends a message puts a unique marker in it and looks for that marker at the sink, so the tests
do not depend on each other or on their order.
"""
import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import unittest

from harness import (HOSTNAME, IntegrationTestCase, PostgresCluster, Sink, Truefrom,
                     client_tls_context, crypt_hash, eventually, first_header, make_message,
                     sql_quote, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"
ALICE_ALIAS = "alice.alias@example.test"
BOB, BOB_PW = "bob@example.test", "bob-pass"
CAROL, CAROL_PW = "carol", "carol-pass"            # owns the whole domain carol.test
DAVE, DAVE_PW = "dave@example.test", "dave-pass"   # disabled
ERIN, ERIN_PW = "erin@example.test", "erin-pass-1"  # password changed by a test
FRANK, FRANK_PW = "frank@example.test", "frank-pass"  # disabled/enabled while running
SHA, SHA_PW = "sha@example.test", "sha-pass-\u00e9"    # sha512-crypt hash inserted by SQL
BF, BF_PW = "bf@example.test", "bf-pass"              # bcrypt hash inserted by SQL
MAX_SIZE = 262144
MAX_RCPT = 5


class SubmissionTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port, max_message_size=MAX_SIZE,
                                   max_recipients=MAX_RCPT))
        srv = cls.srv
        srv.migrate()
        for login, pw in [(ALICE, ALICE_PW), (BOB, BOB_PW), (CAROL, CAROL_PW), (DAVE, DAVE_PW),
                          (ERIN, ERIN_PW), (FRANK, FRANK_PW)]:
            srv.add_account(login, pw)
        srv.add_sender(ALICE, ALICE)
        srv.add_sender(ALICE, ALICE_ALIAS)
        srv.add_sender(BOB, BOB)
        srv.add_sender(CAROL, "carol.test")
        srv.add_sender(ERIN, ERIN)
        srv.cli_ok("account", "disable", DAVE)
        cls.pg.psql(
            "INSERT INTO accounts (login, password_hash, enabled) VALUES (%s, %s, true);\n"
            "INSERT INTO accounts (login, password_hash, enabled) VALUES (%s, %s, true);\n"
            % (sql_quote(SHA), sql_quote(crypt_hash(SHA_PW, "sha512")),
               sql_quote(BF), sql_quote(crypt_hash(BF_PW, "bcrypt"))))
        srv.start()

    # -- helpers ---------------------------------------------------------------------------
    def deliver_sentinel(self):
        """A message sent after the one under test and waited for at the sink: once it is
        there, the server has had its turn to relay the earlier one, so an absence at the
        sink asserted afterwards means something."""
        marker = unique("sentinel")
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<rcpt@dest.test>"), 250, "2.1.5")
            self.assertReply(c.send_data(make_message(ALICE, "rcpt@dest.test", marker)), 250,
                             None)
        finally:
            c.close()
        self.sink.wait_for_marker(marker)

    def smtp_starttls(self):
        s = smtplib.SMTP("127.0.0.1", self.srv.submission_port,
                         local_hostname="client.example.test", timeout=15)
        s.starttls(context=client_tls_context())
        return s

    def assertAuth(self, login, password, code, enhanced, mechanism="PLAIN"):
        r = self.srv.try_auth(login, password, mechanism)
        self.assertReply(r, code, enhanced)

    def assertArrived(self, marker, mail_from, rcpts, login):
        meta, data = self.sink.wait_for_marker(marker)
        self.assertEqual(meta["mail_from"], mail_from)
        self.assertEqual(meta["rcpt_tos"], rcpts)
        received = first_header(data)
        self.assertTrue(received.lower().startswith(b"received:"),
                        "relayed message does not start with Received: %r" % data[:300])
        self.assertIn(b"with ESMTPSA", received)
        # The account is in the log, found by the queue id the Received: field carries (and
        # not in the field itself: [trace] authenticated is off by default).
        self.assertNotIn(b"authenticated as", received)
        qid = re.search(rb" id ([0-9A-Za-z]+)", received).group(1).decode()
        eventually(lambda: self.assertRegex(
            self.srv.log_text(), r"(?i)message %s from <[^>]*> user %s " % (qid, re.escape(login))))
        return data

    # -- good paths ------------------------------------------------------------------------
    def test_starttls_smtplib_good_path(self):
        marker = unique("starttls")
        body = (b"First line.\r\n.a line that starts with a dot\r\n..two dots\r\n"
                b"8bit: \xc3\xa9t\xc3\xa9\r\nlast line\r\n")
        msg = make_message(ALICE, ["one@dest.test", "two@dest.test"], marker, body)
        with self.smtp_starttls() as s:
            s.ehlo("client.example.test")
            s.login(ALICE, ALICE_PW)
            refused = s.sendmail(ALICE, ["one@dest.test", "two@dest.test"], msg,
                                 mail_options=["BODY=8BITMIME"])
            self.assertEqual(refused, {})
        data = self.assertArrived(marker, ALICE, ["one@dest.test", "two@dest.test"], ALICE)
        self.assertTrue(data.endswith(msg), "message body changed on the way:\n%r" % data)

    def test_one_session_ticket_per_handshake(self):
        """TLS 1.3: one session ticket (enough for the client's next connection to resume),
        not OpenSSL's default two, each of which costs the server an encryption."""
        session = self.srv.state_dir / "tls-session.pem"

        def s_client(*extra):
            p = subprocess.run(["openssl", "s_client", "-connect",
                                "127.0.0.1:%d" % self.srv.submission_port, "-starttls", "smtp",
                                "-tls1_3", "-ign_eof"] + list(extra),
                               input=b"QUIT\r\n", capture_output=True, timeout=30)
            out = p.stdout.decode(errors="replace")
            self.assertIn("221", out)
            return out
        out = s_client("-sess_out", str(session))
        self.assertEqual(out.count("Post-Handshake New Session Ticket arrived"), 1, out[-3000:])
        self.assertIn("Reused, TLSv1.3", s_client("-sess_in", str(session)))

    @unittest.skipIf(os.environ.get("TRUEFROM_SANITIZED") == "1",
                     "AddressSanitizer's allocator keeps freed memory in quarantine")
    def test_memory_goes_back_after_a_burst_of_sessions(self):
        """Hundreds of TLS sessions at once cost the server tens of KiB each; once they have
        ended, most of that memory goes back to the system (the allocator would keep it)."""
        def rss_kib():
            with open("/proc/%d/status" % self.srv.proc.pid) as f:
                return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
        before = rss_kib()
        sessions = []
        try:
            for _ in range(600):
                s = self.smtp_starttls()
                s.ehlo("client.example.test")
                sessions.append(s)
            peak = rss_kib()
        finally:
            for s in sessions:
                s.close()
        grown = peak - before
        self.assertGreater(grown, 5 * 1024, "600 TLS sessions should cost megabytes")
        eventually(lambda: self.assertLess(rss_kib() - before, grown / 2,
                                           "peak %d KiB, before %d KiB" % (peak, before)),
                   timeout=10)

    def test_background_threads_run_as_sched_batch(self):
        """The worker pool and the spool's commit thread run as SCHED_BATCH, so that waking
        them does not preempt the I/O thread; the I/O thread (the main one) does not."""
        pid = self.srv.proc.pid

        def policy(tid):   # field 41 of /proc/PID/task/TID/stat (proc(5)), after the comm
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                return int(f.read().rsplit(")", 1)[1].split()[41 - 3])
        def check():
            policies = {tid: policy(tid) for tid in os.listdir("/proc/%d/task" % pid)}
            sched_batch = 3
            self.assertEqual(policies[str(pid)], 0, policies)
            # [server] worker_threads unset: two per CPU; and the commit thread (queue mode),
            # which marks itself when it first runs.
            self.assertEqual(sum(p == sched_batch for p in policies.values()),
                             2 * os.cpu_count() + 1, policies)
        eventually(check)

    def test_alias_and_case_insensitive_local_part(self):
        for sender in [ALICE_ALIAS, "ALICE@Example.TEST"]:
            with self.subTest(sender=sender):
                marker = unique("alias")
                with self.smtp_starttls() as s:
                    s.ehlo()
                    s.login(ALICE, ALICE_PW)
                    s.sendmail(sender, ["rcpt@dest.test"],
                               make_message(sender, "rcpt@dest.test", marker))
                self.assertArrived(marker, sender, ["rcpt@dest.test"], ALICE)

    def test_implicit_tls_smtplib_good_path(self):
        marker = unique("implicit")
        msg = make_message(ALICE, "rcpt@dest.test", marker)
        with smtplib.SMTP_SSL("127.0.0.1", self.srv.submissions_port,
                              local_hostname="client.example.test",
                              context=client_tls_context(), timeout=15) as s:
            with open(self.srv.cert) as f:
                self.assertEqual(s.sock.getpeercert(binary_form=True),
                                 ssl.PEM_cert_to_DER_cert(f.read()),
                                 "server does not present the configured certificate")
            s.ehlo()
            self.assertIn("auth", s.esmtp_features)
            self.assertNotIn("starttls", s.esmtp_features)
            s.login(ALICE, ALICE_PW)
            s.sendmail(ALICE, ["rcpt@dest.test"], msg)
        data = self.assertArrived(marker, ALICE, ["rcpt@dest.test"], ALICE)
        self.assertTrue(data.endswith(msg))

    def swaks(self, marker, *args):
        cmd = ["swaks", "--server", "127.0.0.1:%d" % self.srv.submission_port,
               "--ehlo", "client.example.test", "--auth-user", ALICE,
               "--auth-password", ALICE_PW, "--from", ALICE, "--to", "rcpt@dest.test",
               "--header", "Subject: " + marker, "--body", "hello from swaks " + marker,
               "--timeout", "15"] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "swaks failed:\n%s%s" % (p.stdout[-3000:], p.stderr))
        self.assertArrived(marker, ALICE, ["rcpt@dest.test"], ALICE)
        return p.stdout

    def test_swaks_starttls_auth_plain(self):
        out = self.swaks(unique("swaks-plain"), "--tls", "--auth", "PLAIN")
        self.assertIn("235", out)

    def test_swaks_starttls_auth_login(self):
        out = self.swaks(unique("swaks-login"), "--tls", "--auth", "LOGIN")
        self.assertIn("AUTH LOGIN", out)

    def test_swaks_implicit_tls(self):
        marker = unique("swaks-tlsc")
        cmd = ["swaks", "--server", "127.0.0.1:%d" % self.srv.submissions_port, "--tlsc",
               "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", ALICE_PW,
               "--from", ALICE, "--to", "rcpt@dest.test", "--header", "Subject: " + marker,
               "--timeout", "15"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "swaks failed:\n%s%s" % (p.stdout[-3000:], p.stderr))
        self.assertArrived(marker, ALICE, ["rcpt@dest.test"], ALICE)

    # -- greeting, EHLO, TLS before AUTH ---------------------------------------------------
    def test_greeting_and_ehlo_before_tls(self):
        c = self.srv.connect()
        try:
            greeting = c.read_reply()
            self.assertEqual(greeting.code, 220)
            self.assertTrue(greeting.lines[0].startswith(HOSTNAME), greeting)
            c.ehlo()
            ext = c.extensions
            for word in ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS", "SIZE"]:
                self.assertIn(word, ext, "EHLO before TLS lacks %s: %s" % (word, ext))
            self.assertEqual(ext["SIZE"], str(MAX_SIZE))
            self.assertNotIn("AUTH", ext, "AUTH advertised before TLS")
            c.starttls()
            c.ehlo()
            ext = c.extensions
            self.assertIn("AUTH", ext, "no AUTH after STARTTLS")
            self.assertTrue({"PLAIN", "LOGIN"} <= set(ext["AUTH"].upper().split()), ext["AUTH"])
            self.assertNotIn("STARTTLS", ext, "STARTTLS advertised again after TLS")
        finally:
            c.close()

    def test_auth_before_starttls_is_538(self):
        c = self.srv.connect()
        try:
            c.expect(220)
            c.ehlo()
            self.assertReply(c.auth_plain(ALICE, ALICE_PW), 538, "5.7.11")
            self.assertReply(c.cmd("AUTH LOGIN"), 538, "5.7.11")
        finally:
            c.close()

    def test_mail_before_tls_is_530(self):
        c = self.srv.connect()
        try:
            c.expect(220)
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 530, "5.7.0")
        finally:
            c.close()

    def test_mail_after_tls_without_auth_is_530(self):
        c = self.srv.session()
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 530, "5.7.0")
        finally:
            c.close()

    def test_mail_without_auth_on_implicit_tls_is_530(self):
        c = self.srv.session(implicit_tls=True)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 530, "5.7.0")
        finally:
            c.close()

    # -- authentication --------------------------------------------------------------------
    def test_auth_plain_and_login_ok(self):
        self.assertAuth(ALICE, ALICE_PW, 235, "2.7.0")
        self.assertAuth(ALICE, ALICE_PW, 235, "2.7.0", mechanism="LOGIN")

    def test_wrong_password_535(self):
        self.assertAuth(ALICE, "not-alice-pass", 535, "5.7.8")
        self.assertAuth(ALICE, "not-alice-pass", 535, "5.7.8", mechanism="LOGIN")
        self.assertAuth(ALICE, "", 535, "5.7.8")

    def test_unknown_user_535(self):
        self.assertAuth("nobody@example.test", "whatever", 535, "5.7.8")
        self.assertAuth("nobody@example.test", "whatever", 535, "5.7.8", mechanism="LOGIN")

    def test_disabled_account_535(self):
        self.assertAuth(DAVE, DAVE_PW, 535, "5.7.8")

    def test_login_is_case_insensitive(self):
        c = self.srv.session()
        try:
            self.assertReply(c.auth_plain("Alice@Example.TEST", ALICE_PW), 235, "2.7.0")
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
        finally:
            c.close()

    def test_authzid_equal_to_login_ok(self):
        c = self.srv.session()
        try:
            self.assertReply(c.auth_plain(ALICE, ALICE_PW, authzid=ALICE), 235, "2.7.0")
        finally:
            c.close()

    def test_authzid_different_from_login_535(self):
        # base64("bob@example.test\0alice@example.test\0alice-pass"): alice's valid password,
        # asking to act as bob.
        c = self.srv.session()
        try:
            self.assertReply(c.auth_plain(ALICE, ALICE_PW, authzid=BOB), 535, "5.7.8")
            # and the session is not authenticated as anyone
            self.assertReply(c.cmd("MAIL FROM:<%s>" % BOB), 530, "5.7.0")
        finally:
            c.close()

    def test_sha512_crypt_hash_from_sql(self):
        self.assertAuth(SHA, SHA_PW, 235, "2.7.0")
        self.assertAuth(SHA, SHA_PW + "x", 535, "5.7.8")

    def test_bcrypt_hash_from_sql(self):
        self.assertAuth(BF, BF_PW, 235, "2.7.0")
        self.assertAuth(BF, BF_PW + "x", 535, "5.7.8")

    def test_password_change_takes_effect(self):
        self.assertAuth(ERIN, ERIN_PW, 235, "2.7.0")
        self.srv.cli_ok("account", "passwd", ERIN, "--password-stdin", stdin="erin-pass-2\n")
        eventually(lambda: self.assertAuth(ERIN, "erin-pass-2", 235, "2.7.0"))
        self.assertAuth(ERIN, ERIN_PW, 535, "5.7.8")

    def test_disable_and_enable_take_effect_while_running(self):
        self.assertAuth(FRANK, FRANK_PW, 235, "2.7.0")
        self.srv.cli_ok("account", "disable", FRANK)
        eventually(lambda: self.assertAuth(FRANK, FRANK_PW, 535, "5.7.8"))
        self.srv.cli_ok("account", "enable", FRANK)
        eventually(lambda: self.assertAuth(FRANK, FRANK_PW, 235, "2.7.0"))

    # -- sender binding --------------------------------------------------------------------
    def test_foreign_mail_from_553_exact_text(self):
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            r = c.cmd("MAIL FROM:<%s>" % BOB)
            self.assertEqual(r.code, 553, r)
            self.assertEqual(r.lines[0], "5.7.1 <bob@example.test>: sender not owned by user "
                                         "alice@example.test")
            r = c.cmd("MAIL FROM:<someone@foreign.test>")
            self.assertEqual(r.code, 553, r)
            self.assertEqual(r.lines[0], "5.7.1 <someone@foreign.test>: sender not owned by "
                                         "user alice@example.test")
            # the owned address still works in the same session
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
        finally:
            c.close()

    def test_foreign_mail_from_smtplib(self):
        with self.smtp_starttls() as s:
            s.ehlo()
            s.login(ALICE, ALICE_PW)
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail(BOB, ["rcpt@dest.test"], make_message(BOB, "rcpt@dest.test", "x"))
            self.assertEqual(cm.exception.smtp_code, 553)

    def test_domain_identity(self):
        c = self.srv.session(CAROL, CAROL_PW)
        try:
            for sender in ["any@CAROL.TEST", "Someone.Else@carol.test", "x@Carol.Test"]:
                self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250, "2.1.0")
                self.assertReply(c.cmd("RSET"), 250, None)
            for sender in ["x@other.test", "x@evilcarol.test", "x@carol.test.evil",
                           ALICE]:
                r = c.cmd("MAIL FROM:<%s>" % sender)
                self.assertReply(r, 553, "5.7.1", "not owned", CAROL)
        finally:
            c.close()
        marker = unique("domain")
        with self.smtp_starttls() as s:
            s.ehlo()
            s.login(CAROL, CAROL_PW)
            s.sendmail("any@CAROL.TEST", ["rcpt@dest.test"],
                       make_message("any@CAROL.TEST", "rcpt@dest.test", marker))
        self.assertArrived(marker, "any@CAROL.TEST", ["rcpt@dest.test"], CAROL)

    def test_domain_identity_does_not_cover_subdomains(self):
        c = self.srv.session(CAROL, CAROL_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<x@sub.carol.test>"), 553, "5.7.1")
        finally:
            c.close()

    def test_sender_added_by_sql_takes_effect_while_running(self):
        new = unique("bob-new") + "@example.test"
        c = self.srv.session(BOB, BOB_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % new), 553, "5.7.1")
        finally:
            c.close()
        self.pg.psql("INSERT INTO sender_identities (login, kind, %s) VALUES (%s, 'address', %s)"
                     % ("identity", sql_quote(BOB), sql_quote(new)))

        def check():
            c = self.srv.session(BOB, BOB_PW)
            try:
                self.assertReply(c.cmd("MAIL FROM:<%s>" % new), 250, "2.1.0")
            finally:
                c.close()
        eventually(check)

    # -- other commands and limits ---------------------------------------------------------
    def test_vrfy_noop_rset_quit(self):
        c = self.srv.session(ALICE, ALICE_PW)
        self.assertEqual(c.cmd("VRFY alice").code, 252)
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.quit().code, 221)

    def test_too_many_recipients_452(self):
        marker = unique("rcpts")
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            rcpts = ["r%d@dest.test" % i for i in range(MAX_RCPT)]
            for r in rcpts:
                self.assertReply(c.cmd("RCPT TO:<%s>" % r), 250, "2.1.5")
            self.assertReply(c.cmd("RCPT TO:<one-too-many@dest.test>"), 452, "4.5.3")
            # the transaction goes on with the recipients accepted so far
            self.assertReply(c.send_data(make_message(ALICE, rcpts, marker)), 250, None)
        finally:
            c.close()
        meta, _ = self.sink.wait_for_marker(marker)
        self.assertEqual(meta["rcpt_tos"], rcpts)

    def test_command_line_limit_512(self):
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            line = "NOOP " + "x" * (512 - 2 - 5)              # exactly 512 octets with CRLF
            self.assertEqual(c.cmd(line).code, 250)
            self.assertReply(c.cmd("NOOP " + "x" * (513 - 2 - 5)), 500, "5.5.2")
        finally:
            c.close()

    def test_command_line_far_too_long(self):
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<" + "a" * 2000 + "@example.test>"), 500, "5.5.2")
        finally:
            c.close()

    def test_data_line_limit_1000(self):
        ok_marker, bad_marker = unique("line998"), unique("line999")
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            # RFC 5321 4.5.3.1.6: 1000 octets including CRLF -> 998 characters is the most
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<rcpt@dest.test>"), 250, "2.1.5")
            r = c.send_data(make_message(ALICE, "rcpt@dest.test", ok_marker,
                                         b"x" * 998 + b"\r\n"))
            self.assertEqual(r.code, 250, r)
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<rcpt@dest.test>"), 250, "2.1.5")
            r = c.send_data(make_message(ALICE, "rcpt@dest.test", bad_marker,
                                         b"short\r\n" + b"y" * 999 + b"\r\nafter\r\n"))
            self.assertReply(r, 550, "5.6.0")
            # the session is still in order afterwards
            self.assertEqual(c.cmd("NOOP").code, 250)
        finally:
            c.close()
        self.sink.wait_for_marker(ok_marker)
        self.deliver_sentinel()
        self.assertEqual(self.sink.find(bad_marker), [])

    def test_message_too_big_552(self):
        marker = unique("big")
        body = (b"z" * 76 + b"\r\n") * (MAX_SIZE // 78 + 200)
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<rcpt@dest.test>"), 250, "2.1.5")
            r = c.send_data(make_message(ALICE, "rcpt@dest.test", marker, body))
            self.assertReply(r, 552, "5.3.4")
            self.assertEqual(c.cmd("NOOP").code, 250)
        finally:
            c.close()
        self.deliver_sentinel()
        self.assertEqual(self.sink.find(marker), [])

    def test_message_just_under_the_limit_is_accepted(self):
        marker = unique("almost")
        msg = make_message(ALICE, "rcpt@dest.test", marker)
        room = MAX_SIZE - len(msg) - 4096          # leave room for what the server prepends
        msg += (b"w" * 98 + b"\r\n") * (room // 100)
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<rcpt@dest.test>"), 250, "2.1.5")
            self.assertEqual(c.send_data(msg).code, 250)
        finally:
            c.close()
        _, data = self.sink.wait_for_marker(marker)
        self.assertTrue(data.endswith(msg))

    def test_pipelined_transaction(self):
        marker = unique("pipelined")
        c = self.srv.session(ALICE, ALICE_PW)
        try:
            self.assertIn("PIPELINING", c.extensions)
            c.send("MAIL FROM:<%s>\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n"
                   % ALICE)
            self.assertReply(c.read_reply(), 250, "2.1.0")
            self.assertReply(c.read_reply(), 250, "2.1.5")
            self.assertReply(c.read_reply(), 250, "2.1.5")
            self.assertEqual(c.read_reply().code, 354)
            c.send(make_message(ALICE, ["a@dest.test", "b@dest.test"], marker) +
                   b".\r\nNOOP\r\n")
            self.assertEqual(c.read_reply().code, 250)
            self.assertEqual(c.read_reply().code, 250)
        finally:
            c.close()
        self.assertArrived(marker, ALICE, ["a@dest.test", "b@dest.test"], ALICE)

    def test_many_tls_records_in_one_segment(self):
        # Every command and every piece of the message in a TLS record of its own, all of
        # them written to the socket at once: the server reads ahead (several records per
        # read), so it must answer from what it already holds instead of waiting for the
        # socket to become readable again.
        marker = unique("records")
        sock = socket.create_connection(("127.0.0.1", self.srv.submissions_port), timeout=15)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_tls_context().wrap_bio(incoming, outgoing)
        replies = b""

        def pump():
            data = outgoing.read()
            if data:
                sock.sendall(data)

        def receive_replies(count):             # `count` replies (their last lines)
            nonlocal replies
            while len(re.findall(rb"(?m)^\d{3} [^\r\n]*\r\n", replies)) < count:
                try:
                    replies += tls.read(65536)
                    continue
                except ssl.SSLWantReadError:
                    pass
                chunk = sock.recv(65536)
                self.assertTrue(chunk, "server closed; replies so far: %r" % replies)
                incoming.write(chunk)
            got, replies = replies, b""
            return got.decode().split("\r\n")[:-1]

        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
                    incoming.write(sock.recv(65536))
            pump()
            self.assertTrue(receive_replies(1)[-1].startswith("220 "))
            token = base64.b64encode(("\0%s\0%s" % (ALICE, ALICE_PW)).encode()).decode()
            for line in ["EHLO client.example.test", "AUTH PLAIN " + token,
                         "MAIL FROM:<%s>" % ALICE, "RCPT TO:<rcpt@dest.test>", "DATA"]:
                tls.write((line + "\r\n").encode())
            pump()                                   # five records, one write
            lines = receive_replies(5)
            codes = [l[:4] for l in lines if l[3:4] == " "]     # the replies' last lines
            self.assertEqual(codes, ["250 ", "235 ", "250 ", "250 ", "354 "], lines)
            message = make_message(ALICE, "rcpt@dest.test", marker) + b".\r\nNOOP\r\n"
            for i in range(0, len(message), 7):      # a record per 7 octets
                tls.write(message[i:i + 7])
            pump()
            lines = receive_replies(2)
            self.assertEqual([l[:4] for l in lines], ["250 ", "250 "], lines)
        finally:
            sock.close()
        self.assertArrived(marker, ALICE, ["rcpt@dest.test"], ALICE)



class CertificateChainTests(IntegrationTestCase):
    """A certificate file with the server's certificate and its intermediate CA: truefrom
    sends exactly that chain (OpenSSL's automatic chain building is off), so a client that
    trusts only the root verifies it."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port, name="chain"))
        d = cls.srv.tmp

        def openssl(*args):
            p = subprocess.run(["openssl"] + list(args), capture_output=True, text=True,
                               timeout=60)
            if p.returncode != 0:
                raise RuntimeError("openssl %s failed:\n%s" % (args[0], p.stderr))
        ca_ext = d / "ca.ext"
        ca_ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
        leaf_ext = d / "leaf.ext"
        leaf_ext.write_text("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % HOSTNAME)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=truefrom test root", "-keyout", str(d / "root.key"),
                "-out", str(d / "root.pem"), "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign")
        for name, subject, issuer, ext in [("inter", "/CN=truefrom test intermediate", "root",
                                            ca_ext),
                                           ("leaf", "/CN=" + HOSTNAME, "inter", leaf_ext)]:
            openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                    "-keyout", str(d / (name + ".key")), "-out", str(d / (name + ".csr")))
            openssl("x509", "-req", "-in", str(d / (name + ".csr")), "-days", "2",
                    "-CA", str(d / (issuer + ".pem")), "-CAkey", str(d / (issuer + ".key")),
                    "-CAcreateserial", "-extfile", str(ext), "-out", str(d / (name + ".pem")))
        cls.srv.cert.write_text((d / "leaf.pem").read_text() + (d / "inter.pem").read_text())
        cls.srv.key.write_text((d / "leaf.key").read_text())
        os.chmod(cls.srv.key, 0o600)
        cls.root = d / "root.pem"
        cls.srv.migrate()
        cls.srv.start()

    def test_a_client_trusting_only_the_root_verifies_the_server(self):
        ctx = ssl.create_default_context(cafile=str(self.root))
        with smtplib.SMTP("127.0.0.1", self.srv.submission_port,
                          local_hostname="client.example.test", timeout=15) as s:
            s._host = HOSTNAME            # the name starttls() checks the certificate for
            s.starttls(context=ctx)
            self.assertEqual(s.ehlo()[0], 250)
        raw = socket.create_connection(("127.0.0.1", self.srv.submissions_port), timeout=15)
        with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as tls:   # implicit TLS (465)
            self.assertTrue(tls.recv(512).startswith(b"220 "))

    def test_the_server_sends_the_files_chain_and_nothing_else(self):
        p = subprocess.run(["openssl", "s_client", "-connect",
                            "127.0.0.1:%d" % self.srv.submission_port, "-starttls", "smtp",
                            "-showcerts", "-ign_eof"],
                           input=b"QUIT\r\n", capture_output=True, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(out.count("-----BEGIN CERTIFICATE-----"), 2, out[-3000:])
        self.assertIn("CN = %s" % HOSTNAME, out)
        self.assertIn("CN = truefrom test intermediate", out)


if __name__ == "__main__":
    unittest.main()
