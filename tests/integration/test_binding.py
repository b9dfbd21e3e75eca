"""Sender binding end to end (issue "sender binding, complete"): headers checked at the end
of DATA, delegation (send as / on behalf, Sender: added), forwarders, subaddresses, SMTPUTF8,
the audit trail in Received: and the log, the `check` command, and identity changes made
with psql reaching the running server within a second through LISTEN/NOTIFY."""
import re
import smtplib
import subprocess
import time
import unittest

from harness import (PG_BIN, IntegrationTestCase, as_postgres, crypt_hash, eventually,
                     make_message, sql_quote, unique)

ALICE, PW = "alice@example.test", "alice-pass"
FWD, FWD_PW = "lists@example.test", "lists-pass"
RCPT = "bob@example.net"


class BindingTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (PW, [ALICE]), FWD: (FWD_PW, [FWD])})
        cls.srv.cli_ok("sender", "add", ALICE, "sales@example.test", "--on-behalf")
        cls.srv.cli_ok("sender", "add", ALICE, "team@example.test")
        cls.srv.cli_ok("sender", "add", ALICE, "bücher.example")
        cls.srv.cli_ok("account", "set", FWD, "--forwarder", "yes")

    def submit(self, mail_from, message, login=ALICE, password=PW, options=()):
        """MAIL/RCPT/DATA in one authenticated session; returns (mail reply, final reply)."""
        c = self.srv.session(login, password)
        try:
            r = c.cmd("MAIL FROM:<%s>%s" % (mail_from, "".join(" " + o for o in options)))
            if r.code != 250:
                return r, None
            self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 250, "2.1.5")
            return r, c.send_data(message)
        finally:
            c.close()

    def deliver_sentinel(self):
        """An owned message sent after the one under test, and waited for at the sink: once
        it is there, the server has had its turn to relay anything the earlier one made it
        relay, so an absence at the sink means something."""
        marker = unique("sentinel")
        _, final = self.submit(ALICE, make_message(ALICE, RCPT, marker))
        self.assertReply(final, 250, "2.0.0")
        self.sink.wait_for_marker(marker)

    def identity_id(self, login, identity):
        rows = self.pg.psql("SELECT id FROM sender_identities WHERE login = %s AND identity = %s"
                            % (sql_quote(login), sql_quote(identity)))
        return int(rows.stdout.strip() if hasattr(rows, "stdout") else rows.strip())

    def test_foreign_from_header_is_refused_and_not_relayed(self):
        marker = unique("forged")
        msg = make_message("ceo@bank.example", RCPT, marker)
        mail, final = self.submit(ALICE, msg)
        self.assertReply(final, 550, "5.7.1")
        self.assertEqual(final.text, "5.7.1 From: header address ceo@bank.example not owned by "
                         "user " + ALICE)
        self.deliver_sentinel()
        self.assertEqual(self.sink.find(marker), [])

    def test_display_name_showing_another_address_is_refused(self):
        msg = make_message(ALICE, RCPT, unique("lookalike"))
        msg = msg.replace(b"From: <%s>" % ALICE.encode(),
                          b'From: "ceo@bank.example" <%s>' % ALICE.encode())
        _, final = self.submit(ALICE, msg)
        self.assertReply(final, 550, "5.7.1", "display name", "ceo@bank.example")

    def test_missing_or_duplicate_from_is_refused_as_malformed(self):
        msg = b"To: <bob@example.net>\r\nSubject: no from\r\n\r\nhi\r\n"
        _, final = self.submit(ALICE, msg)
        self.assertReply(final, 550, "5.6.0", "no From: header")
        msg = make_message(ALICE, RCPT, "dup", extra_headers=["From: <%s>" % ALICE])
        _, final = self.submit(ALICE, msg)
        self.assertReply(final, 550, "5.6.0", "2 From: headers")

    def test_the_audit_is_logged_and_kept_out_of_received_by_default(self):
        marker = unique("audit")
        _, final = self.submit(ALICE, make_message(ALICE, RCPT, marker))
        self.assertReply(final, 250, "2.0.0")
        _, data = self.sink.wait_for_marker(marker)
        ident = self.identity_id(ALICE, ALICE)
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        received = head.split("\r\nFrom:", 1)[0]
        self.assertIn("Received: from ", received)
        self.assertNotIn("sender binding", received)
        self.assertNotIn("authenticated as", received)
        self.assertNotIn("identity #", received)
        self.assertIn("binding: MAIL FROM by identity #%d" % ident, self.srv.log_text())

    def test_on_behalf_gets_a_sender_header(self):
        marker = unique("behalf")
        _, final = self.submit(ALICE, make_message("sales@example.test", RCPT, marker))
        self.assertReply(final, 250, "2.0.0")
        _, data = self.sink.wait_for_marker(marker)
        self.assertIn(b"\r\nSender: <%s>\r\n" % ALICE.encode(), data)
        # on behalf is not "send as": it cannot be the Sender:
        msg = make_message("sales@example.test", RCPT, unique("x"),
                           extra_headers=["Sender: <sales@example.test>"])
        _, final = self.submit(ALICE, msg)
        self.assertReply(final, 550, "5.7.1", "Sender: header address sales@example.test")

    def test_send_as_shared_address_needs_no_sender(self):
        marker = unique("sendas")
        mail, final = self.submit("team@example.test",
                                  make_message("team@example.test", RCPT, marker))
        self.assertReply(final, 250, "2.0.0")
        _, data = self.sink.wait_for_marker(marker)
        self.assertNotIn(b"\r\nSender:", data)

    def test_subaddress_in_envelope_and_header(self):
        addr = "alice+news@example.test"
        marker = unique("sub")
        mail, final = self.submit(addr, make_message(addr, RCPT, marker))
        self.assertReply(mail, 250, "2.1.0")
        self.assertReply(final, 250, "2.0.0")

    def test_null_sender_needs_an_owned_from(self):
        _, final = self.submit("", make_message(ALICE, RCPT, unique("mdn")))
        self.assertReply(final, 250, "2.0.0")
        _, final = self.submit("", make_message("ceo@bank.example", RCPT, unique("mdn")))
        self.assertReply(final, 550, "5.7.1")

    def test_forwarder_may_use_foreign_envelope_and_from(self):
        marker = unique("fwd")
        mail, final = self.submit("author@elsewhere.example",
                                  make_message("author@elsewhere.example", RCPT, marker),
                                  login=FWD, password=FWD_PW)
        self.assertReply(mail, 250, "2.1.0")
        self.assertReply(final, 250, "2.0.0")
        meta, data = self.sink.wait_for_marker(marker)
        self.assertEqual(meta["mail_from"], "author@elsewhere.example")
        qid = re.search(rb" id ([0-9A-Za-z]+)", data).group(1).decode()
        line = [l for l in self.srv.log_text().splitlines() if "message %s from" % qid in l]
        self.assertTrue(line and "forwarder account" in line[0], line)
        # ... which an ordinary account may not
        mail, _ = self.submit("author@elsewhere.example", make_message(ALICE, RCPT, "x"))
        self.assertReply(mail, 553, "5.7.1", "not owned by user " + ALICE)

    def test_smtputf8_idn_sender_end_to_end(self):
        addr = "josé@bücher.example"
        marker = unique("utf8")
        msg = make_message(addr, RCPT, marker)
        mail, final = self.submit(addr, msg, options=["SMTPUTF8"])
        self.assertReply(mail, 250, "2.1.0")
        self.assertReply(final, 250, "2.0.0")
        meta, _ = self.sink.wait_for_marker(marker)
        self.assertEqual(meta["mail_from"], addr)
        self.assertIn("SMTPUTF8", meta["mail_options"])
        # the same address without SMTPUTF8 is refused as RFC 6531 says
        mail, _ = self.submit(addr, msg)
        self.assertReply(mail, 553, "5.6.7")
        # the A-label form of the domain is the same domain
        mail, final = self.submit("x@xn--bcher-kva.example",
                                  make_message("x@xn--bcher-kva.example", RCPT, unique("a")))
        self.assertReply(final, 250, "2.0.0")

    def test_smtplib_client_sees_the_refusal(self):
        with smtplib.SMTP("127.0.0.1", self.srv.submission_port, timeout=10) as s:
            s.starttls(context=__import__("harness").client_tls_context())
            s.login(ALICE, PW)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail(ALICE, [RCPT], make_message("ceo@bank.example", RCPT, "x"))
            self.assertEqual(cm.exception.smtp_code, 550)
            self.assertIn(b"not owned by user", cm.exception.smtp_error)

    def test_identity_added_with_psql_applies_within_a_second(self):
        addr = unique("new") + "@example.test"
        c = self.srv.session(ALICE, PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % addr), 553, "5.7.1")
            self.pg.psql("INSERT INTO sender_identities (login, kind, identity) VALUES "
                         "(%s, 'address', %s)" % (sql_quote(ALICE), sql_quote(addr)))
            t0 = time.monotonic()
            # same session, next transaction: no reconnect, no restart. Each refused MAIL
            # counts towards the session's error limit (10): poll at most 7 times a second.
            eventually(lambda: self.assertReply(c.cmd("MAIL FROM:<%s>" % addr), 250, "2.1.0"),
                       timeout=1.0, interval=0.15)
            took = time.monotonic() - t0
            self.assertLess(took, 1.0)
            self.assertReply(c.cmd("RSET"), 250, None)
            self.pg.psql("DELETE FROM sender_identities WHERE identity = %s" % sql_quote(addr))

            def refused_again():
                r = c.cmd("MAIL FROM:<%s>" % addr)
                if r.code == 250:
                    c.cmd("RSET")   # still accepted: end the transaction (no nested MAIL)
                self.assertReply(r, 553, "5.7.1")
            eventually(refused_again, timeout=1.0, interval=0.15)
        finally:
            c.close()

    def test_hot_path_does_not_query_postgresql(self):
        """With the tables locked by an admin's transaction, a cached account still gets its
        MAIL FROM answered at once: neither the binding check nor the sending limits touch
        the database (the limits' counts are written by their sync thread, which waits)."""
        c = self.srv.session(ALICE, PW)
        locker = None
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RSET"), 250, None)
            # The lock is held until this test cancels the locker's pg_sleep (below).
            locker = subprocess.Popen(as_postgres([
                PG_BIN / "psql", "-X", "-q", "-h", self.pg.sockdir, "-p", str(self.pg.port),
                "-U", "postgres", "-d", "dbname=%s application_name=%s" % (self.pg.dbname,
                                                                          self.LOCKER),
                "-c", "BEGIN; LOCK TABLE accounts, sender_identities, sending_limits, sending_counts "
                "IN ACCESS EXCLUSIVE MODE; "
                "SELECT pg_sleep(120); COMMIT;"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            eventually(self.assertTablesLocked, timeout=10)
            for _ in range(20):
                t0 = time.monotonic()
                self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
                self.assertLess(time.monotonic() - t0, 0.5)
                self.assertReply(c.cmd("RSET"), 250, None)
            self.assertTablesLocked()    # every check above ran while the lock was held
        finally:
            c.close()
            if locker:
                self.pg.psql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = %s" % sql_quote(self.LOCKER))
                locker.wait(timeout=10)

    LOCKER = "truefrom-test-locker"

    def assertTablesLocked(self):
        """The tables are locked ACCESS EXCLUSIVE by the locker (granted, in pg_locks)."""
        held = self.pg.psql(
            "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.mode = 'AccessExclusiveLock' AND l.granted "
            "AND a.application_name = %s ORDER BY 1" % sql_quote(self.LOCKER)).split()
        self.assertEqual(held, ["accounts", "sender_identities", "sending_counts",
                                "sending_limits"])

    def test_account_disabled_with_psql_stops_the_next_transaction(self):
        login = unique("dis") + "@example.test"
        self.srv.add_account(login, "pw-123")
        self.srv.add_sender(login, login)
        c = self.srv.session(login, "pw-123")
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % login), 250, "2.1.0")
            self.assertReply(c.cmd("RSET"), 250, None)
            self.pg.psql("UPDATE accounts SET enabled = false WHERE login = %s" % sql_quote(login))
            def refused():
                r = c.cmd("MAIL FROM:<%s>" % login)
                if r.code == 250:      # the change has not arrived yet: end this transaction
                    self.assertReply(c.cmd("RSET"), 250, None)
                self.assertReply(r, 550, "5.7.1", "disabled")
            eventually(refused, timeout=1.0, interval=0.05)
        finally:
            c.close()
        self.assertReply(self.srv.try_auth(login, "pw-123"), 535, "5.7.8")

    def test_password_changed_with_sql_applies_at_once_despite_the_auth_cache(self):
        login = unique("pw") + "@example.test"
        self.srv.add_account(login, "old-pass")
        self.assertReply(self.srv.try_auth(login, "old-pass"), 235, "2.7.0")
        self.assertReply(self.srv.try_auth(login, "old-pass"), 235, "2.7.0")  # now remembered
        new_hash = crypt_hash("new-pass", "sha512")
        self.pg.psql("UPDATE accounts SET password_hash = %s WHERE login = %s"
                     % (sql_quote(new_hash), sql_quote(login)))
        eventually(lambda: self.assertReply(self.srv.try_auth(login, "old-pass"), 535, "5.7.8"),
                   timeout=1.0, interval=0.05)
        self.assertReply(self.srv.try_auth(login, "new-pass"), 235, "2.7.0")
        self.pg.psql("UPDATE accounts SET enabled = false WHERE login = %s" % sql_quote(login))
        eventually(lambda: self.assertReply(self.srv.try_auth(login, "new-pass"), 535, "5.7.8"),
                   timeout=1.0, interval=0.05)

    def test_cli_lists_delegation_and_forwarders(self):
        out = self.srv.cli_ok("sender", "list", ALICE).stdout
        self.assertRegex(out, r"(?m)^%s\taddress\tsales@example.test\ton-behalf\t#\d+$" % ALICE)
        self.assertRegex(out, r"(?m)^%s\taddress\tteam@example.test\tsend-as\t#\d+$" % ALICE)
        self.assertRegex(out, r"(?m)^%s\tdomain\txn--bcher-kva.example\tsend-as" % ALICE)
        self.assertIn("%s\t(forwarder)" % FWD, self.srv.cli_ok("account", "list").stdout)
        # adding again with the other form changes the row
        login = unique("d") + "@example.test"
        self.srv.add_account(login, "pw")
        self.srv.cli_ok("sender", "add", login, "role@example.test").stdout
        out = self.srv.cli_ok("sender", "add", login, "role@example.test", "--on-behalf").stdout
        self.assertIn("now sends on behalf of", out)
        r = self.srv.cli("sender", "add", login, "role@example.test", "--on-behalf")
        self.assertNotEqual(r.returncode, 0)
        r = self.srv.cli("account", "set", login, "--forwarder", "maybe")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--forwarder yes|no", r.stderr)

    def test_check_command_explains_verdicts(self):
        ident = self.identity_id(ALICE, ALICE)
        out = self.srv.cli_ok("check", ALICE, "--mail-from", ALICE).stdout
        self.assertIn("MAIL FROM by identity #%d address %s" % (ident, ALICE), out)
        r = self.srv.cli("check", ALICE, "--mail-from", "ceo@bank.example")
        self.assertEqual(r.returncode, 1)
        self.assertIn("refused: 553 5.7.1 <ceo@bank.example>: sender not owned", r.stdout)
        path = self.srv.tmp / "check.eml"
        path.write_bytes(b"From: Sales <sales@example.test>\nTo: bob@example.net\n\nhi\n")
        out = self.srv.cli_ok("check", ALICE, "--mail-from", ALICE, "--message", str(path)).stdout
        self.assertIn("on behalf", out)
        self.assertIn("Sender: %s added" % ALICE, out)
        path.write_bytes(b"From: ceo@bank.example\n\nhi\n")
        r = self.srv.cli("check", ALICE, "--mail-from", ALICE, "--message", str(path))
        self.assertEqual(r.returncode, 1)
        self.assertIn("From: header address ceo@bank.example not owned", r.stdout)
        r = self.srv.cli("check", "nobody@example.test", "--mail-from", ALICE)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no account nobody@example.test", r.stderr)


class TraceAuthenticatedTests(IntegrationTestCase):
    """[trace] authenticated = true: the Received: field names the account and the identity
    rows that allowed the senders."""

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (PW, [ALICE])},
                        extra_config="\n[trace]\nauthenticated = true\n")

    def test_received_carries_the_account_and_the_audit(self):
        marker = unique("audit")
        c = self.srv.session(ALICE, PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 250, None)
            self.assertReply(c.send_data(make_message(ALICE, RCPT, marker)), 250, "2.0.0")
        finally:
            c.close()
        _, data = self.sink.wait_for_marker(marker)
        rows = self.pg.psql("SELECT id FROM sender_identities WHERE login = %s AND "
                            "identity = %s" % (sql_quote(ALICE), sql_quote(ALICE)))
        ident = (rows.stdout if hasattr(rows, "stdout") else rows).strip()
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ")
        self.assertIn("authenticated as %s" % ALICE, unfolded)
        self.assertIn("(sender binding: MAIL FROM by identity #%s address %s;" % (ident, ALICE),
                      unfolded)
        self.assertIn("From: %s by identity #%s" % (ALICE, ident), unfolded)


class BindingOutageTests(IntegrationTestCase):
    """PostgreSQL stopped mid-run: checks answer 4xx (never accept on stale data, never a
    permanent refusal), and service resumes when it is back."""

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (PW, [ALICE])})

    def test_postgresql_down_gives_4xx_then_resumes(self):
        c = self.srv.session(ALICE, PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")  # cached now
            self.assertReply(c.cmd("RSET"), 250, None)
            self.pg.stop()
            try:
                eventually(lambda: self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 451,
                                                    "4.3.0"), timeout=3, interval=0.1)
                self.assertReply(c.cmd("MAIL FROM:<ceo@bank.example>"), 451, "4.3.0")
                self.assertTrue(self.srv.alive())
            finally:
                self.pg.start()
            eventually(lambda: self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0"),
                       timeout=20, interval=0.3)
        finally:
            c.close()
        self.assertIn("identity cache:", self.srv.log_text())


if __name__ == "__main__":
    unittest.main()
