"""DKIM signing end to end (issue "DKIM signing"): keys made and activated with the CLI,
messages submitted with smtplib to the running server, and the copies the sink received
verified by two verifiers independent of libopendkim, python3-dkim (dkimpy) and Mail::DKIM
(Perl; RSA only: Debian 12's version cannot check Ed25519), with the DNS records
`truefrom dkim dns` printed. libopendkim's own verifier checks both in tests/unit/signer. Also: dual RSA + Ed25519
signatures, signing domain choice (From: domain, parent, fallback), Date:/Message-ID: added,
tampering detected, key rotation without restart, a broken key file answered with 4.3.5
until it is fixed, and the CLI's errors."""
import os
import re
import smtplib
import stat
import subprocess
import time
import unittest
from pathlib import Path

import dkim

from harness import (HOSTNAME, IntegrationTestCase, PostgresCluster, Sink, Truefrom,
                     client_tls_context, eventually, make_message, unique)

MAIL_DKIM_VERIFY = Path(__file__).resolve().parent.parent / "tools" / "mail_dkim_verify.pl"

ALICE, PW = "alice@example.test", "alice-pass"      # owns example.test (and eu.example.test)
ERIN, ERIN_PW = "erin@other.test", "erin-pass"      # other.test has no key: fallback
BOB, BOB_PW = "bob@broken.test", "bob-pass"          # broken.test's key file gets broken
ROT, ROT_PW = "rot@rotate.test", "rot-pass"          # rotate.test's keys are rotated
RCPT = "rcpt@example.net"


def zone_records(dns_output):
    """{name: text} from `truefrom dkim dns` lines: NAME TXT "..." "..." (the issue's form)."""
    out = {}
    for line in dns_output.splitlines():
        m = re.match(r'^(\S+\._domainkey\.\S+[^.]) TXT ((?:"[^"]*" ?)+)$', line)
        assert m, "not a zone line: %r" % line
        out[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return out


def signature_tags(raw):
    """[{tag: value}] of the message's DKIM-Signature fields, in order."""
    header = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = re.findall(r"(?ims)^DKIM-Signature:(.*?)(?=^\S)", header + "\r\nEND:")
    tags = []
    for f in fields:
        value = re.sub(r"\s+", "", f)
        tags.append(dict(t.split("=", 1) for t in value.split(";") if "=" in t))
    return tags


class DkimTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port))
        cls.srv.extra_config = '[dkim]\nfallback_domain = "provider.test"\n'
        cls.srv.write_config()
        cls.srv.migrate()
        for login, pw, senders in [(ALICE, PW, ["example.test", "eu.example.test"]),
                                   (ERIN, ERIN_PW, [ERIN]), (BOB, BOB_PW, [BOB]),
                                   (ROT, ROT_PW, [ROT])]:
            cls.srv.add_account(login, pw)
            for s in senders:
                cls.srv.add_sender(login, s)
        for domain, selector, algorithm in [("example.test", "r1", "rsa"),
                                            ("example.test", "e1", "ed25519"),
                                            ("provider.test", "p1", "rsa"),
                                            ("broken.test", "b1", "ed25519"),
                                            ("rotate.test", "old", "rsa")]:
            out = cls.srv.cli_ok("dkim", "keygen", domain, "--selector", selector,
                                 "--algorithm", algorithm).stdout
            assert "pending" in out, out
            cls.srv.cli_ok("dkim", "activate", domain, selector)
        cls.srv.start()

    # -- helpers --------------------------------------------------------------------------

    def records(self, *domains):
        out = {}
        for d in domains:
            out.update(zone_records(self.srv.cli_ok("dkim", "dns", d).stdout))
        return out

    def send(self, login, password, mail_from, message, options=()):
        with smtplib.SMTP("127.0.0.1", self.srv.submission_port, timeout=60) as s:
            s.starttls(context=client_tls_context())
            s.login(login, password)
            s.sendmail(mail_from, [RCPT], message, mail_options=list(options))

    def relayed(self, marker):
        return self.sink.wait_for_marker(marker, timeout=30)[1]

    def verify_python(self, raw, records):
        def dnsfunc(name, timeout=5):
            key = name.decode() if isinstance(name, bytes) else name
            text = records.get(key.rstrip("."))
            return text.encode() if text is not None else None
        def one(i):
            try:
                return bool(dkim.DKIM(raw).verify(idx=i, dnsfunc=dnsfunc))
            except dkim.ValidationError:   # e.g. "body hash mismatch": a failed verification
                return False
        return [one(i) for i in range(len(signature_tags(raw)))]

    def verify_perl(self, raw, records):
        table = self.srv.tmp / ("records-%s.txt" % unique())
        table.write_text("".join("%s\t%s\n" % kv for kv in records.items()))
        p = subprocess.run(["perl", str(MAIL_DKIM_VERIFY), str(table)], input=raw,
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode().splitlines()

    def assertVerifies(self, raw, records, count):
        py = self.verify_python(raw, records)
        self.assertEqual(py, [True] * count, "python3-dkim verdicts; message head:\n%s"
                         % raw[:1500].decode("utf-8", "replace"))
        perl = self.verify_perl(raw, records)
        self.assertEqual(len(perl), count, perl)
        for line in perl:
            # Debian 12's Mail::DKIM (1.20230212) has no Ed25519 verification: it must pass
            # every RSA signature and name the algorithm it cannot check for the others.
            if " a=ed25519-sha256 " in line and "unsupported algorithm ed25519-sha256" in line:
                continue
            self.assertTrue(line.startswith("pass "), "Mail::DKIM: %s" % line)

    # -- tests ----------------------------------------------------------------------------

    def test_dual_signature_verified_by_two_independent_verifiers(self):
        marker = unique("dual")
        body = "Gr\u00fc\u00dfe, 8-bit body \u2603\r\n".encode()
        self.send(ALICE, PW, ALICE, make_message(ALICE, RCPT, marker, body=body),
                  options=["BODY=8BITMIME"])
        raw = self.relayed(marker)
        tags = signature_tags(raw)
        self.assertEqual([t["a"] for t in tags], ["rsa-sha256", "ed25519-sha256"])
        self.assertEqual({t["d"] for t in tags}, {"example.test"})
        self.assertEqual([t["s"] for t in tags], ["r1", "e1"])
        for t in tags:
            self.assertEqual(t["c"], "relaxed/relaxed")
            self.assertNotIn("l", t, "no body length limit")
            names = t["h"].lower().split(":")
            for over in ("from", "to", "subject", "date", "message-id", "reply-to", "cc"):
                present = len(re.findall(rb"(?im)^" + over.encode() + rb":",
                                         raw.split(b"\r\n\r\n", 1)[0]))
                self.assertEqual(names.count(over), present + 1,
                                 "%s over-signed once more than present (%d): %s"
                                 % (over, present, t["h"]))
        self.assertVerifies(raw, self.records("example.test"), 2)

    def test_message_shapes_verify(self):
        records = self.records("example.test")
        long_line = "x" * 990
        many = tuple("X-Header-%03d: value %d" % (i, i) for i in range(150))
        shapes = {
            "empty body": (b"", ()),
            "long lines": ((long_line + "\r\n") * 20, ()),
            "no trailing CRLF": ("last line without a line end", ()),
            "many headers": ("body\r\n", many),
            "folded headers": ("body\r\n", ("X-Folded: first\r\n\tsecond\r\n   third",
                                            "Subject-Extra: a\r\n b")),
            "trailing blank lines and spaces": ("text  \t \r\n\r\n\r\n\r\n", ()),
        }
        for name, (body, extra) in shapes.items():
            with self.subTest(shape=name):
                marker = unique("shape")
                msg = make_message(ALICE, RCPT, marker, body=body, extra_headers=extra)
                self.send(ALICE, PW, ALICE, msg)
                self.assertVerifies(self.relayed(marker), records, 2)

    def test_ten_megabyte_message_verifies(self):
        marker = unique("big")
        line = ("%s " % marker) * 10 + "\r\n"
        body = line * (10_000_000 // len(line))
        self.send(ALICE, PW, ALICE, make_message(ALICE, RCPT, marker, body=body))
        raw = self.relayed(marker)
        self.assertGreater(len(raw), 10_000_000)
        self.assertVerifies(raw, self.records("example.test"), 2)

    def test_date_and_message_id_are_added_and_signed(self):
        marker = unique("bare")
        msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nno Date, no Message-ID\r\n"
               % (ALICE, RCPT, marker)).encode()
        self.send(ALICE, PW, ALICE, msg)
        raw = self.relayed(marker)
        head = raw.split(b"\r\n\r\n", 1)[0]
        self.assertRegex(head, rb"(?m)^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r$")
        self.assertRegex(head, rb"(?m)^Message-ID: <[0-9A-F.]+@" + HOSTNAME.encode() + rb">\r$")
        for t in signature_tags(raw):
            names = t["h"].lower().split(":")
            self.assertEqual(names.count("date"), 2, t["h"])
            self.assertEqual(names.count("message-id"), 2, t["h"])
        self.assertVerifies(raw, self.records("example.test"), 2)
        # The client's own fields are never replaced or duplicated.
        marker = unique("own")
        self.send(ALICE, PW, ALICE, make_message(ALICE, RCPT, marker))
        head = self.relayed(marker).split(b"\r\n\r\n", 1)[0]
        self.assertEqual(len(re.findall(rb"(?im)^Date:", head)), 1)
        self.assertIn(b"Date: Mon, 23 Nov 2026 10:00:00 +0000", head)
        self.assertEqual(len(re.findall(rb"(?im)^Message-ID:", head)), 1)

    def test_changes_after_signing_fail_both_verifiers(self):
        marker = unique("tamper")
        self.send(ALICE, PW, ALICE, make_message(ALICE, RCPT, marker, body="pay 10 EUR\r\n"))
        raw = self.relayed(marker)
        records = self.records("example.test")
        self.assertVerifies(raw, records, 2)
        tampered = {
            "body changed": raw.replace(b"pay 10 EUR", b"pay 99 EUR"),
            "From: added": raw.replace(b"\r\n\r\n", b"\r\nFrom: <ceo@example.test>\r\n\r\n", 1),
            "Subject changed": raw.replace(marker.encode(), b"urgent " + marker.encode(), 1),
        }
        for what, msg in tampered.items():
            with self.subTest(what):
                self.assertEqual(self.verify_python(msg, records), [False, False])
                perl = self.verify_perl(msg, records)
                self.assertTrue(perl[0].startswith("fail d=example.test s=r1 a=rsa-sha256"), perl)

    def test_signing_domain_parent_and_fallback(self):
        marker = unique("parent")
        self.send(ALICE, PW, "news@eu.example.test",
                  make_message("news@eu.example.test", RCPT, marker))
        raw = self.relayed(marker)
        self.assertEqual({t["d"] for t in signature_tags(raw)}, {"example.test"})
        self.assertVerifies(raw, self.records("example.test"), 2)

        marker = unique("fallback")
        self.send(ERIN, ERIN_PW, ERIN, make_message(ERIN, RCPT, marker))
        raw = self.relayed(marker)
        self.assertEqual([(t["d"], t["s"]) for t in signature_tags(raw)], [("provider.test", "p1")])
        self.assertVerifies(raw, self.records("provider.test"), 1)
        self.assertIn("dkim: d=provider.test (fallback) s=p1", self.srv.log_text())

    def test_broken_key_file_tempfails_until_fixed(self):
        row = self.pg.psql("SELECT key_path FROM dkim_keys WHERE domain = 'broken.test'")
        path = (row.stdout if hasattr(row, "stdout") else row).strip()
        os.chmod(path, 0o644)
        try:
            # Any change to the key rows makes the server reload them (NOTIFY).
            self.pg.psql("UPDATE dkim_keys SET state = 'active' WHERE domain = 'broken.test'")
            eventually(lambda: self.assertIn("mode 0644", self.srv.log_text()), timeout=5)
            marker = unique("broken")
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                self.send(BOB, BOB_PW, BOB, make_message(BOB, RCPT, marker))
            self.assertEqual(cm.exception.smtp_code, 451)
            self.assertIn(b"4.3.5", cm.exception.smtp_error)
            self.assertIn(b"broken.test", cm.exception.smtp_error)
            refused = marker
            self.assertIn("chmod 600 " + path, self.srv.log_text())
        finally:
            os.chmod(path, 0o600)
        # Fixed on disk, no restart, no database change: used again within a few seconds.
        def delivered():
            marker = unique("fixed")
            try:
                self.send(BOB, BOB_PW, BOB, make_message(BOB, RCPT, marker))
            except smtplib.SMTPDataError as e:
                raise AssertionError("still refused: %s" % e)
            return self.relayed(marker)
        raw = eventually(delivered, timeout=10, interval=0.5)
        # asserted after a later message of the same domain reached the sink
        self.assertEqual(self.sink.find(refused), [])
        self.assertEqual([t["d"] for t in signature_tags(raw)], ["broken.test"])
        self.assertVerifies(raw, self.records("broken.test"), 1)

    def test_rotation_applies_live(self):
        out = self.srv.cli_ok("dkim", "keygen", "rotate.test", "--selector", "new").stdout
        self.assertIn("truefrom dkim activate rotate.test new", out)
        records = self.records("rotate.test")
        self.assertEqual(set(records), {"old._domainkey.rotate.test", "new._domainkey.rotate.test"})

        def selectors():
            marker = unique("rot")
            self.send(ROT, ROT_PW, ROT, make_message(ROT, RCPT, marker))
            raw = self.relayed(marker)
            self.assertVerifies(raw, records, 1)
            return [t["s"] for t in signature_tags(raw)]

        self.assertEqual(selectors(), ["old"], "a pending key does not sign")
        out = self.srv.cli_ok("dkim", "activate", "rotate.test", "new").stdout
        self.assertIn("old._domainkey.rotate.test (same algorithm) is retired", out)
        started = time.monotonic()
        eventually(lambda: self.assertEqual(selectors(), ["new"]), timeout=5, interval=0.1)
        self.assertLess(time.monotonic() - started, 2.0)
        listing = self.srv.cli_ok("dkim", "list", "rotate.test").stdout
        self.assertRegex(listing, r"rotate\.test\told\trsa-sha256\tretired")
        self.assertRegex(listing, r"rotate\.test\tnew\trsa-sha256\tactive")
        self.assertEqual(list(zone_records(self.srv.cli_ok("dkim", "dns", "rotate.test").stdout)),
                         ["new._domainkey.rotate.test"], "retired keys are not printed")

    def test_keygen_writes_a_private_file_and_a_pasteable_record(self):
        out = self.srv.cli_ok("dkim", "keygen", "Keys.Example.TEST", "--algorithm", "ed25519").stdout
        m = re.search(r"key (\S+) for keys\.example\.test, pending; private key in (\S+)", out)
        self.assertTrue(m, out)
        selector, path = m.groups()
        self.assertRegex(selector, r"^\d{8}-ed25519$")
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        self.assertIn("-----BEGIN PRIVATE KEY-----", Path(path).read_text())
        line = [l for l in out.splitlines() if " TXT " in l][0]
        self.assertEqual(line, self.srv.cli_ok("dkim", "dns", "keys.example.test").stdout.strip())
        text = zone_records(line)["%s._domainkey.keys.example.test" % selector]
        self.assertRegex(text, r"^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$")
        # RSA records longer than 255 octets are split into strings on one line.
        out = self.srv.cli_ok("dkim", "keygen", "keys.example.test", "--bits", "2048").stdout
        line = [l for l in out.splitlines() if " TXT " in l][0]
        self.assertEqual(len(re.findall(r'"[^"]*"', line)), 2, line)
        self.assertTrue(all(len(s) <= 257 for s in re.findall(r'"[^"]*"', line)))
        # The second key of the day gets its own selector.
        self.assertRegex(out, r"key \d{8}-rsa for keys\.example\.test")

    def test_cli_errors_say_what_and_how(self):
        cases = [
            (("dkim", "keygen", "nodot"), "is not a domain name"),
            (("dkim", "keygen", "example.test", "--algorithm", "dsa"),
             "--algorithm must be rsa or ed25519"),
            (("dkim", "keygen", "example.test", "--algorithm", "ed25519", "--bits", "2048"),
             "--bits applies to RSA keys only"),
            (("dkim", "keygen", "example.test", "--bits", "512"), "1024 to 4096"),
            (("dkim", "keygen", "example.test", "--selector", "bad_sel"), "is not a selector"),
            (("dkim", "keygen", "example.test", "--selector", "r1"),
             "there is already a key r1._domainkey.example.test"),
            (("dkim", "activate", "example.test", "nope"), "no key nope._domainkey.example.test"),
            (("dkim", "dns", "nokeys.test"), "no pending or active DKIM key for nokeys.test"),
            (("dkim", "retire", "example.test"), "expected: truefrom dkim retire DOMAIN SELECTOR"),
            (("dkim", "frobnicate"), 'unknown dkim command "frobnicate"'),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                p = self.srv.cli(*args)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(want, p.stderr)
        # A retired key is never activated again.
        self.srv.cli_ok("dkim", "keygen", "retired.test", "--selector", "x")
        self.srv.cli_ok("dkim", "retire", "retired.test", "x")
        p = self.srv.cli("dkim", "activate", "retired.test", "x")
        self.assertIn("is retired; a retired key is never used again", p.stderr)
        # A key whose file is not usable is not activated.
        self.srv.cli_ok("dkim", "keygen", "loose.test", "--selector", "x")
        row = self.pg.psql("SELECT key_path FROM dkim_keys WHERE domain = 'loose.test'")
        path = (row.stdout if hasattr(row, "stdout") else row).strip()
        os.chmod(path, 0o640)
        p = self.srv.cli("dkim", "activate", "loose.test", "x")
        self.assertIn("mode 0640); run: chmod 600 " + path + "; the key was not activated",
                      p.stderr)


if __name__ == "__main__":
    unittest.main()
