"""A private PostgreSQL server for the tests (issue 18, docs/history.md):
initdb into a directory of its own, a free loopback port (never 5432, never
the system's cluster), no durability; started and stopped by pid, like
redisserver.py. As root (the suite runs as root) the server runs as the
`postgres` user, PostgreSQL refusing to run as root. Queries go through
psql (no Python driver is needed)."""

import glob
import os
import shutil
import subprocess
import tempfile
import time
from signal import SIGINT, SIGKILL

from . import proc
from .server import ServerProcess, read_from

__all__ = ["PgServer", "PgStartError", "pg_bindir", "REFERENCE_DDL"]

READY_LINE = "database system is ready to accept connections"

# by-framework's PostgreSQL history backend's table and index (issue 18:
# id, session_id, role, content, metadata JSONB, created_at; the index on
# session_id, created_at DESC, id DESC). The reference's exact column types
# are not on this machine: these are the natural ones.
REFERENCE_DDL = """
CREATE TABLE IF NOT EXISTS gateway_session_messages (
    id BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS gateway_session_messages_session_created_idx
    ON gateway_session_messages (session_id, created_at DESC, id DESC);
"""


class PgStartError(RuntimeError):
    pass


def pg_bindir():
    """The directory of initdb and postgres: PATH, pg_config --bindir, or
    the newest /usr/lib/postgresql/<version>/bin; None when absent."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return os.path.dirname(os.path.realpath(found))
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if out and os.path.exists(os.path.join(out, "postgres")):
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if
                  d.split("/")[-2].isdigit() else 0)
    return dirs[-1] if dirs else None


class PgServer(ServerProcess):
    """start() runs initdb once, then the server on a free loopback port
    (retrying on a collision), ready when its log says so and pg_isready
    agrees; stop() sends SIGINT (a fast shutdown), then SIGKILL; a stopped
    server starts again on the same port (outage tests). `directory`
    defaults to a temporary one, removed by close()."""

    def __init__(self, directory=None, *, start_timeout=30.0,
                 label="postgres", database="postgres", user="bygate"):
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise PgStartError("PostgreSQL not found (make deps installs "
                               "Debian's postgresql)")
        self._own_dir = directory is None
        self.dir = str(directory) if directory else tempfile.mkdtemp(
            prefix="bygate-pg-")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.start_timeout = start_timeout
        self.label = label
        self.database = database
        self.user = user
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _initdb(self):
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return
        if self.run_as:
            # the server's user reaches its directory and owns its files
            import pwd
            pw = pwd.getpwnam(self.run_as)
            _searchable_above(self.dir)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)
        t = proc.spawn([self._bin("initdb"), "-D", self.data, "-U",
                        self.user, "-A", "trust", "-E", "UTF8",
                        "--no-sync", "--no-instructions"],
                       label="initdb", log_path=self.log_path,
                       user=self.run_as)
        rc = t.popen.wait(120)
        if rc != 0:
            raise PgStartError("initdb failed (exit %s):\n%s"
                               % (rc, proc.tail_text(self.log_path, 30)))

    def start(self, port=None):
        """Start on `port`, else on the previous port, else on a free one."""
        if self.alive():
            return self
        self._initdb()
        fixed = port or self.port
        last = None
        for _ in range(1 if fixed else 5):
            try:
                return self._start_on(fixed or proc.free_port())
            except PgStartError as e:
                last = e
        raise last

    def _start_on(self, port):
        offset = (os.path.getsize(self.log_path)
                  if os.path.exists(self.log_path) else 0)
        self.port = port
        self.proc = proc.spawn(
            [self._bin("postgres"), "-D", self.data, "-p", str(port),
             "-h", self.host, "-c", "unix_socket_directories=",
             "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            label=self.label, log_path=self.log_path, pdeathsig=SIGKILL,
            user=self.run_as)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.proc.alive():
            if READY_LINE in read_from({self.log_path: offset}) and \
                    self._ready():
                return self
            time.sleep(0.05)
        self.proc.kill()
        raise PgStartError("postgres on port %d did not become ready:\n%s"
                           % (port, read_from({self.log_path: offset})))

    def _ready(self):
        r = subprocess.run([self._bin("pg_isready"), "-h", self.host, "-p",
                            str(self.port), "-U", self.user, "-d",
                            self.database], capture_output=True, timeout=10)
        return r.returncode == 0

    def dsn(self):
        """A libpq URI for this server."""
        return "postgresql://%s@%s:%d/%s" % (self.user, self.host, self.port,
                                             self.database)

    def query(self, sql, timeout=30):
        """Run sql with psql: the rows, each a list of its columns' text
        (NULL as ""). Raises RuntimeError with psql's message on an error."""
        r = subprocess.run(
            [self._bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
             "-F", "\x1f", "-h", self.host, "-p", str(self.port), "-U",
             self.user, "-d", self.database, "-c", sql],
            capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.strip())
        return [line.split("\x1f") for line in r.stdout.splitlines()]

    def create_reference_table(self):
        self.query(REFERENCE_DDL)

    def stop(self, timeout=15.0):
        """Stop the server (idempotent; start() may follow): SIGINT, then
        SIGKILL after timeout; its backends go with it."""
        if self.proc is None:
            return None
        return self.proc.stop(SIGINT, timeout, leftover_grace=2.0)

    def close(self):
        """stop(), then remove the directory if it was a temporary one."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._own_dir = False

def _searchable_above(path):
    """Give the directories above path the search bit for others (passable,
    not listable), so that the server's user reaches its directory under
    a temporary one made 0700 by mkdtemp."""
    d = os.path.dirname(os.path.abspath(path))
    while d and d != "/":
        mode = os.stat(d).st_mode
        if not mode & 0o001:
            os.chmod(d, (mode & 0o7777) | 0o001)
        d = os.path.dirname(d)
