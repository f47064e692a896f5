#!/usr/bin/env python3
"""writer: turns a brief into a draft. Called by planner.py, and many at
once by summariser.py's dispatch_group."""
import bygate_agent


def handle(ctx):
    brief = ctx.content if isinstance(ctx.content, str) else str(ctx.content)
    ctx.chunk("writing...")
    return "Draft: %s" % brief


if __name__ == "__main__":
    bygate_agent.run(handle)
