"""SRS: forwarder accounts' foreign envelope senders are rewritten, refused or passed by
rule; the addresses are those Mail::SRS makes and reads (Debian libmail-srs-perl, the
reference implementation, run as tests/tools/mail_srs.pl with the same secrets); the
socketmap reverse service maps what the relay received back to the original sender.

Real parts: a throwaway PostgreSQL, the truefrom binary (queue mode), truefrom-sink as the
relay, smtplib as the client, Perl's Mail::SRS, a socketmap client speaking netstrings.
"""
import os
import smtplib
import socket
import subprocess
import time
import unittest
from pathlib import Path

from harness import (IntegrationTestCase, PostgresCluster, Sink, Truefrom, client_tls_context,
                     eventually, free_port, make_message, make_tempdir, remove_tempdir, unique)

MAIL_SRS = Path(__file__).resolve().parent.parent / "tools" / "mail_srs.pl"
SRS_DOMAIN = "srs.example.net"
SECRETS = ["n3w-s3cr3t", "0ld-s3cr3t"]          # the first signs, both verify
FWD, FWD_PW = "lists@isp.test", "lists-pass"
ALICE, ALICE_PW = "alice@isp.test", "alice-pass"


def perl(*args, when=None):
    env = dict(os.environ)
    if when is not None:
        env["SRS_TIME"] = str(int(when))
    p = subprocess.run(["perl", str(MAIL_SRS)] + list(args), capture_output=True, text=True,
                       env=env, timeout=30)
    return p.returncode, p.stdout.strip()


def perl_forward(address, secrets=SECRETS, when=None):
    rc, out = perl("forward", SRS_DOMAIN, address, *secrets, when=when)
    assert rc == 0, out
    return out


def perl_reverse(address, secrets=SECRETS):
    return perl("reverse", address, *secrets)


def socketmap(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = request.encode()
        s.sendall(b"%d:%s," % (len(data), data))
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b":")
            if sep and len(rest) >= int(head) + 1:
                return rest[:int(head)].decode()
        raise AssertionError("socketmap closed without an answer: %r" % buf)


class SrsTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port, name="srs"))
        cls.secrets = cls.srv.tmp / "srs-secrets"
        cls.secrets.write_text("\n".join(SECRETS) + "\n")
        os.chmod(cls.secrets, 0o600)
        cls.socketmap_port = free_port()
        cls.srv.extra_config = (
            '\n[srs]\ndomain = "%s"\nsecrets_file = "%s"\nsocketmap = "127.0.0.1:%d"\n'
            '\n[policy]\nrequire_alignment = true\n'
            % (SRS_DOMAIN, cls.secrets, cls.socketmap_port))
        cls.srv.write_config()
        cls.srv.migrate()
        for login, pw in ((FWD, FWD_PW), (ALICE, ALICE_PW)):
            cls.srv.add_account(login, pw)
            cls.srv.add_sender(login, login)
        cls.srv.cli_ok("account", "set", FWD, "--forwarder", "yes")
        cls.srv.start()

    def send(self, login, pw, mail_from, from_header=None, marker=None):
        """Returns (MAIL FROM reply, end-of-data reply or None)."""
        marker = marker or unique("srs")
        msg = make_message(from_header or mail_from or login, "rcpt@dest.test", marker)
        with smtplib.SMTP("127.0.0.1", self.srv.submission_port, timeout=15) as s:
            s.starttls(context=client_tls_context())
            s.login(login, pw)
            mail = s.mail(mail_from)
            if mail[0] != 250:
                return mail, None
            self.assertEqual(s.rcpt("rcpt@dest.test")[0], 250)
            return mail, s.data(msg)

    def relayed_sender(self, marker):
        meta, _ = self.sink.wait_for_marker(marker)
        return meta["mail_from"]

    # -- the server -----------------------------------------------------------------------

    def test_forwarded_sender_is_rewritten_and_reversible(self):
        marker = unique("fwd")
        mail, data = self.send(FWD, FWD_PW, "Author@Elsewhere.example", marker=marker)
        self.assertEqual(mail[0], 250, mail)
        self.assertIn(b"forwarded as <SRS0=", mail[1])
        # accepted although MAIL FROM and From: do not align: the SRS envelope is exempt
        self.assertEqual(data[0], 250, data)
        relayed = self.relayed_sender(marker)
        self.assertRegex(relayed, r"^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=Elsewhere\.example="
                                  r"Author@srs\.example\.net$")
        self.assertEqual(relayed, perl_forward("Author@Elsewhere.example"))
        self.assertEqual(perl_reverse(relayed), (0, "Author@Elsewhere.example"))
        self.assertEqual(socketmap(self.socketmap_port, "reverse " + relayed),
                         "OK Author@Elsewhere.example")
        self.assertIn("rewritten as <%s> by no SRS rule" % relayed, self.srv.log_text())

    def test_owned_sender_is_never_rewritten(self):
        marker = unique("own")
        mail, data = self.send(FWD, FWD_PW, FWD, marker=marker)
        self.assertEqual(data[0], 250)
        self.assertNotIn(b"forwarded as", mail[1])
        self.assertEqual(self.relayed_sender(marker), FWD)

    def test_ordinary_account_cannot_forward(self):
        mail, _ = self.send(ALICE, ALICE_PW, "someone@elsewhere.example")
        self.assertEqual(mail[0], 553)

    def test_srs0_sender_becomes_srs1(self):
        marker = unique("srs1")
        first = "SRS0=abcd=TT=orig.example=user@fwd1.example"
        mail, data = self.send(FWD, FWD_PW, first, from_header="user@orig.example",
                               marker=marker)
        self.assertEqual(data[0], 250, data)
        relayed = self.relayed_sender(marker)
        self.assertTrue(relayed.startswith("SRS1="), relayed)
        self.assertIn("=fwd1.example==abcd=TT=orig.example=user@" + SRS_DOMAIN, relayed)
        self.assertEqual(relayed, perl_forward(first))
        self.assertEqual(perl_reverse(relayed), (0, first))
        self.assertEqual(socketmap(self.socketmap_port, "reverse " + relayed), "OK " + first)

    def test_refuse_rule_applies_live_and_check_explains_it(self):
        self.srv.cli_ok("srs", "rule", "add", "bank.test", "refuse")
        try:
            def refused():
                mail, _ = self.send(FWD, FWD_PW, "ceo@mail.bank.test")
                self.assertEqual(mail[0], 550, mail)
                return mail
            mail = eventually(refused, timeout=5)
            self.assertIn(b"5.7.1 forwarding of <ceo@mail.bank.test> refused by policy", mail[1])
            p = self.srv.cli("check", FWD, "--mail-from", "ceo@bank.test")
            self.assertEqual(p.returncode, 1)
            self.assertIn("refused by policy", p.stdout)
            self.assertRegex(p.stdout, r"by SRS rule #\d+ \(bank\.test, global: refuse\)")
            # an account's own rule is more specific than the global one
            self.srv.cli_ok("srs", "rule", "add", "bank.test", "pass", "--account", FWD)
            marker = unique("acct")

            def passed():
                mail, data = self.send(FWD, FWD_PW, "ceo@bank.test", marker=marker)
                self.assertEqual(mail[0], 250, mail)
                return data
            eventually(passed, timeout=5)
            self.assertEqual(self.relayed_sender(marker), "ceo@bank.test")
            out = self.srv.cli_ok("srs", "rule", "list").stdout
            self.assertRegex(out, r"bank\.test\trefuse\t\(global\)\t#\d+")
            self.assertRegex(out, r"bank\.test\tpass\t%s\t#\d+" % FWD)
        finally:
            self.srv.cli("srs", "rule", "remove", "bank.test", "--account", FWD)
            self.srv.cli("srs", "rule", "remove", "bank.test")
        p = self.srv.cli("srs", "rule", "remove", "bank.test")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no SRS rule for bank.test (global)", p.stderr)

    def test_pass_rule_leaves_the_sender_unchanged(self):
        self.srv.cli_ok("srs", "rule", "add", "partner.test", "pass")
        try:
            marker = unique("pass")

            def passed():
                mail, data = self.send(FWD, FWD_PW, "news@partner.test", marker=marker)
                self.assertNotIn(b"forwarded as", mail[1])
                return data
            eventually(passed, timeout=5)
            self.assertEqual(self.relayed_sender(marker), "news@partner.test")
            out = self.srv.cli_ok("check", FWD, "--mail-from", "news@partner.test").stdout
            self.assertIn("passed unchanged by SRS rule", out)
        finally:
            self.srv.cli("srs", "rule", "remove", "partner.test")

    def test_rule_command_errors(self):
        p = self.srv.cli("srs", "rule", "add", "example.com", "drop")
        self.assertEqual(p.returncode, 2)
        self.assertIn('unknown action "drop"', p.stderr)
        p = self.srv.cli("srs", "rule", "add", "not a domain", "pass")
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not a domain name", p.stderr)
        p = self.srv.cli("srs", "rule", "add", "example.com", "pass", "--account", "nobody@x.test")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no account nobody@x.test", p.stderr)

    # -- the reverse service --------------------------------------------------------------

    def test_socketmap_refuses_what_it_should(self):
        port = self.socketmap_port
        old = perl_forward("someone@elsewhere.example", when=time.time() - 30 * 86400)
        tampered = perl_forward("someone@elsewhere.example").replace("someone", "mallory")
        foreign = perl_forward("someone@elsewhere.example").replace(SRS_DOMAIN, "other.example")
        for request in ("reverse " + old, "reverse " + tampered, "reverse " + foreign,
                        "reverse plain@" + SRS_DOMAIN, "reverse no-at-sign"):
            self.assertEqual(socketmap(port, request), "NOTFOUND ", request)
        self.assertTrue(socketmap(port, "forward x@y.example").startswith("PERM "))
        p = self.srv.cli("srs", "decode", old)
        self.assertEqual(p.returncode, 1)
        self.assertIn("expired", p.stderr)
        p = self.srv.cli("srs", "decode", tampered)
        self.assertEqual(p.returncode, 1)
        self.assertIn("invalid hash", p.stderr)
        # several requests on one connection, as Postfix sends them
        good = perl_forward("x@y.example")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            req = ("reverse " + good).encode()
            s.sendall((b"%d:%s," % (len(req), req)) * 2)
            want = b"14:OK x@y.example,"
            buf = b""
            while len(buf) < 2 * len(want):
                buf += s.recv(4096)
            self.assertEqual(buf, want * 2)

    # -- the same addresses as Mail::SRS, both directions ---------------------------------

    def test_cli_matches_mail_srs_both_ways(self):
        addresses = ["alice@example.com", "Mixed.Case@Example.ORG", "a=b+c@d.example",
                     "o'brien@ireland.example", "x_y-z@sub.domain.example",
                     "SRS0=HHHH=TT=orig.example=user@fwd1.example",
                     "SRS1=XXXX=fwd1.example==HHHH=TT=orig.example=user@fwd2.example"]
        for addr in addresses:
            for _ in range(2):   # once more if the day changed between the two calls
                ours = self.srv.cli_ok("srs", "encode", addr).stdout.strip()
                theirs = perl_forward(addr)
                if ours == theirs:
                    break
            self.assertEqual(ours, theirs, addr)
            # theirs -> ours
            self.assertEqual(self.srv.cli_ok("srs", "decode", theirs).stdout.strip(),
                             perl_reverse(theirs)[1], addr)
            # ours -> theirs, also with the case smashed by some MTA on the way
            for variant in (ours, ours.lower(), ours.upper()):
                rc, back = perl_reverse(variant)
                self.assertEqual(rc, 0, (variant, back))
                self.assertEqual(self.srv.cli_ok("srs", "decode", variant).stdout.strip(), back)
        # rotation: made by Mail::SRS with the old secret alone, read by truefrom
        old_only = perl_forward("alice@example.com", secrets=SECRETS[1:])
        self.assertEqual(self.srv.cli_ok("srs", "decode", old_only).stdout.strip(),
                         "alice@example.com")
        # and made by truefrom, read by Mail::SRS knowing only the first secret
        ours = self.srv.cli_ok("srs", "encode", "alice@example.com").stdout.strip()
        self.assertEqual(perl_reverse(ours, secrets=SECRETS[:1]), (0, "alice@example.com"))
        # a secret neither knows
        self.assertEqual(perl_reverse(ours, secrets=["unknown"])[0], 1)


class SrsConfigTests(IntegrationTestCase):
    """A missing or empty secrets file stops the server at start, saying what to do."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.srv = cls.use(Truefrom(cls.pg, 25, name="srs-config"))
        cls.srv.migrate()

    def start_fails(self, secrets_text):
        path = self.srv.tmp / "secrets"
        if path.exists():
            path.unlink()
        if secrets_text is not None:
            path.write_text(secrets_text)
            os.chmod(path, 0o600)
        self.srv.extra_config = '\n[srs]\ndomain = "%s"\nsecrets_file = "%s"\n' % (SRS_DOMAIN, path)
        self.srv.write_config()
        p = subprocess.run([str(self.srv.bin), "serve", "--config", str(self.srv.config_path)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        return p.stderr

    def test_missing_secrets_file(self):
        err = self.start_fails(None)
        self.assertIn("[srs] secrets_file", err)
        self.assertIn("is missing", err)
        self.assertIn("chmod 600", err)

    def test_empty_secrets_file(self):
        self.assertIn("holds no secret", self.start_fails("\n\n"))


if __name__ == "__main__":
    unittest.main()
