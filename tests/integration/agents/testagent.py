"""A test agent on examples/python/bygate_agent.py: what it does is chosen
by the first word of the task content (tests/unit/test_child.c,
tests/integration/test_exec_handlers.py)."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402
from nspid import host_pid  # noqa: E402




_arrived = threading.Condition()
_count = [0]


def barrier(n, seconds):
    """True when n tasks (this one included) reached a barrier in this
    process within `seconds`: they ran at the same time in one program."""
    with _arrived:
        _count[0] += 1
        _arrived.notify_all()
        return _arrived.wait_for(lambda: _count[0] >= n, seconds)


def ordinary_work(ctx, host, port):
    """A subprocess, a thread, a TCP round trip (Redis PING) and a file in
    the workspace: "ok" for each, or the exception."""
    out = []

    def step(name, fn):
        try:
            fn()
            out.append(name + " ok")
        except Exception as e:  # reported, not raised: the test reads it
            out.append("%s %r" % (name, e))

    def ping():
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(64).startswith(b"+PONG"), "no PONG"

    def write():
        with open(os.path.join(ctx.workspace, "work.txt"), "w") as f:
            f.write("ok\n")
    step("subprocess", lambda: subprocess.run(["sh", "-c", "exit 0"],
                                              check=True))
    t = threading.Thread(target=lambda: None)
    step("thread", lambda: (t.start(), t.join()))
    step("tcp", ping)
    step("workspace", write)
    return ", ".join(out)


def handle(ctx):
    words = ctx.content.split(" ", 1) if isinstance(ctx.content, str) else [""]
    what, arg = words[0], (words[1] if len(words) > 1 else "")
    if what == "echo":
        ctx.chunk(arg)
        ctx.state("S")
        return "echo: " + arg
    if what == "pid":
        return str(host_pid())
    if what == "private":  # the private dir as this task finds it
        p = ctx.private_dir
        st = os.lstat(p) if os.path.lexists(p) else None
        out = "dir=%d entries=%d uid=%d mode=%o" % (
            bool(st and os.path.isdir(p)),
            len(os.listdir(p)) if st else -1, st.st_uid if st else -1,
            (st.st_mode & 0o7777) if st else 0)
        if st:
            with open(os.path.join(p, "left.txt"), "w") as f:
                f.write("written by the task\n")
        return out
    if what == "fields":
        return {"reply_data": {
            "execution_id": ctx.execution_id, "message_id": ctx.message_id,
            "action_type": ctx.action_type, "resumed": ctx.resumed,
            "attempt": ctx.attempt, "group_results": ctx.group_results,
            "header_keys": sorted(ctx.header), "body": ctx.body,
            "trace_parent_span_id": ctx.header["trace_parent_span_id"],
            "langfuse_parent_observation_id":
                ctx.header["langfuse_parent_observation_id"],
            "workspace": ctx.workspace, "private_dir": ctx.private_dir,
            "cwd": os.getcwd(), "agent_env": os.environ.get(
                "BYGATE_AGENT_TYPE"), "fds": sorted(os.listdir("/proc/self/fd"))}}
    if what == "status":  # the sandbox this program inherited
        with open("/proc/self/status") as f:
            return "\n".join(line.rstrip("\n") for line in f
                             if line.startswith(("NoNewPrivs:", "Seccomp:")))
    if what == "work":  # "work HOST PORT": what agents do, under the sandbox
        return ordinary_work(ctx, *arg.split())
    if what == "stderr":
        print(arg)  # run() sends stdout to stderr too
        sys.stderr.flush()
        time.sleep(0.2)
        return "logged"
    if what == "ask":
        ctx.ask_user("Which city?")
        return None
    if what == "call":
        r = ctx.call_agent("researcher", "Find hotels")
        ctx.chunk(json.dumps(r, sort_keys=True))
        return None
    if what == "history":  # the conversation so far, one line per message
        return "\n".join("%s: %s" % (m["role"], m["content"])
                         for m in ctx.history(int(arg or 20)))
    if what == "kv":
        ctx.kv_set("k", {"n": 1})
        return json.dumps(ctx.kv_get("k"))
    if what == "badcall":
        try:
            ctx.call_agent("", "x")
        except bygate_agent.BygateError as e:
            return "refused: " + e.code
        return "accepted"
    if what == "barrier":  # "barrier N [extra ms]"
        n, _, ms = arg.partition(" ")
        met = barrier(int(n), 2)
        time.sleep(int(ms or 0) / 1000.0)
        return {"content": "%s %d" % ("met" if met else "alone",
                                      host_pid()),
                "reply_data": {"pid": host_pid()},
                "extra_payload": {"pid": host_pid()}}
    if what == "crash-after":  # kills its program once N tasks are in it
        barrier(int(arg), 2)
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "timeout-aware":  # ends at its cancel line (a timeout)
        while not ctx.cancelled():
            time.sleep(0.01)
        return "stopped"
    if what == "linger":  # per_task: the program outlives its result
        threading.Thread(target=time.sleep, args=(int(arg) / 1000.0,)).start()
        return "lingering"
    if what == "raise":
        raise ValueError("boom")
    if what == "sleep":
        time.sleep(int(arg) / 1000.0)
        return "slept " + arg
    if what == "cancel-wait":
        while not ctx.cancelled():
            time.sleep(0.01)
        return "CANCELLED"
    return "noop"


if __name__ == "__main__":
    bygate_agent.run(handle)
