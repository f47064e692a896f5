"""What the private servers of the tests (redisserver.py, pgserver.py) share:
a process started by proc.spawn and tracked by pid, used as a context
manager, and the reading of what its log gained since a start."""

from . import proc

__all__ = ["ServerProcess", "read_from"]


class ServerProcess:
    """A subclass sets self.proc (a proc.Tracked) in start() and defines
    start(), close() and log_path."""

    proc = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "%s(%s:%s pid %s)" % (type(self).__name__, self.host,
                                     self.port, self.pid)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def kill(self):
        """SIGKILL, as in a crash."""
        if self.proc is not None:
            self.proc.kill()

    def signal(self, sig):
        """E.g. SIGSTOP / SIGCONT to simulate a hung server."""
        if self.proc is not None:
            self.proc.signal(sig)

    def log_tail(self, lines=20):
        return proc.tail_text(self.log_path, lines)


def read_from(offsets):
    """What each file gained since the given offsets ({path: offset}),
    labelled when there are several."""
    parts = []
    for path, offset in offsets.items():
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace").strip()
        except OSError:
            continue
        if text:
            parts.append(text[-2000:] if len(offsets) == 1 else
                         "--- %s ---\n%s" % (path, text[-2000:]))
    return "\n".join(parts) or "(no output)"
