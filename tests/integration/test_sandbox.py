"""The child sandbox (child/sandbox.c, docs/architecture.md "Sandbox") end
to end: privileged and cross-process calls are refused with EPERM in a
plugin, ordinary work (processes, threads, the workspace, the network)
still succeeds, exec programs inherit the filter, pool.sandbox = false
turns it off (at once, or for the children of the next generation after a
SIGHUP), and a child that cannot apply it says so. Probes:
tests/plugins/sandbox.c and the "status"/"work" commands of
tests/integration/agents/testagent.py."""

import pathlib
import signal

from harness import wait_until
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
REFUSED = ("ptrace", "mount", "unshare-user", "clone-newns", "personality")
ALLOWED = ("fork-exec", "thread", "write-workspace", "personality-query")


def start(h, sandbox=True, size=1):
    # "work" connects to redis: the agent type lists its port.
    py = {"name": "py", "handler": "exec",
          "command": "python3 %s" % (AGENTS / "testagent.py"),
          "sandbox": {"network": "connect",
                      "connect_ports": [h.redis.port]}}
    return h.start_bygated({
        "pool": {"size": size, "sandbox": sandbox},
        "agent_types": [h.agent_type("sandbox"), py]})


def answer(h, c, agent, content, session="s-sandbox"):
    """Run one task to COMPLETED; its final answer text."""
    mid, _ = pc.send(c, h.keys, session, agent, content)

    def done():
        rec = pc.record(c, h.keys, session, mid)
        return rec if rec and rec["status"] in TERMINAL else None
    rec = wait_until(done, 20, what="%s task %r" % (agent, content))
    assert rec["status"] == "COMPLETED", rec
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, h.keys, session)
            if e["message_id"] == mid and e["event_type"] == "finalAnswer"][0]


def status(h, c, agent):
    """{"NoNewPrivs": "1", "Seccomp": "2"} as the handler sees it."""
    lines = answer(h, c, agent, "status").splitlines()
    return dict((k, v.strip()) for k, v in (x.split(":", 1) for x in lines))


def test_plugin_is_refused_privileged_and_cross_process_calls(h):
    start(h)
    c = h.client()
    got = {p: answer(h, c, "sandbox", p) for p in REFUSED}
    assert got == {p: "EPERM" for p in REFUSED}


def test_plugin_still_spawns_threads_and_writes_its_workspace(h):
    start(h)
    c = h.client()
    got = {p: answer(h, c, "sandbox", p) for p in ALLOWED}
    assert got == {p: "ok" for p in ALLOWED}
    assert status(h, c, "sandbox") == {"NoNewPrivs": "1", "Seccomp": "2"}


def test_exec_program_inherits_the_filter_and_still_works(h):
    start(h)
    c = h.client()
    assert status(h, c, "py") == {"NoNewPrivs": "1", "Seccomp": "2"}
    r = h.redis
    assert answer(h, c, "py", "work %s %d" % (r.host, r.port)) == (
        "subprocess ok, thread ok, tcp ok, workspace ok")


def test_sandbox_false_runs_children_without_it(h):
    start(h, sandbox=False)
    c = h.client()
    assert status(h, c, "sandbox")["Seccomp"] == "0"
    assert status(h, c, "py")["Seccomp"] == "0"
    # Refused for ordinary reasons only: the mount point does not exist.
    assert answer(h, c, "sandbox", "mount") in ("ENOENT", "EPERM")
    assert answer(h, c, "sandbox", "fork-exec") == "ok"


def test_sighup_applies_pool_sandbox_to_the_next_generation(h):
    d = start(h)
    c = h.client()
    assert status(h, c, "sandbox")["Seccomp"] == "2"
    kids = set(d.child_pids())
    d.config["pool"]["sandbox"] = False
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", timeout=5)
    wait_until(lambda: d.child_pids() and not kids & set(d.child_pids()), 15,
               what="children of the new generation")
    assert status(h, c, "sandbox")["Seccomp"] == "0"


def test_child_that_cannot_apply_the_sandbox_says_why(h):
    d = h.bygated({"pool": {"size": 1},
                   "agent_types": [h.agent_type("sandbox")]})
    d.env = dict(d.env, BYGATE_FAULT="child.sandbox")
    d.start(wait=False)
    d.wait_log("cannot serve: cannot apply the child sandbox: "
               "seccomp_load (fault point)", timeout=15)
    assert "pool.sandbox = false runs children without it" in d.log_text()
