"""Sink: contrib/sink/truefrom-sink, the relay that stores what it receives."""
import json
import os
import re
import select
import subprocess
import time

from .common import SINK_SCRIPT, make_tempdir, remove_tempdir, tail, terminate


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
