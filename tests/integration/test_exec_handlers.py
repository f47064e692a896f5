"""Exec handlers (handler = "exec", docs/handler-protocol.md) end to end:
real bygated, Python agents in both modes, and a misbehaving program
failing its task with an explanation while the next task on the same
child slot succeeds. The agents are in tests/integration/agents/."""

import os
import pathlib
import shutil
import subprocess

from harness import wait_until, timeout
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def exec_type(name, script, **settings):
    entry = {"name": name, "handler": "exec",
             "command": "python3 %s" % (AGENTS / script)}
    entry.update(settings)
    return entry


def start(h, *agent_types, **pool):
    return h.start_bygated({"pool": dict({"size": 1}, **pool),
                            "agent_types": list(agent_types)})


def run(c, keys, session, agent, content, t=20):
    """Send one task and wait for its terminal record."""
    mid, _ = pc.send(c, keys, session, agent, content)

    def done():
        rec = pc.record(c, keys, session, mid)
        return rec if rec and rec["status"] in TERMINAL else None
    return mid, wait_until(done, t, what="%s task %r" % (agent, content))


def texts(evs, mid, event_type):
    return [e["data"]["choices"][0]["delta"]["content"] for e in evs
            if e["message_id"] == mid and e["event_type"] == event_type]


def streams_and_completes(h, mode):
    start(h, exec_type("py", "testagent.py", mode=mode))
    c = h.client()
    for i in range(3):
        mid, rec = run(c, h.keys, "s-%s" % mode, "py", "echo hi %d" % i)
        assert rec["status"] == "COMPLETED", rec
        evs = pc.events(c, h.keys, "s-%s" % mode)
        assert texts(evs, mid, "answerDelta") == ["hi %d" % i]
        assert "S" in texts(evs, mid, "reasoningLogDelta")
        assert texts(evs, mid, "finalAnswer") == ["echo: hi %d" % i]
        assert texts(evs, mid, "appStreamResponse") == [""]


def test_persistent_python_agent_streams_and_completes(h):
    streams_and_completes(h, "persistent")


def test_per_task_python_agent_streams_and_completes(h):
    streams_and_completes(h, "per_task")


def agent_pids(h, mode, n=3):
    """The pids n "pid" tasks of a testagent in `mode` report."""
    start(h, exec_type("py", "testagent.py", mode=mode))
    c = h.client()
    pids = []
    for _ in range(n):
        mid, rec = run(c, h.keys, "s-pid", "py", "pid")
        assert rec["status"] == "COMPLETED", rec
        pids += texts(pc.events(c, h.keys, "s-pid"), mid, "finalAnswer")
    return pids


def test_persistent_agent_keeps_one_warm_process(h):
    assert len(set(agent_pids(h, "persistent"))) == 1


def test_per_task_agent_starts_a_process_per_task(h):
    assert len(set(agent_pids(h, "per_task"))) == 3


def fails_then_next_succeeds(h, mode, how, want, **settings):
    """`how` fails its task with an error_message containing `want`; the
    next task on the same (only) child slot completes."""
    d = start(h, exec_type("raw", "rawagent.py", mode=mode, **settings))
    c = h.client()
    kids = d.child_pids()
    _, rec = run(c, h.keys, "s-fail", "raw", how)
    assert rec["status"] == "FAILED", rec
    assert want in rec["error_message"], rec["error_message"]
    _, rec = run(c, h.keys, "s-fail", "raw", "fine")
    assert rec["status"] == "COMPLETED", rec
    return d, kids


def test_invalid_json_fails_the_task_and_the_next_succeeds(h):
    d, kids = fails_then_next_succeeds(
        h, "persistent", "bad-json",
        "a line that is not a JSON object: '{this is not json'")
    assert d.child_pids() == kids  # the child itself stayed up


def test_over_long_line_fails_the_task_and_the_next_succeeds(h):
    fails_then_next_succeeds(h, "persistent", "long-line",
                             "wrote a line longer than max_line_bytes "
                             "(1048576)")


def test_exit_non_zero_fails_the_task_and_the_next_succeeds(h):
    fails_then_next_succeeds(h, "per_task", "exit-3",
                             "exited with status 3 before sending the "
                             "result")


def test_killed_program_fails_the_task_and_the_next_succeeds(h):
    fails_then_next_succeeds(h, "persistent", "crash",
                             "was killed by signal 9")


@timeout(60)
def test_hang_past_timeout_fails_the_task_and_the_next_succeeds(h):
    fails_then_next_succeeds(h, "persistent", "hang", "timed out",
                             timeout_ms=1500)
    # The log names the program's pid inside its child's PID namespace:
    # look for the programs on the host. Only the fresh one that ran
    # "fine" may be left.
    wait_until(lambda: len(live_processes("rawagent.py")) <= 1, 10,
               what="the hung program to be gone")


def live_processes(needle):
    """Host pids of live (not zombie) processes whose command line holds
    needle."""
    out = []
    for d in os.listdir("/proc"):
        try:
            cmd = open("/proc/%s/cmdline" % d, "rb").read().replace(b"\0", b" ")
            state = open("/proc/%s/stat" % d).read().split(")")[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if needle.encode() in cmd and state != "Z":
            out.append(int(d))
    return out


def test_stderr_lines_reach_the_log_with_the_execution_id(h):
    d = start(h, exec_type("py", "testagent.py"))
    c = h.client()
    mid, rec = run(c, h.keys, "s-log", "py", "stderr hello from python")
    assert rec["status"] == "COMPLETED", rec
    d.wait_log("[%s] stderr: hello from python" % rec["execution_id"])


def test_relative_command_runs_in_the_config_directory(h):
    d = h.bygated({"pool": {"size": 1}, "agent_types": [
        {"name": "rel", "handler": "exec",
         "command": "python3 ./agents/rawagent.py"}]})
    os.makedirs(os.path.join(d.workdir, "agents"), exist_ok=True)
    for name in ("rawagent.py", "nspid.py"):
        shutil.copy(AGENTS / name, os.path.join(d.workdir, "agents", name))
    d.start()
    c = h.client()
    _, rec = run(c, h.keys, "s-rel", "rel", "here")
    assert rec["status"] == "COMPLETED", rec


def test_exec_config_is_checked_by_bygated_t(h):
    d = h.bygated({"agent_types": [{"name": "bad", "handler": "exec",
                                    "command": "python3 a.py | tee x"}]})
    d.write_config()
    r = subprocess.run([str(h.bin("bygated")), "-t", "-c", d.config_path],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "not run by a shell" in r.stdout + r.stderr, r
