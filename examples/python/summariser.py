#!/usr/bin/env python3
"""summariser: fans out to several writers at once (dispatch_group) and,
resumed once after the last one finished, combines their results.
Content "N topic" asks for N parts (default 3)."""
import bygate_agent


def parts(content):
    first, _, rest = content.partition(" ")
    return (int(first), rest) if first.isdigit() and rest else (3, content)


def handle(ctx):
    if ctx.group_results is None:
        n, topic = parts(ctx.content if isinstance(ctx.content, str) else "")
        ctx.state("SUMMARISER_DISPATCHING_%d" % n)
        ctx.dispatch_group([{"target_agent_type": "writer",
                             "content": "part %d of %s" % (i + 1, topic)}
                            for i in range(n)])
        return None  # WAITING_AGENT until every writer finished
    drafts = sorted(str(r.get("content", ""))
                    for r in ctx.group_results.values())
    return "Summary of %d parts: %s" % (len(drafts), " | ".join(drafts))


if __name__ == "__main__":
    bygate_agent.run(handle)
