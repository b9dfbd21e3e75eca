"""PostgresCluster: a throwaway PostgreSQL cluster (initdb + pg_ctl, unix socket only), and
what tests ask about running postmasters."""
import os
import subprocess
from pathlib import Path

from .common import PG_BIN, as_postgres, chown_postgres, free_port, make_tempdir, remove_tempdir, sql_quote


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
