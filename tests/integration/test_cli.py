"""The truefrom command line: config errors, accounts, sender identities, help.

Needs a database but no running server."""
import re
import unittest
import warnings
from pathlib import Path

from harness import IntegrationTestCase, PostgresCluster, Truefrom, sql_quote, unique

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


class CliTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.tf = cls.use(Truefrom(cls.pg, relay_port=25))
        cls.tf.migrate()
        cls.tf.add_account("alice@example.test", "alice-pass")
        cls.tf.add_sender("alice@example.test", "alice@example.test")
        cls.tf.add_sender("alice@example.test", "alice.alias@example.test")

    # -- helpers ---------------------------------------------------------------------------
    def assertFails(self, p, *words):
        """non-zero exit, a message on stderr containing each word (case-insensitive)."""
        self.assertNotEqual(p.returncode, 0, "expected failure; stdout: %s" % p.stdout)
        self.assertTrue(p.stderr.strip(), "no message on stderr")
        for w in words:
            self.assertIn(str(w).lower(), p.stderr.lower(), "stderr: %s" % p.stderr)

    def sql(self, query):
        return self.pg.psql(query).strip()

    def bad_config(self, name, replace, by):
        text = self.tf.config_text()
        self.assertIn(replace, text)
        text = text.replace(replace, by, 1)
        path = self.tf.write_config(text, self.tf.tmp / name)
        line = next(i for i, l in enumerate(text.splitlines(), 1)
                    if l.startswith(by.splitlines()[-1]))
        return path, line

    def assertNamesLine(self, p, path, line, word):
        self.assertFails(p, path.name, word)
        self.assertRegex(p.stderr, r"(?<![0-9])%d(?![0-9])" % line,
                         "stderr does not name line %d" % line)

    # -- help ------------------------------------------------------------------------------
    def test_help(self):
        for args in (["--help"], ["account", "--help"], ["sender", "--help"], ["db", "--help"],
                     ["serve", "--help"]):
            with self.subTest(args=args):
                p = self.tf.cli(*args, config=False)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertTrue((p.stdout + p.stderr).strip(), "help printed nothing")
        p = self.tf.cli("--help", config=False)
        for word in ("serve", "account", "sender", "db"):
            self.assertIn(word, p.stdout + p.stderr)

    def test_version(self):
        cmake = (Path(__file__).resolve().parents[2] / "CMakeLists.txt").read_text()
        version = re.search(r"project\(truefrom VERSION ([0-9.]+)", cmake).group(1)
        for flag in ("--version", "-V"):
            p = self.tf.cli(flag, config=False)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"^truefrom %s \(OpenSSL 3\.[0-9.]+" % re.escape(version))

    def test_unknown_subcommand_fails(self):
        self.assertFails(self.tf.cli("frobnicate"))

    # -- config errors ---------------------------------------------------------------------
    def test_unknown_key_refused_with_file_line_and_key(self):
        path, line = self.bad_config("bad-key.toml", 'starttls = "none"',
                                     'starttls = "none"\nhots = "x"')
        for args in (["serve"], ["account", "list"], ["db", "migrate"]):
            with self.subTest(args=args):
                p = self.tf.cli(*args, config=path, timeout=20)
                self.assertNamesLine(p, path, line, "hots")

    def test_bad_value_refused_with_file_line_and_key(self):
        path, line = self.bad_config("bad-value.toml", 'starttls = "none"',
                                     'starttls = "sometimes"')
        p = self.tf.cli("serve", config=path, timeout=20)
        self.assertNamesLine(p, path, line, "starttls")

    def test_bad_type_refused(self):
        path, line = self.bad_config("bad-type.toml", "max_recipients = 50",
                                     'max_recipients = "fifty"')
        p = self.tf.cli("serve", config=path, timeout=20)
        self.assertNamesLine(p, path, line, "max_recipients")

    def test_toml_syntax_error_refused(self):
        path, line = self.bad_config("bad-syntax.toml", "[relay]", "[relay")
        p = self.tf.cli("serve", config=path, timeout=20)
        self.assertFails(p, path.name)

    def test_missing_config_file(self):
        p = self.tf.cli("account", "list", config=self.tf.tmp / "no-such.toml")
        self.assertFails(p, "no-such.toml")

    # -- db --------------------------------------------------------------------------------
    def test_schema_matches_contract(self):
        """The columns admins and these tests use in SQL (the integration-test contract)."""
        accounts = self.pg.columns("accounts")
        for col in ("login", "password_hash", "enabled"):
            self.assertIn(col, accounts, "accounts has no column %r: %s" % (col, accounts))
        identities = self.pg.columns("sender_identities")
        for col in ("login", "kind", "identity"):
            self.assertIn(col, identities,
                          "sender_identities has no column %r: %s" % (col, identities))

    def test_migrate_is_idempotent(self):
        self.tf.migrate()
        self.tf.migrate()
        self.assertEqual(self.sql("SELECT count(*) FROM accounts WHERE login = "
                                  "'alice@example.test'"), "1")

    # -- accounts --------------------------------------------------------------------------
    def test_account_add_twice_fails_and_changes_nothing(self):
        login = unique("twice") + "@example.test"
        self.tf.add_account(login, "first-pass")
        before = self.sql("SELECT password_hash FROM accounts WHERE login = %s" % sql_quote(login))
        p = self.tf.cli("account", "add", login, "--password-stdin", stdin="second-pass\n")
        self.assertFails(p)
        self.assertTrue(login in p.stderr.lower() or "exist" in p.stderr.lower(),
                        "unclear message: %s" % p.stderr)
        self.assertEqual(before, self.sql("SELECT password_hash FROM accounts WHERE login = %s"
                                          % sql_quote(login)))

    def test_account_add_differing_only_in_case_fails(self):
        login = unique("case") + "@example.test"
        self.tf.add_account(login, "pass")
        p = self.tf.cli("account", "add", login.upper(), "--password-stdin", stdin="pass\n")
        self.assertFails(p)
        self.assertEqual(self.sql("SELECT count(*) FROM accounts WHERE lower(login) = %s"
                                  % sql_quote(login)), "1")

    def test_password_is_first_line_of_stdin_and_stored_as_crypt_hash(self):
        login = unique("pw") + "@example.test"
        self.tf.add_account(login, "first line\nsecond line")
        h = self.sql("SELECT password_hash FROM accounts WHERE login = %s" % sql_quote(login))
        self.assertTrue(h.startswith("$"), "not a crypt(3) hash: %r" % h)
        self.assertNotIn("first line", h)
        self.assertEqual(crypt.crypt("first line", h), h)
        self.tf.cli_ok("account", "passwd", login, "--password-stdin", stdin="new one\n")
        h2 = self.sql("SELECT password_hash FROM accounts WHERE login = %s" % sql_quote(login))
        self.assertEqual(crypt.crypt("new one", h2), h2)

    def test_account_list_disable_enable_remove(self):
        login = unique("life") + "@example.test"
        self.tf.add_account(login, "pass")
        self.assertIn(login, self.tf.cli_ok("account", "list").stdout)
        self.tf.cli_ok("account", "disable", login)
        self.assertEqual(self.sql("SELECT enabled FROM accounts WHERE login = %s"
                                  % sql_quote(login)), "f")
        self.tf.cli_ok("account", "enable", login)
        self.assertEqual(self.sql("SELECT enabled FROM accounts WHERE login = %s"
                                  % sql_quote(login)), "t")
        self.tf.cli_ok("account", "remove", login)
        self.assertNotIn(login, self.tf.cli_ok("account", "list").stdout)
        self.assertEqual(self.sql("SELECT count(*) FROM accounts WHERE login = %s"
                                  % sql_quote(login)), "0")

    def test_commands_on_unknown_account_fail(self):
        for args, stdin in ((["account", "passwd", "ghost@example.test", "--password-stdin"],
                             "x\n"),
                            (["account", "disable", "ghost@example.test"], None),
                            (["account", "enable", "ghost@example.test"], None),
                            (["account", "remove", "ghost@example.test"], None),
                            (["sender", "add", "ghost@example.test", "ghost@example.test"],
                             None)):
            with self.subTest(args=args):
                self.assertFails(self.tf.cli(*args, stdin=stdin))
        self.assertEqual(self.sql("SELECT count(*) FROM sender_identities WHERE "
                                  "lower(login) = 'ghost@example.test'"), "0")

    # -- sender identities -----------------------------------------------------------------
    def test_sender_list_for_login(self):
        out = self.tf.cli_ok("sender", "list", "alice@example.test").stdout
        self.assertIn("alice@example.test", out)
        self.assertIn("alice.alias@example.test", out)

    def test_sender_list_all(self):
        out = self.tf.cli_ok("sender", "list").stdout
        self.assertIn("alice.alias@example.test", out)

    def test_sender_domain_and_address_kinds(self):
        login = unique("dom")
        self.tf.add_account(login, "pass")
        self.tf.add_sender(login, "dom.example")
        self.tf.add_sender(login, "one@other.example")
        col = "identity"
        rows = self.sql("SELECT kind || ' ' || %s FROM sender_identities WHERE login = %s "
                        "ORDER BY %s" % (col, sql_quote(login), col)).splitlines()
        self.assertEqual(rows, ["domain dom.example", "address one@other.example"])
        out = self.tf.cli_ok("sender", "list", login).stdout
        self.assertIn("dom.example", out)
        self.assertIn("one@other.example", out)

    def test_sender_remove(self):
        login = unique("rm") + "@example.test"
        self.tf.add_account(login, "pass")
        self.tf.add_sender(login, login)
        self.assertEqual(self.sql("SELECT count(*) FROM sender_identities WHERE login = %s"
                                  % sql_quote(login)), "1")
        self.tf.cli_ok("sender", "remove", login, login)
        self.assertEqual(self.sql("SELECT count(*) FROM sender_identities WHERE login = %s"
                                  % sql_quote(login)), "0")

    def test_sender_add_invalid_address_fails(self):
        login = unique("inv") + "@example.test"
        self.tf.add_account(login, "pass")
        for bad in ("a@b@c.test", "not an address", ""):
            with self.subTest(address=bad):
                self.assertFails(self.tf.cli("sender", "add", login, bad))
        self.assertEqual(self.sql("SELECT count(*) FROM sender_identities WHERE login = %s"
                                  % sql_quote(login)), "0")


if __name__ == "__main__":
    unittest.main()
