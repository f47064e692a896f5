"""A private redis-server on a free loopback port (never 6379, never the
system service), with no persistence, its data and log in a given directory.
Used as a context manager; stop() and close() leave no process behind."""

import os
import shutil
from signal import SIGKILL, SIGTERM
import tempfile
import time

from . import proc
from .server import ServerProcess, read_from
from .resp import RespClient, RespError

__all__ = ["RedisServer", "RedisStartError"]

READY_LINE = "Ready to accept connections"


class RedisStartError(RuntimeError):
    pass


class RedisServer(ServerProcess):
    """start() picks a free port (retrying on a collision) and waits until
    PING answers; stop() sends SIGTERM, then SIGKILL after a timeout. A stopped
    server can be started again on the same port (Redis outage tests).
    `directory` defaults to a temporary one, removed by close()."""

    def __init__(self, directory=None, *, args=(), binary="redis-server",
                 start_timeout=10.0, label="redis-server"):
        self._own_dir = directory is None
        self.dir = str(directory) if directory else tempfile.mkdtemp(
            prefix="bygate-redis-")
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.out_path = os.path.join(self.dir, "redis.out")
        self.extra_args = [str(a) for a in args]
        self.binary = binary
        self.start_timeout = start_timeout
        self.label = label
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None

    def argv(self, port):
        return [self.binary, "--port", port, "--bind", self.host,
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", self.log_path, *self.extra_args]

    def start(self, port=None):
        """Start on `port`, else on the previous port, else on a free one
        (then retrying a few other free ports if it is taken meanwhile)."""
        if self.alive():
            return self
        if shutil.which(self.binary) is None:
            raise RedisStartError("%s not found in PATH (install redis-server)"
                                  % self.binary)
        fixed = port or self.port
        last = None
        for _ in range(1 if fixed else 5):
            try:
                return self._start_on(fixed or proc.free_port())
            except RedisStartError as e:
                last = e
        raise last

    def _start_on(self, port):
        """Start on port; ready once our own log says so (another server on
        the same port would answer PING too) and PING is answered."""
        offsets = {p: os.path.getsize(p) if os.path.exists(p) else 0
                   for p in (self.log_path, self.out_path)}
        self.port = port
        self.proc = proc.spawn(self.argv(port), label=self.label,
                               log_path=self.out_path, pdeathsig=SIGKILL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.proc.alive():
            if READY_LINE in read_from({self.log_path: offsets[self.log_path]}):
                if self._answers():
                    return self
            time.sleep(0.02)
        self.proc.kill()
        raise RedisStartError("redis-server on port %d did not become ready:\n%s"
                              % (port, read_from(offsets)))

    def _answers(self):
        try:
            with self.client(timeout=1.0) as c:
                return c.ping()
        except RespError as e:
            return e.code in ("NOAUTH", "WRONGPASS")
        except (OSError, ConnectionError):
            return False

    def stop(self, timeout=5.0):
        """Stop the server process (idempotent; start() may follow). Returns
        the exit status, or None if it was never started."""
        if self.proc is None:
            return None
        return self.proc.stop(SIGTERM, timeout, leftover_grace=0)

    def close(self):
        """stop(), then remove the directory if it was a temporary one."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._own_dir = False

    def client(self, **kw):
        """A new RespClient for this server (caller closes it)."""
        if self.port is None:
            raise RedisStartError("redis-server not started")
        return RespClient(self.host, self.port, **kw)

    def env(self):
        """The by-framework variables pointing a process at this server."""
        return {"REDIS_HOST": self.host, "REDIS_PORT": str(self.port)}
