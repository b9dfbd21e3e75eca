"""The relay client. RelayReplyTests: passthrough ([relay] mode = "passthrough"), the client
hears the relay's verdict; one cluster shared by three servers, each with its own relay:
  srv_451   -> a sink (PIPELINING, CHUNKING) that answers every message with
               "451 4.3.2 sink says later"
  srv_554   -> a sink (PIPELINING) that answers every DATA with "554 5.7.1 sink refuses this"
  srv_down  -> a port where nobody listens (451 4.4.1 expected)
RelayFramingTests: the same messages through relays that offer neither PIPELINING nor
CHUNKING, only PIPELINING, or both (one write per transaction, BDAT).
PooledConnectionTests: a reused relay connection that turns out to be closed is replaced by
a fresh one; one that goes silent after the message went out (BDAT) is not.
"""
import smtplib
import socket
import threading
import unittest

from harness import (ClosedPort, IntegrationTestCase, PostgresCluster, Sink, Truefrom,
                     client_tls_context, eventually, make_message, unique)

ALICE, ALICE_PW = "alice@example.test", "alice-pass"


class ClosedPortFixture(ClosedPort):
    def log_sources(self):
        return []


class RelayReplyTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink_451 = cls.use(Sink("--data-reply", "451 4.3.2 sink says later",
                                    "--pipelining", "--chunking")).start()
        cls.sink_554 = cls.use(Sink("--data-reply", "554 5.7.1 sink refuses this",
                                    "--pipelining")).start()
        cls.dead = cls.use(ClosedPortFixture())
        cls.srv_451 = cls.use(Truefrom(cls.pg, cls.sink_451.port, name="relay451",
                                       relay_mode="passthrough"))
        cls.srv_554 = cls.use(Truefrom(cls.pg, cls.sink_554.port, name="relay554",
                                       relay_mode="passthrough"))
        cls.srv_down = cls.use(Truefrom(cls.pg, cls.dead.port, name="relaydown",
                                        relay_mode="passthrough"))
        # the three share one database: migrate must be idempotent
        for srv in (cls.srv_451, cls.srv_554, cls.srv_down):
            srv.migrate()
        cls.srv_451.add_account(ALICE, ALICE_PW)
        cls.srv_451.add_sender(ALICE, ALICE)
        for srv in (cls.srv_451, cls.srv_554, cls.srv_down):
            srv.start()

    def send(self, srv):
        """One transaction; returns (step, reply) for the first reply that is not the usual
        success, step being "MAIL", "RCPT", "DATA" or "end of data"."""
        c = srv.session(ALICE, ALICE_PW)
        try:
            for step, line, ok in [("MAIL", "MAIL FROM:<%s>" % ALICE, 250),
                                   ("RCPT", "RCPT TO:<rcpt@dest.test>", 250),
                                   ("DATA", "DATA", 354)]:
                r = c.cmd(line)
                if r.code != ok:
                    return step, r
            c.send(make_message(ALICE, "rcpt@dest.test", unique("relay")) + b".\r\n")
            r = c.read_reply()
            # the session survives a relay refusal
            self.assertEqual(c.cmd("RSET").code, 250)
            return "end of data", r
        finally:
            c.close()

    def test_relay_temporary_refusal_passed_back(self):
        step, r = self.send(self.srv_451)
        self.assertEqual(step, "end of data", r)
        self.assertReply(r, 451, "4.3.2")

    def test_relay_permanent_refusal_passed_back(self):
        step, r = self.send(self.srv_554)
        self.assertEqual(step, "end of data", r)
        self.assertReply(r, 554, "5.7.1")

    def test_relay_refusal_with_smtplib(self):
        with smtplib.SMTP("127.0.0.1", self.srv_451.submission_port, timeout=15) as s:
            s.starttls(context=client_tls_context())
            s.login(ALICE, ALICE_PW)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail(ALICE, ["rcpt@dest.test"], make_message(ALICE, "rcpt@dest.test", "x"))
            self.assertEqual(cm.exception.smtp_code, 451)
            self.assertTrue(cm.exception.smtp_error.startswith(b"4.3.2"), cm.exception)

    def test_relay_unreachable_451_4_4_1(self):
        step, r = self.send(self.srv_down)     # at whichever step the server contacts the relay
        self.assertReply(r, 451, "4.4.1")
        self.assertTrue(self.srv_down.alive(), "server died when the relay was unreachable")


REFUSED = "refused@dest.test"
FRAMINGS = {                     # sink options -> how the message reaches it
    "sequential": ((), "DATA"),
    "pipelining": (("--pipelining",), "DATA"),
    "chunking": (("--pipelining", "--chunking"), "BDAT"),
}
# Dots at line starts (stuffed for DATA, sent as they are with BDAT), a lone dot line, a
# long line, 8-bit text.
BODY = (b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n" + b"x" * 990 +
        b"\r\n\xc3\xa9t\xc3\xa9\r\n")


class RelayFramingTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sinks, cls.passthrough, cls.queue = {}, {}, {}
        for name, (options, _) in FRAMINGS.items():
            cls.sinks[name] = cls.use(Sink("--rcpt-reply", REFUSED + "=550 5.1.1 no such user",
                                           *options)).start()
            cls.passthrough[name] = cls.use(Truefrom(cls.pg, cls.sinks[name].port,
                                                     name="pass-" + name,
                                                     relay_mode="passthrough"))
            cls.queue[name] = cls.use(Truefrom(cls.pg, cls.sinks[name].port, name="queue-" + name))
        servers = list(cls.passthrough.values()) + list(cls.queue.values())
        for srv in servers:
            srv.migrate()
        servers[0].add_account(ALICE, ALICE_PW)
        servers[0].add_sender(ALICE, ALICE)
        for srv in servers:
            srv.start()

    def submit(self, c, rcpts, marker):
        """One transaction on session `c`; the reply to the end of the data."""
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
        for rcpt in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250, "2.1.5")
        return c.send_data(make_message(ALICE, rcpts, marker, BODY))

    def assertStored(self, sink, marker, rcpts, via):
        meta, data = sink.wait_for_marker(marker)
        self.assertEqual((meta["rcpt_tos"], meta["via"]), (rcpts, via))
        self.assertTrue(data.endswith(BODY), data[-300:])

    def test_message_arrives_as_submitted(self):
        for name, (_, via) in FRAMINGS.items():
            for srv in (self.passthrough[name], self.queue[name]):
                with self.subTest(framing=name, mode=srv.relay_mode):
                    marker = unique("framing")
                    c = srv.session(ALICE, ALICE_PW)
                    try:
                        self.assertEqual(self.submit(c, ["a@dest.test"], marker).code, 250)
                    finally:
                        c.close()
                    self.assertStored(self.sinks[name], marker, ["a@dest.test"], via)

    def test_passthrough_refused_recipient_sends_nothing(self):
        # One recipient refused by the relay, alone or beside an accepted one: passthrough
        # is all-or-nothing, so the client hears the refusal and nothing is delivered; the
        # relay connection stays usable for the next message.
        for name, (_, via) in FRAMINGS.items():
            for rcpts in ([REFUSED], ["ok@dest.test", REFUSED]):
                with self.subTest(framing=name, recipients=rcpts):
                    marker, after = unique("refused"), unique("after")
                    c = self.passthrough[name].session(ALICE, ALICE_PW)
                    try:
                        r = self.submit(c, rcpts, marker)
                        self.assertReply(r, 550, "5.1.1")
                        self.assertIn("RCPT TO:<%s>" % REFUSED, r.text)
                        self.assertEqual(self.submit(c, ["ok@dest.test"], after).code, 250)
                    finally:
                        c.close()
                    self.assertStored(self.sinks[name], after, ["ok@dest.test"], via)
                    self.assertEqual(self.sinks[name].find(marker), [])

    def test_queue_delivers_to_the_recipients_the_relay_accepts(self):
        for name, (_, via) in FRAMINGS.items():
            with self.subTest(framing=name):
                marker = unique("partial")
                c = self.queue[name].session(ALICE, ALICE_PW)
                try:
                    self.assertEqual(self.submit(c, ["ok@dest.test", REFUSED], marker).code, 250)
                finally:
                    c.close()
                sink = self.sinks[name]
                # the message, and the report of the refused recipient to the sender
                eventually(lambda: self.assertEqual(len(sink.find(marker)), 2), timeout=10)
                by_rcpt = {tuple(m["rcpt_tos"]): (m, d) for m, d in sink.find(marker)}
                meta, data = by_rcpt[("ok@dest.test",)]
                self.assertEqual(meta["via"], via)
                self.assertTrue(data.endswith(BODY), data[-300:])
                meta, report = by_rcpt[(ALICE,)]
                self.assertEqual(meta["mail_from"], "<>")       # aiosmtpd keeps the brackets
                self.assertIn(REFUSED.encode(), report)


class ScriptedRelay:
    """A relay offering PIPELINING and CHUNKING whose n-th transaction (counted over all
    connections, from 0) does what `script[n]` says: "ok" (replies, keeps the connection),
    "ok-close" (replies, then closes the connection: a pooled connection gone stale),
    "ok-mute" (replies, then never answers anything on that connection again: a half-dead
    pooled connection), "silent" (reads the whole transaction, message included, and never
    answers) or "mute-data" (answers MAIL and RCPT, reads the message, never answers it).
    `transactions` lists (connection number, action, message) in order; `commands` the
    command lines of each connection; `closed` the connections truefrom closed."""

    def __init__(self, script):
        self.script = script
        self.transactions = []
        self.commands = {}
        self.closed = set()
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                number = self.connections
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn, number):
        buf = b""

        def read(n=None):
            nonlocal buf
            while (b"\r\n" not in buf) if n is None else (len(buf) < n):
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            end = buf.index(b"\r\n") + 2 if n is None else n
            out, buf = buf[:end], buf[end:]
            return out

        action = None
        muted = False
        with self.lock:
            self.commands[number] = []
        try:
            conn.sendall(b"220 relay.test ESMTP\r\n")
            while True:
                line = read().decode().strip()
                verb = line.split(" ")[0].upper()
                with self.lock:
                    self.commands[number].append(line)
                if muted:
                    continue
                if verb == "EHLO":
                    conn.sendall(b"250-relay.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
                elif verb == "MAIL":
                    with self.lock:
                        action = self.script[len(self.transactions)]
                        self.transactions.append([number, action, None])
                        txn = self.transactions[-1]
                    if action != "silent":
                        conn.sendall(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    if action != "silent":
                        conn.sendall(b"250 2.1.5 ok\r\n")
                elif verb == "BDAT":
                    txn[2] = read(int(line.split(" ")[1]))
                    if action in ("silent", "mute-data"):
                        continue
                    conn.sendall(b"250 2.0.0 stored\r\n")
                    if action == "ok-close":
                        break
                    muted = action == "ok-mute"
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 ok\r\n")
        except EOFError:
            with self.lock:
                self.closed.add(number)
        except OSError:
            pass
        conn.close()

    def close(self):
        self.sock.close()

    def log_sources(self):
        return []


class PooledConnectionTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        # message 1 keeps the connection for the pool; message 2 meets the stale connection
        # (closed by the relay) and goes out on a fresh one
        cls.stale = cls.use(ScriptedRelay(["ok-close", "ok", "ok"]))
        # message 2 goes out on the pooled connection and the relay never answers
        cls.slow = cls.use(ScriptedRelay(["ok", "silent", "ok"]))
        cls.srv_stale = cls.use(Truefrom(cls.pg, cls.stale.port, name="pool-stale",
                                         relay_mode="passthrough"))
        cls.srv_slow = cls.use(Truefrom(cls.pg, cls.slow.port, name="pool-slow",
                                        relay_mode="passthrough"))
        for srv in (cls.srv_stale, cls.srv_slow):
            srv.relay_extra = "command_timeout = 2"
            srv.write_config()
            srv.migrate()
        cls.srv_stale.add_account(ALICE, ALICE_PW)
        cls.srv_stale.add_sender(ALICE, ALICE)
        for srv in (cls.srv_stale, cls.srv_slow):
            srv.start()

    def submit(self, srv, marker):
        c = srv.session(ALICE, ALICE_PW)
        try:
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), 250, "2.1.0")
            self.assertReply(c.cmd("RCPT TO:<a@dest.test>"), 250, "2.1.5")
            return c.send_data(make_message(ALICE, ["a@dest.test"], marker))
        finally:
            c.close()

    def test_a_stale_pooled_connection_is_replaced(self):
        first, second = unique("pool-first"), unique("pool-second")
        self.assertReply(self.submit(self.srv_stale, first), 250, "2.0.0")
        # the relay has closed the connection truefrom keeps for the next message
        eventually(lambda: self.assertEqual(len(self.stale.transactions), 1), timeout=5)
        self.assertReply(self.submit(self.srv_stale, second), 250, "2.0.0")
        got = [(n, marker in (m or b"").decode()) for n, _, m in self.stale.transactions
               for marker in [second]]
        self.assertEqual(got, [(0, False), (1, True)])

    def test_silence_after_the_message_is_not_resent(self):
        first, second = unique("pool-first"), unique("pool-second")
        self.assertReply(self.submit(self.srv_slow, first), 250, "2.0.0")
        # the message went out in one write with BDAT on the pooled connection, and the
        # relay never answered: it may have it, so the client hears 451 and truefrom does
        # not send it again on a fresh connection
        r = self.submit(self.srv_slow, second)
        self.assertReply(r, 451, "4.4.1", "timed out")
        # (the relay is now marked down, and its prober may open a connection: it sends no
        # transaction; a resend would show as a third one)
        self.assertEqual([(n, a) for n, a, _ in self.slow.transactions], [(0, "ok"), (0, "silent")])
        self.assertIn(second.encode(), self.slow.transactions[1][2])


if __name__ == "__main__":
    unittest.main()
