"""A test agent that writes protocol lines by hand, to misbehave on
purpose: the first word of the task content says how (tests/unit/
test_child.c, tests/integration/test_exec_handlers.py). Standard library
only, no helper."""
import json
import os
import signal
import sys
import time

from nspid import host_pid  # the script's directory is on sys.path

out = sys.stdout




def send(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()


for raw in sys.stdin:
    msg = json.loads(raw)
    if msg.get("type") != "task":
        continue
    task = msg["task"]
    what = str(msg["body"].get("content", "")).split(" ")[0]
    sys.stderr.write("rawagent pid %d task %s: %s\n" % (host_pid(), task, what))
    sys.stderr.flush()
    if what == "bad-json":
        out.write("{this is not json\n")
        out.flush()
    elif what == "long-line":
        send({"type": "chunk", "task": task, "content": "x" * (2 << 20)})
    elif what == "unknown-type":
        send({"type": "bogus", "task": task})
    elif what == "wrong-task":
        send({"type": "result", "task": task + 1000})
    elif what == "exit-3":
        sys.exit(3)
    elif what == "no-result":
        sys.exit(0)
    elif what == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif what == "hang":
        time.sleep(3600)
    elif what == "fds":
        fds = " ".join(sorted(os.listdir("/proc/self/fd"), key=int))
        send({"type": "result", "task": task, "content": "ok:" + fds})
    elif what == "typed-error":  # the error line's own type (WIRE 6.2)
        send({"type": "result", "task": task, "error": "quota exceeded",
              "error_type": "QuotaExceeded", "retryable": True})
    elif what == "untagged":
        send({"type": "chunk", "content": "no task field"})
        send({"type": "result", "content": "untagged ok"})
    else:
        send({"type": "result", "task": task, "content": "ok:" + what})
