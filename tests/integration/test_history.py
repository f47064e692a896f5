"""Each session's conversation in Redis (docs/history.md): the user's turns
and the agent's answers, written by the finish with the task's other
writes (once each, whatever crashes happen), bounded, shared by every
bygated, read with `bygate history`."""

import json

from harness import wait_until
import pyclient as pc
import test_agent_flows as flows

FAST = {"block_ms": 200, "lease_ttl_s": 2, "heartbeat_interval_ms": 500,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000}


def start(h, agents=None, **extra):
    cfg = {"worker": dict(FAST),
           "agent_types": agents or [h.agent_type("echo")]}
    cfg.update(extra)
    return h.start_bygated(cfg)


def history(h, session):
    c = h.client()
    return [json.loads(m) for m in
            c.call("LRANGE", h.keys.session_history(session), 0, -1)]


def ask(h, session, text, agent="echo"):
    c = h.client()
    mid, _ = pc.send(c, h.keys, session, agent, text)
    rec = pc.wait_terminal(c, h.keys, session, mid)
    assert rec["status"] == "COMPLETED", rec
    return mid, rec


def test_each_turn_and_its_answer_are_kept_once_in_order(h):
    start(h)
    m1, r1 = ask(h, "s-h1", "hello")
    m2, r2 = ask(h, "s-h1", "and again")
    msgs = history(h, "s-h1")
    assert [(m["role"], m["metadata"]["message_id"]) for m in msgs] == [
        ("user", m1), ("assistant", m1), ("user", m2), ("assistant", m2)]
    assert msgs[0]["content"] == "hello"
    assert msgs[2]["content"] == "and again"
    finals = [e["data"]["choices"][0]["delta"]["content"]
              for e in pc.events(h.client(), h.keys, "s-h1")
              if e["event_type"] == "finalAnswer"]
    assert [msgs[1]["content"], msgs[3]["content"]] == finals
    assert msgs[1]["metadata"]["execution_id"] == r1["execution_id"]
    assert msgs[0]["metadata"]["agent_type"] == "echo"
    assert msgs[0]["session_id"] == "s-h1"
    assert msgs[0]["created_at"] > 0
    ttl = h.client().call("TTL", h.keys.session_history("s-h1"))
    assert 604000 < ttl <= 604800
    # the CLI reads the same list
    out = h.bygate("--json", "history", "--session", "s-h1")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["length"] == 4 and doc["messages"] == msgs
    out = h.bygate("history", "--session", "s-h1", "--limit", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and "user" in lines[0] and "and again" in lines[0]
    assert "assistant" in lines[1]
    out = h.bygate("history", "--session", "nobody-here")
    assert out.returncode == 0 and "no messages" in out.stdout
    assert h.bygate("history").returncode == 2
    assert h.bygate("history", "--session", "s", "--limit",
                    "0").returncode == 2


def test_the_list_keeps_the_last_max_messages(h):
    start(h, history={"max_messages": 3})
    mids = [ask(h, "s-h2", "turn %d" % i)[0] for i in range(3)]
    msgs = history(h, "s-h2")
    assert [(m["role"], m["metadata"]["message_id"]) for m in msgs] == [
        ("assistant", mids[1]), ("user", mids[2]), ("assistant", mids[2])]


def test_backend_off_keeps_nothing(h):
    start(h, history={"backend": "off"})
    ask(h, "s-h3", "not kept")
    assert h.client().call("EXISTS", h.keys.session_history("s-h3")) == 0


def test_a_sub_agents_task_is_not_a_turn_of_the_conversation(h):
    """alpha calls beta: the conversation is the user's message and
    alpha's answer; beta's task (alpha's question to it) is not a turn."""
    start(h, [flows.flow(h, "alpha", "caller", "beta"),
              flows.flow(h, "beta", "worker")])
    mid, _ = ask(h, "s-h4", "trip", agent="alpha")
    msgs = history(h, "s-h4")
    assert [(m["role"], m["metadata"]["message_id"]) for m in msgs] == [
        ("user", mid), ("assistant", mid)], msgs
    assert all(m["metadata"]["agent_type"] == "alpha" for m in msgs)


def test_a_users_reply_to_ask_user_is_a_user_turn(h):
    start(h, [flows.flow(h, "asker", "asker")])
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-h5", "asker", "book a room")
    wait_until(lambda: flows.rec(c, h.keys, "s-h5", mid).get("status") ==
               "WAITING_USER", 10, what="waiting for the user")
    out = h.bygate("reply", mid, "--session", "s-h5", "--content",
                   "Kyoto", "--route-policy", "SEND_ANYWAY")
    assert out.returncode == 0, out.stdout + out.stderr
    flows.done(c, h.keys, "s-h5", mid)
    msgs = history(h, "s-h5")
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "book a room"), ("assistant", "Which city?"),
        ("user", "Kyoto"), ("assistant", "answer: Kyoto")], msgs


def test_a_crash_after_the_finish_is_applied_keeps_each_message_once(h):
    """kill -9 after the EXEC and before its journal entry goes
    (finish.after_exec): the restart finds the finish applied; the
    conversation has the turn and the answer once."""
    d = h.bygated({"worker": dict(FAST),
                   "agent_types": [h.agent_type("echo")]})
    d.env = dict(d.env, BYGATE_FAULT="finish.after_exec")
    d.start()
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-h6", "echo", "once")
    d.wait_exit(20)
    assert d.returncode != 0
    d.env = dict(d.env)
    d.env.pop("BYGATE_FAULT")
    d.start()
    pc.wait_terminal(c, h.keys, "s-h6", mid)
    wait_until(lambda: len(history(h, "s-h6")) >= 2, 10,
               what="the conversation")
    assert [m["role"] for m in history(h, "s-h6")] == ["user", "assistant"]


def test_agents_read_the_turns_finished_before_them(h):
    """bg_ctx_history (C SDK) and ctx.history() (the Python helper) read
    the session's conversation: the turns finished before this task."""
    import pathlib
    agents = pathlib.Path(__file__).resolve().parent / "agents"
    start(h, [h.agent_type("echo"), h.agent_type("c", plugin="calls"),
              {"name": "py", "handler": "exec", "mode": "persistent",
               "command": "python3 %s" % (agents / "testagent.py")}])
    m1, _ = ask(h, "s-h7", "hello")
    first = history(h, "s-h7")
    m2, _ = ask(h, "s-h7", "history", agent="c")
    chunks = [e["data"]["choices"][0]["delta"]["content"]
              for e in pc.events(h.client(), h.keys, "s-h7")
              if e["message_id"] == m2 and e["event_type"] == "answerDelta"]
    assert json.loads(chunks[0]) == first, chunks
    assert chunks[1] == "rc -22", chunks  # a limit of 0 is refused
    m3, rec = ask(h, "s-h7", "history 3", agent="py")
    lines = [m["content"] for m in history(h, "s-h7")
             if m["metadata"]["message_id"] == m3 and
             m["role"] == "assistant"][0].splitlines()
    # hello and its answer; the C agent's turn (its chunks are no
    # finalAnswer: no answer kept)
    assert lines == ["user: hello", "assistant: hello", "user: history"], \
        lines


def test_a_three_turn_conversation_on_two_bygated(h):
    """The planner flow (examples/python: planner -> researcher -> writer)
    three times in one session on two bygated sharing one Redis: the first
    turn on A alone, the second on B alone (A stopped), the third on both.
    Each turn's planner reads the turns before it from the conversation,
    whichever bygated wrote them (its answer names its turn and the request
    before it); the conversation ends with the three turns and their
    answers, once each."""
    import test_agent_flows_python as fp
    conf = {"worker": dict(FAST), "pool": {"size": 2},
            "agent_types": [{"name": n, "handler": "exec",
                             "timeout_ms": 30000, "mode": "persistent",
                             "command": "python3 %s" % (
                                 fp.EXAMPLES / (n + ".py"))}
                            for n in ("planner", "researcher", "writer")]}
    a = h.start_bygated(conf)
    b = h.bygated(conf)
    c = h.client()
    asks = ["a trip to Kyoto", "and to Osaka", "and back home"]
    mids = []
    for i, text in enumerate(asks):
        if i == 1:
            a.stop()
            b.start()
        elif i == 2:
            a.start()
        mid, _ = pc.send(c, h.keys, "s-3turn", "planner", text)
        rec = fp.wait_status(c, h.keys, "s-3turn", mid, fp.TERMINAL, 60)
        assert rec["status"] == "COMPLETED", rec
        if i < 2:
            assert rec["worker_id"] == (a, b)[i].config["worker"]["id"], rec
        [final] = fp.answers(c, h.keys, "s-3turn", mid)
        assert final.startswith('Plan for "%s": ' % text), final
        if i:
            assert final.endswith(' (turn %d, after "%s")'
                                  % (i + 1, asks[i - 1])), final
        mids.append(mid)
    msgs = history(h, "s-3turn")
    assert [(m["role"], m["metadata"]["message_id"]) for m in msgs] == [
        (r, m) for m in mids for r in ("user", "assistant")], msgs
    assert [m["content"] for m in msgs if m["role"] == "user"] == asks


def test_a_retried_message_keeps_its_turn_once(h):
    """A task that failed, run again by `bygate retry` (the same message):
    the user's turn was kept by the failed run's finish, not again; the
    answer comes with the run that completes it."""
    import test_queues as q
    d = start(h, [h.agent_type("flaky", plugin="fail")])
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-h8", "flaky", "again")
    q.wait_status(h, mid, "FAILED", session="s-h8")
    assert [m["role"] for m in history(h, "s-h8")] == ["user"]
    d.stop()
    start(h, [h.agent_type("flaky", plugin="echo")])
    out = h.bygate("retry", mid, "--session", "s-h8")
    assert out.returncode == 0, out.stderr
    q.wait_status(h, mid, "COMPLETED", session="s-h8")
    wait_until(lambda: len(history(h, "s-h8")) >= 2, 10,
               what="the answer kept")
    msgs = history(h, "s-h8")
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "again"), ("assistant", "again")], msgs


def test_content_with_a_nul_is_kept_as_sent(h):
    start(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-h9", "echo", "a\u0000b")
    pc.wait_terminal(c, h.keys, "s-h9", mid)
    msgs = history(h, "s-h9")
    assert msgs[0]["content"] == "a\u0000b", msgs
    out = h.bygate("--json", "history", "--session", "s-h9")
    assert json.loads(out.stdout)["messages"][0]["content"] == "a\u0000b"
