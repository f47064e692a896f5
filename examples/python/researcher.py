#!/usr/bin/env python3
"""researcher: answers a research request with (made-up) findings. Called
by planner.py; a plain one-shot agent."""
import bygate_agent


def handle(ctx):
    topic = ctx.content if isinstance(ctx.content, str) else str(ctx.content)
    ctx.state("RESEARCHING")
    ctx.chunk("looking into %s" % topic)
    return "3 findings on %s" % topic


if __name__ == "__main__":
    bygate_agent.run(handle)
