#!/usr/bin/env python3
"""reviewer: reviews a draft. In the task graph of docs/workflows.md it
depends on the writer's draft, which bygate.dag passes in extra_payload as
"_dep_draft" (agentos's merge of dependency outputs)."""
import bygate_agent


def handle(ctx):
    draft = (ctx.body.get("extra_payload") or {}).get("_dep_draft", "")
    ctx.state("REVIEWING")
    return "Review of [%s]: clear, cite one more source" % draft


if __name__ == "__main__":
    bygate_agent.run(handle)
