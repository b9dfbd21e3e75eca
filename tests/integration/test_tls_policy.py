"""TLS policy (issue: hardening): what a client is offered, read with OpenSSL's own client on
both listeners (STARTTLS on the submission port, implicit TLS on the submissions port).
By default only forward-secret AEAD suites (ECDHE/DHE with GCM or ChaCha20-Poly1305), in the
server's order; no static-RSA key exchange, no CBC, no TLS 1.0/1.1, and a client's
renegotiation is refused. [tls] ciphers, ciphersuites and min_version change it, and a list
OpenSSL cannot use stops the server at start with an error that names the key."""
import subprocess
import unittest

from harness import IntegrationTestCase

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


def s_client(port, starttls, *args, stdin=b"", commands=False):
    """Runs `openssl s_client`; returns (handshake completed, the negotiated cipher or
    None, everything it printed). With commands, s_client acts on its command lines ("R"
    renegotiates); otherwise (-ign_eof) it sends every line as it is."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername",
           "mail.example.test"] + ([] if commands else ["-ign_eof"])
    cmd += ["-starttls", "smtp"] if starttls else []
    cmd += list(args)
    p = subprocess.run(cmd, input=stdin + b"QUIT\r\n", capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    cipher = None
    for line in out.splitlines():
        # "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256" (or "New, (NONE), Cipher is (NONE)")
        if line.startswith("New, ") and "Cipher is " in line:
            name = line.split("Cipher is ", 1)[1].strip()
            cipher = None if name == "(NONE)" else name
    return cipher is not None, cipher, out


class DefaultPolicyTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])})

    def listeners(self):
        return [(self.srv.submission_port, True), (self.srv.submissions_port, False)]

    def assertRefused(self, *args):
        for port, starttls in self.listeners():
            ok, cipher, out = s_client(port, starttls, *args)
            self.assertFalse(ok, "port %d accepted %s with %s:\n%s" % (port, args, cipher, out))

    def assertNegotiates(self, expected, *args):
        for port, starttls in self.listeners():
            ok, cipher, out = s_client(port, starttls, *args)
            self.assertEqual(cipher, expected, "port %d with %s:\n%s" % (port, args, out))

    def test_static_rsa_key_exchange_is_refused(self):
        # No forward secrecy: AES128-GCM-SHA256 and AES256-SHA are RSA key transport.
        self.assertRefused("-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384:AES256-SHA")

    def test_cbc_suites_are_refused(self):
        self.assertRefused("-tls1_2", "-cipher",
                           "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384:DHE-RSA-AES128-SHA")

    def test_forward_secret_aead_suites_are_offered(self):
        for suite in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                      "ECDHE-RSA-CHACHA20-POLY1305", "DHE-RSA-AES128-GCM-SHA256"):
            self.assertNegotiates(suite, "-tls1_2", "-cipher", suite)
        self.assertNegotiates("TLS_AES_256_GCM_SHA384", "-tls1_3")

    def test_the_server_order_wins(self):
        # The client prefers ChaCha20 and AES-256; the server's first choice is AES-128-GCM.
        self.assertNegotiates(
            "ECDHE-RSA-AES128-GCM-SHA256", "-tls1_2", "-cipher",
            "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")

    def test_tls_1_0_and_1_1_are_refused(self):
        for version in ("-tls1", "-tls1_1"):
            self.assertRefused(version, "-cipher", "DEFAULT@SECLEVEL=0")

    def test_client_renegotiation_is_refused(self):
        # s_client renegotiates when it reads a line "R"; the server must say no and the
        # session must not carry on under a second handshake.
        for port, starttls in self.listeners():
            ok, cipher, out = s_client(port, starttls, "-tls1_2", stdin=b"R\nEHLO x\r\n",
                                       commands=True)
            self.assertTrue(ok, out)
            self.assertIn("RENEGOTIATING", out)
            self.assertIn("no renegotiation", out, "port %d:\n%s" % (port, out))
            # The EHLO after the refused handshake is never answered.
            self.assertNotIn("250-mail.example.test", out.split("RENEGOTIATING", 1)[1])


class ConfiguredPolicyTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])}, tls_extra="\n".join([
            'ciphers = "ECDHE-RSA-AES256-GCM-SHA384"',
            'ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"',
        ]))

    def test_the_configured_lists_are_what_is_offered(self):
        for port, starttls in [(self.srv.submission_port, True),
                               (self.srv.submissions_port, False)]:
            ok, cipher, out = s_client(port, starttls, "-tls1_2")
            self.assertEqual(cipher, "ECDHE-RSA-AES256-GCM-SHA384", out)
            ok, cipher, out = s_client(port, starttls, "-tls1_2", "-cipher",
                                       "ECDHE-RSA-AES128-GCM-SHA256")
            self.assertFalse(ok, out)
            ok, cipher, out = s_client(port, starttls, "-tls1_3")
            self.assertEqual(cipher, "TLS_CHACHA20_POLY1305_SHA256", out)

    def test_min_version_and_bad_lists_are_checked_at_start(self):
        srv = self.srv
        cases = [
            ('min_version = "TLSv1.1"', "tls.min_version TLSv1.1 is not offered"),
            ('min_version = "1.3"', 'tls.min_version must be "TLSv1.2" or "TLSv1.3"'),
            ('ciphers = "NO-SUCH-CIPHER"', '[tls] ciphers "NO-SUCH-CIPHER" names no TLS 1.2'),
            ('ciphersuites = "TLS_NO_SUCH_SUITE"', '[tls] ciphersuites "TLS_NO_SUCH_SUITE"'),
            ('ciphers = "A B"', "tls.ciphers must be a non-empty OpenSSL list"),
        ]
        saved = srv.tls_extra
        try:
            for extra, message in cases:
                srv.tls_extra = extra
                path = srv.write_config(path=srv.config_path.parent / "bad-tls.toml")
                p = subprocess.run([str(srv.bin), "serve", "--config", str(path)],
                                   capture_output=True, text=True, timeout=60)
                self.assertNotEqual(p.returncode, 0, extra)
                self.assertIn(message, p.stderr, extra)
        finally:
            srv.tls_extra = saved


class MinVersionTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])}, tls_extra='min_version = "TLSv1.3"')

    def test_tls_1_2_is_refused_when_the_minimum_is_1_3(self):
        for port, starttls in [(self.srv.submission_port, True),
                               (self.srv.submissions_port, False)]:
            ok, cipher, out = s_client(port, starttls, "-tls1_2")
            self.assertFalse(ok, out)
            ok, cipher, out = s_client(port, starttls)
            self.assertTrue(ok and cipher.startswith("TLS_"), out)


if __name__ == "__main__":
    unittest.main()
