"""The pid of this process as bygated and the tests see it (shared by the
test agents): under a root bygated each child is PID 1 of its own PID
namespace and os.getpid() is local to it; /proc (the host's) lists every
level in NSpid, the host's first."""
import os


def host_pid():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return os.getpid()
