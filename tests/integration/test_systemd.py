"""systemd (issue: operations, item 4): `serve` tells the service manager READY=1 once its
listeners and database are up and STOPPING=1 when it stops (libsystemd's sd_notify, to the
NOTIFY_SOCKET a test opens, as systemd would), and pings WATCHDOG=1 when WATCHDOG_USEC asks;
contrib/truefrom.service, installed by `cmake --install`, passes `systemd-analyze verify` and
rates "OK" in `systemd-analyze security`; the install never overwrites an existing config."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness import (REPO, IntegrationTestCase, PostgresCluster, Sink, Truefrom, make_tempdir,
                     remove_tempdir)


class NotifyTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.dir = make_tempdir("truefrom-notify-")
        cls.addClassCleanup(remove_tempdir, cls.dir)
        cls.notify_path = str(cls.dir / "notify")
        cls.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        cls.notify.bind(cls.notify_path)
        os.chmod(cls.notify_path, 0o777)     # the server writes it after giving root up
        cls.addClassCleanup(cls.notify.close)
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port, name="notify"))
        cls.srv.env = dict(os.environ, NOTIFY_SOCKET=cls.notify_path, WATCHDOG_USEC="400000")
        cls.srv.migrate()

    def messages(self, until, timeout=20):
        """Datagrams received until one contains `until`."""
        self.notify.settimeout(timeout)
        got = []
        while not any(until in m for m in got):
            got.append(self.notify.recv(4096).decode())
        return got

    def test_ready_watchdog_and_stopping(self):
        self.srv.start()
        got = self.messages("READY=1")
        ready = [m for m in got if "READY=1" in m][0]
        self.assertIn("STATUS=truefrom mail.example.test ready", ready)
        # After READY, the server has listened and reached the database: a client is served.
        with socket.create_connection(("127.0.0.1", self.srv.submission_port), timeout=10) as c:
            self.assertTrue(c.recv(512).startswith(b"220 "))
        pings = self.messages("WATCHDOG=1", timeout=5)
        self.assertTrue(any("WATCHDOG=1" in m for m in pings), pings)
        self.srv.proc.terminate()
        got = self.messages("STOPPING=1")
        self.assertTrue(any("STOPPING=1" in m for m in got), got)
        self.assertEqual(self.srv.stop(), 0)


def build_dir():
    return Path(os.environ.get("TRUEFROM_BIN", REPO / "build/debug/truefrom")).parent


def install(root, prefix="/usr"):
    return subprocess.run(["cmake", "--install", str(build_dir()), "--prefix", prefix],
                          env=dict(os.environ, DESTDIR=str(root)), check=True,
                          capture_output=True, text=True)


class InstallTests(unittest.TestCase):
    """`cmake --install` into a DESTDIR (issue: operations, item 6)."""

    def setUp(self):
        self.root = Path(tempfile.mkdtemp(prefix="truefrom-install-"))
        self.addCleanup(shutil.rmtree, self.root)

    def test_every_file_in_its_place(self):
        install(self.root)
        for path in ("usr/sbin/truefrom", "usr/lib/systemd/system/truefrom.service",
                     "etc/truefrom/truefrom.toml", "usr/share/doc/truefrom/README.md",
                     "usr/share/doc/truefrom/truefrom.toml.sample"):
            self.assertTrue((self.root / path).is_file(), path)
        self.assertTrue(os.access(self.root / "usr/sbin/truefrom", os.X_OK))
        unit = (self.root / "usr/lib/systemd/system/truefrom.service").read_text()
        self.assertIn("ExecStart=/usr/sbin/truefrom serve --config /etc/truefrom/truefrom.toml\n",
                      unit)
        self.assertIn("Type=notify", unit)
        self.assertEqual((self.root / "etc/truefrom/truefrom.toml").read_text(),
                         (REPO / "contrib/truefrom.toml.sample").read_text())
        # Another prefix: the unit names that binary.
        other = self.root / "other"
        install(other, "/usr/local")
        self.assertIn("ExecStart=/usr/local/sbin/truefrom serve",
                      (other / "usr/local/lib/systemd/system/truefrom.service").read_text())

    def test_an_existing_config_is_never_overwritten(self):
        config = self.root / "etc/truefrom/truefrom.toml"
        config.parent.mkdir(parents=True)
        config.write_text("# the admin's own\n")
        p = install(self.root)
        self.assertEqual(config.read_text(), "# the admin's own\n")
        self.assertIn("Keeping: %s" % config, p.stdout)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_the_unit_verifies(self):
        install(self.root)
        unit = (self.root / "usr/lib/systemd/system/truefrom.service").read_text()
        # verify checks that ExecStart is executable: point it at the binary under test.
        check = self.root / "check" / "truefrom.service"
        check.parent.mkdir()
        check.write_text(unit.replace("/usr/sbin/truefrom", str(build_dir() / "truefrom")))
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(check)],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stderr.strip(), "", "warnings about the unit")
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(check)],
                           capture_output=True, text=True)
        level = re.search(r"Overall exposure level for truefrom.service: ([0-9.]+)", p.stdout)
        self.assertTrue(level, p.stdout + p.stderr)
        self.assertLessEqual(float(level.group(1)), 3.5, p.stdout)


if __name__ == "__main__":
    unittest.main()
