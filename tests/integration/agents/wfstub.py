"""A stand-in for the workflow agent types of issue 13 (bygate.dag,
bygate.fanout, bygate.group) for tests/integration/test_workflow_cli.py:
it speaks their contract (docs/workflows.md, docs/client.md "Workflows")
without running anything. Per step one state event whose content is
{"bygate_workflow": kind, "run_id", ...}; at the end one result, COMPLETED
with reply_data = the result and content = its JSON text, or FAILED with
reply_data {"error": reason} for a refused spec.

dag: tasks in spec order; a task whose content is "fail" fails (after one
RETRY when it has "retries"), its dependents are SKIPPED naming it; a spec
with "cycle" as a task content is refused. fanout: input "slow" times
out, "bad" fails, anything else succeeds. group: the primer and the
followers DONE; an open group waits (WAITING_AGENT) for RESUMEs
{"bygate_group": "add" | "close"} and keeps its followers in session kv.
An agent type ending in ".caller" is an agent starting a workflow with
ctx.call_workflow (see caller())."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402


def now():
    return int(time.time() * 1000)


def spec_of(ctx):
    c = ctx.content
    return json.loads(c) if isinstance(c, str) else c


def step(ctx, kind, **fields):
    ev = {"bygate_workflow": kind, "run_id": ctx.execution_id,
          "retry_count": 0, "error": None, "message_id": "msg-stub"}
    ev.update(fields)
    ctx.state(json.dumps(ev))


def done(result):
    return {"status": "COMPLETED", "content": json.dumps(result),
            "reply_data": result}


def refused(reason):
    return {"status": "FAILED", "reply_data": {"error": reason}}


def dag(ctx):
    spec = spec_of(ctx)
    t0, tasks, status = now(), [], {}
    if any(t.get("content") == "cycle" for t in spec["tasks"].values()):
        return refused('dependency cycle (each depends on the next): '
                       '"a" -> "b" -> "a"')
    for tid, t in spec["tasks"].items():
        agent = t["agent"]
        failed = [d for d in t.get("depends_on", [])
                  if status.get(d) in ("FAILED", "SKIPPED")]
        row = {"task_id": tid, "agent": agent, "output": None, "error": None,
               "started_at": None, "finished_at": None, "retry_count": 0}
        if failed:
            row["status"] = "SKIPPED"
            row["error"] = 'dependency "%s" failed' % failed[0]
            step(ctx, "dag", task_id=tid, agent=agent, status="SKIPPED",
                 error=row["error"])
        else:
            row["started_at"] = now()
            step(ctx, "dag", task_id=tid, agent=agent, status="RUNNING")
            if t.get("content") == "fail":
                if t.get("retries"):
                    row["retry_count"] = 1
                    step(ctx, "dag", task_id=tid, agent=agent,
                         status="RETRY", retry_count=1, error="boom")
                row["status"], row["error"] = "FAILED", "boom"
            else:
                row["status"], row["output"] = "DONE", "out-" + tid
            time.sleep(0.01)
            row["finished_at"] = now()
            step(ctx, "dag", task_id=tid, agent=agent, status=row["status"],
                 retry_count=row["retry_count"], error=row["error"])
        status[tid] = row["status"]
        tasks.append(row)
    count = {s: sum(1 for r in tasks if r["status"] == s)
             for s in ("DONE", "FAILED", "SKIPPED")}
    return done({"run_id": ctx.execution_id, "total": len(tasks),
                 "done": count["DONE"], "failed": count["FAILED"],
                 "skipped": count["SKIPPED"], "duration_ms": now() - t0,
                 "tasks": tasks})


def fanout(ctx):
    spec = spec_of(ctx)
    inputs = spec.get("inputs") or list(range(spec.get("count", 0)))
    agent, reports = spec["agent"], []
    for i, x in enumerate(inputs):
        step(ctx, "fanout", index=i, agent=agent, status="RUNNING")
    # reports come back out of order: the table sorts them
    for i, x in reversed(list(enumerate(inputs))):
        st = {"slow": "timeout", "bad": "failed"}.get(json.dumps(x).strip('"'), "success")
        err = None if st == "success" else "input %d: %s" % (i, st)
        step(ctx, "fanout", index=i, agent=agent,
             status={"success": "DONE", "failed": "FAILED",
                     "timeout": "TIMEOUT"}[st], error=err)
        reports.append({"index": i, "status": st, "summary": "did %s" % x,
                        "data": x, "error": err, "duration_seconds": 0.25})
    n = {s: sum(1 for r in reports if r["status"] == s)
         for s in ("success", "failed", "timeout", "stopped")}
    return done(dict(run_id=ctx.execution_id, total=len(reports),
                     duration_ms=250, reports=reports, **n))


def group(ctx):
    if not ctx.resumed:
        spec = spec_of(ctx)
        p = spec["primer"]
        step(ctx, "group", role="primer", agent=p["agent"], status="RUNNING")
        step(ctx, "group", role="primer", agent=p["agent"], status="DONE")
        followers = []
        add = spec.get("followers", [])
        is_open = spec.get("open", False)
    else:
        msg = spec_of(ctx)
        followers = ctx.kv_get("wfstub:followers", [])
        add = msg.get("followers", []) if msg.get("bygate_group") == "add" \
            else []
        is_open = msg.get("bygate_group") != "close"
    for f in add:
        i = len(followers)
        step(ctx, "group", role="follower", index=i, agent=f["agent"],
             status="RUNNING")
        step(ctx, "group", role="follower", index=i, agent=f["agent"],
             status="DONE")
        followers.append({"index": i, "status": "DONE",
                          "output": "follow-%d" % i, "error": None})
    if is_open:
        ctx.kv_set("wfstub:followers", followers)
        return "WAITING_AGENT"
    return done({"run_id": ctx.execution_id,
                 "primer": {"status": "DONE", "output": "primed",
                            "error": None, "handle": "h-1"},
                 "followers": followers})


def caller(ctx):
    """Not a workflow: an agent starting one with ctx.call_workflow. The
    content is {"kind", "spec", "agent_type"?}; the resume completes with
    reply_data {"resumed": the RESUME's body}."""
    if ctx.resumed:
        return {"reply_data": {"resumed": ctx.body}}
    ask = json.loads(ctx.content)
    try:
        ctx.call_workflow(ask["kind"], ask["spec"], ask.get("agent_type"))
    except ValueError as e:
        return {"reply_data": {"refused": str(e)}}
    return None


def handle(ctx):
    kind = ctx.agent_type.split(".", 1)[-1]
    return {"dag": dag, "fanout": fanout, "group": group,
            "caller": caller}[kind](ctx)


if __name__ == "__main__":
    bygate_agent.run(handle)
