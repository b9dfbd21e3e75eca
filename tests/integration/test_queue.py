"""The durable queue ([relay] mode = "queue", the default): 250 means the message is on
disk, and it reaches the relay through outages, crashes and partial refusals.

Real parts: a throwaway PostgreSQL, the truefrom binary, truefrom-sink as the relay
(stopped and restarted on the same port to simulate an outage), smtplib as the client.
"""
import email
import email.policy
import os
import json
import re
import resource
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import unittest

from harness import (ClosedPort, IntegrationTestCase, PostgresCluster, Sink, Truefrom,
                     client_tls_context, eventually, make_message, make_tempdir,
                     remove_tempdir, seeded_random, unique)

ALICE, PW = "alice@example.test", "alice-pass"
REFUSED = "refused@dest.test"

QUEUE_CONFIG = """
[queue]
retry_first = 1
retry_max = 2
"""


def message_id_of(raw):
    m = re.search(rb"^Message-ID:\s*(<[^>\r\n]+>)", raw, re.M | re.I)
    return m.group(1).decode() if m else None


def submit(srv, subject, rcpts=("bob@dest.test",), sender=ALICE, body=None, timeout=15):
    """One message through smtplib; returns the server's 250 reply to the end of data and
    raises SMTPDataError for any other (as smtplib's sendmail does)."""
    msg = make_message(ALICE, list(rcpts), subject, **({"body": body} if body else {}))
    # local_hostname: without it smtplib resolves this machine's name for every connection
    # (a 5 s stall whenever that lookup goes to a DNS server that does not answer).
    with smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=timeout,
                      local_hostname="client.example.test") as s:
        s.starttls(context=client_tls_context())
        s.login(ALICE, PW)
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (code, text)
        code, text = s.data(msg)
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        return code, text


def queued_ids(listing):
    """The queue ids `truefrom queue list` shows."""
    return re.findall(r"(?m)^(\S+)  (?:active|delivering|deferred|held|unreadable)\b", listing)


def deliver_sentinel(test, srv, left=()):
    """A message submitted after the ones under test and waited for at the sink, then a
    queue holding exactly the ids in `left`: by then the server has delivered whatever the
    earlier messages could still make it deliver, so what the sink does not hold now will
    not come later (an absence asserted after a fact, not after a pause)."""
    marker = unique("sentinel")
    code, text = submit(srv, marker)
    test.assertEqual(code, 250, text)
    test.sink.wait_for_marker(marker, timeout=15)

    def settled():
        listing = srv.cli_ok("queue", "list").stdout
        test.assertEqual(sorted(queued_ids(listing)), sorted(left), listing)
    eventually(settled, timeout=20)


def alice_server(cls, relay_port, name, extra_config=QUEUE_CONFIG, preexec=None, relay_extra=""):
    """A started truefrom (queue mode) relaying to relay_port, with the account ALICE."""
    srv = cls.use(Truefrom(cls.pg, relay_port, name=name))
    srv.extra_config = extra_config
    srv.relay_extra = relay_extra
    srv.preexec = preexec
    srv.write_config()
    srv.migrate()
    srv.add_account(ALICE, PW)
    srv.add_sender(ALICE, ALICE)
    return srv.start()


class QueueTests(IntegrationTestCase):

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink("--rcpt-reply", REFUSED + "=550 5.1.1 no such user")).start()
        cls.srv = alice_server(cls, cls.sink.port, "queue")

    def setUp(self):
        if self.sink.proc is None:
            self.sink.start()
        if not self.srv.alive():
            self.srv.start()

    def queue_list(self):
        return self.srv.cli_ok("queue", "list").stdout

    def wait_until_queue_empty(self, timeout=20):
        def empty():
            self.assertIn("the queue is empty", self.queue_list())
        eventually(empty, timeout=timeout)

    def ids_at_sink(self, marker):
        return [message_id_of(raw) for _, raw in self.sink.find(marker)]

    # -- outage ------------------------------------------------------------------------------

    def test_relay_down_then_back_every_message_exactly_once(self):
        marker = unique("outage")
        self.sink.stop()
        self.sink.proc = None
        queued = []
        for i in range(10):
            code, text = submit(self.srv, "%s %d" % (marker, i))
            self.assertEqual(code, 250, text)
            self.assertIn(b"queued as", text)
            queued.append(text.split()[-1].decode())

        def all_deferred():   # each one has had its attempt, and the admin sees why it failed
            listing = self.queue_list()
            for qid in queued:
                self.assertRegex(listing, r"(?m)^%s  deferred .*\n    .*last error: .*"
                                 r"No relay reachable" % re.escape(qid))
        eventually(all_deferred, timeout=20)
        self.assertEqual(self.sink.find(marker), [])
        # The same, for a program: queue list --json, one object per message and line.
        out = self.srv.cli_ok("queue", "list", "--json").stdout
        listed = {m["id"]: m for m in json.loads(out)}
        self.assertEqual(len(out.strip().splitlines()), len(listed) + 2, out)
        for qid in queued:
            m = listed[qid]
            self.assertEqual(m["state"], "deferred", m)
            self.assertGreaterEqual(m["attempts"], 1, m)
            self.assertIn("No relay reachable", m["last_error"])
            self.assertGreater(m["next_attempt"], m["arrival"] - 1, m)
            self.assertEqual(m["user"], ALICE)
            self.assertTrue(m["recipients"] and m["size"] > 0, m)

        self.sink.start()
        msgs = eventually(lambda: self._exactly(marker, 10), timeout=20)
        self.wait_until_queue_empty()
        deliver_sentinel(self, self.srv)   # nothing arrives twice later
        ids = self.ids_at_sink(marker)
        self.assertEqual(len(ids), 10, msgs)
        self.assertEqual(len(set(ids)), 10, "a message arrived twice: %s" % ids)

    def _exactly(self, marker, n):
        found = self.sink.find(marker)
        self.assertEqual(len(found), n)
        return found

    # -- crash -------------------------------------------------------------------------------

    def test_sigkill_under_load_loses_no_accepted_message(self):
        marker = unique("crash")
        accepted, lock, stop = {}, threading.Lock(), threading.Event()
        attempts, failures = [0], [0]

        def client(n):
            i = 0
            while not stop.is_set():
                i += 1
                subject = "%s c%d m%d" % (marker, n, i)
                try:
                    code, text = submit(self.srv, subject, timeout=5)
                except (OSError, smtplib.SMTPException):
                    with lock:         # server down or killed mid-session: not acknowledged
                        failures[0] += 1
                    stop.wait(0.02)    # pacing while the server is down; waits for nothing
                    continue
                finally:
                    with lock:
                        attempts[0] += 1
                if code == 250:
                    with lock:
                        accepted[subject] = text.split()[-1].decode()

        # 8 connections at once, 5 kills (issue: hardening, item 7).
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        # Kill points: after a seeded number of messages accepted since the last start (the
        # other clients are then somewhere inside their sessions), not after a pause that a
        # slow machine fills with less work.
        rng = seeded_random(self.id())

        def accepted_since(base, n):
            eventually(lambda: self.assertGreaterEqual(len(accepted), base + n),
                       timeout=60, interval=0.005)
        kill_points = []
        try:
            for _ in range(5):
                kill_points.append(rng.randint(4, 12))
                accepted_since(len(accepted), kill_points[-1])
                seen = failures[0]
                self.srv.proc.send_signal(signal.SIGKILL)
                self.srv.proc.wait()
                self.srv._log.close()
                self.srv.proc = None
                # a client met the dead server before it comes back
                eventually(lambda: self.assertGreater(failures[0], seen), timeout=10,
                           interval=0.005)
                self.srv.start()
            accepted_since(len(accepted), 5)   # the last start serves again
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertGreater(len(accepted), 20, "too few messages accepted to mean anything")

        def all_arrived():
            got = {}
            for _, raw in self.sink.find(marker):
                subject = re.search(rb"^Subject: (.*?)\r?$", raw, re.M).group(1).decode()
                got[subject] = got.get(subject, 0) + 1
            missing = [s for s in accepted if s not in got]
            self.assertEqual(missing, [], "accepted but not delivered (yet)")
            return got

        got = eventually(all_arrived, timeout=30)
        duplicates = sum(n - 1 for n in got.values())
        print("\n  crash test: killed after %s more accepted; %d attempts, %d accepted, all "
              "delivered, %d duplicate(s) (at-least-once)"
              % ("/".join(map(str, kill_points)), attempts[0], len(accepted), duplicates))
        self.wait_until_queue_empty()

    # -- refusals ----------------------------------------------------------------------------

    def test_one_recipient_refused_other_delivered_and_reported(self):
        marker = unique("partial")
        code, text = submit(self.srv, marker, rcpts=("ok@dest.test", REFUSED))
        self.assertEqual(code, 250, text)

        def delivered():
            found = [(m, d) for m, d in self.sink.find(marker) if m["rcpt_tos"] != [ALICE]]
            self.assertEqual(len(found), 1)
            return found[0]
        meta, raw = eventually(delivered, timeout=10)
        self.assertEqual(meta["rcpt_tos"], ["ok@dest.test"])

        def report():
            found = [(m, d) for m, d in self.sink.messages()
                     if b"multipart/report" in d and marker.encode() in d]
            self.assertEqual(len(found), 1)
            return found[0]
        meta, raw = eventually(report, timeout=15)
        self.assertIn(meta["mail_from"], ("", "<>"))      # RFC 3464: null sender
        self.assertEqual(meta["rcpt_tos"], [ALICE])
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        status = parts[1].as_string()
        self.assertIn("Final-Recipient: rfc822; " + REFUSED, status)
        self.assertIn("Action: failed", status)
        self.assertIn("Status: 5.1.1", status)
        self.assertIn("Diagnostic-Code: smtp; 550 5.1.1 no such user", status)
        self.assertNotIn("ok@dest.test", status)
        self.assertIn(marker, parts[2].as_string())        # the original's Subject
        self.assertIn("Auto-Submitted: auto-replied", raw.decode())
        self.wait_until_queue_empty()

    def test_null_sender_is_never_reported(self):
        marker = unique("nullsender")
        code, text = submit(self.srv, marker, rcpts=(REFUSED,), sender="")
        self.assertEqual(code, 250, text)
        qid = text.split()[-1].decode()
        self.wait_until_queue_empty()
        eventually(lambda: self.assertIn(qid + " to <" + REFUSED + ">: refused",
                                         self.srv.log_text()))
        self.assertIn("null sender, no report", self.srv.log_text())
        deliver_sentinel(self, self.srv)
        self.assertEqual([d for _, d in self.sink.messages()
                          if b"multipart/report" in d and marker.encode() in d], [])

    # -- storage trouble ---------------------------------------------------------------------

    def test_message_that_cannot_leave_its_segment_stays_queued(self):
        """A deferred message moves from the segment into a file of its own in active/;
        when that fails (here tmp/ is a file, so nothing can be created in it), the message
        stays where it is, the error is logged, and it is delivered once later."""
        tmp = self.srv.state_dir / "queue" / "tmp"
        marker = unique("stuck")
        self.sink.stop()
        self.sink.proc = None
        os.rmdir(tmp)
        tmp.write_text("not a directory: even root cannot write here")
        try:
            code, text = submit(self.srv, marker)
            self.assertEqual(code, 250, text)
            qid = text.split()[-1].decode()
            eventually(lambda: self.assertRegex(
                self.srv.log_text(), "queue: %s: cannot create .*tmp/%s" % (qid, qid)),
                timeout=10)
            self.assertIn(qid, self.queue_list())
        finally:
            tmp.unlink()
            tmp.mkdir(mode=0o700)
        self.sink.start()
        self.srv.cli_ok("queue", "flush")
        self.sink.wait_for_marker(marker, timeout=15)
        self.wait_until_queue_empty()
        deliver_sentinel(self, self.srv)
        self.assertEqual(len(self.sink.find(marker)), 1)

    # -- the admin's commands ----------------------------------------------------------------

    def test_queue_commands_on_a_live_server(self):
        marker = unique("cli")
        self.sink.stop()
        self.sink.proc = None
        ids = []
        for name in ("keep", "hold", "delete"):
            code, text = submit(self.srv, "%s %s" % (marker, name))
            self.assertEqual(code, 250, text)
            ids.append(text.split()[-1].decode())
        keep, held, deleted = ids
        out = self.srv.cli_ok("queue", "show", held).stdout
        self.assertIn("from: <%s>" % ALICE, out)
        self.assertIn("to: <bob@dest.test>", out)
        self.assertIn("user: " + ALICE, out)
        self.assertIn("Subject: %s hold" % marker, out)

        def change(verb, qid):   # the scheduler may hold the lock for a moment
            p = self.srv.cli("queue", verb, qid)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            return p.stdout
        eventually(lambda: change("hold", held))
        eventually(lambda: change("delete", deleted))
        listing = self.queue_list()
        self.assertRegex(listing, re.escape(held) + r"  held ")
        self.assertNotIn(deleted, listing)
        self.assertIn(keep, listing)

        self.sink.start()
        self.assertIn("flushed", self.srv.cli_ok("queue", "flush").stdout)
        self.sink.wait_for_marker(marker + " keep", timeout=10)
        deliver_sentinel(self, self.srv, left=[held])
        self.assertEqual(self.sink.find(marker + " hold"), [])
        self.assertEqual(self.sink.find(marker + " delete"), [])
        self.assertIn(held, self.queue_list())

        eventually(lambda: change("release", held))
        self.sink.wait_for_marker(marker + " hold", timeout=10)
        self.wait_until_queue_empty()
        deliver_sentinel(self, self.srv)
        self.assertEqual(self.sink.find(marker + " delete"), [])

        p = self.srv.cli("queue", "show", "0123456789ABCDEFFF")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no message 0123456789ABCDEFFF in the queue", p.stderr)
        p = self.srv.cli("queue", "hold", "../../etc/passwd")
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not a queue id", p.stderr)
        p = self.srv.cli("queue", "hold")
        self.assertEqual(p.returncode, 2)
        self.assertIn("truefrom queue hold ID", p.stderr)


class LifetimeTests(IntegrationTestCase):
    """A message the relay never takes is reported to its sender as expired (RFC 3464
    Status 4.4.7) once [queue] lifetime has passed, and is never delivered after that."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        # The report has the same 3 s lifetime: the relay, down while the message expires,
        # must be probed every second (probe_max) to be seen back before the report expires.
        cls.srv = alice_server(cls, cls.sink.port, "lifetime",
                               "\n[queue]\nretry_first = 1\nretry_max = 1\nlifetime = 3\n",
                               relay_extra="probe_max = 1")

    def test_expired_message_is_reported_not_delivered(self):
        marker = unique("expired")
        self.sink.stop()
        code, text = submit(self.srv, marker)
        self.assertEqual(code, 250, text)
        qid = text.split()[-1].decode()
        eventually(lambda: self.assertIn(qid + " to <bob@dest.test>: delivery time expired",
                                         self.srv.log_text()), timeout=15)
        self.sink.start()

        def report():
            found = [(m, d) for m, d in self.sink.messages() if b"multipart/report" in d]
            self.assertEqual(len(found), 1)
            return found[0]
        meta, raw = eventually(report, timeout=15)
        self.assertEqual(meta["rcpt_tos"], [ALICE])
        text = raw.decode()
        self.assertIn("Final-Recipient: rfc822; bob@dest.test", text)
        self.assertIn("Status: 4.4.7", text)
        self.assertIn("Diagnostic-Code: smtp; 451 4.4.1 No relay reachable", text)
        self.assertIn("delivery time expired", text)
        self.assertIn(qid, text)
        eventually(lambda: self.assertIn("the queue is empty",
                                         self.srv.cli_ok("queue", "list").stdout), timeout=10)
        self.assertEqual([d for _, d in self.sink.find(marker) if b"multipart/report" not in d],
                         [])


class RelayConnectionTests(IntegrationTestCase):
    """The way to the relay: STARTTLS with the certificate verified (CA file or pinned
    fingerprint), AUTH, and failover to the next relay. The sink here requires STARTTLS and
    AUTH like an ISP's relay would."""

    RELAY_USER, RELAY_PW = "relayuser", "relay-secret"

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.certdir = make_tempdir("truefrom-relaycert-")
        cls.cert, cls.key = cls.certdir / "relay.pem", cls.certdir / "relay.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", str(cls.key), "-out", str(cls.cert), "-subj",
                        "/CN=relay.example.test",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:relay.example.test"],
                       check=True, capture_output=True, timeout=60)
        fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                             str(cls.cert)], check=True, capture_output=True, text=True)
        cls.fingerprint = "sha256:" + fp.stdout.strip().split("=", 1)[1]
        cls.sink = cls.use(Sink("--tls-cert", cls.cert, "--tls-key", cls.key,
                                "--auth", "%s:%s" % (cls.RELAY_USER, cls.RELAY_PW))).start()
        cls.dead = ClosedPort()
        auth = 'username = "%s"\npassword = "%s"' % (cls.RELAY_USER, cls.RELAY_PW)
        servers = {
            # the first relay is down: failover to the second, verified by the CA file
            "ca": ('ca_file = "%s"\n%s' % (cls.cert, auth),
                   ["127.0.0.1:%d" % cls.dead.port, "127.0.0.1:%d" % cls.sink.port]),
            "untrusted": (auth, None),                      # system CAs: not trusted
            "pinned": ('fingerprint = "%s"\n%s' % (cls.fingerprint, auth), None),
            "badpin": ('fingerprint = "sha256:%s"\n%s' % (":".join(["AB"] * 32), auth), None),
            "badauth": ('ca_file = "%s"\nusername = "%s"\npassword = "wrong"'
                        % (cls.cert, cls.RELAY_USER), None),
        }
        cls.srv = {}
        for name, (extra, hosts) in servers.items():
            srv = cls.use(Truefrom(cls.pg, cls.sink.port, relay_starttls="required",
                                   name="relay-" + name))
            srv.relay_extra = extra
            srv.relay_hosts = hosts
            srv.extra_config = QUEUE_CONFIG
            srv.write_config()
            cls.srv[name] = srv
        cls.srv["ca"].migrate()
        cls.srv["ca"].add_account(ALICE, PW)
        cls.srv["ca"].add_sender(ALICE, ALICE)
        for srv in cls.srv.values():
            srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.dead.close()
        super().tearDownClass()
        remove_tempdir(cls.certdir)

    def deferred_with(self, name, words):
        srv = self.srv[name]
        marker = unique(name)
        code, text = submit(srv, marker)
        self.assertEqual(code, 250, text)

        def deferred():
            self.assertIn(words, srv.cli_ok("queue", "list").stdout)
        eventually(deferred, timeout=10)
        self.assertEqual(self.sink.find(marker), [])

    def test_verified_by_ca_file_with_auth_after_failover(self):
        marker = unique("ca")
        submit(self.srv["ca"], marker)
        self.sink.wait_for_marker(marker)
        self.assertIn("AUTH PLAIN as b'relayuser': ok", self.sink.logfile.read_text())

    def test_verified_by_pinned_fingerprint(self):
        marker = unique("pinned")
        submit(self.srv["pinned"], marker)
        self.sink.wait_for_marker(marker)

    def test_untrusted_certificate_is_not_used(self):
        self.deferred_with("untrusted", "certificate not trusted")

    def test_wrong_fingerprint_is_not_used(self):
        self.deferred_with("badpin", "does not match [relay] fingerprint")

    def test_refused_relay_login_is_reported(self):
        self.deferred_with("badauth", "refused [relay] username relayuser")


class QueueStoppedServerTests(IntegrationTestCase):
    """The spool survives a restart, and the CLI works on a stopped server's spool."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.dead = ClosedPort()
        cls.sink = cls.use(Sink()).start()
        cls.srv = alice_server(cls, cls.dead.port, "restart")

    @classmethod
    def tearDownClass(cls):
        cls.dead.close()
        super().tearDownClass()

    def test_restart_resumes_delivery_and_cli_works_while_stopped(self):
        marker = unique("restart")
        code, text = submit(self.srv, marker)
        self.assertEqual(code, 250, text)
        qid = text.split()[-1].decode()
        self.srv.stop()
        out = self.srv.cli_ok("queue", "list").stdout
        self.assertIn(qid, out)
        out = self.srv.cli_ok("queue", "hold", qid).stdout
        self.assertIn("held", out)
        self.assertIn("no running server answered", out)
        self.srv.cli_ok("queue", "release", qid)
        p = self.srv.cli("queue", "flush")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no running server answered", p.stderr)
        # now point the server at a working relay and start it: the spool is delivered
        self.srv.relay_port = self.sink.port
        self.srv.write_config()
        self.srv.start()
        self.sink.wait_for_marker(marker, timeout=15)
        self.assertIn("queue: 1 message(s) in", self.srv.log_text())


class SilentPort:
    """A relay that takes connections and never says a word: a delivery attempt to it lasts
    until [relay] greeting_timeout, so its messages stay in the server's segment files
    meanwhile."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class FirstAttemptTests(IntegrationTestCase):
    """Messages on their first delivery attempt live in segment files (no file of their
    own yet): the admin sees them, cannot change them under the running server's feet, and
    after a crash the CLI (or the next start) moves them into active/ with nothing lost and
    nothing doubled."""

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.silent = SilentPort()
        cls.sink = cls.use(Sink()).start()
        # the attempts must outlast the test's steps (the default greeting_timeout is 30 s)
        cls.srv = alice_server(cls, cls.silent.port, "first-attempt",
                               relay_extra="greeting_timeout = 600")

    @classmethod
    def tearDownClass(cls):
        cls.silent.close()
        super().tearDownClass()

    def test_in_flight_messages_survive_sigkill_and_the_cli_recovers_them(self):
        marker = unique("inflight")
        ids = []
        for name in ("held", "sent"):
            code, text = submit(self.srv, "%s %s" % (marker, name))
            self.assertEqual(code, 250, text)
            ids.append(text.split()[-1].decode())
        held, sent = ids
        segments = self.srv.state_dir / "queue" / "segments"
        self.assertEqual(sorted(os.listdir(self.srv.state_dir / "queue" / "active")), [])
        out = self.srv.cli_ok("queue", "list").stdout
        self.assertRegex(out, re.escape(held) + r"  delivering ")
        self.assertRegex(out, re.escape(sent) + r"  delivering ")
        self.assertIn("first delivery attempt under way",
                      self.srv.cli_ok("queue", "show", held).stdout)
        p = self.srv.cli("queue", "hold", held)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("is on its first delivery attempt right now", p.stderr)

        self.srv.proc.send_signal(signal.SIGKILL)
        self.srv.proc.wait()
        self.srv._log.close()
        self.srv.proc = None
        self.assertRegex(self.srv.cli_ok("queue", "list").stdout, re.escape(held) + r"  active ")
        out = self.srv.cli_ok("queue", "hold", held).stdout   # moves the segment's messages first
        self.assertIn("held", out)
        self.assertEqual([f for f in os.listdir(segments) if not f.endswith(".new")], [])
        out = self.srv.cli_ok("queue", "list").stdout
        self.assertRegex(out, re.escape(held) + r"  held ")
        self.assertRegex(out, re.escape(sent) + r"  active ")

        self.srv.relay_port = self.sink.port
        self.srv.write_config()
        self.srv.start()
        self.sink.wait_for_marker(marker + " sent", timeout=15)
        self.assertEqual(self.sink.find(marker + " held"), [])
        self.srv.cli_ok("queue", "release", held)
        self.sink.wait_for_marker(marker + " held", timeout=15)
        eventually(lambda: self.assertIn("the queue is empty",
                                         self.srv.cli_ok("queue", "list").stdout), timeout=10)
        deliver_sentinel(self, self.srv)
        self.assertEqual(len(self.sink.find(marker + " sent")), 1)
        self.assertEqual(len(self.sink.find(marker + " held")), 1)


class DiskFullTests(IntegrationTestCase):
    """A full file system: 452 4.3.1, never 250. The queue lives on a 512 KiB tmpfs when
    this machine lets root mount one; otherwise the server runs under a 512 KiB file-size
    limit (RLIMIT_FSIZE), which fails the spool write the same way (EFBIG instead of ENOSPC)."""

    LIMIT = 512 * 1024

    @classmethod
    def start_fixtures(cls):
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.mount = make_tempdir("truefrom-tmpfs-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % cls.LIMIT,
                            "tmpfs", str(cls.mount)], capture_output=True, text=True)
        cls.mounted = p.returncode == 0
        # Class cleanups run after tearDownClass and last in, first out: registered before
        # the server, this one runs once the server has stopped and the mount is not busy.
        cls.addClassCleanup(cls.unmount)
        if cls.mounted:
            cls.srv = alice_server(cls, cls.sink.port, "diskfull",
                                   '\n[queue]\ndir = "%s"\n' % cls.mount)
        else:
            limit = cls.LIMIT
            cls.srv = alice_server(cls, cls.sink.port, "diskfull", "",
                                   lambda: resource.setrlimit(resource.RLIMIT_FSIZE,
                                                              (limit, limit)))

    @classmethod
    def unmount(cls):
        if cls.mounted:
            p = subprocess.run(["umount", str(cls.mount)], capture_output=True, text=True)
            if p.returncode != 0:
                print("umount %s: %s" % (cls.mount, p.stderr.strip()), file=sys.stderr)
        remove_tempdir(cls.mount)

    def test_full_disk_answers_452(self):
        marker = unique("full")
        big = ("x" * 998 + "\r\n") * 700     # about 700 KiB: more than the file system holds
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            submit(self.srv, marker, body=big)
        self.assertEqual(cm.exception.smtp_code, 452)
        self.assertTrue(cm.exception.smtp_error.startswith(b"4.3.1"), cm.exception)
        self.assertTrue(self.srv.alive(), "the server died on a full disk")
        self.assertRegex(self.srv.log_text(),
                         "cannot store message .*(No space left on device|File too large)")
        # the failed write left nothing behind: a small message still fits and is delivered
        code, text = submit(self.srv, marker + " small")
        self.assertEqual(code, 250, text)
        self.sink.wait_for_marker(marker + " small")
        self.assertEqual(self.sink.find(marker + "\r\n"), [])


if __name__ == "__main__":
    unittest.main()
