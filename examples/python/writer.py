#!/usr/bin/env python3
"""writer: turns a brief into a draft. Called by planner.py, many at once
by summariser.py's dispatch_group, and after "research" in the task graph
of docs/workflows.md (bygate.dag passes research's output as
extra_payload["_dep_research"])."""
import bygate_agent


def handle(ctx):
    brief = ctx.content if isinstance(ctx.content, str) else str(ctx.content)
    ctx.chunk("writing...")
    deps = sorted((k, v) for k, v in (ctx.body.get("extra_payload") or {})
                  .items() if k.startswith("_dep_"))
    if deps:
        return "Draft: %s (based on %s)" % (
            brief, "; ".join(str(v) for _, v in deps))
    return "Draft: %s" % brief


if __name__ == "__main__":
    bygate_agent.run(handle)
