"""`bygate dag run`, `fanout` and `group start|add|close|show` (issue 13
item 5, docs/client.md "Workflows") against a live bygated. The workflow
agent types are played by tests/integration/agents/wfstub.py, registered
under their names, which speaks their contract (step events, one result)
without running anything: what is checked here is the CLI - the ASK it
sends, the progress lines it prints per step, the result table, the exit
status, and the RESUMEs of group add / close on the control stream - and
the SDK helpers that start a workflow from an agent and get its result
(bg_ctx_call_workflow: tests/plugins/wfcall.c; the Python
ctx.call_workflow: wfstub.py's "py.caller")."""

import json
import pathlib
import re

from harness import timeout, wait_until
from test_client import bygate_json, fake_worker
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
STEP = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}  (\S+(?: \d+)?) +(\S+) +(\S+)(.*)$")

GRAPH = {"tasks": {
    "research": {"agent": "researcher", "content": "find"},
    "draft": {"agent": "writer", "content": "write",
              "depends_on": ["research"]},
    "review": {"agent": "reviewer", "depends_on": ["draft"]},
    "translate": {"agent": "translator", "depends_on": ["draft"]}}}


def start(h, *more):
    stub = "python3 %s" % (AGENTS / "wfstub.py")
    return h.start_bygated({"pool": {"size": 2}, "agent_types": [
        {"name": n, "handler": "exec", "mode": "persistent",
         "timeout_ms": 30000, "command": stub}
        for n in ("bygate.dag", "bygate.fanout", "bygate.group")] +
        list(more)})


def spec_file(h, spec, name="spec.json"):
    p = h.tmp / name
    p.write_text(json.dumps(spec))
    return p


def steps(stdout):
    """(label, status, agent, rest) of every progress line."""
    return [m.groups() for m in map(STEP.match, stdout.splitlines()) if m]


def table(stdout, header):
    lines = stdout.splitlines()
    i = next(i for i, l in enumerate(lines) if l.startswith(header))
    return [l.split() for l in lines[i + 1:-1]], lines[-1]


def control_entries(h, agent_type):
    return h.client().stream_data(h.keys.ctrl_agent_type(agent_type))


# ---- dag run ----------------------------------------------------------------

@timeout(60)
def test_dag_run_wait_prints_each_transition_then_the_table_and_exits_0(h):
    start(h)
    out = h.bygate("dag", "run", spec_file(h, GRAPH), "--session", "s-dag",
                   "--wait")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert re.match(r"^session s-dag message msg-[0-9a-f]{8}$", first), first
    assert [s[:3] for s in steps(out.stdout)] == [
        (t, st, a) for t, a in (("research", "researcher"),
                                ("draft", "writer"), ("review", "reviewer"),
                                ("translate", "translator"))
        for st in ("RUNNING", "DONE")]
    rows, summary = table(out.stdout, "TASK ")
    assert [r[:4] for r in rows] == [
        ["research", "DONE", "researcher", "0"], ["draft", "DONE", "writer", "0"],
        ["review", "DONE", "reviewer", "0"],
        ["translate", "DONE", "translator", "0"]]
    assert all(r[5] == "s" for r in rows), rows  # "0.012 s"
    assert re.match(r"^dag exec-[0-9a-f]{8}: 4 task\(s\): 4 done, 0 failed, "
                    r"0 skipped in \d+\.\d{3} s$", summary), summary


@timeout(60)
def test_dag_run_sends_the_spec_as_json_content_to_bygate_dag(h):
    fake_worker(h, "bygate.dag")
    out = h.bygate("dag", "run", spec_file(h, GRAPH))
    assert out.returncode == 0, out.stderr
    session, mid = re.match(r"^session (wf-[0-9a-f]{8}) message (\S+)$",
                            out.stdout.strip()).groups()
    [ask] = control_entries(h, "bygate.dag")
    assert ask["action_type"] == "ASK_AGENT"
    assert ask["header"]["message_id"] == mid
    assert ask["header"]["session_id"] == session
    assert ask["body"]["content"] == GRAPH  # a JSON value, key order kept
    assert list(ask["body"]["content"]["tasks"]) == list(GRAPH["tasks"])


@timeout(60)
def test_dag_run_with_a_failed_task_shows_retry_skip_and_exits_1(h):
    start(h)
    spec = {"tasks": {
        "a": {"agent": "x", "content": "fail", "retries": 1},
        "b": {"agent": "y", "depends_on": ["a"]},
        "c": {"agent": "z"}}}
    out = h.bygate("dag", "run", spec_file(h, spec), "--wait")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert steps(out.stdout) == [
        ("a", "RUNNING", "x", ""), ("a", "RETRY", "x", "  (retry 1)  boom"),
        ("a", "FAILED", "x", "  (retry 1)  boom"),
        ("b", "SKIPPED", "y", '  dependency "a" failed'),
        ("c", "RUNNING", "z", ""), ("c", "DONE", "z", "")]
    rows, summary = table(out.stdout, "TASK ")
    assert rows[0][:4] == ["a", "FAILED", "x", "1"] and rows[0][-1] == "boom"
    assert rows[1][:5] == ["b", "SKIPPED", "y", "0", "-"]
    assert rows[1][-3:] == ["dependency", '"a"', "failed"]
    assert rows[2][1] == "DONE"
    assert "3 task(s): 1 done, 1 failed, 1 skipped" in summary


@timeout(60)
def test_dag_run_of_a_refused_spec_says_why_and_exits_1(h):
    start(h)
    spec = {"tasks": {"a": {"agent": "x", "content": "cycle"}}}
    out = h.bygate("dag", "run", spec_file(h, spec), "--wait")
    assert out.returncode == 1
    assert "ended FAILED: dependency cycle" in out.stderr, out.stderr
    assert "TASK" not in out.stdout


@timeout(60)
def test_dag_run_json_prints_steps_then_the_result_object(h):
    start(h)
    out = h.bygate("dag", "run", spec_file(h, GRAPH), "--wait", "--json",
                   "--session", "s-json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    sent, steps_, final = lines[0], lines[1:-1], lines[-1]
    assert sent["session_id"] == "s-json" and sent["message_id"]
    assert len(steps_) == 8
    assert {s["step"]["bygate_workflow"] for s in steps_} == {"dag"}
    assert all(s["step"]["run_id"] == sent["execution_id"] for s in steps_)
    assert all(s["timestamp"] > 0 and s["entry_id"] for s in steps_)
    assert final["ok"] is True and final["status"] == "COMPLETED"
    assert final["result"]["done"] == 4
    assert [t["task_id"] for t in final["result"]["tasks"]] == list(
        GRAPH["tasks"])


def test_dag_run_wait_times_out_with_exit_1(h):
    fake_worker(h, "bygate.dag")
    out = h.bygate("dag", "run", spec_file(h, GRAPH), "--wait",
                   "--wait-timeout-ms", "300")
    assert out.returncode == 1
    assert "timed out after 300 ms" in out.stderr and "QUEUED" in out.stderr


def test_dag_run_refuses_what_is_not_a_json_object_before_sending(h):
    fake_worker(h, "bygate.dag")
    bad = h.tmp / "bad.json"
    for text, why in (('{"tasks": {"a": 1, "a": 2}}', "duplicate object key"),
                      ("[1, 2]", "is not a JSON object"),
                      ("{nope", "is not JSON")):
        bad.write_text(text)
        out = h.bygate("dag", "run", bad)
        assert out.returncode == 2 and why in out.stderr, out.stderr
    assert h.bygate("dag", "run", h.tmp / "missing.json").returncode == 2
    assert h.bygate("dag", "walk", bad).returncode == 2
    assert control_entries(h, "bygate.dag") == []


def test_dag_run_reads_the_spec_from_stdin_and_agent_type_overrides(h):
    fake_worker(h, "my.dag")
    out = h.bygate("dag", "run", "-", "--agent-type", "my.dag", "--json",
                   input=json.dumps(GRAPH))
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)
    assert sent["target_agent_type"] == "my.dag"
    [ask] = control_entries(h, "my.dag")
    assert ask["body"]["content"] == GRAPH


# ---- fanout -----------------------------------------------------------------

@timeout(60)
def test_fanout_wait_prints_reports_in_input_order_and_exits_1_on_timeout(h):
    start(h)
    out = h.bygate("fanout", "--agent", "worker", "--input", '"a"',
                   "--input", '"slow"', "--input", '"b"', "--timeout-s", "2",
                   "--wait")
    assert out.returncode == 1, (out.stdout, out.stderr)
    rows, summary = table(out.stdout, "INDEX ")
    assert [r[:2] for r in rows] == [["0", "success"], ["1", "timeout"],
                                     ["2", "success"]]
    assert rows[0][-2:] == ["did", "a"]
    assert rows[1][-3:] == ["input", "1:", "timeout"]
    assert "3 sub-task(s): 2 success, 0 failed, 1 timeout, 0 stopped" \
        in summary
    assert ("#1", "TIMEOUT", "worker", "  input 1: timeout") in steps(
        out.stdout)


@timeout(60)
def test_fanout_of_all_successes_exits_0_and_sends_the_documented_spec(h):
    start(h)
    inputs = h.tmp / "inputs.json"
    inputs.write_text(json.dumps(["x", {"k": 1}]))
    out = h.bygate("fanout", "--agent", "worker", "--inputs-file", inputs,
                   "--timeout-s", "1.5", "--wait", "--session", "s-fan")
    assert out.returncode == 0, (out.stdout, out.stderr)
    [ask] = control_entries(h, "bygate.fanout")
    assert ask["body"]["content"] == {"agent": "worker",
                                      "inputs": ["x", {"k": 1}],
                                      "timeout_s": 1.5}
    count = bygate_json(h, "fanout", "--agent", "w", "--count", "3",
                        "--timeout-s", "10", "--session", "s-fan")
    ask = control_entries(h, "bygate.fanout")[-1]
    assert ask["header"]["message_id"] == count["message_id"]
    assert ask["body"]["content"] == {"agent": "w", "count": 3,
                                      "timeout_s": 10}


def test_fanout_needs_exactly_one_input_form_and_a_timeout(h):
    for args in (("--agent", "w", "--timeout-s", "1"),
                 ("--agent", "w", "--count", "2", "--input", "1",
                  "--timeout-s", "1"),
                 ("--agent", "w", "--count", "2"),
                 ("--agent", "w", "--count", "0", "--timeout-s", "1"),
                 ("--agent", "w", "--input", "not json", "--timeout-s", "1"),
                 ("--count", "2", "--timeout-s", "1")):
        out = h.bygate("fanout", *args)
        assert out.returncode == 2, (args, out.stderr)


# ---- group ------------------------------------------------------------------

@timeout(90)
def test_group_add_and_close_resume_the_group_with_the_documented_content(h):
    start(h)
    spec = {"primer": {"agent": "cache", "content": "warm"},
            "followers": [{"agent": "rev", "content": "one"}]}
    started = bygate_json(h, "group", "start", spec_file(h, spec), "--open",
                          "--session", "s-grp")
    gid = started["group_id"]
    assert gid == started["message_id"]
    [ask] = control_entries(h, "bygate.group")
    assert ask["body"]["content"] == dict(spec, open=True)

    def status():
        return h.client().call("HGET", h.keys.registry("s-grp"),
                               "exec:" + started["execution_id"])

    wait_until(lambda: '"WAITING_AGENT"' in (status() or ""), 30,
               what="the open group to wait")
    shown = h.bygate("group", "show", gid, "--session", "s-grp")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].startswith(
        "group %s: WAITING_AGENT (execution " % gid)
    assert [s[:3] for s in steps(shown.stdout)] == [
        ("primer", "RUNNING", "cache"), ("primer", "DONE", "cache"),
        ("follower 0", "RUNNING", "rev"), ("follower 0", "DONE", "rev")]

    follower = h.tmp / "f.json"
    follower.write_text(json.dumps([{"agent": "rev", "content": "three"}]))
    added = h.bygate("group", "add", gid, "--session", "s-grp",
                     "--follower", '{"agent": "rev", "content": "two"}',
                     "--file", follower)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "group %s: 2 follower(s) sent" % gid
    closed = h.bygate("group", "close", gid, "--session", "s-grp")
    assert closed.returncode == 0, closed.stderr

    resumes = [e for e in control_entries(h, "bygate.group")
               if e["action_type"] == "RESUME"]
    add_id = resumes[0]["body"]["content"].pop("add_id")
    assert len(add_id) == 32, add_id  # the group applies each add once
    assert [r["body"]["content"] for r in resumes] == [
        {"bygate_group": "add",
         "followers": [{"agent": "rev", "content": "two"},
                       {"agent": "rev", "content": "three"}]},
        {"bygate_group": "close"}]
    assert all(r["header"]["message_id"] == gid and
               r["header"]["session_id"] == "s-grp" for r in resumes)

    wait_until(lambda: '"COMPLETED"' in (status() or ""), 30,
               what="the group to complete")
    shown = bygate_json(h, "group", "show", gid, "--session", "s-grp")
    assert shown["status"] == "COMPLETED"
    assert len(shown["steps"]) == 8
    assert [f["status"] for f in shown["result"]["followers"]] == ["DONE"] * 3
    text = h.bygate("group", "show", gid, "--session", "s-grp").stdout
    rows, summary = table(text, "ROLE ")
    assert [r[:2] for r in rows] == [["primer", "DONE"]] + [
        ["follower", str(i)] for i in range(3)]
    assert summary.endswith("primer DONE, 3 follower(s): 3 done, 0 not")
    late = h.bygate("group", "close", gid, "--session", "s-grp")
    assert late.returncode == 1, (late.stdout, late.stderr)
    assert "has ended (COMPLETED)" in late.stderr, late.stderr


@timeout(60)
def test_group_start_wait_of_a_closed_group_prints_its_table_and_exits_0(h):
    start(h)
    spec = {"primer": {"agent": "cache", "content": "warm"},
            "followers": [{"agent": "rev", "content": "a"},
                          {"agent": "rev", "content": "b"}]}
    out = h.bygate("group", "start", spec_file(h, spec), "--wait")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert re.match(r"^group msg-[0-9a-f]{8} session wf-[0-9a-f]{8}$",
                    out.stdout.splitlines()[0])
    rows, summary = table(out.stdout, "ROLE ")
    assert [r[:3] for r in rows] == [["primer", "DONE", "primed"],
                                     ["follower", "0", "DONE"],
                                     ["follower", "1", "DONE"]]


def test_group_add_close_show_of_an_unknown_group_exit_1_or_2(h):
    for sub in ("close", "show"):
        out = h.bygate("group", sub, "msg-nope", "--session", "s-none")
        assert out.returncode == 1 and "no group msg-nope" in out.stderr
    out = h.bygate("group", "add", "msg-nope", "--session", "s-none",
                   "--follower", '{"agent": "a"}')
    assert out.returncode == 1
    for args in (("add", "g", "--session", "s"),
                 ("add", "g", "--session", "s", "--follower", '{"x": 1}'),
                 ("add", "g", "--session", "s", "--follower", "[]"),
                 ("close", "g"), ("show", "--session", "s"), ("stop", "g")):
        assert h.bygate("group", *args).returncode == 2, args


# ---- starting a workflow from an agent -------------------------------------

def called_workflow(h, agent, content, session):
    """Send content to agent, wait for its end; (its reply_data or final
    answer, the ASKs on bygate.dag's control stream)."""
    c = h.client()
    mid, _ = pc.send(c, h.keys, session, agent, content)
    rec = pc.wait_terminal(c, h.keys, session, mid)
    assert rec["status"] == "COMPLETED", rec
    final = [e["data"]["choices"][0]["delta"]["content"]
             for e in pc.events(c, h.keys, session)
             if e["message_id"] == mid and e["event_type"] == "finalAnswer"]
    return final[-1], mid


@timeout(60)
def test_bg_ctx_call_workflow_calls_bygate_dag_and_is_resumed_with_its_result(
        h):
    start(h, h.agent_type("wfcall"))
    final, mid = called_workflow(h, "wfcall", "dag - " + json.dumps(GRAPH),
                                 "s-c")
    body = json.loads(final[len("resumed: "):])
    assert body["status"] == "COMPLETED"
    assert body["reply_data"]["done"] == 4
    assert json.loads(body["content"]) == body["reply_data"]
    [ask] = control_entries(h, "bygate.dag")
    assert ask["header"]["source_agent_type"] == "wfcall"
    assert ask["header"]["parent_message_id"] == mid
    assert ask["body"]["wait_for_reply"] is True
    assert json.loads(ask["body"]["content"]) == GRAPH  # the spec's text


@timeout(60)
def test_bg_ctx_call_workflow_takes_another_agent_type_and_refuses_bad_specs(
        h):
    start(h, h.agent_type("wfcall"))
    fake_worker(h, "my.fanout")
    spec = {"agent": "w", "count": 2, "timeout_s": 1}
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-o", "wfcall",
                     'fanout {"agent_type":"my.fanout","metadata":{"k":1}} '
                     + json.dumps(spec))
    wait_until(lambda: (pc.record(c, h.keys, "s-o", mid) or {}).get(
        "status") == "WAITING_AGENT", 30, what="the caller to wait")
    [ask] = control_entries(h, "my.fanout")
    assert json.loads(ask["body"]["content"]) == spec
    assert ask["header"]["metadata"]["k"] == 1
    assert control_entries(h, "bygate.fanout") == []
    for content in ("graph - {}", "dag - [1]", "dag - {nope",
                    'dag {"agent_type":7} {}', 'dag [] {}'):
        final, _ = called_workflow(h, "wfcall", content, "s-bad")
        assert final == "rc -22", (content, final)


@timeout(60)
def test_python_call_workflow_calls_bygate_dag_and_is_resumed_with_its_result(
        h):
    start(h, {"name": "py.caller", "handler": "exec", "mode": "persistent",
              "timeout_ms": 30000,
              "command": "python3 %s" % (AGENTS / "wfstub.py")})
    final, _ = called_workflow(
        h, "py.caller", json.dumps({"kind": "dag", "spec": GRAPH}), "s-p")
    body = json.loads(final)["resumed"]
    assert body["reply_data"]["done"] == 4
    [ask] = control_entries(h, "bygate.dag")
    assert ask["header"]["source_agent_type"] == "py.caller"
    assert json.loads(ask["body"]["content"]) == GRAPH
    final, _ = called_workflow(
        h, "py.caller", json.dumps({"kind": "graph", "spec": GRAPH}), "s-p")
    assert json.loads(final) == {"refused": "unknown workflow kind 'graph'"}
