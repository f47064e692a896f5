#!/usr/bin/env python3
"""reviewer: reviews a draft. In the task graph of docs/workflows.md it
depends on the writer's draft, which bygate.dag passes in extra_payload as
"_dep_draft" (agentos's merge of dependency outputs). As a follower of a
group (examples/workflows/review-group.json) it reviews its content with
the primer's output ("_primer") and handle ("_handle") at hand."""
import bygate_agent


def handle(ctx):
    extra = ctx.body.get("extra_payload") or {}
    ctx.state("REVIEWING")
    if "_primer" in extra:
        return "Review of %s, knowing [%s]: looks right" % (
            ctx.content, extra["_primer"])
    draft = extra.get("_dep_draft", "")
    return "Review of [%s]: clear, cite one more source" % draft


if __name__ == "__main__":
    bygate_agent.run(handle)
