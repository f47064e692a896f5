"""Process utilities for the harness and scripts: free loopback ports, /proc
inspection (alive, parent, descendants), spawning tracked processes that die
with us, stopping them (signal, bounded wait, SIGKILL) and polling helpers.

Every process started through spawn() is remembered until it is reaped; an
atexit hook and kill_since() SIGKILL whatever is still running, together with
the descendants seen for it, so a failed or interrupted test leaks nothing."""

import atexit
import ctypes
import os
from signal import SIGKILL, SIGTERM
import socket
import subprocess
import time

__all__ = [
    "free_port", "pid_alive", "proc_stat", "children_of", "descendants_of",
    "Tracked", "spawn", "mark", "tracked_since", "kill_since", "wait_until",
    "tail_text", "clean_env", "become_subreaper", "reap_orphans",
]

_FORBIDDEN_PORTS = {6379}
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux/glibc: no parent-death signal
    _prctl = None


def free_port(exclude=()):
    """A TCP port on 127.0.0.1 that was free a moment ago (never 6379).
    Callers starting a server on it must retry on EADDRINUSE."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _FORBIDDEN_PORTS and port not in exclude:
            return port
    raise OSError("no free loopback port found")


def proc_stat(pid):
    """(ppid, state, starttime, comm) of a process from /proc, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    if lpar < 0 or rpar < 0:
        return None
    fields = data[rpar + 2:].split()
    try:
        return int(fields[1]), fields[0], int(fields[19]), data[lpar + 1:rpar]
    except (IndexError, ValueError):
        return None


def pid_alive(pid, starttime=None):
    """True if pid exists and is not a zombie (and, when given, still has the
    same start time, i.e. was not recycled)."""
    st = proc_stat(pid)
    if st is None or st[1] in ("Z", "X"):
        return False
    return starttime is None or st[2] == starttime


def _all_stats():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def children_of(pid):
    """Pids whose parent is pid (live or zombie), sorted."""
    return sorted(p for p, st in _all_stats().items() if st[0] == pid)


def descendants_of(pid):
    """{pid: starttime} of every descendant of pid, found through ppid links."""
    stats = _all_stats()
    kids = {}
    for p, st in stats.items():
        kids.setdefault(st[0], []).append(p)
    out, to_visit = {}, [pid]
    while to_visit:
        for c in kids.get(to_visit.pop(), []):
            if c not in out:
                out[c] = stats[c][2]
                to_visit.append(c)
    return out


def _child_setup(parent, sig):
    def setup():
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(127)
    return setup


_history = []


def _group_of(user):
    import pwd
    return pwd.getpwnam(user).pw_gid


class Tracked:
    """A spawned process: its Popen, a label for reports, its log file and
    the descendants seen so far (pid -> start time)."""

    def __init__(self, popen, label, log_path, show_log):
        self.popen = popen
        self.pid = popen.pid
        self.label = label
        self.log_path = log_path
        self.show_log = show_log
        st = proc_stat(popen.pid)
        self.starttime = st[2] if st else None
        self.seen = {}
        self.leftovers = []

    def __repr__(self):
        return "<%s pid %d>" % (self.label, self.pid)

    def alive(self):
        return self.popen.poll() is None

    def note_descendants(self):
        """Remember the current descendants so they can be killed later."""
        if self.alive():
            self.seen.update(descendants_of(self.pid))
        return self.seen

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, sig=SIGTERM, timeout=10.0, leftover_grace=2.0):
        """Send sig, wait up to timeout, then SIGKILL. Descendants still alive
        leftover_grace seconds after the exit are SIGKILLed and listed in
        self.leftovers as (pid, comm). Returns the exit status (negative for
        a signal, as Popen.returncode)."""
        self.note_descendants()
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._kill_leftovers(leftover_grace)
        return self.popen.returncode

    def kill(self):
        self.note_descendants()
        if self.alive():
            self.popen.kill()
        self.popen.wait()
        self._kill_leftovers(0)

    def _kill_leftovers(self, grace):
        def live():
            return {p: t for p, t in self.seen.items() if pid_alive(p, t)}
        deadline = time.monotonic() + grace
        while live() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = live()
        for p in left:
            st = proc_stat(p)
            self.leftovers.append((p, st[3] if st else "?"))
            try:
                os.kill(p, SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5.0
        while live() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.seen.clear()


def spawn(argv, *, label, log_path=None, env=None, cwd=None,
          stdin=subprocess.DEVNULL, stdout=None, stderr=None,
          pdeathsig=SIGTERM, show_log=False, user=None):
    """Start argv in its own session (a terminal's Ctrl-C does not reach it),
    with pdeathsig delivered if our spawning thread dies. With log_path,
    stdout and stderr are appended to that file. user: run as that user
    (by name; root only), e.g. PostgreSQL, which refuses to run as root.
    Returns a Tracked."""
    logf = None
    if log_path is not None:
        logf = open(log_path, "ab")
        stdout, stderr = logf, subprocess.STDOUT
    try:
        popen = subprocess.Popen(
            [str(a) for a in argv], env=env, cwd=cwd, stdin=stdin,
            stdout=stdout, stderr=stderr, start_new_session=True,
            preexec_fn=_child_setup(os.getpid(), pdeathsig), close_fds=True,
            user=user, group=(_group_of(user) if user else None),
            extra_groups=([] if user else None))
    finally:
        if logf is not None:
            logf.close()
    t = Tracked(popen, label, log_path, show_log)
    _history.append(t)
    return t


def mark():
    """A position in the spawn history, for tracked_since / kill_since."""
    return len(_history)


def tracked_since(position):
    return list(_history[position:])


def kill_since(position=0):
    """SIGKILL every process spawned since position that still runs, and
    every descendant seen or found for it. Safe from any thread."""
    for t in reversed(_history[position:]):
        try:
            if t.popen.returncode is None:
                t.seen.update(descendants_of(t.pid))
                os.kill(t.pid, SIGKILL)
            for p, st in list(t.seen.items()):
                if pid_alive(p, st):
                    os.kill(p, SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


atexit.register(kill_since, 0)


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it returns a truthy value, which is returned;
    raise TimeoutError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)


def tail_text(path, lines=40, max_bytes=65536):
    """The last `lines` lines of a text file ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


_ENV_PREFIXES = ("REDIS_", "BYAI_", "BY_FRAMEWORK_")


def clean_env(extra=None, prefixes=_ENV_PREFIXES):
    """os.environ without the by-framework variables (REDIS_*, BYAI_*,
    BY_FRAMEWORK_*) that would redirect a process to another Redis, plus
    `extra` (values converted with str())."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    for k, v in (extra or {}).items():
        env[k] = str(v)
    return env


def become_subreaper():
    """Make orphaned descendants re-parent to this process (Linux), so that
    reap_orphans() can find and kill what a dead supervisor left behind."""
    if _prctl is None or _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return False
    return True


def reap_orphans():
    """SIGKILL and reap children of this process that no Popen owns (orphans
    adopted as subreaper). Returns [(pid, comm)] of those found alive."""
    owned = {t.pid for t in _history if t.popen.returncode is None}
    found = []
    for pid in children_of(os.getpid()):
        if pid in owned:
            continue
        st = proc_stat(pid)
        if st is not None and st[1] not in ("Z", "X"):
            found.append((pid, st[3]))
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return found


def make_reachable_by_others(repo, build):
    """bygated runs its children as an unprivileged pool user (as root;
    docs/security.md): the child binary, the plugins, the example and test
    agents must be reachable by that user. A checkout under a directory
    closed to others (a mkdtemp directory, /root) or made with a strict
    umask is not: give every directory above it the search bit (passable,
    not listable) and the checkout's runtime files read (and search)
    permission for others. Returns the lines saying what was changed.
    Nothing is done when not root (the children then keep our uid)."""
    if os.geteuid() != 0:
        return []
    changed = []
    repo = os.path.realpath(str(repo))
    d = repo
    while True:
        st = os.stat(d)
        if not st.st_mode & 0o001:
            os.chmod(d, (st.st_mode & 0o7777) | 0o001)
            changed.append("%s: search permission for others (o+x)" % d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    subdirs = [str(build), os.path.join(repo, "examples"),
               os.path.join(repo, "tests", "integration", "agents"),
               os.path.join(repo, "etc")]
    for top in subdirs:
        d = os.path.dirname(os.path.realpath(top))
        while d.startswith(repo + "/"):  # the levels between: passable
            st = os.stat(d)
            if not st.st_mode & 0o001:
                os.chmod(d, (st.st_mode & 0o7777) | 0o001)
                changed.append(d)
            d = os.path.dirname(d)
        for root, dirs, files in os.walk(top):
            for name in [root] + [os.path.join(root, f) for f in files]:
                st = os.lstat(name)
                mode = st.st_mode & 0o7777
                want = mode | 0o004 | (0o001 if (mode & 0o100 or
                                                 name == root) else 0)
                if want != mode and not os.path.islink(name):
                    os.chmod(name, want)
                    changed.append(name)
    return changed
