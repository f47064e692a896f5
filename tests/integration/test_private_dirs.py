"""The per-task private directory (docs/workspaces.md): bygated leaves it to
the task's own process, which makes it when its handler first asks for the
path (the protocol's task line, bg_ctx_private_dir); whoever asks finds an
empty directory of the pool user's, a left-over of the same attempt is gone
before the attempt starts, and the directory is removed at the task's end
with whatever the handler left in it."""

import os
import pathlib

from harness import wait_until
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def start(h, mode="persistent"):
    return h.start_bygated({"pool": {"size": 2}, "agent_types": [
        {"name": "py", "handler": "exec", "mode": mode,
         "command": "python3 %s" % (AGENTS / "testagent.py")},
        h.agent_type("calls")]})


def finish(h, c, session, mid):
    def done():
        rec = pc.record(c, h.keys, session, mid)
        return rec if rec and rec["status"] in TERMINAL else None
    rec = wait_until(done, 30, what="message %s" % mid)
    assert rec["status"] == "COMPLETED", rec
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, h.keys, session) if e["message_id"] == mid
            and e["event_type"] in ("finalAnswer", "answerDelta")]


def session_dir(d, agent, session):
    root = pathlib.Path(d.config["paths"]["workspace_dir"])
    return root / agent / "u-001" / "sessions" / session  # pyclient.send


def pool_uid(d):
    return os.stat(session_dir(d, "py", "s1")).st_uid


def asks_and_finds_it_empty_and_its_own(h, mode):
    d = start(h, mode)
    c = h.client()
    for i in range(2):  # the second from the descriptor cache
        mid, eid = pc.send(c, h.keys, "s1", "py", "private")
        got = finish(h, c, "s1", mid)[-1]
        assert got == "dir=1 entries=0 uid=%d mode=700" % pool_uid(d), got
        priv = session_dir(d, "py", "s1") / "private"
        assert not (priv / ("%s.1" % eid)).exists()  # removed, with left.txt
        assert os.listdir(priv) == []


def test_an_exec_handler_finds_an_empty_private_dir_of_the_pool_user(h):
    asks_and_finds_it_empty_and_its_own(h, "persistent")


def test_a_per_task_program_finds_an_empty_private_dir_of_the_pool_user(h):
    asks_and_finds_it_empty_and_its_own(h, "per_task")


def test_a_plugin_asking_for_its_private_dir_gets_one_removed_at_the_end(h):
    d = start(h)
    c = h.client()
    mid, eid = pc.send(c, h.keys, "s2", "calls", "dirs")
    got = finish(h, c, "s2", mid)
    want = session_dir(d, "calls", "s2") / "private" / ("%s.1" % eid)
    assert str(want) in got, got
    assert not want.exists()
    assert os.listdir(want.parent) == []


def test_a_left_over_of_the_same_attempt_is_gone_before_it_starts(h):
    d = start(h)
    c = h.client()
    finish(h, c, "s1", pc.send(c, h.keys, "s1", "py", "echo hi")[0])
    priv = session_dir(d, "py", "s1") / "private"
    st = os.stat(priv)
    # An earlier run of the attempt left its directory (bygated killed
    # before it removed it): same execution id, same attempt.
    cmd = pc.ask_command("s1", "py", "private")
    eid, cmds = pc.send_commands(h.keys, cmd)
    left = priv / ("%s.1" % eid)
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "stale.txt").write_text("from the earlier run\n")
    for p in (left, left / "sub", left / "sub" / "stale.txt"):
        os.chown(p, st.st_uid, st.st_gid)
    c.pipeline(cmds)
    got = finish(h, c, "s1", cmd["header"]["message_id"])[-1]
    assert got == "dir=1 entries=0 uid=%d mode=700" % st.st_uid, got
    assert not left.exists()
