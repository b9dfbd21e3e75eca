"""IntegrationTestCase: the unittest base class that starts the fixtures once per class,
stops them at the end, and prints the tail of every fixture's log when a test fails."""
import sys
import unittest

from .common import tail, truefrom_bin
from .postgres import PostgresCluster
from .server import Truefrom
from .sink import Sink


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
    def start_stack(cls, accounts, server_extra="", tls_extra="", extra_config=""):
        """A cluster, a sink and a running server; `accounts` maps login -> (password,
        [owned sender identities]); `server_extra`, `tls_extra`: more [server], [tls] keys; `extra_config`: more
        sections."""
        cls.pg = cls.use(PostgresCluster()).start()
        cls.sink = cls.use(Sink()).start()
        cls.srv = cls.use(Truefrom(cls.pg, cls.sink.port))
        cls.srv.server_extra = server_extra
        cls.srv.tls_extra = tls_extra
        cls.srv.extra_config = extra_config
        cls.srv.write_config()
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
