"""A hijacked Python agent (tests/integration/test_isolation.py): the same
attacks as tests/plugins/hostile.c, from an exec handler. The task content
names the attack and its arguments; the answer says what happened: "ok",
an errno name, or a short report."""
import ctypes
import errno
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402


def outcome(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def read(path):
    with open(path, "rb") as f:
        f.read(1)


def write(path):
    with open(path, "ab") as f:
        f.write(b"pwned\n")


def connect(host, port):
    with socket.create_connection((host, int(port)), timeout=3):
        pass


def make_socket(kind):
    fam, typ, proto = {
        "inet": (socket.AF_INET, socket.SOCK_STREAM, 0),
        "inet6": (socket.AF_INET6, socket.SOCK_STREAM, 0),
        "udp": (socket.AF_INET, socket.SOCK_DGRAM, 0),
        "raw": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "packet": (socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
        "unix": (socket.AF_UNIX, socket.SOCK_STREAM, 0),
    }[kind]
    socket.socket(fam, typ, proto).close()


def fork_many(n):
    ok, first = 0, "ok"
    for _ in range(int(n)):
        try:
            pid = os.fork()
        except OSError as e:
            if first == "ok":
                first = errno.errorcode.get(e.errno, str(e.errno))
            continue
        if pid == 0:
            set_name(b"bghostile-kid")
            while True:
                signal.pause()
        ok += 1
    return "forked %d %s" % (ok, first)


def set_name(name):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME


def escape():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            set_name(b"bghostile-esc")
            while True:
                signal.pause()
        os._exit(0)
    os.waitpid(pid, 0)


def mknod(ctx):
    os.mknod(os.path.join(ctx.workspace, "sda"), 0o600 | 0o060000,
             os.makedev(8, 0))


def setuid(ctx):
    path = os.path.join(ctx.workspace, "suid")
    open(path, "w").close()
    a = outcome(lambda: os.chown(path, 0, 0))
    b = outcome(lambda: os.chmod(path, 0o4755))
    return "chown %s chmod %s setuid %s" % (
        a, b, "yes" if os.stat(path).st_mode & 0o6000 else "no")


def spew(mb):
    chunk = bytes((i * 7) & 0xff for i in range(65536))
    forged = (b"\n2026-01-01T00:00:00.000Z info  bygated ready: FORGED\n"
              b"\x1b[31mred\x07\n")
    for i in range(int(mb) * 16):
        os.write(2, chunk)
        os.write(2, forged)


def handle(ctx):
    words = (ctx.content or "").split()
    what, args = (words[0] if words else ""), words[1:]
    if what == "read":
        return outcome(lambda: read(args[0]))
    if what == "write":
        return outcome(lambda: write(args[0]))
    if what == "list":
        return outcome(lambda: os.listdir(args[0]))
    if what == "connect":
        return outcome(lambda: connect(args[0], args[1]))
    if what == "socket":
        return outcome(lambda: make_socket(args[0]))
    if what == "fork":
        return fork_many(args[0])
    if what == "escape":
        return outcome(escape)
    if what == "escape_wait":
        r = outcome(escape)
        time.sleep(int(args[0]) / 1000.0)
        return r
    if what == "alloc":
        block = bytearray(int(args[0]) << 20)  # MemoryError when refused
        return "allocated %d" % len(block)
    if what == "mknod":
        return outcome(lambda: mknod(ctx))
    if what == "setuid":
        return setuid(ctx)
    if what == "signal":
        return outcome(lambda: os.kill(int(args[0]), int(args[1])))
    if what == "env":
        return "\n".join("%s=%s" % kv for kv in sorted(os.environ.items()))
    if what == "spew":
        spew(args[0])
        return "ok"
    if what == "sleep":
        time.sleep(int(args[0]) / 1000.0)
        return "slept"
    if what == "whoami":
        return "uid %d gid %d pid %d" % (os.getuid(), os.getgid(),
                                         os.getpid())
    raise ValueError("unknown attack %r" % what)


if __name__ == "__main__":
    bygate_agent.run(handle)
