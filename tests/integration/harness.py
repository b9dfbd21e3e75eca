"""Fixtures for truefrom's integration tests.

Everything here runs real processes on 127.0.0.1:
  PostgresCluster  a throwaway PostgreSQL cluster (initdb + pg_ctl, unix socket only)
  Sink             contrib/sink/truefrom-sink, the relay that stores what it receives
  Truefrom         the truefrom binary: config + certificate in a temp dir, the CLI, `serve`
  SMTPConn         a small raw SMTP client (plain, STARTTLS, implicit TLS) that shows
                   replies exactly as sent, for the cases smtplib hides or refuses to send
  IntegrationTestCase
                   unittest base class: start the fixtures once per class, stop them at
                   the end, and print the tail of every fixture's log when a test fails

Environment:
  TRUEFROM_BIN     the binary (default: <repo>/build/debug/truefrom)
  TRUEFROM_PG_BIN  PostgreSQL's bin directory (default: /usr/lib/postgresql/15/bin)
  TRUEFROM_KEEP    set to 1 to keep the temp dirs (their paths are printed)
  TRUEFROM_SANITIZED  1 when TRUEFROM_BIN is an AddressSanitizer build (set by CTest)

PostgreSQL refuses to run as root; when the tests run as root the cluster's programs run as
user `postgres` through `runuser -u postgres --`.  Standard library only.
"""
import base64
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SINK_SCRIPT = REPO / "contrib" / "sink" / "truefrom-sink"
PG_BIN = Path(os.environ.get("TRUEFROM_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOSTNAME = "mail.example.test"
IS_ROOT = os.geteuid() == 0
KEEP = os.environ.get("TRUEFROM_KEEP") == "1"


# ---------------------------------------------------------------------------------------------
# small helpers

def truefrom_bin():
    """Path of the truefrom binary; raises with a clear message when it is missing."""
    path = Path(os.environ.get("TRUEFROM_BIN", REPO / "build" / "debug" / "truefrom"))
    if not path.is_file() or not os.access(path, os.X_OK):
        how = "TRUEFROM_BIN=%s" % path if "TRUEFROM_BIN" in os.environ else \
            "default %s (set TRUEFROM_BIN to use another)" % path
        raise RuntimeError("truefrom binary not found or not executable: %s. "
                           "Build it first (e.g. cmake --preset debug && cmake --build "
                           "build/debug) or point TRUEFROM_BIN at it." % how)
    return path


_handed_out_ports = set()


def _ports_outside_the_ephemeral_range():
    """Ports below the kernel's ephemeral range: the kernel never picks them for a bind to
    port 0 or for the source of an outgoing connection, so a port this module names is not
    taken by some other socket between naming it and the server binding it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if low - 10000 < 1024:
        return None
    return range(low - 10000, low)


def free_port():
    """A TCP port on 127.0.0.1 that is free now and that no earlier call returned.

    Servers are configured before they start, so several ports are named at once: a port
    must never be named twice, and it must not be one the kernel hands to other sockets
    meanwhile (a port below the ephemeral range, where there is one)."""
    candidates = _ports_outside_the_ephemeral_range()
    rng = random.Random()
    for _ in range(1000):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", rng.choice(candidates) if candidates else 0))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1 after 1000 tries")


class ClosedPort:
    """A port nobody listens on: bound but not listening, so connects are refused and no
    other process can take it while this object lives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def make_tempdir(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    # traversable by user postgres (initdb/pg_ctl run as postgres when we are root)
    os.chmod(path, 0o755)
    return path


def remove_tempdir(path):
    if KEEP:
        print("kept %s" % path, file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)


def as_postgres(cmd):
    """Prefix a command so it runs as user postgres when we are root."""
    cmd = [str(c) for c in cmd]
    return ["runuser", "-u", "postgres", "--"] + cmd if IS_ROOT else cmd


def chown_postgres(*paths):
    if IS_ROOT:
        for p in paths:
            shutil.chown(p, "postgres", "postgres")


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def unique(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def make_message(from_addr, to_addrs, subject, body="Hello from the truefrom tests.\r\n",
                 extra_headers=()):
    """An RFC 5322 message as bytes with CRLF line ends."""
    if isinstance(to_addrs, str):
        to_addrs = [to_addrs]
    headers = ["From: <%s>" % from_addr,
               "To: %s" % ", ".join("<%s>" % a for a in to_addrs),
               "Subject: %s" % subject,
               "Date: Mon, 23 Nov 2026 10:00:00 +0000",
               "Message-ID: <%s@tests.example.test>" % uuid.uuid4().hex]
    headers += list(extra_headers)
    if isinstance(body, str):
        body = body.encode()
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def crypt_hash(password, method):
    """crypt(3) hash; method is 'sha512' or 'bcrypt'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # removed in Python 3.13; Debian 12 has 3.11
    m = {"sha512": crypt.METHOD_SHA512, "bcrypt": crypt.METHOD_BLOWFISH}[method]
    if m not in crypt.methods:
        raise RuntimeError("this libcrypt cannot make %s hashes" % method)
    h = crypt.crypt(password, crypt.mksalt(m))
    if not h or crypt.crypt(password, h) != h:
        raise RuntimeError("crypt() failed for %s" % method)
    return h


def eventually(check, timeout=5.0, interval=0.1):
    """Call check() until it stops raising AssertionError (for changes that reach a running
    server asynchronously, e.g. through LISTEN/NOTIFY); returns its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def first_header(message):
    """The first header field of a message, unfolded, as bytes."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    field = head[0]
    for line in head[1:]:
        if not line[:1] in (b" ", b"\t"):
            break
        field += b" " + line.strip()
    return field


def sql_quote(text):
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# PostgreSQL

def terminate(proc, timeout, what, details=lambda: ""):
    """SIGTERM `proc` and wait; kill it and raise when it outlives `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("%s did not exit within %ss of SIGTERM%s" % (what, timeout, details()))


class PostgresCluster:
    """A throwaway cluster: initdb into a temp dir, listen on a unix socket only."""

    def __init__(self, dbname="truefrom"):
        self.dbname = dbname
        self.tmp = make_tempdir("truefrom-pg-")
        self.base = self.tmp / "pg"            # owned by postgres
        self.data = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "postgres.log"
        self.port = free_port()                 # only names the socket: .s.PGSQL.<port>
        self.initialized = False
        self.running = False
        self.base.mkdir()
        self.sockdir.mkdir()
        os.chmod(self.base, 0o755)
        os.chmod(self.sockdir, 0o755)
        chown_postgres(self.base, self.sockdir)

    @property
    def conninfo(self):
        return "host=%s port=%d dbname=%s user=postgres" % (self.sockdir, self.port, self.dbname)

    def _run(self, cmd, **kw):
        p = subprocess.run(as_postgres(cmd), capture_output=True, text=True, timeout=60, **kw)
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s%s" % (
                " ".join(map(str, cmd)), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def _initdb(self):
        self._run([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                   "--no-locale", "-E", "UTF8", "--no-sync"])
        conf = ("\n# truefrom integration tests\n"
                "listen_addresses = ''\n"
                "unix_socket_directories = '%s'\n"
                "port = %d\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "max_connections = 100\n" % (self.sockdir, self.port))
        with open(self.data / "postgresql.conf", "a") as f:  # appending keeps the owner
            f.write(conf)
        self.initialized = True

    def start(self):
        if not self.initialized:
            self._initdb()
            self._pg_ctl_start()
            self.psql("CREATE DATABASE %s" % self.dbname, dbname="postgres")
        else:
            self._pg_ctl_start()
        return self

    def _pg_ctl_start(self):
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "30",
                   "start"])
        self.running = True

    def stop(self):
        if self.running:
            self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30",
                       "stop"])
            self.running = False

    def close(self):
        try:
            self.stop()
        finally:
            remove_tempdir(self.tmp)

    def psql(self, sql, dbname=None):
        """Run SQL (several statements allowed); returns unaligned, tuples-only output."""
        return self._run([PG_BIN / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", self.sockdir, "-p", str(self.port), "-U", "postgres",
                          "-d", dbname or self.dbname, "-f", "-"], input=sql)

    def columns(self, table):
        return self.psql("SELECT column_name FROM information_schema.columns "
                         "WHERE table_name = %s ORDER BY ordinal_position" % sql_quote(table)
                         ).split()

    def log_sources(self):
        return [("postgres.log", self.logfile)]


def postmaster_pid(data_dir):
    """PID of the postmaster running on data_dir, or None."""
    try:
        with open(Path(data_dir) / "postmaster.pid") as f:
            pid = int(f.readline())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    try:
        with open("/proc/%d/stat" % pid) as f:          # a zombie is not running
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
    except OSError:
        return None
    return pid


def process_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


# ---------------------------------------------------------------------------------------------
# the sink

class Sink:
    """contrib/sink/truefrom-sink on a free port, storing into a temp dir."""

    def __init__(self, *extra_args, port=None):
        self.tmp = make_tempdir("truefrom-sink-")
        self.save_dir = self.tmp / "msgs"
        self.logfile = self.tmp / "sink.log"
        self.extra_args = [str(a) for a in extra_args]
        self.proc = None
        self.port = port     # None: a free one at the first start; kept across restarts

    def start(self, timeout=10):
        if not os.access(SINK_SCRIPT, os.X_OK):
            raise RuntimeError("%s is missing or not executable" % SINK_SCRIPT)
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [str(SINK_SCRIPT), "--host", "127.0.0.1", "--port", str(self.port or 0),
             "--save-dir", str(self.save_dir)] + self.extra_args,
            stdout=subprocess.PIPE, stderr=self._log, bufsize=0)   # unbuffered: select() below
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise RuntimeError("sink did not say it is listening within %ss:\n%s"
                                   % (timeout, tail(self.logfile)))
            ch = self.proc.stdout.read(1)
            if not ch:
                raise RuntimeError("sink exited (%s):\n%s" % (self.proc.wait(), tail(self.logfile)))
            line += ch
        m = re.match(rb"sink listening on ([0-9.]+):(\d+)", line)
        if not m:
            raise RuntimeError("unexpected first line from sink: %r" % line)
        self.port = int(m.group(2))
        return self

    def messages(self):
        """[(envelope dict, raw bytes)] in arrival order."""
        out = []
        if not self.save_dir.is_dir():
            return out
        for name in sorted(os.listdir(self.save_dir)):
            if not (name.endswith(".eml") and name[:-4].isdigit()):
                continue
            base = self.save_dir / name[:-4]
            with open(str(base) + ".json") as f:
                meta = json.load(f)
            with open(str(base) + ".eml", "rb") as f:
                out.append((meta, f.read()))
        return out

    def count(self):
        return len(self.messages())

    def wait_for(self, n, timeout=10):
        """Wait until at least n messages are stored; returns all of them."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if len(msgs) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(msgs) < n:
            raise AssertionError("sink has %d messages after %ss, expected %d"
                                 % (len(msgs), timeout, n))
        return msgs

    def find(self, marker):
        if isinstance(marker, str):
            marker = marker.encode()
        return [(m, d) for m, d in self.messages() if marker in d]

    def wait_for_marker(self, marker, timeout=10):
        """The one stored message containing marker (fails if none or several)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(marker)
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(found) != 1:
            raise AssertionError("sink has %d messages containing %r, expected 1"
                                 % (len(found), marker))
        return found[0]

    def stop(self, timeout=5):
        if self.proc:
            terminate(self.proc, timeout, "sink")
        if self.proc:
            self.proc.stdout.close()
            self._log.close()

    def close(self):
        try:
            self.stop()
        finally:
            remove_tempdir(self.tmp)

    def log_sources(self):
        return [("sink.log", self.logfile)]


# ---------------------------------------------------------------------------------------------
# truefrom

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
        self.relay_extra = ""    # more [relay] keys, e.g. 'ca_file = "..."'
        self.relay_hosts = None  # ["host:port", ...] instead of relay_host and relay_port
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.extra_config = ""   # appended to the generated config (more sections)
        self.preexec = None      # run in the server's process before exec (e.g. setrlimit)
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
            "# written by tests/integration/harness.py",
            "[server]",
            'hostname = "%s"' % HOSTNAME,
            "max_message_size = %d" % self.max_message_size,
            "max_recipients = %d" % self.max_recipients,
            "",
            "[listen]",
            'submission = "127.0.0.1:%d"' % self.submission_port,
            'submissions = "127.0.0.1:%d"' % self.submissions_port,
            "",
            "[tls]",
            'certificate = "cert.pem"',
            'private_key = "key.pem"',
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
        self.proc = subprocess.Popen([str(self.bin), "serve", "--config", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=self.preexec)
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
        return self

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


# ---------------------------------------------------------------------------------------------
# raw SMTP client

def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines            # texts after "NNN-" / "NNN "

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\b", self.lines[0] if self.lines else "")
        return m.group(1) if m else None

    def __repr__(self):
        return "<%d %s>" % (self.code, " | ".join(self.lines))

    __str__ = __repr__


class SMTPConn:
    """Line-level SMTP client that keeps its own buffer, so that tests can see exactly which
    bytes the server sent and when."""

    def __init__(self, host, port, implicit_tls=False, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tls = False
        self.extensions = {}
        if implicit_tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
            self.tls = True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection; unread: %r" % self.buf)
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self):
        lines = []
        while True:
            line = self.read_line()
            m = re.match(r"^(\d{3})([ -])(.*)$", line)
            if not m:
                raise AssertionError("malformed reply line %r (after %r)" % (line, lines))
            lines.append(m.group(3))
            if m.group(2) == " ":
                return Reply(int(m.group(1)), lines)

    def expect(self, code, enhanced=None):
        r = self.read_reply()
        if r.code != code or (enhanced and r.enhanced != enhanced):
            raise AssertionError("expected %s %s, got %s" % (code, enhanced or "", r))
        return r

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.read_reply()

    def ehlo(self, name="client.example.test"):
        r = self.cmd("EHLO " + name)
        if r.code != 250:
            raise AssertionError("EHLO refused: %s" % r)
        self.extensions = {}
        for l in r.lines[1:]:
            word, _, arg = l.partition(" ")
            self.extensions[word.upper()] = arg
        return r

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS refused: %s" % r)
        if self.buf:
            raise AssertionError("server sent bytes after its 220 to STARTTLS, before the "
                                 "handshake: %r" % self.buf)
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.tls = True
        return r

    def auth_plain(self, login, password, authzid=""):
        token = base64.b64encode(("%s\0%s\0%s" % (authzid, login, password)).encode()).decode()
        return self.cmd("AUTH PLAIN " + token)

    def auth_login(self, login, password):
        r = self.cmd("AUTH LOGIN")
        if r.code != 334:
            return r
        r = self.cmd(base64.b64encode(login.encode()).decode())
        if r.code != 334:
            return r
        return self.cmd(base64.b64encode(password.encode()).decode())

    def send_data(self, message):
        """DATA + dot-stuffed message + CRLF.CRLF; returns the final reply (354 checked)."""
        r = self.cmd("DATA")
        if r.code != 354:
            return r
        if isinstance(message, str):
            message = message.encode()
        stuffed = re.sub(rb"(?m)^\.", b"..", message)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.send(stuffed + b".\r\n")
        return self.read_reply()

    def quit(self):
        try:
            r = self.cmd("QUIT")
        finally:
            self.close()
        return r

    def read_until_close(self, timeout=5):
        """Everything the server still sends until it closes (or timeout)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except (ConnectionError, OSError, socket.timeout):
            pass
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# unittest glue

class IntegrationTestCase(unittest.TestCase):
    """Subclasses implement start_fixtures() (a classmethod) and create their fixtures with
    cls.use(obj): obj.close() runs at the end of the class (also when start fails) and its
    logs are printed when a test of the class fails."""

    @classmethod
    def setUpClass(cls):
        cls._fixtures = []
        truefrom_bin()             # fail fast, with a clear message, when there is no binary
        try:
            cls.start_fixtures()
        except BaseException:
            cls.print_logs("setUpClass of %s failed" % cls.__name__)
            raise

    @classmethod
    def start_fixtures(cls):
        raise NotImplementedError

    @classmethod
    def start_stack(cls, accounts):
        """A cluster, a sink and a running server; `accounts` maps login -> (password,
        [owned sender identities])."""
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port))
        cls.srv.migrate()
        for login, (password, senders) in accounts.items():
            cls.srv.add_account(login, password)
            for sender in senders:
                cls.srv.add_sender(login, sender)
        cls.srv.start()

    @classmethod
    def use(cls, fixture):
        cls._fixtures.append(fixture)
        cls.addClassCleanup(fixture.close)
        return fixture

    @classmethod
    def print_logs(cls, why, lines=40):
        out = ["", "=" * 30 + " %s: fixture logs " % why + "=" * 30]
        for fx in getattr(cls, "_fixtures", []):
            for label, path in fx.log_sources():
                out.append("----- %s (%s), last %d lines -----" % (label, path, lines))
                out.append(tail(path, lines))
        print("\n".join(out), file=sys.stderr, flush=True)

    def assertReply(self, reply, code, enhanced, *words):
        """code must match; enhanced too unless None; each word must be in the text."""
        self.assertEqual(reply.code, code, "reply: %s" % reply)
        if enhanced is not None:
            self.assertEqual(reply.enhanced, enhanced, "reply: %s" % reply)
        for w in words:
            self.assertIn(w.lower(), reply.text.lower(), "reply: %s" % reply)

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self.print_logs(self.id())
        return out
