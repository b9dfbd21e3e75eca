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
  TRUEFROM_TEST_SEED  the seed of the tests' random choices (printed by each test that
                   makes some; set it to replay a failure)

Modules: common (helpers, ports, waiting, seeds), postgres, sink, server (Truefrom),
smtp_client (SMTPConn, Reply), testcase (IntegrationTestCase); everything a test needs is
imported from `harness` itself.

PostgreSQL refuses to run as root; when the tests run as root the cluster's programs run as
user `postgres` through `runuser -u postgres --`.  Standard library only.
"""
from .common import (HOSTNAME, IS_ROOT, KEEP, PG_BIN, REPO, SINK_SCRIPT, ClosedPort, as_postgres,
                     chown_postgres, crypt_hash, eventually, first_header, free_port,
                     make_message, make_tempdir, remove_tempdir, seeded_random, sql_quote, tail,
                     terminate, test_seed, truefrom_bin, unique)
from .postgres import PostgresCluster, postmaster_pid, process_uid
from .server import Truefrom
from .sink import Sink
from .smtp_client import Reply, SMTPConn, client_tls_context
from .testcase import IntegrationTestCase
