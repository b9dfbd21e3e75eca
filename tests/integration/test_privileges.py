"""Privilege drop (issue: operations, item 5): started as root, `serve` binds its ports,
reads its TLS key, then runs as [server] user with that user's groups and cannot become
root again. The CLI run as root hands what the server reads later (DKIM keys) to that
user, so that `dkim keygen` as root followed by `serve` signs. The embedded cluster runs
as that user too, so that the server can still stop it. A missing user, or root named as
the user, stops the start with the command that fixes it. Root only (skipped otherwise)."""
import os
import pwd
import smtplib
import subprocess
import unittest

from harness import (IS_ROOT, IntegrationTestCase, PostgresCluster, Sink, Truefrom,
                     client_tls_context, eventually, make_message, postmaster_pid, unique)

USER = "truefrom-it"
ALICE, ALICE_PW = "alice@example.test", "alice-pass"


def ensure_user():
    """The unprivileged user the tests serve as (a system user, created once)."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(USER)


def ids(pid):
    """{"Uid": [real, effective, saved, fs], "Gid": [...], "Groups": [...]} of a process."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(v) for v in value.split()]
    return out


def serving_as_user(cls, database, name):
    """A sink and a server configured to serve as USER (not started), with ALICE."""
    cls.pw = ensure_user()
    cls.sink = cls.use(Sink()).start()
    cls.srv = cls.use(Truefrom(database, cls.sink.port, name=name))
    cls.srv.run_as_root = False
    cls.srv.server_extra = 'user = "%s"' % USER
    cls.srv.write_config()
    cls.srv.migrate()
    cls.srv.add_account(ALICE, ALICE_PW)
    cls.srv.add_sender(ALICE, ALICE)


def send(srv, sink, subject_prefix="priv"):
    marker = unique(subject_prefix)
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=15) as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, ALICE_PW)
        s.sendmail(ALICE, ["rcpt@dest.test"], make_message(ALICE, "rcpt@dest.test", marker))
    return sink.wait_for_marker(marker)


@unittest.skipUnless(IS_ROOT, "the privilege drop needs root")
class PrivilegeDropTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        serving_as_user(cls, cls.pg, "privileges")
        # As root, before the server starts: the key (file and directory) becomes the
        # server user's.
        cls.srv.cli_ok("dkim", "keygen", "example.test", "--selector", "priv1")
        cls.srv.cli_ok("dkim", "activate", "example.test", "priv1")
        cls.srv.start()

    def test_the_server_runs_as_the_user_with_its_groups(self):
        got = ids(self.srv.proc.pid)
        self.assertEqual(got["Uid"], [self.pw.pw_uid] * 4, got)
        self.assertEqual(got["Gid"], [self.pw.pw_gid] * 4, got)
        self.assertNotIn(0, got["Groups"], got)
        # Its threads too (setresuid applies to every thread of the process).
        for tid in os.listdir("/proc/%d/task" % self.srv.proc.pid):
            self.assertEqual(ids(int(tid))["Uid"][1], self.pw.pw_uid, "thread %s" % tid)
        self.assertIn("running as user %s (uid %d" % (USER, self.pw.pw_uid), self.srv.log_text())

    def test_mail_is_spooled_signed_and_relayed_as_the_user(self):
        meta, message = send(self.srv, self.sink)
        self.assertIn(b"DKIM-Signature:", message)
        self.assertIn(b"s=priv1", message)
        queue = self.srv.state_dir / "queue"
        owners = {}
        for root, dirs, files in os.walk(queue):
            for name in dirs + files:
                st = os.lstat(os.path.join(root, name))
                owners[os.path.join(root, name)] = st.st_uid
        self.assertTrue(owners)
        self.assertEqual({p: u for p, u in owners.items() if u != self.pw.pw_uid}, {},
                         "spool entries not owned by %s" % USER)

    def test_keygen_as_root_hands_the_key_to_the_user(self):
        key_dir = self.srv.state_dir / "dkim"
        self.assertEqual(os.stat(key_dir).st_uid, self.pw.pw_uid)
        keys = list(key_dir.glob("example.test.priv1.pem"))
        self.assertEqual(len(keys), 1, list(key_dir.iterdir()))
        st = os.stat(keys[0])
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (self.pw.pw_uid, 0o600))


@unittest.skipUnless(IS_ROOT, "the privilege drop needs root")
class StartRefusedTests(IntegrationTestCase):
    """What stops the start: the error names the key and the fix; nothing listens."""

    @classmethod
    def start_fixtures(cls):
        ensure_user()
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port, name="privfail"))
        cls.srv.run_as_root = False
        cls.srv.migrate()

    def serve_with(self, server_extra):
        self.srv.server_extra = server_extra
        path = self.srv.write_config(path=self.srv.config_path.parent / "refused.toml")
        p = subprocess.run([str(self.srv.bin), "serve", "--config", str(path)],
                           capture_output=True, text=True, timeout=60)
        return p

    def test_a_missing_user_names_the_command_that_creates_it(self):
        p = self.serve_with('user = "no-such-user-truefrom"')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('[server] user "no-such-user-truefrom" does not exist', p.stderr)
        self.assertIn("useradd --system", p.stderr)

    def test_root_as_the_user_needs_run_as_root(self):
        p = self.serve_with('user = "root"')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("run_as_root = true", p.stderr)

    def test_serving_as_root_is_a_choice_that_is_logged(self):
        self.srv.server_extra = "run_as_root = true"
        self.srv.write_config()
        self.srv.start()
        try:
            self.assertEqual(ids(self.srv.proc.pid)["Uid"][1], 0)
            self.assertIn("serving as root ([server] run_as_root = true)", self.srv.log_text())
        finally:
            self.assertEqual(self.srv.stop(), 0)


@unittest.skipUnless(IS_ROOT, "the privilege drop needs root")
class EmbeddedClusterTests(IntegrationTestCase):
    """The embedded default as root: the cluster runs as the server user, the server (no
    longer root) still reaches it, and stops it when it stops."""

    @classmethod
    def start_fixtures(cls):
        serving_as_user(cls, None, "privembedded")
        cls.srv.start()

    def test_cluster_runs_as_the_user_and_stops_with_the_server(self):
        send(self.srv, self.sink, "embedded")
        clusters = self.srv.embedded_clusters()
        self.assertEqual(len(clusters), 1, clusters)
        pid = postmaster_pid(clusters[0])
        self.assertTrue(pid)
        self.assertEqual(ids(pid)["Uid"][1], self.pw.pw_uid)
        # A CLI command as root while the server runs uses the same cluster.
        self.srv.cli_ok("sender", "add", ALICE, "alias@example.test")
        send(self.srv, self.sink, "embedded2")
        self.assertEqual(self.srv.stop(), 0)
        eventually(lambda: self.assertIsNone(postmaster_pid(clusters[0])), timeout=15)


if __name__ == "__main__":
    unittest.main()
