"""Embedded mode: no [database] in the config -> truefrom runs a private PostgreSQL cluster
under the state directory (as user postgres when started as root)."""
import os
import pwd
import smtplib
import subprocess
import time
import unittest

from harness import (IS_ROOT, PG_BIN, IntegrationTestCase, Sink, Truefrom, as_postgres,
                     client_tls_context, make_message, postmaster_pid, process_uid, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


class EmbeddedDatabaseTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(None, cls.sink.port, name="embedded"))
        assert "[database]" not in cls.srv.config_path.read_text()
        cls.srv.migrate()
        cls.srv.add_account(ALICE, ALICE_PW)
        cls.srv.add_sender(ALICE, ALICE)
        cls.srv.start()

    def send_one(self):
        marker = unique("embedded")
        with smtplib.SMTP("127.0.0.1", self.srv.submission_port, timeout=15) as s:
            s.starttls(context=client_tls_context())
            s.login(ALICE, ALICE_PW)
            self.assertEqual(s.sendmail(ALICE, ["rcpt@dest.test"],
                                        make_message(ALICE, "rcpt@dest.test", marker)), {})
        meta, _ = self.sink.wait_for_marker(marker)
        self.assertEqual(meta["mail_from"], ALICE)

    def running_cluster(self):
        """(data dir, postmaster pid) of the running cluster under the state dir."""
        clusters = self.srv.embedded_clusters()
        self.assertTrue(clusters, "no PostgreSQL data directory under %s" % self.srv.state_dir)
        running = [(d, postmaster_pid(d)) for d in clusters if postmaster_pid(d)]
        self.assertEqual(len(running), 1, "running clusters under the state dir: %s (all: %s)"
                         % (running, clusters))
        return running[0]

    def test_embedded_cluster_lifecycle(self):
        # 1. the whole path works without a configured database
        self.send_one()

        # 2. the cluster lives under the state dir, runs as postgres when we are root
        data_dir, pid = self.running_cluster()
        self.assertEqual(os.path.realpath("/proc/%d/cwd" % pid), os.path.realpath(data_dir),
                         "postmaster %d does not run on %s" % (pid, data_dir))
        if IS_ROOT:
            self.assertEqual(process_uid(pid), pwd.getpwnam("postgres").pw_uid,
                             "embedded postmaster does not run as user postgres")

        # 3. graceful stop; the cluster is then stopped, or at least stoppable with pg_ctl
        self.assertEqual(self.srv.stop(), 0, "serve did not exit 0 on SIGTERM")
        deadline = time.monotonic() + 10
        while postmaster_pid(data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        if postmaster_pid(data_dir):
            print("\nnote: embedded cluster still running after serve stopped; "
                  "stopping it with pg_ctl", flush=True)
            p = subprocess.run(as_postgres([PG_BIN / "pg_ctl", "-D", data_dir, "-m", "fast",
                                            "-w", "-t", "30", "stop"]),
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, "pg_ctl stop failed: %s%s" % (p.stdout, p.stderr))
            self.assertIsNone(postmaster_pid(data_dir))

        # 4. a second start reuses the cluster (no second initdb, accounts still there)
        self.srv.start()
        data_dir_2, _ = self.running_cluster()
        self.assertEqual(data_dir_2, data_dir)
        self.send_one()


if __name__ == "__main__":
    unittest.main()
