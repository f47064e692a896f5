"""A task of the workflow tests (tests/integration/test_workflows.py). The
content is a JSON object: {"op": "ok" | "fail" | "sleep" | "flaky" |
"primer", "ms": N, "name": X}; "primer" (after sleeping ms, default 0)
returns the handle {"cache": "cache-<name>"} in its extra_payload, as a
group's primer does. It answers a JSON object naming itself, the
dependency outputs and context it got (extra_payload), the attempt and
the host pid, so a test can check what reached it and how often it ran.
"flaky" fails while a marker file for its name is absent from the
session's workspace, creating it."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402


def handle(ctx):
    c = ctx.content
    if isinstance(c, str):
        try:
            c = json.loads(c)
        except ValueError:
            c = {"op": "ok", "name": c}
    if not isinstance(c, dict):
        c = {"op": "ok", "name": str(c)}
    op = c.get("op", "ok")
    name = c.get("name", "")
    extra = ctx.body.get("extra_payload") or {}
    log = os.environ.get("WFAGENT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"name": name, "message_id": ctx.message_id,
                                "t": time.time()}) + "\n")
    if op in ("sleep", "primer"):
        end = time.time() + c.get("ms", 1000 if op == "sleep" else 0) / 1000.0
        while time.time() < end:
            if ctx.cancelled():
                return "CANCELLED"
            time.sleep(0.02)
    if op == "fail":
        raise RuntimeError("%s failed on purpose" % name)
    if op == "flaky":
        marker = os.path.join(ctx.workspace, "flaky-" + name)
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("%s fails once" % name)
    out = {"reply_data": {
        "name": name,
        "deps": {k: v for k, v in extra.items() if k.startswith("_dep_")},
        "context": extra.get("context"),
        "primer": extra.get("_primer"),
        "handle": extra.get("_handle"),
        "message_id": ctx.message_id}}
    if op == "primer":
        out["extra_payload"] = {"cache": "cache-" + name}
    return out


if __name__ == "__main__":
    bygate_agent.run(handle)
