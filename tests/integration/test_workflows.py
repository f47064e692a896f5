"""Workflows across the fleet (issue 13, docs/workflows.md): the task graph
agent type bygate.dag (workflows/dag_run.c over wire/dag.c) hosted by
bygated in its pool, calling Python agents (exec handlers) and advanced by
their callbacks; its state in session kv survives kill -9 of bygated."""

import json
import os
import pathlib
import random
import time

from harness import wait_until, timeout
import pyclient as pc

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples" / "python"
WFAGENT = HERE / "agents" / "wfagent.py"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def exec_type(name, command, **kw):
    t = {"name": name, "handler": "exec", "timeout_ms": 60000,
         "command": command}
    t.update(kw)
    return t


def dag_type(h, name="bygate.dag", **kw):
    return h.agent_type(name, plugin="workflows", **kw)


def agentos_types(h):
    return [dag_type(h)] + [
        exec_type(n, "python3 %s" % (EXAMPLES / (n + ".py")))
        for n in ("researcher", "writer", "reviewer", "translator")]


def wf_types(h, extra_env=None):
    t = exec_type("wf", "python3 %s" % WFAGENT)
    if extra_env:
        t["env"] = extra_env
    return [dag_type(h), t]


def steps(c, keys, session, mid):
    """The workflow's step events (state events whose text is a JSON object
    with bygate_workflow), in stream order."""
    out = []
    for e in pc.events(c, keys, session):
        if e["message_id"] != mid or e["data"]["contentType"] != "3003":
            continue
        try:
            v = json.loads(e["data"]["choices"][0]["delta"]["content"])
        except ValueError:
            continue
        if isinstance(v, dict) and "bygate_workflow" in v:
            out.append(v)
    return out


def end_markers(c, keys, session, mid):
    return [e for e in pc.events(c, keys, session)
            if e["message_id"] == mid
            and e["event_type"] == "appStreamResponse"]


def records(c, keys, session):
    reg = c.call("HGETALL", keys.registry(session)) or []
    pairs = dict(zip(reg[::2], reg[1::2]))
    return [json.loads(v) for k, v in pairs.items() if k.startswith("exec:")]


def run_dag(h, c, session, spec, t=60):
    mid, _ = pc.send(c, h.keys, session, "bygate.dag", spec)
    rec = pc.wait_terminal(c, h.keys, session, mid, t)
    return mid, rec


def result_of(c, keys, session, mid):
    rec = pc.record(c, keys, session, mid)
    assert rec, "no record"
    out = [e for e in pc.events(c, keys, session)
           if e["message_id"] == mid and e["event_type"] == "finalAnswer"]
    assert len(out) == 1, out
    return json.loads(out[0]["data"]["choices"][0]["delta"]["content"])


AGENTOS = {
    "tasks": {
        "research": {"agent": "researcher", "content": "solar power"},
        "draft": {"agent": "writer", "content": "an article",
                  "depends_on": ["research"]},
        "review": {"agent": "reviewer", "content": "review it",
                   "depends_on": ["draft"]},
        "translate": {"agent": "translator", "content": "translate it",
                      "depends_on": ["draft"], "context": {"lang": "de"}},
    },
    "max_parallel": 4,
    "context": {"project": "demo"},
}


@timeout(120)
def test_the_agentos_graph_runs_with_python_agents(h):
    h.start_bygated({"pool": {"size": 3}, "agent_types": agentos_types(h)})
    c = h.client()
    mid, rec = run_dag(h, c, "s-agentos", AGENTOS)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-agentos", mid)
    assert set(res) >= {"run_id", "total", "done", "failed", "skipped",
                        "duration_ms", "tasks"}, res
    assert (res["total"], res["done"], res["failed"], res["skipped"]) == \
        (4, 4, 0, 0), res
    assert res["run_id"] == rec["execution_id"]
    tasks = {t["task_id"]: t for t in res["tasks"]}
    assert [t["task_id"] for t in res["tasks"]] == [
        "research", "draft", "review", "translate"]
    for t in res["tasks"]:
        assert set(t) == {"task_id", "status", "agent", "output", "error",
                          "started_at", "finished_at", "retry_count"}, t
        assert t["status"] == "DONE" and t["error"] is None, t
    assert tasks["research"]["output"] == "3 findings on solar power"
    draft = tasks["draft"]["output"]
    assert draft == ("Draft: an article (based on 3 findings on solar "
                     "power)"), draft
    # draft waited for research; review and translate got draft's output
    assert tasks["draft"]["started_at"] >= tasks["research"]["finished_at"]
    assert tasks["review"]["output"] == (
        "Review of [%s]: clear, cite one more source" % draft)
    assert tasks["translate"]["output"] == "[de] %s" % draft
    for k in ("review", "translate"):
        assert tasks[k]["started_at"] >= tasks["draft"]["finished_at"]
    # review and translate were started in the same step: both RUNNING
    # before either ended
    st = steps(c, h.keys, "s-agentos", mid)
    order = [(s.get("task_id"), s["status"]) for s in st]
    assert order[0] == (None, "START") and order[-1] == (None, "END"), order
    i_rev = order.index(("review", "RUNNING"))
    i_tr = order.index(("translate", "RUNNING"))
    assert max(i_rev, i_tr) < min(order.index(("review", "DONE")),
                                  order.index(("translate", "DONE"))), order
    assert len(end_markers(c, h.keys, "s-agentos", mid)) == 1


@timeout(120)
def test_a_failed_task_skips_its_dependents_and_spares_the_rest(h):
    h.start_bygated({"pool": {"size": 3}, "agent_types": wf_types(h)})
    c = h.client()
    spec = {"tasks": {
        "a": {"agent": "wf", "content": {"op": "fail", "name": "a"}},
        "b": {"agent": "wf", "content": {"op": "ok", "name": "b"},
              "depends_on": ["a"]},
        "c": {"agent": "wf", "content": {"op": "ok", "name": "c"},
              "depends_on": ["b"]},
        "x": {"agent": "wf", "content": {"op": "ok", "name": "x"}},
        "y": {"agent": "wf", "content": {"op": "ok", "name": "y"},
              "depends_on": ["x"]},
    }}
    mid, rec = run_dag(h, c, "s-fail", spec)
    assert rec["status"] == "FAILED", rec
    res = result_of(c, h.keys, "s-fail", mid)
    tasks = {t["task_id"]: t for t in res["tasks"]}
    assert (res["done"], res["failed"], res["skipped"]) == (2, 1, 2), res
    assert tasks["a"]["status"] == "FAILED"
    assert "a failed on purpose" in tasks["a"]["error"], tasks["a"]
    for k in ("b", "c"):
        assert tasks[k]["status"] == "SKIPPED", tasks[k]
        assert tasks[k]["error"] == 'dependency "a" failed', tasks[k]
        assert tasks[k]["started_at"] is None
    assert tasks["y"]["status"] == "DONE"
    assert tasks["y"]["output"]["deps"] == {"_dep_x": tasks["x"]["output"]}
    assert "1 of 5 tasks failed, 2 skipped" in rec.get("error_message", "")
    assert len(end_markers(c, h.keys, "s-fail", mid)) == 1


@timeout(60)
def test_a_cyclic_spec_is_refused_before_anything_runs(h):
    h.start_bygated({"agent_types": wf_types(h)})
    c = h.client()
    spec = {"tasks": {
        "a": {"agent": "wf", "content": "a", "depends_on": ["c"]},
        "b": {"agent": "wf", "content": "b", "depends_on": ["a"]},
        "c": {"agent": "wf", "content": "c", "depends_on": ["b"]},
        "free": {"agent": "wf", "content": "free"},
    }}
    mid, rec = run_dag(h, c, "s-cyc", spec)
    assert rec["status"] == "FAILED", rec
    assert "dependency cycle" in rec["error_message"], rec
    assert rec["error_type"] == "WorkflowSpecError"
    kids = [r for r in records(c, h.keys, "s-cyc")
            if r.get("parent_message_id") == mid]
    assert kids == [], kids


@timeout(60)
def test_a_retried_task_runs_again_and_its_dependents_wait(h):
    h.start_bygated({"agent_types": wf_types(h)})
    c = h.client()
    spec = {"tasks": {
        "f": {"agent": "wf", "content": {"op": "flaky", "name": "f"},
              "retries": 2},
        "g": {"agent": "wf", "content": {"op": "ok", "name": "g"},
              "depends_on": ["f"]},
    }}
    mid, rec = run_dag(h, c, "s-retry", spec)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-retry", mid)
    f, g = res["tasks"]
    assert f["status"] == "DONE" and f["retry_count"] == 1, f
    assert g["status"] == "DONE" and g["output"]["deps"]["_dep_f"] == \
        f["output"]
    assert ("f", "RETRY") in [(s.get("task_id"), s["status"])
                              for s in steps(c, h.keys, "s-retry", mid)]


FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 500,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 500}


def graph_of_20(seed):
    """20 tasks in layers, each after one or two earlier ones, 100-300 ms
    each; a few roots so that branches run in parallel."""
    rnd = random.Random(seed)
    tasks = {}
    for i in range(20):
        deps = []
        if i >= 4:
            deps = sorted({"t%02d" % rnd.randrange(i)
                           for _ in range(rnd.choice((1, 2)))})
        tasks["t%02d" % i] = {
            "agent": "wf", "depends_on": deps,
            "content": {"op": "sleep", "ms": rnd.randrange(100, 300),
                        "name": "t%02d" % i}}
    return {"tasks": tasks, "max_parallel": 6}


@timeout(240)
def test_kill_9_twice_during_a_20_task_graph_on_two_workers(h):
    shared = pathlib.Path(h.tmp) / "shared"
    shared.mkdir()
    log = shared / "wf.log"
    log.touch()
    for p, m in ((h.tmp, 0o755), (shared, 0o777), (log, 0o666)):
        os.chmod(p, m)  # the pool user appends to it
    types = wf_types(h, {"WFAGENT_LOG": str(log)})
    types[1]["sandbox"] = {"profile": "trusted"}  # writes the shared log
    conf = {"pool": {"size": 3}, "worker": FAST, "agent_types": types}
    a = h.start_bygated(conf)
    b = h.start_bygated(conf)
    live = [a, b]
    c = h.client()
    rnd = random.Random()
    mid, _ = pc.send(c, h.keys, "s-k9", "bygate.dag", graph_of_20(7))
    for _ in range(2):
        time.sleep(rnd.uniform(0.3, 1.5))
        victim = live.pop(rnd.randrange(2))
        victim.kill_all()
        live.append(h.bygated(config=victim.config).start())
    rec = pc.wait_terminal(c, h.keys, "s-k9", mid, 180)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-k9", mid)
    assert (res["total"], res["done"]) == (20, 20), res
    # one sub-call per task: exactly 20 callee executions, each ended once
    kids = [r for r in records(c, h.keys, "s-k9")
            if r.get("parent_message_id") == mid]
    assert len(kids) == 20, [k["message_id"] for k in kids]
    for k in kids:
        tl = [t["status"] for t in k["timeline"]]
        assert k["status"] == "COMPLETED", k
        assert sum(1 for x in tl if x in TERMINAL) == 1, tl
    by_task = {t["task_id"]: t["output"]["message_id"] for t in res["tasks"]}
    assert sorted(by_task.values()) == sorted(k["message_id"] for k in kids)
    # what ran: every run of a task was of its one sub-call (a run cut by
    # the kill is run again under the same message id)
    runs = [json.loads(x) for x in log.read_text().splitlines()]
    for name, m in by_task.items():
        assert {r["message_id"] for r in runs if r["name"] == name} == {m}
    for t in res["tasks"]:
        deps = graph_of_20(7)["tasks"][t["task_id"]]["depends_on"]
        assert sorted(t["output"]["deps"]) == sorted("_dep_" + d
                                                     for d in deps)
    assert len(end_markers(c, h.keys, "s-k9", mid)) == 1
    for d in live:
        wait_until(lambda: pc.pending_count(
            c, h.keys.ctrl_agent_type("bygate.dag")) == 0, 30,
            what="no pending workflow entry")


# ---- bygate.group ----------------------------------------------------------

def group_types(h, pool=4):
    return {"pool": {"size": pool},
            "agent_types": [dag_type(h, "bygate.group"),
                            exec_type("wf", "python3 %s" % WFAGENT)]}


def member(op, name, **kw):
    c = {"op": op, "name": name}
    c.update(kw)
    return {"agent": "wf", "content": c}


def group_resume(c, keys, session, gid, content):
    """What `bygate group add|close` sends: a RESUME of the group."""
    cmd = {"action_type": "RESUME",
           "header": pc.header(session, "bygate.group", message_id=gid),
           "body": {"content": content, "status": "", "reply_data": None}}
    c.call("XADD", keys.ctrl_agent_type("bygate.group"), "*", "data",
           json.dumps(cmd))


def group_steps(c, keys, session, gid):
    return [s for s in steps(c, keys, session, gid)]


@timeout(90)
def test_a_group_runs_its_primer_first_and_followers_see_its_handle(h):
    h.start_bygated(group_types(h))
    c = h.client()
    spec = {"primer": member("primer", "p", ms=400),
            "followers": [member("ok", "f%d" % i) for i in range(5)]}
    gid, _ = pc.send(c, h.keys, "s-grp", "bygate.group", spec)
    rec = pc.wait_terminal(c, h.keys, "s-grp", gid, 60)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-grp", gid)
    assert res["group_id"] == gid
    p = res["primer"]
    assert p["status"] == "done" and p["handle"] == {"cache": "cache-p"}, p
    fins = {r["message_id"]: r for r in records(c, h.keys, "s-grp")}
    primer_end = max(r["finished_at"] for r in fins.values()
                     if r["target_agent_type"] == "wf"
                     and r["message_id"] == p["output"]["message_id"])
    assert len(res["followers"]) == 5 and res["done"] == 5, res
    for f in res["followers"]:
        assert f["status"] == "done", f
        assert f["output"]["handle"] == {"cache": "cache-p"}, f
        assert f["output"]["primer"] == p["output"], f
        rec_f = fins[f["output"]["message_id"]]
        assert rec_f["started_at"] >= primer_end, (rec_f, primer_end)
    assert len(end_markers(c, h.keys, "s-grp", gid)) == 1


@timeout(90)
def test_an_open_group_takes_followers_before_and_after_its_primer(h):
    h.start_bygated(group_types(h))
    c = h.client()
    spec = {"primer": member("primer", "p", ms=1500), "open": True}
    gid, _ = pc.send(c, h.keys, "s-open", "bygate.group", spec)
    wait_until(lambda: any(s.get("role") == "primer"
                           and s["status"] == "running"
                           for s in group_steps(c, h.keys, "s-open", gid)),
               20, what="primer running")
    group_resume(c, h.keys, "s-open", gid, {
        "bygate_group": "add",
        "followers": [member("ok", "early%d" % i) for i in range(3)]})
    wait_until(lambda: sum(1 for s in group_steps(c, h.keys, "s-open", gid)
                           if s["status"] == "waiting") == 3, 20,
               what="3 followers waiting behind the primer")
    wait_until(lambda: any(s.get("role") == "primer" and s["status"] == "done"
                           for s in group_steps(c, h.keys, "s-open", gid)),
               20, what="primer done")
    group_resume(c, h.keys, "s-open", gid, json.dumps({
        "bygate_group": "add",
        "followers": [member("ok", "late%d" % i) for i in range(2)]}))
    wait_until(lambda: sum(1 for s in group_steps(c, h.keys, "s-open", gid)
                           if s["status"] == "done") == 6, 20,
               what="5 followers done")
    assert pc.terminal(c, h.keys, "s-open", gid) is None  # still open
    group_resume(c, h.keys, "s-open", gid, {"bygate_group": "close"})
    rec = pc.wait_terminal(c, h.keys, "s-open", gid, 30)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-open", gid)
    names = [f["output"]["name"] for f in res["followers"]]
    assert names == ["early0", "early1", "early2", "late0", "late1"], names
    assert all(f["output"]["handle"] == {"cache": "cache-p"}
               for f in res["followers"])
    assert len(end_markers(c, h.keys, "s-open", gid)) == 1


@timeout(90)
def test_a_failed_primer_fails_its_followers_with_the_reason(h):
    h.start_bygated(group_types(h))
    c = h.client()
    spec = {"primer": member("fail", "p"),
            "followers": [member("ok", "f%d" % i) for i in range(3)]}
    gid, _ = pc.send(c, h.keys, "s-pfail", "bygate.group", spec)
    rec = pc.wait_terminal(c, h.keys, "s-pfail", gid, 60)
    assert rec["status"] == "FAILED", rec
    assert rec["error_message"].startswith("primer failed: "), rec
    res = result_of(c, h.keys, "s-pfail", gid)
    assert res["primer"]["status"] == "failed"
    assert "p failed on purpose" in res["primer"]["error"]
    for f in res["followers"]:
        assert f["status"] == "failed", f
        assert f["error"].startswith("primer failed: ") and \
            "p failed on purpose" in f["error"], f
        assert f["started_at"] is None
    # no follower was ever called
    kids = [r for r in records(c, h.keys, "s-pfail")
            if r.get("parent_message_id") == gid]
    assert len(kids) == 1, kids


# ---- bygate.fanout ---------------------------------------------------------

@timeout(90)
def test_a_fanout_reports_at_its_deadline_and_cancels_the_stragglers(h):
    h.start_bygated({"pool": {"size": 5},
                     "agent_types": [dag_type(h, "bygate.fanout"),
                                     exec_type("wf", "python3 %s" % WFAGENT,
                                               mode="per_task")]})
    c = h.client()
    slow = {3, 5, 8}
    inputs = [{"op": "sleep", "ms": 10000, "name": "i%d" % i} if i in slow
              else {"op": "ok", "name": "i%d" % i} for i in range(10)]
    t0 = time.monotonic()
    mid, _ = pc.send(c, h.keys, "s-fan", "bygate.fanout",
                     {"agent": "wf", "inputs": inputs, "timeout_s": 2})
    rec = pc.wait_terminal(c, h.keys, "s-fan", mid, 30)
    took = time.monotonic() - t0
    assert rec["status"] == "COMPLETED", rec
    # the deadline, not the 10 s sleepers, ended it
    assert 2.0 <= took < 8.0, took
    res = result_of(c, h.keys, "s-fan", mid)
    assert (res["total"], res["success"], res["timeout"], res["failed"]) == \
        (10, 7, 3, 0), res
    reps = res["reports"]
    assert [r["index"] for r in reps] == list(range(10))
    for i, r in enumerate(reps):
        assert set(r) >= {"status", "summary", "data", "error",
                          "duration_seconds"}, r
        if i in slow:
            assert r["status"] == "timeout" and r["error"], r
        else:
            assert r["status"] == "success", r
            assert r["data"]["name"] == "i%d" % i, r
    # the stragglers are cancelled, promptly
    slow_mids = {reps[i]["message_id"] for i in slow}
    wait_until(lambda: all((pc.record(c, h.keys, "s-fan", m) or {})
                           .get("status") == "CANCELLED" for m in slow_mids),
               6, what="the 3 stragglers cancelled")
    assert len(end_markers(c, h.keys, "s-fan", mid)) == 1
    # their late callbacks did not end the fan-out a second time
    time.sleep(0.5)
    assert pc.record(c, h.keys, "s-fan", mid)["status"] == "COMPLETED"
    assert len(end_markers(c, h.keys, "s-fan", mid)) == 1


@timeout(60)
def test_a_chain_run_in_trusted_children_keeps_them_healthy(h):
    """Trusted: the workflow and its tasks run in the same children, one
    after another. The workflow's kv reads receive replies larger than its
    task message, into the child's receive buffer; the child used to zero
    the task message through a pointer those replies had freed
    (child/main.c), corrupting its heap: the next task crashed it."""
    d = h.start_bygated({"sandbox": {"profile": "trusted"},
                         "agent_types": [dag_type(h), h.agent_type("noop")]})
    c = h.client()
    spec = {"tasks": {"t%03d" % i: {
        "agent": "noop", "content": "x",
        "depends_on": ["t%03d" % (i - 1)] if i else []} for i in range(40)}}
    mid, rec = run_dag(h, c, "s-chain", spec)
    assert rec["status"] == "COMPLETED", rec
    assert "signal" not in d.log_text()


@timeout(90)
def test_a_task_over_its_timeout_is_cancelled_failed_and_retried(h):
    h.start_bygated({"pool": {"size": 3}, "agent_types": wf_types(h)})
    c = h.client()
    spec = {"tasks": {
        "slow": {"agent": "wf", "content": {"op": "sleep", "ms": 10000,
                                            "name": "slow"},
                 "timeout_ms": 800, "retries": 1},
        "after": {"agent": "wf", "content": {"op": "ok", "name": "after"},
                  "depends_on": ["slow"]},
        "free": {"agent": "wf", "content": {"op": "ok", "name": "free"}},
    }}
    t0 = time.monotonic()
    mid, rec = run_dag(h, c, "s-tmo", spec)
    assert time.monotonic() - t0 < 8, "the 10 s sleeps were waited for"
    assert rec["status"] == "FAILED", rec
    res = result_of(c, h.keys, "s-tmo", mid)
    t = {x["task_id"]: x for x in res["tasks"]}
    assert t["slow"]["status"] == "FAILED" and t["slow"]["retry_count"] == 1
    assert t["slow"]["error"].startswith("TIMEOUT: no answer within 800 ms")
    assert t["after"]["status"] == "SKIPPED"
    assert t["free"]["status"] == "DONE"
    # both attempts were called and both are cancelled
    slow = [r for r in records(c, h.keys, "s-tmo")
            if r.get("parent_message_id") == mid
            and r["message_id"] != t["free"]["output"]["message_id"]]
    assert len(slow) == 2, slow
    wait_until(lambda: all(
        pc.record(c, h.keys, "s-tmo", r["message_id"])["status"] ==
        "CANCELLED" for r in slow), 10, what="the timed-out calls cancelled")
    assert len(end_markers(c, h.keys, "s-tmo", mid)) == 1


@timeout(60)
def test_a_graph_naming_an_unserved_agent_type_is_refused_unrun(h):
    h.start_bygated({"agent_types": wf_types(h)})
    c = h.client()
    spec = {"tasks": {
        "a": {"agent": "wf", "content": "a"},
        "b": {"agent": "nobody-serves-this", "content": "b",
              "depends_on": ["a"]},
    }}
    mid, rec = run_dag(h, c, "s-unserved", spec)
    assert rec["status"] == "FAILED", rec
    assert rec["error_message"] == (
        'task "b": agent type "nobody-serves-this" is not served by any '
        'online worker'), rec
    assert [r for r in records(c, h.keys, "s-unserved")
            if r.get("parent_message_id") == mid] == []


# ---- next_resume -------------------------------------------------------------

def taker_run(h, crash):
    d = h.start_bygated({
        "pool": {"size": 6}, "sandbox": {"profile": "trusted"},
        "agent_types": [
            h.agent_type("taker", options={"crash": 1 if crash else 0},
                         max_attempts=3, retry_backoff_ms=10),
            h.agent_type("sleep")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-take", "taker", "5")
    rec = pc.wait_terminal(c, h.keys, "s-take", mid, 60)
    assert rec["status"] == "COMPLETED", rec
    final = [e for e in pc.events(c, h.keys, "s-take")
             if e["message_id"] == mid and e["event_type"] == "finalAnswer"]
    # every callback counted once: none lost, none applied twice
    assert [e["data"]["choices"][0]["delta"]["content"] for e in final] == \
        ["seen 5"], final
    wait_until(lambda: pc.pending_count(
        c, h.keys.ctrl_agent_type("taker")) == 0, 20,
        what="every taker entry acknowledged")
    return d


@timeout(90)
def test_a_run_takes_the_resumes_waiting_for_it(h):
    d = taker_run(h, crash=False)
    assert "taken by this run" in d.log_text()


@timeout(90)
def test_resumes_taken_by_a_run_that_crashed_wait_again_and_run_once(h):
    d = taker_run(h, crash=True)
    log = d.log_text()
    assert "taken by this run" in log and \
        "exited with status 70" in log, log[-3000:]


@timeout(120)
def test_workflows_nest_a_graph_inside_a_graph(h):
    h.start_bygated({"pool": {"size": 4},
                     "agent_types": wf_types(h) + [dag_type(h, "bygate.group")]})
    c = h.client()
    inner = {"tasks": {
        "i1": {"agent": "wf", "content": {"op": "ok", "name": "i1"}},
        "i2": {"agent": "wf", "content": {"op": "ok", "name": "i2"},
               "depends_on": ["i1"]}}}
    group = {"primer": member("primer", "gp"),
             "followers": [member("ok", "gf")]}
    spec = {"tasks": {
        "inner": {"agent": "bygate.dag", "content": inner},
        "grp": {"agent": "bygate.group", "content": group},
        "after": {"agent": "wf", "content": {"op": "ok", "name": "after"},
                  "depends_on": ["inner", "grp"]}}}
    mid, rec = run_dag(h, c, "s-nest", spec)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-nest", mid)
    t = {x["task_id"]: x for x in res["tasks"]}
    # the inner graph's result is the outer task's output
    assert t["inner"]["output"]["total"] == 2
    assert t["inner"]["output"]["done"] == 2
    assert t["grp"]["output"]["primer"]["handle"] == {"cache": "cache-gp"}
    deps = t["after"]["output"]["deps"]
    assert deps["_dep_inner"] == t["inner"]["output"], deps
    assert deps["_dep_grp"] == t["grp"]["output"], deps
    assert len(end_markers(c, h.keys, "s-nest", mid)) == 1


# ---- runs larger than one finish transaction ---------------------------------

@timeout(180)
def test_a_graph_too_big_for_one_run_goes_on_in_the_next_runs(h):
    """A finish transaction holds at most 4,096 commands; 600 tasks with a
    timeout each (4-5 commands per start) do not fit in the first run,
    which starts 250 and posts itself a resume to go on."""
    h.start_bygated({"pool": {"size": 4},
                     "agent_types": [dag_type(h), dag_type(h, "bygate.fanout"),
                                     h.agent_type("noop")]})
    c = h.client()
    spec = {"tasks": {"t%04d" % i: {"agent": "noop", "content": "x" * 1500,
                                    "timeout_ms": 60000}
                      for i in range(600)}}
    mid, rec = run_dag(h, c, "s-big", spec, t=150)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-big", mid)
    assert (res["total"], res["done"]) == (600, 600), \
        {k: res[k] for k in ("total", "done", "failed", "skipped")}
    mid, _ = pc.send(c, h.keys, "s-bigfan", "bygate.fanout",
                     {"agent": "noop", "count": 600, "content": "y" * 1500,
                      "timeout_s": 120})
    rec = pc.wait_terminal(c, h.keys, "s-bigfan", mid, 150)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-bigfan", mid)
    assert (res["total"], res["success"]) == (600, 600), \
        {k: res[k] for k in ("total", "success", "failed", "timeout")}


@timeout(60)
def test_a_group_applies_each_add_once(h):
    h.start_bygated(group_types(h))
    c = h.client()
    gid, _ = pc.send(c, h.keys, "s-once", "bygate.group",
                     {"primer": member("primer", "p"), "open": True})
    add = {"bygate_group": "add", "add_id": "add-1",
           "followers": [member("ok", "f1")]}
    group_resume(c, h.keys, "s-once", gid, add)
    group_resume(c, h.keys, "s-once", gid, add)  # handled twice
    wait_until(lambda: any(s["status"] == "DUPLICATE" for s in
                           group_steps(c, h.keys, "s-once", gid)), 20,
               what="the second add seen as a duplicate")
    group_resume(c, h.keys, "s-once", gid, {"bygate_group": "close"})
    rec = pc.wait_terminal(c, h.keys, "s-once", gid, 30)
    assert rec["status"] == "COMPLETED", rec
    res = result_of(c, h.keys, "s-once", gid)
    assert [f["output"]["name"] for f in res["followers"]] == ["f1"]


@timeout(90)
def test_bygate_dag_run_waits_for_the_real_graph_and_prints_its_table(h):
    h.start_bygated({"pool": {"size": 3}, "agent_types": wf_types(h)})
    spec = h.tmp / "graph.json"
    spec.write_text(json.dumps({"tasks": {
        "a": {"agent": "wf", "content": {"op": "ok", "name": "a"}},
        "b": {"agent": "wf", "content": {"op": "fail", "name": "b"},
              "depends_on": ["a"]},
        "c": {"agent": "wf", "content": {"op": "ok", "name": "c"},
              "depends_on": ["b"]}}}))
    r = h.bygate("dag", "run", str(spec), "--session", "s-cli", "--wait",
                 "--wait-timeout-ms", "60000")
    assert r.returncode == 1, r.stdout + r.stderr  # b failed
    lines = r.stdout.splitlines()
    for task, status in (("a", "RUNNING"), ("a", "DONE"), ("b", "FAILED"),
                         ("c", "SKIPPED")):
        assert any(l.split()[1:3] == [task, status] for l in lines
                   if len(l.split()) > 2), r.stdout
    table = [l.split() for l in lines if l.split()[:1] in (["a"], ["b"],
                                                           ["c"])]
    assert [t[:2] for t in table] == [["a", "DONE"], ["b", "FAILED"],
                                      ["c", "SKIPPED"]], r.stdout
    assert "1 failed" in r.stdout and "1 skipped" in r.stdout, r.stdout


@timeout(120)
def test_a_crash_between_a_taking_runs_journal_and_its_exec_applies_each_step_once(h):
    """bygated dies after journaling the finish of a run that took RESUMEs,
    before sending it: the restart re-sends that finish (which acknowledges
    the RESUMEs it took with their steps) and must neither run those
    RESUMEs again nor lose them."""
    conf = h.config({
        "pool": {"size": 6}, "sandbox": {"profile": "trusted"},
        "worker": {"reconcile_interval_ms": 1000},
        "agent_types": [h.agent_type("taker", options={"crash": 0}),
                        h.agent_type("sleep")]})
    d = h.bygated(config=conf)
    d.env = dict(d.env, BYGATE_FAULT="finish.after_journal_taking")
    d.start()
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-jt", "taker", "5")
    d.wait_exit(30)
    assert d.returncode != 0
    assert "taken by this run" in d.log_text()
    d2 = h.bygated(config=conf)
    d2.start()
    rec = pc.wait_terminal(c, h.keys, "s-jt", mid, 60)
    assert rec["status"] == "COMPLETED", rec
    final = [e["data"]["choices"][0]["delta"]["content"]
             for e in pc.events(c, h.keys, "s-jt")
             if e["message_id"] == mid and e["event_type"] == "finalAnswer"]
    assert final == ["seen 5"], final
    wait_until(lambda: pc.pending_count(
        c, h.keys.ctrl_agent_type("taker")) == 0, 30,
        what="every taker entry acknowledged")
    assert "re-sending the journaled finish" in d2.log_text()
