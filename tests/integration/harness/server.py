"""Truefrom: the truefrom binary with its own temp dir, certificate and config; its CLI and
`serve`."""
import os
import socket
import subprocess
import time
from pathlib import Path

from .common import (HOSTNAME, PG_BIN, as_postgres, free_port, make_tempdir, remove_tempdir,
                     tail, terminate, truefrom_bin)
from .postgres import postmaster_pid
from .smtp_client import SMTPConn


class Truefrom:
    """The truefrom binary with its own temp dir, certificate and config.

    database: a PostgresCluster, or None for the embedded mode (no [database] section).
    """

    def __init__(self, database, relay_port, *, relay_host="127.0.0.1", relay_starttls="none",
                 relay_mode="queue", max_message_size=10485760, max_recipients=50,
                 name="truefrom"):
        self.bin = truefrom_bin()
        self.database = database
        self.tmp = make_tempdir("truefrom-%s-" % name)
        self.state_dir = self.tmp / "state"
        self.state_dir.mkdir()
        os.chmod(self.state_dir, 0o755)
        self.config_path = self.tmp / "truefrom.toml"
        self.cert = self.tmp / "cert.pem"
        self.key = self.tmp / "key.pem"
        self.logfile = self.tmp / "truefrom.log"
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.relay_host = relay_host
        self.relay_port = relay_port
        self.relay_starttls = relay_starttls
        self.relay_mode = relay_mode
        self.server_extra = ""   # more [server] keys, e.g. "max_connections = 2"
        # Run as root, the suite serves as root (its key files are root's); test_privileges
        # sets it False and names a [server] user.
        self.run_as_root = True
        self.relay_extra = ""    # more [relay] keys, e.g. 'ca_file = "..."'
        self.tls_extra = ""      # more [tls] keys, e.g. 'min_version = "TLSv1.3"'
        self.relay_hosts = None  # ["host:port", ...] instead of relay_host and relay_port
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        # [limits] keys; the default keeps every test under the limits (they still count).
        self.limits = ("messages_per_hour = 1000000\nmessages_per_day = 1000000\n"
                       "recipients_per_day = 100000000")
        self.extra_config = ""   # appended to the generated config (more sections)
        self.preexec = None      # run in the server's process before exec (e.g. setrlimit)
        self.env = None          # the server's environment (None: this process's)
        self.proc = None
        self._make_certificate()
        self.write_config()

    def _make_certificate(self):
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(self.key), "-out", str(self.cert), "-subj", "/CN=" + HOSTNAME,
             "-addext", "subjectAltName=DNS:" + HOSTNAME],
            capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl req failed:\n" + p.stderr)
        os.chmod(self.key, 0o600)

    def config_text(self):
        lines = [
            "# written by tests/integration/harness/server.py",
            "[server]",
            'hostname = "%s"' % HOSTNAME,
            "max_message_size = %d" % self.max_message_size,
            "max_recipients = %d" % self.max_recipients,
            self.server_extra,
            "run_as_root = true" if self.run_as_root else "",
            # A stop waits this long for transactions under way (the default 30 s is more
            # than stop()'s timeout); a test that sets its own keeps it.
            "" if "drain_timeout" in self.server_extra else "drain_timeout = 5",
            "",
            "[listen]",
            'submission = "127.0.0.1:%d"' % self.submission_port,
            'submissions = "127.0.0.1:%d"' % self.submissions_port,
            "",
            "[tls]",
            'certificate = "cert.pem"',
            'private_key = "key.pem"',
            self.tls_extra,
            "",
        ]
        if self.database is not None:
            lines += ["[database]", 'url = "%s"' % self.database.conninfo, ""]
        lines += [
            "[relay]",
            'mode = "%s"' % self.relay_mode,
        ] + (["hosts = [%s]" % ", ".join('"%s"' % h for h in self.relay_hosts)]
             if self.relay_hosts else
             ['host = "%s"' % self.relay_host, "port = %d" % self.relay_port]) + [
            'starttls = "%s"' % self.relay_starttls,
            self.relay_extra,
            "",
            "[state]",
            'dir = "%s"' % self.state_dir,
            "",
            "[limits]",
            self.limits,
            "",
        ]
        return "\n".join(lines) + self.extra_config

    def write_config(self, text=None, path=None):
        path = Path(path or self.config_path)
        path.write_text(text if text is not None else self.config_text())
        return path

    def _note(self, text):
        with open(self.logfile, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def cli(self, *args, stdin=None, config=None, timeout=60):
        """Run `truefrom ARGS --config FILE`; returns the CompletedProcess (text)."""
        cmd = [str(self.bin)] + [str(a) for a in args]
        if config is not False:
            cmd += ["--config", str(config or self.config_path)]
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        self._note("$ %s  -> exit %d\n%s%s" % (" ".join(cmd[1:]), p.returncode,
                                                p.stdout, p.stderr))
        return p

    def cli_ok(self, *args, **kw):
        p = self.cli(*args, **kw)
        if p.returncode != 0:
            raise AssertionError("truefrom %s failed (exit %d):\nstdout: %s\nstderr: %s"
                                 % (" ".join(map(str, args)), p.returncode, p.stdout, p.stderr))
        return p

    def migrate(self):
        return self.cli_ok("db", "migrate")

    def add_account(self, login, password):
        return self.cli_ok("account", "add", login, "--password-stdin", stdin=password + "\n")

    def add_sender(self, login, address):
        return self.cli_ok("sender", "add", login, address)

    def start(self, timeout=30):
        self._log = open(self.logfile, "ab")
        self._log.write(b"$ truefrom serve --config %s\n" % str(self.config_path).encode())
        self._log.flush()
        log_from = self._log.tell()
        self.proc = subprocess.Popen([str(self.bin), "serve", "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=self.preexec,
                                     env=self.env)
        deadline = time.monotonic() + timeout
        waiting = [self.submission_port, self.submissions_port]
        while waiting:
            if self.proc.poll() is not None:
                raise RuntimeError("truefrom serve exited with %d during start:\n%s"
                                   % (self.proc.returncode, tail(self.logfile)))
            if time.monotonic() > deadline:
                raise RuntimeError("truefrom serve: ports %s not accepting after %ss:\n%s"
                                   % (waiting, timeout, tail(self.logfile)))
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=1).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        # The ports accept once bound, before the privilege drop and the rest of the start:
        # ready is the log line.
        while b" ready; relay " not in self._read_log(log_from):
            if self.proc.poll() is not None:
                raise RuntimeError("truefrom serve exited with %d during start:\n%s"
                                   % (self.proc.returncode, tail(self.logfile)))
            if time.monotonic() > deadline:
                raise RuntimeError("truefrom serve: no \"ready\" line after %ss:\n%s"
                                   % (timeout, tail(self.logfile)))
            time.sleep(0.02)
        return self

    def _read_log(self, offset):
        with open(self.logfile, "rb") as f:
            f.seek(offset)
            return f.read()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM; asserts that the server exits within timeout. Returns the exit status."""
        if self.proc is None:
            return None
        try:
            terminate(self.proc, timeout, "truefrom serve",
                      lambda: ":\n" + tail(self.logfile))
        finally:
            self._log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def close(self):
        try:
            self.stop()
        finally:
            try:
                for data_dir in self.embedded_clusters():   # never leak a postmaster
                    if postmaster_pid(data_dir):
                        subprocess.run(as_postgres([PG_BIN / "pg_ctl", "-D", data_dir, "-m",
                                                    "immediate", "-w", "stop"]),
                                       capture_output=True, timeout=60)
            finally:
                remove_tempdir(self.tmp)

    def embedded_clusters(self):
        """Data directories of PostgreSQL clusters under the state dir."""
        found = []
        for root, dirs, files in os.walk(self.state_dir):
            if "PG_VERSION" in files and "global" in dirs:
                found.append(Path(root))
                dirs[:] = []
        return found

    def log_text(self):
        """Everything serve and the CLI have logged so far."""
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_sources(self):
        out = [("truefrom.log (serve + cli)", self.logfile)]
        logs = sorted(Path(r) / f for r, _, fs in os.walk(self.state_dir) for f in fs
                      if f.endswith(".log"))
        out += [("state " + str(f.relative_to(self.state_dir)), f) for f in logs[:3]]
        for data_dir in self.embedded_clusters():
            for name in ("log", "pg_log"):
                d = data_dir / name
                if d.is_dir():
                    out += [("embedded " + f.name, f) for f in sorted(d.iterdir())[-1:]]
        return out

    # -- clients ---------------------------------------------------------------------------
    def try_auth(self, login, password, mechanism="PLAIN", implicit_tls=False):
        """Open a TLS session, try AUTH once, close; returns the Reply."""
        c = self.session(implicit_tls=implicit_tls)
        try:
            if mechanism == "PLAIN":
                return c.auth_plain(login, password)
            return c.auth_login(login, password)
        finally:
            c.close()

    def connect(self, implicit_tls=False, timeout=10):
        port = self.submissions_port if implicit_tls else self.submission_port
        return SMTPConn("127.0.0.1", port, implicit_tls=implicit_tls, timeout=timeout)

    def session(self, login=None, password=None, implicit_tls=False):
        """Connected, EHLO'd, TLS'd and (if login) authenticated with AUTH PLAIN."""
        c = self.connect(implicit_tls)
        try:
            c.expect(220)
            c.ehlo()
            if not implicit_tls:
                c.starttls()
                c.ehlo()
            if login is not None:
                r = c.auth_plain(login, password)
                if r.code != 235:
                    raise AssertionError("AUTH as %s failed: %s" % (login, r))
        except BaseException:
            c.close()
            raise
        return c
