"""A bygated process under test or demo: writes its libconfig file from a dict,
starts `bygated -c <file>` with output appended to a log file, waits for a
readiness predicate, and stops it by pid (SIGTERM / SIGINT / SIGKILL).
Readiness predicates take the Bygated and return truthy when it is ready."""

import json
import os
import re
from signal import SIGINT, SIGKILL, SIGTERM
import time

from . import proc
from .keys import online_lease_patterns
from .libconfig import render
from .resp import RespError

__all__ = [
    "Bygated", "BygatedError", "READY_LINE", "ready_log", "ready_lease",
    "ready_any_lease", "ready_either", "lease_is_online",
]

READY_LINE = "bygated ready"


class BygatedError(RuntimeError):
    pass


def ready_log(d):
    """Default predicate: this run's output contains READY_LINE."""
    return READY_LINE in d.log_text(since_start=True)


def lease_is_online(raw):
    """WIRE 5.1 online test of a lease value: missing -> offline; a JSON
    object -> online iff last_seen > 0; anything else (legacy) -> online."""
    if raw is None:
        return False
    try:
        doc = json.loads(raw)
    except ValueError:
        return True
    if not isinstance(doc, dict):
        return True
    last_seen = doc.get("last_seen")
    return isinstance(last_seen, (int, float)) and last_seen > 0


def _redis_ok(fn):
    try:
        return fn()
    except (OSError, ConnectionError, RespError):
        return False


def ready_lease(client, key):
    """Predicate: the worker's online lease `key` says online."""
    return lambda d: _redis_ok(lambda: lease_is_online(client.call("GET", key)))


def ready_any_lease(client):
    """Predicate: some worker lease (v1 or v2) in this Redis is online; for a
    private Redis where the only worker is the one being started."""
    def online():
        for pattern in online_lease_patterns():
            cursor = "0"
            while True:
                cursor, keys = client.call("SCAN", cursor, "MATCH", pattern,
                                           "COUNT", 1000)
                if any(lease_is_online(client.call("GET", k)) for k in keys):
                    return True
                if cursor == "0":
                    break
        return False
    return lambda d: _redis_ok(online)


def ready_either(*predicates):
    return lambda d: any(p(d) for p in predicates)


class Bygated:
    """`config` is a dict (rendered to <workdir>/bygated.conf at each start)
    or the path of an existing file. `env` is the complete environment (see
    proc.clean_env). The log file collects stdout and stderr of every run;
    each start appends a marker line and remembers its offset."""

    def __init__(self, binary, config, workdir, *, env=None, args=(),
                 ready=ready_log, start_timeout=30.0, label="bygated"):
        self.binary = str(binary)
        self.config = config
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.config_path = (os.path.join(self.workdir, "bygated.conf")
                            if isinstance(config, dict) else str(config))
        self.log_path = os.path.join(self.workdir, "bygated.log")
        self.env = env if env is not None else proc.clean_env()
        self.args = [str(a) for a in args]
        self.ready = ready
        self.start_timeout = start_timeout
        self.label = label
        self.proc = None
        self.starts = 0
        self._log_start = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "Bygated(pid %s, %s)" % (self.pid, self.config_path)

    # -- lifecycle -------------------------------------------------------

    def argv(self):
        return [self.binary, "-c", self.config_path, *self.args]

    def write_config(self):
        if isinstance(self.config, dict):
            with open(self.config_path, "w") as f:
                f.write(render(self.config, header="written by the bygate "
                               "test harness (scripts/bglib)"))
            # As docs/security.md says to install it: it holds the Redis
            # password, and children run as another user.
            os.chmod(self.config_path, 0o600)

    def start(self, wait=True, timeout=None):
        """Start (again) and, with wait, block until ready(). Raises
        BygatedError with the log tail if it exits or is not ready in time."""
        if self.alive():
            raise BygatedError("bygated already running (pid %d)" % self.pid)
        if not os.access(self.binary, os.X_OK):
            raise BygatedError("%s is not built (run `make all`)" % self.binary)
        self.write_config()
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(("=== start #%d: %s ===\n" % (
                self.starts, " ".join(self.argv()))).encode())
            self._log_start = f.tell()
        self.proc = proc.spawn(self.argv(), label=self.label,
                               log_path=self.log_path, env=self.env,
                               cwd=self.workdir, show_log=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=None):
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.ready(self):
            if not self.alive():
                raise BygatedError("bygated exited with status %s before it "
                                   "was ready; log tail:\n%s"
                                   % (self.returncode, self.log_tail()))
            if time.monotonic() >= deadline:
                raise BygatedError("bygated (pid %d) not ready after %.0fs; "
                                   "log tail:\n%s"
                                   % (self.pid, timeout, self.log_tail()))
            time.sleep(0.05)
        return self

    def restart(self, sig=SIGTERM, wait=True, timeout=None):
        self.stop(sig)
        return self.start(wait, timeout)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def returncode(self):
        if self.proc is None:
            return None
        return self.proc.popen.poll()

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def signal(self, sig):
        """Deliver a signal (SIGHUP reload, SIGUSR1 reopen, SIGSTOP...)."""
        if self.proc is not None:
            self.proc.signal(sig)

    def stop(self, sig=SIGTERM, timeout=15.0, leftover_grace=2.0):
        """Send sig (SIGTERM graceful drain, SIGINT fast stop), wait up to
        timeout, then SIGKILL; children still running leftover_grace s later
        are killed and listed in self.leftovers. Returns the exit status
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        return self.proc.stop(sig, timeout, leftover_grace)

    def terminate(self, timeout=15.0):
        return self.stop(SIGTERM, timeout)

    def interrupt(self, timeout=15.0):
        return self.stop(SIGINT, timeout)

    def kill(self):
        """SIGKILL bygated alone, as in a crash: its children are left as
        they are (remembered, and killed at the harness's cleanup)."""
        if self.proc is not None and self.alive():
            self.proc.note_descendants()
            self.proc.popen.kill()
            self.proc.popen.wait()
        return self.returncode

    def kill_all(self):
        """SIGKILL bygated and its children at once, as in the death of
        the machine's worker (nothing of it is left to finish)."""
        kids = self.child_pids()
        self.kill()
        for p in kids:
            try:
                os.kill(p, SIGKILL)
            except ProcessLookupError:
                pass
        return self.returncode

    def wait_exit(self, timeout=15.0):
        """Wait for bygated to exit on its own; returns the status or raises
        TimeoutError."""
        proc.wait_until(lambda: not self.alive(), timeout,
                        what="bygated pid %s to exit" % self.pid)
        return self.returncode

    @property
    def leftovers(self):
        return self.proc.leftovers if self.proc else []

    def child_pids(self):
        """Pids of bygated's direct children (its pool), from /proc ppid."""
        if not self.alive():
            return []
        self.proc.note_descendants()
        return [p for p in proc.children_of(self.pid) if proc.pid_alive(p)]

    # -- log -------------------------------------------------------------

    def log_text(self, since_start=False, since=None):
        """The log file's text: all of it, from the last start, or from a
        log_mark() offset."""
        offset = since if since is not None else (
            self._log_start if since_start else 0)
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """Current end of the log, for log_text(since=) / wait_log(since=)."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_tail(self, lines=40):
        return proc.tail_text(self.log_path, lines)

    def wait_log(self, pattern, timeout=10.0, since=None):
        """Wait until the log (from `since`, default the last start) matches
        pattern (a substring, or a compiled regex); returns the match text."""
        if since is None:
            since = self._log_start

        def found():
            text = self.log_text(since=since)
            if isinstance(pattern, re.Pattern):
                m = pattern.search(text)
                return m.group(0) if m else None
            return pattern if pattern in text else None
        try:
            return proc.wait_until(found, timeout, what="log line %r" % (
                getattr(pattern, "pattern", pattern),))
        except TimeoutError as e:
            raise TimeoutError("%s; log tail:\n%s" % (e, self.log_tail())) from None
