"""`truefrom config check` (issue: operations, item 8): on a healthy stack it says ok and
exits 0; each seeded problem gets its own line with the fix and exit status 1; warnings
(a certificate for another name) do not change the status."""
import os
import subprocess

from harness import ClosedPort, IntegrationTestCase, unique

ALICE, ALICE_PW = "alice@example.test", "alice-pass"

CA_CONFIG = """[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
copy_extensions = copy
[p]
commonName = supplied
"""


class ConfigCheckTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.start_stack({ALICE: (ALICE_PW, [ALICE])})

    def check(self, config=None):
        p = self.srv.cli("config", "check", config=config)
        return p.returncode, p.stdout, p.stderr

    def write(self, name, text):
        path = self.srv.config_path.parent / name
        path.write_text(text)
        return path

    def expired_certificate(self):
        """A certificate (and its key) for the server's name that expired in 2020."""
        d = self.srv.tmp / "expired"
        d.mkdir(exist_ok=True)
        (d / "ca.cnf").write_text(CA_CONFIG)
        (d / "index.txt").write_text("")
        (d / "serial").write_text("01\n")
        run = lambda *cmd: subprocess.run(cmd, cwd=d, check=True, capture_output=True)
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out",
            "csr.pem", "-subj", "/CN=mail.example.test",
            "-addext", "subjectAltName=DNS:mail.example.test")
        run("openssl", "ca", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in",
            "csr.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
            "-batch", "-notext", "-out", "cert.pem")
        os.chmod(d / "key.pem", 0o600)
        return d / "cert.pem", d / "key.pem"

    def test_a_healthy_stack_is_ok(self):
        rc, out, err = self.check()
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn("problem:", out)
        self.assertRegex(out, r"config .*truefrom.toml: ok")

    def test_each_seeded_problem_is_named_with_its_fix(self):
        # A DKIM key whose file is gone.
        self.srv.cli_ok("dkim", "keygen", "example.test", "--selector", "gone1")
        self.srv.cli_ok("dkim", "activate", "example.test", "gone1")
        (self.srv.state_dir / "dkim" / "example.test.gone1.pem").unlink()
        # A database nobody migrated, a relay nobody answers, an expired certificate.
        empty = unique("empty").replace("-", "_")
        self.pg.psql("CREATE DATABASE %s" % empty)
        closed = ClosedPort()
        self.addCleanup(closed.close)
        cert, key = self.expired_certificate()
        text = self.srv.config_text()
        text = text.replace('certificate = "cert.pem"', 'certificate = "%s"' % cert)
        text = text.replace('private_key = "key.pem"', 'private_key = "%s"' % key)
        text = text.replace("dbname=%s " % self.pg.dbname, "dbname=%s " % empty)
        text = text.replace("port = %d" % self.srv.relay_port, "port = %d" % closed.port)
        text = text.replace('hostname = "mail.example.test"', 'hostname = "other.example.test"')
        rc, out, err = self.check(self.write("broken.toml", text))
        self.assertEqual(rc, 1, out + err)
        lines = [l for l in out.splitlines() if l.startswith("problem:")]
        self.assertTrue(any("has expired" in l and "renew it" in l for l in lines), out)
        self.assertTrue(any("database:" in l and "truefrom db migrate" in l for l in lines), out)
        self.assertTrue(any("[relay] 127.0.0.1:%d" % closed.port in l and "refused" in l
                            for l in lines), out)
        self.assertTrue(any(l.startswith("warning:") and "does not name [server] hostname"
                            in l for l in out.splitlines()), out)
        self.assertIn("3 problem(s)", out)
        # The DKIM key is checked against the database that has it.
        rc, out, err = self.check()
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"problem: DKIM key gone1\._domainkey\.example\.test: .*"
                              r"example\.test\.gone1\.pem")
        self.srv.cli_ok("dkim", "retire", "example.test", "gone1")
        rc, out, err = self.check()
        self.assertEqual(rc, 0, out + err)

    def test_an_unreachable_database_and_a_key_that_does_not_match(self):
        other_key = self.srv.tmp / "other-key.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(other_key)],
                       check=True, capture_output=True)
        os.chmod(other_key, 0o600)
        closed = ClosedPort()
        self.addCleanup(closed.close)
        text = self.srv.config_text()
        text = text.replace('private_key = "key.pem"', 'private_key = "%s"' % other_key)
        text = text.replace("port=%d " % self.pg.port, "port=%d " % closed.port)
        rc, out, err = self.check(self.write("broken2.toml", text))
        self.assertEqual(rc, 1, out + err)
        self.assertIn("does not match certificate", out)
        self.assertRegex(out, r"problem: database: ")
