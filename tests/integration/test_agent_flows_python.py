"""Multi-agent flows with the Python example agents of examples/python/
(exec handlers) on a real bygated: an agent calling agents and being
resumed by their results (WIRE 6.6), asking the user and being resumed by
the answer (6.8), and a fan-out joined once (6.7). These need bygated's
side of BG_REC_CALL (supervisor/outbox.c)."""

import json
import pathlib
import uuid

from harness import wait_until, timeout
import pyclient as pc

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
AGENTS = ("planner", "researcher", "writer", "summariser", "approver")


def start(h, pool=2):
    return h.start_bygated({
        "pool": {"size": pool},
        "agent_types": [{"name": n, "handler": "exec", "timeout_ms": 30000,
                         "command": "python3 %s" % (EXAMPLES / (n + ".py"))}
                        for n in AGENTS]})


def status(c, keys, session, mid):
    return (pc.record(c, keys, session, mid) or {}).get("status")


def wait_status(c, keys, session, mid, want, t=30):
    wait_until(lambda: status(c, keys, session, mid) in want, t,
               what="%s to reach %s (now %s)" % (
                   mid, want, status(c, keys, session, mid)))
    return pc.record(c, keys, session, mid)


def answers(c, keys, session, mid, event_type="finalAnswer"):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, keys, session)
            if e["message_id"] == mid and e["event_type"] == event_type]


def records(c, keys, session):
    reg = c.call("HGETALL", keys.registry(session)) or []
    pairs = dict(zip(reg[::2], reg[1::2]))
    return [json.loads(v) for k, v in pairs.items() if k.startswith("exec:")]


def resume(c, keys, session, target, mid, content):
    """What GatewayClient.send_message(action_type="RESUME") writes (WIRE
    2.5, 6.8): the RESUME only, the execution is reused."""
    cmd = {"action_type": "RESUME",
           "header": pc.header(session, target, message_id=mid,
                               trace_id=uuid.uuid4().hex),
           "body": {"content": content, "status": "", "reply_data": None}}
    c.call("XADD", keys.ctrl_agent_type(target), "*", "data",
           json.dumps(cmd))


@timeout(90)
def test_planner_calls_researcher_then_writer_and_quotes_the_request(h):
    start(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-plan", "planner", "a trip to Kyoto")
    rec = wait_status(c, h.keys, "s-plan", mid, TERMINAL, 60)
    assert rec["status"] == "COMPLETED", rec
    final = answers(c, h.keys, "s-plan", mid)
    assert len(final) == 1, final
    assert final[0].startswith('Plan for "a trip to Kyoto": Draft: '), final
    assert "3 findings on a trip to Kyoto" in final[0], final
    assert len(answers(c, h.keys, "s-plan", mid, "appStreamResponse")) == 1
    kids = [r for r in records(c, h.keys, "s-plan")
            if r.get("parent_message_id") == mid]
    assert sorted(r["target_agent_type"] for r in kids) == ["researcher",
                                                            "writer"]
    assert all(r["status"] == "COMPLETED" for r in kids), kids


@timeout(90)
def test_approver_asks_the_user_and_the_answer_resumes_it(h):
    start(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-ask", "approver", "deploy v2")
    wait_status(c, h.keys, "s-ask", mid, ("WAITING_USER",))
    forms = [e for e in pc.events(c, h.keys, "s-ask")
             if e["data"]["contentType"] == "3013"]
    assert len(forms) == 1, forms
    assert "Approve deploy v2?" in forms[0]["data"]["choices"][0]["delta"][
        "content"]
    assert answers(c, h.keys, "s-ask", mid, "appStreamResponse") == []
    resume(c, h.keys, "s-ask", "approver", mid, "yes")
    rec = wait_status(c, h.keys, "s-ask", mid, TERMINAL)
    assert rec["status"] == "COMPLETED", rec
    assert answers(c, h.keys, "s-ask", mid) == ["approved: yes"]
    assert len(answers(c, h.keys, "s-ask", mid, "appStreamResponse")) == 1


@timeout(120)
def test_summariser_fans_out_to_10_writers_and_joins_their_results(h):
    start(h, pool=3)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-fan", "summariser", "10 climate")
    rec = wait_status(c, h.keys, "s-fan", mid, TERMINAL, 90)
    assert rec["status"] == "COMPLETED", rec
    final = answers(c, h.keys, "s-fan", mid)
    assert len(final) == 1, final
    assert final[0].startswith("Summary of 10 parts: "), final
    drafts = final[0][len("Summary of 10 parts: "):].split(" | ")
    assert sorted(drafts) == sorted("Draft: part %d of climate" % (i + 1)
                                    for i in range(10)), drafts
    kids = [r for r in records(c, h.keys, "s-fan")
            if r.get("parent_message_id") == mid]
    assert len(kids) == 10 and all(r["status"] == "COMPLETED" for r in kids)
