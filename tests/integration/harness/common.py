"""Small helpers shared by the fixtures: environment, paths, ports, temp dirs, waiting for a
condition, the seed of the tests' random choices, messages."""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
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
    # Not seeded on purpose: port numbers are no choice of the test, and test processes of
    # other checkouts run on this machine at the same time; with one seed they would all
    # name the same ports in the same order.
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


def test_seed():
    """The seed of every random choice the tests make: TRUEFROM_TEST_SEED when set, else
    one drawn at the first call. seeded_random() prints it, so a failing run can be
    replayed with the same choices."""
    global _seed
    if _seed is None:
        text = os.environ.get("TRUEFROM_TEST_SEED")
        _seed = int(text) if text else random.SystemRandom().randrange(1, 2**31)
    return _seed


_seed = None


def seeded_random(name):
    """A random.Random for the choices of one test, named e.g. by the test's id(): it
    depends only on the seed and the name, not on which tests ran before."""
    print("\n  %s: random choices from TRUEFROM_TEST_SEED=%d" % (name, test_seed()),
          file=sys.stderr, flush=True)
    return random.Random("%d:%s" % (test_seed(), name))


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
