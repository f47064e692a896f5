"""Strings with U+0000 (issue 11, item 1) end to end: an id holding a NUL
(or any control character) once JSON-decoded is refused as `invalid_id`
(dead letter, nothing written under the id it would be truncated to, no
replay of the message it would alias), while content and every other
string reach handlers whole, NULs included: a C plugin
(tests/plugins/nulecho.c) and a Python agent on examples/python's
bygate_agent helper, and their answers come back whole too."""

import json
import os
import pathlib

from harness import wait_until, wait_task_end
import pyclient as pc

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")

# Echoes the content as a chunk and answers the lengths and hex bytes of
# the content and the header's user_name, as it read them.
PY_AGENT = r'''
import sys
sys.path.insert(0, %r)
import bygate_agent


def handle(ctx):
    user = ctx.header.get("user_name", "")
    if ctx.content.startswith("fail:"):
        raise ValueError(ctx.content[5:])
    if ctx.content.startswith("call:"):  # call:<target>, content with NUL
        try:
            r = ctx.call_agent(ctx.content[5:], "ab\x00cd",
                               wait_for_reply=False)
        except bygate_agent.BygateError as e:
            return "call refused: " + e.code
        return "call: " + r.get("status", "")
    if ctx.content == "kv":
        try:
            ctx.kv_set("k\x00ey", 1)
        except bygate_agent.BygateError as e:
            return "kv refused: " + e.code
        return "kv accepted"
    ctx.chunk(ctx.content)
    return "%%d:%%s %%d:%%s" %% (len(ctx.content), ctx.content.encode().hex(),
                             len(user), user.encode().hex())


if __name__ == "__main__":
    bygate_agent.run(handle)
''' % str(EXAMPLES)


def deadletters(c, keys):
    return c.stream_data(keys.deadletter())


def dead_letter_of(c, keys, marker, t=10):
    """The dead letter whose raw entry contains `marker`."""
    return wait_until(
        lambda: [x for x in deadletters(c, keys)
                 if marker in (x.get("entry") or "")], t,
        what="a dead letter for %r" % marker)[0]


def finished(c, keys, session, mid, t=20):
    def done():
        rec = pc.record(c, keys, session, mid)
        return rec if rec and rec["status"] in TERMINAL else None
    return wait_until(done, t, what="execution %s to finish" % mid)


def texts(c, keys, session, mid, event_type):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, keys, session)
            if e["message_id"] == mid and e["event_type"] == event_type]


def xadd(c, keys, cmd, agent="echo"):
    c.call("XADD", keys.ctrl_agent_type(agent), "*", "data", json.dumps(cmd))


def test_session_id_with_nul_is_dead_lettered_and_writes_no_session(h):
    d = h.start_bygated()
    c = h.client()
    mid, _ = pc.send(c, h.keys, "victim\u0000evil", "echo", "nul-session")
    dl = dead_letter_of(c, h.keys, "nul-session")
    assert dl["error_code"] == "invalid_id", dl
    assert dl["status"] == "FAILED"
    assert dl["reason"].startswith('session_id "victim\\x00evil" contains '
                                   'U+0000 or another control character')
    assert dl["target_agent_type"] == "echo"
    # the entry is answered and nothing is written under "victim"
    wait_until(lambda: pc.pending_count(
        c, h.keys.ctrl_agent_type("echo")) == 0, 10, what="the XACK")
    ok, _ = pc.send(c, h.keys, "s-after", "echo", "after")
    assert finished(c, h.keys, "s-after", ok)["status"] == "COMPLETED"
    assert c.call("EXISTS", h.keys.data_stream("victim")) == 0
    assert c.call("EXISTS", h.keys.registry("victim")) == 0
    assert pc.events(c, h.keys, "victim\u0000evil") == []
    assert d.alive()


def test_message_id_with_nul_is_not_taken_for_the_message_before_it(h):
    d = h.start_bygated()
    c = h.client()
    pc.send(c, h.keys, "s-mid", "echo", "first", message_id="msg-v1")
    first = finished(c, h.keys, "s-mid", "msg-v1")
    assert first["status"] == "COMPLETED"
    wait_task_end(d, "msg-v1")
    before = pc.events(c, h.keys, "s-mid")
    mark = d.log_mark()
    pc.send(c, h.keys, "s-mid", "echo", "second",
            message_id="msg-v1\u0000x")
    dl = dead_letter_of(c, h.keys, "second")
    assert dl["error_code"] == "invalid_id", dl
    # not acknowledged as a terminal replay of msg-v1, nothing run
    d.wait_log("dead-lettered (invalid_id)", since=mark)
    assert "terminal replay" not in d.log_text(since=mark)
    assert pc.events(c, h.keys, "s-mid") == before
    assert pc.record(c, h.keys, "s-mid", "msg-v1") == first


def test_every_header_id_with_a_control_character_is_dead_lettered(h):
    h.start_bygated()
    c = h.client()
    keys = ("trace_id", "user_code", "source_agent_type",
            "target_agent_type", "parent_message_id", "task_group_id",
            "trace_parent_span_id", "langfuse_parent_observation_id")
    for i, key in enumerate(keys):
        cmd = pc.ask_command("s-ids", "echo", "bad-%d" % i)
        cmd["header"][key] = cmd["header"][key] + "x\u0000y"
        xadd(c, h.keys, cmd)
    cmd = pc.ask_command("s-ids", "echo", "bad-del")
    cmd["header"]["session_id"] = "s-ids\u007f"
    xadd(c, h.keys, cmd)
    for m in ["bad-%d" % i for i in range(len(keys))] + ["bad-del"]:
        assert dead_letter_of(c, h.keys, m)["error_code"] == "invalid_id"
    assert pc.events(c, h.keys, "s-ids") == []
    wait_until(lambda: pc.pending_count(
        c, h.keys.ctrl_agent_type("echo")) == 0, 10, what="the XACKs")


def test_cancel_naming_a_message_id_with_nul_is_refused(h):
    h.start_bygated()
    c = h.client()
    cmd = pc.ask_command("s-cancel", "echo", "x")
    cmd["action_type"] = "CANCEL_TASK"
    cmd["body"] = {"target_message_id": "msg-v1\u0000x",
                   "reason": "cancel-nul"}
    c.call("XADD", h.keys.ctrl_worker(h.worker_id), "*", "data",
           json.dumps(cmd))
    assert dead_letter_of(c, h.keys, "cancel-nul")["error_code"] == \
        "invalid_id"


def test_content_and_user_name_with_nul_reach_a_c_plugin_whole(h):
    h.start_bygated({"agent_types": [h.agent_type("nulecho")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-c", "nulecho", "ab\u0000cd",
                     user_name="ali\u0000ce")
    assert finished(c, h.keys, "s-c", mid)["status"] == "COMPLETED"
    assert texts(c, h.keys, "s-c", mid, "finalAnswer") == [
        "content=5:6162006364 user_name=6:616c69006365"]
    # and an answer holding U+0000 reaches the client whole
    mid, _ = pc.send(c, h.keys, "s-c", "nulecho", "json:x\u0000y")
    assert finished(c, h.keys, "s-c", mid)["status"] == "COMPLETED"
    assert texts(c, h.keys, "s-c", mid, "finalAnswer") == ["x\u0000y"]


def python_agent(h, mode):
    home = h.tmp / "nulagent"
    home.mkdir(exist_ok=True)
    os.chmod(home, 0o755)
    script = home / "nulagent.py"
    script.write_text(PY_AGENT)
    os.chmod(script, 0o644)
    return {"name": "nulpy", "handler": "exec", "mode": mode,
            "timeout_ms": 20000, "command": "python3 %s" % script}


def nul_content_reaches_a_python_agent(h, mode):
    h.start_bygated({"pool": {"size": 1},
                     "agent_types": [python_agent(h, mode)]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-py", "nulpy", "ab\u0000cd",
                     user_name="ali\u0000ce")
    rec = finished(c, h.keys, "s-py", mid)
    assert rec["status"] == "COMPLETED", rec
    assert texts(c, h.keys, "s-py", mid, "answerDelta") == ["ab\u0000cd"]
    assert texts(c, h.keys, "s-py", mid, "finalAnswer") == [
        "5:6162006364 6:616c69006365"]
    # an error message holding U+0000 fails the task, the agent goes on
    mid, _ = pc.send(c, h.keys, "s-py", "nulpy", "fail:no\u0000pe")
    assert finished(c, h.keys, "s-py", mid)["status"] == "FAILED"
    mid, _ = pc.send(c, h.keys, "s-py", "nulpy", "again")
    assert finished(c, h.keys, "s-py", mid)["status"] == "COMPLETED"


def test_content_with_nul_reaches_a_persistent_python_agent_whole(h):
    nul_content_reaches_a_python_agent(h, "persistent")


def test_content_with_nul_reaches_a_per_task_python_agent_whole(h):
    nul_content_reaches_a_python_agent(h, "per_task")


def test_a_handler_call_carries_nul_content_whole_and_refuses_nul_names(h):
    """Handler operations (supervisor/calls.c) read their arguments with
    NULs allowed: call_agent's content reaches the callee whole, while a
    target agent type or a kv key holding a NUL is refused, not cut short
    into another name."""
    h.start_bygated({"pool": {"size": 2},
                     "agent_types": [python_agent(h, "persistent"),
                                     h.agent_type("nulecho")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-call", "nulpy", "call:nulecho")
    assert finished(c, h.keys, "s-call", mid)["status"] == "COMPLETED"
    assert texts(c, h.keys, "s-call", mid, "finalAnswer") == ["call: QUEUED"]
    answers = wait_until(lambda: [
        e for e in pc.events(c, h.keys, "s-call")
        if e["event_type"] == "finalAnswer" and e["message_id"] != mid], 20,
        what="the callee's answer")
    assert [a["data"]["choices"][0]["delta"]["content"] for a in answers] \
        == ["content=5:6162006364 user_name=5:616c696365"]
    mid, _ = pc.send(c, h.keys, "s-call", "nulpy", "call:nulecho\u0000x")
    assert finished(c, h.keys, "s-call", mid)["status"] == "COMPLETED"
    assert texts(c, h.keys, "s-call", mid, "finalAnswer") == [
        "call refused: INVALID_ARGUMENT"]
    mid, _ = pc.send(c, h.keys, "s-call", "nulpy", "kv")
    assert finished(c, h.keys, "s-call", mid)["status"] == "COMPLETED"
    assert texts(c, h.keys, "s-call", mid, "finalAnswer") == [
        "kv refused: INVALID_ARGUMENT"]
