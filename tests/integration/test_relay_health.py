"""Relay health: per-phase timeouts, the check of a pooled connection before reuse and its
idle limit, a relay that stops answering marked down for every delivery (one log line down,
one up), everything deferred meanwhile retried at once when it answers again, and `queue
flush` cutting an attempt stuck on a relay that does not answer.

BlackHole stands for a hung relay: it accepts TCP connections and never says a word. Its
restart (`restart()`) closes every connection it accepted, as the kernel does when a hung
process is killed; `stop_listening()` closes only the listener (the relay moved: the old
connections stay black-holed).
"""
import re
import socket
import threading
import time
import unittest

from harness import (IntegrationTestCase, PostgresCluster, Sink, Truefrom, free_port,
                     make_message, seeded_random, unique)
from test_queue import ALICE, PW, alice_server, message_id_of, queued_ids, submit
from test_relay import ScriptedRelay

# How the tests bound the relay's phases (the defaults, 10/30/30/120 s, would make each
# test wait that long for what it shows in a second or two).
BLACKHOLE_RELAY = "greeting_timeout = 2\ncommand_timeout = 2"


class BlackHole:
    """A relay that takes connections and never answers."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.accepted = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted.append(conn)

    def connections(self):
        with self.lock:
            return len(self.accepted)

    def stop_listening(self):
        # shutdown() first: a close() alone leaves the socket listening while the accept
        # thread is blocked in accept() on it (Linux), and the port taken
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def restart(self):
        """Closes the listener and every accepted connection."""
        self.stop_listening()
        with self.lock:
            for c in self.accepted:
                c.close()

    def close(self):
        self.restart()

    def log_sources(self):
        return []


def down_lines(srv, port):
    return re.findall(r"relay 127\.0\.0\.1:%d down: .*" % port, srv.log_text())


def up_lines(srv, port):
    return re.findall(r"relay 127\.0\.0\.1:%d up again after .*" % port, srv.log_text())


def wait_for(check, timeout, interval=0.05):
    """check() until it returns a true value; the value, or AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not within %s s: %s" % (timeout, check.__doc__ or check))
        time.sleep(interval)


class BlackHoleThenHealthyTests(IntegrationTestCase):
    """The target of issue 23 item 5: with the relay black-holed, then healthy, every queued
    message is delivered within 10 s of the relay's return, none twice. The queue's own
    backoff is the default (60 s, doubling): only the relay's return can bring them back
    that soon."""

    N = 24

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.hole = cls.use(BlackHole())
        cls.srv = cls.use(Truefrom(cls.pg, cls.hole.port, name="blackhole"))
        cls.srv.relay_extra = BLACKHOLE_RELAY
        cls.srv.write_config()
        cls.srv.migrate()
        cls.srv.add_account(ALICE, PW)
        cls.srv.add_sender(ALICE, ALICE)
        cls.srv.start()

    def test_every_message_within_10_s_of_the_return_none_twice(self):
        marker = unique("blackhole")
        rng = seeded_random(self.id())
        ids = []
        for i in range(self.N):
            rcpts = ["r%d@dest.test" % n for n in range(rng.randint(1, 3))]
            code, text = submit(self.srv, "%s %d" % (marker, i), rcpts=rcpts)
            self.assertEqual(code, 250, text)
            ids.append(text.split()[-1].decode())

        def all_deferred():
            """every message has had its attempt and waits"""
            listing = self.srv.cli_ok("queue", "list").stdout
            return all(re.search(r"(?m)^%s  deferred " % re.escape(q), listing) for q in ids)
        wait_for(all_deferred, timeout=30, interval=0.2)
        self.assertEqual(len(down_lines(self.srv, self.hole.port)), 1, self.srv.log_text())
        # the deliveries after the first timeouts did not wait: they skipped the down relay
        self.assertIn("down for", self.srv.log_text())

        self.hole.restart()
        sink = self.use(Sink(port=self.hole.port)).start()
        back = time.monotonic()

        def delivered():
            """all messages at the sink"""
            return len(sink.find(marker)) >= self.N
        wait_for(delivered, timeout=60)
        elapsed = time.monotonic() - back
        print("\n  black hole then healthy: %d messages delivered %.1f s after the relay's "
              "return" % (self.N, elapsed))
        self.assertLess(elapsed, 10.0)

        # A sentinel after them, and an empty queue: nothing more will come.
        sentinel = unique("sentinel")
        self.assertEqual(submit(self.srv, sentinel)[0], 250)
        sink.wait_for_marker(sentinel, timeout=15)
        wait_for(lambda: queued_ids(self.srv.cli_ok("queue", "list").stdout) == [], timeout=20)
        got = [message_id_of(raw) for _, raw in sink.find(marker)]
        self.assertEqual(len(got), self.N, got)
        self.assertEqual(len(set(got)), self.N, "a message arrived twice: %s" % got)
        self.assertEqual(len(up_lines(self.srv, self.hole.port)), 1, self.srv.log_text())
        self.assertEqual(len(down_lines(self.srv, self.hole.port)), 1, self.srv.log_text())


class PhaseTimeoutTests(IntegrationTestCase):
    """Passthrough: the client hears 451 4.4.1 once the phase's own timeout has passed,
    with the phase named; and once the relay is down, the next client hears it at once."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.hole = cls.use(BlackHole())
        # answers MAIL and RCPT, takes the message and never answers it
        cls.mute = cls.use(ScriptedRelay(["mute-data"] * 4))
        cls.srv_greeting = cls.use(Truefrom(cls.pg, cls.hole.port, name="greeting",
                                            relay_mode="passthrough"))
        cls.srv_greeting.relay_extra = "greeting_timeout = 1\ncommand_timeout = 60"
        cls.srv_data = cls.use(Truefrom(cls.pg, cls.mute.port, name="data",
                                        relay_mode="passthrough"))
        cls.srv_data.relay_extra = "data_timeout = 1\ncommand_timeout = 60"
        for srv in (cls.srv_greeting, cls.srv_data):
            srv.write_config()
            srv.migrate()
        cls.srv_greeting.add_account(ALICE, PW)
        cls.srv_greeting.add_sender(ALICE, ALICE)
        for srv in (cls.srv_greeting, cls.srv_data):
            srv.start()

    def send(self, srv, marker):
        c = srv.session(ALICE, PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<a@dest.test>"), 250, "2.1.5")
            started = time.monotonic()
            r = c.send_data(make_message(ALICE, ["a@dest.test"], marker))
            return r, time.monotonic() - started
        finally:
            c.close()

    def test_greeting_timeout(self):
        r, took = self.send(self.srv_greeting, unique("greeting"))
        self.assertReply(r, 451, "4.4.1", "timed out waiting for the greeting (1 s)")
        self.assertLess(took, 10)
        self.assertEqual(len(down_lines(self.srv_greeting, self.hole.port)), 1)
        # marked down for every delivery: the next one does not wait for a timeout
        r, took = self.send(self.srv_greeting, unique("greeting-next"))
        self.assertReply(r, 451, "4.4.1", "down for")
        self.assertLess(took, 0.9)

    def test_data_timeout(self):
        r, took = self.send(self.srv_data, unique("data"))
        self.assertReply(r, 451, "4.4.1", "timed out waiting for the reply to the message (1 s)")
        self.assertLess(took, 10)
        self.assertEqual([a for _, a, _ in self.mute.transactions][:1], ["mute-data"])


class PooledConnectionHealthTests(IntegrationTestCase):
    """A pooled connection that idled is checked (RSET) before it carries a message, and one
    that idled past idle_limit is closed."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        # transaction 0 is answered and its connection then goes mute; the next ones are
        # answered on a new connection
        cls.muted = cls.use(ScriptedRelay(["ok-mute", "ok", "ok"]))
        cls.idle = cls.use(ScriptedRelay(["ok", "ok"]))
        cls.srv_check = cls.use(Truefrom(cls.pg, cls.muted.port, name="check",
                                         relay_mode="passthrough"))
        cls.srv_check.relay_extra = "check_after = 0\ncheck_timeout = 1\ncommand_timeout = 60"
        cls.srv_idle = cls.use(Truefrom(cls.pg, cls.idle.port, name="idle",
                                        relay_mode="passthrough"))
        cls.srv_idle.relay_extra = "idle_limit = 1"
        for srv in (cls.srv_check, cls.srv_idle):
            srv.write_config()
            srv.migrate()
        cls.srv_check.add_account(ALICE, PW)
        cls.srv_check.add_sender(ALICE, ALICE)
        for srv in (cls.srv_check, cls.srv_idle):
            srv.start()

    def send(self, srv, marker):
        c = srv.session(ALICE, PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<a@dest.test>"), 250, "2.1.5")
            started = time.monotonic()
            return c.send_data(make_message(ALICE, ["a@dest.test"], marker)), \
                time.monotonic() - started
        finally:
            c.close()

    def test_a_mute_pooled_connection_is_checked_and_replaced(self):
        first, second = unique("check-first"), unique("check-second")
        self.assertReply(self.send(self.srv_check, first)[0], 250, "2.0.0")
        r, took = self.send(self.srv_check, second)
        self.assertReply(r, 250, "2.0.0")
        self.assertLess(took, 10)   # the check's 1 s, not command_timeout's 60
        self.assertIn("RSET", self.muted.commands[0])   # the check, unanswered
        self.assertEqual([(n, second in (m or b"").decode()) for n, _, m in
                          self.muted.transactions], [(0, False), (1, True)])

    def test_an_idle_connection_is_closed_after_idle_limit(self):
        self.assertReply(self.send(self.srv_idle, unique("idle"))[0], 250, "2.0.0")
        wait_for(lambda: 0 in self.idle.closed, timeout=10)


class FlushCutsStuckAttemptTests(IntegrationTestCase):
    """`queue flush` cuts a delivery attempt that has waited more than 5 s for a relay that
    never answers (here its greeting, with greeting_timeout 60), and retries it at once."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.hole = cls.use(BlackHole())
        cls.srv = cls.use(Truefrom(cls.pg, cls.hole.port, name="flushcut"))
        cls.srv.relay_extra = "greeting_timeout = 60"
        cls.srv.write_config()
        cls.srv.migrate()
        cls.srv.add_account(ALICE, PW)
        cls.srv.add_sender(ALICE, ALICE)
        cls.srv.start()

    def test_flush_cuts_the_stuck_attempt(self):
        marker = unique("stuck")
        code, text = submit(self.srv, marker)
        self.assertEqual(code, 250, text)
        wait_for(lambda: self.hole.connections() >= 1, timeout=10)
        # The relay moves: the old connection stays black-holed, the port answers again.
        self.hole.stop_listening()
        sink = self.use(Sink(port=self.hole.port)).start()

        def cut():
            """queue flush reports the stuck attempt cut"""
            return "cut 1 delivery attempt" in self.srv.cli_ok("queue", "flush").stdout
        wait_for(cut, timeout=20, interval=0.5)
        flushed = time.monotonic()
        sink.wait_for_marker(marker, timeout=15)
        self.assertLess(time.monotonic() - flushed, 10)
        self.assertIn("queue: flush cut 1 relay connection(s)", self.srv.log_text())
        self.assertEqual(down_lines(self.srv, self.hole.port), [])   # a cut is no outage


if __name__ == "__main__":
    unittest.main()
