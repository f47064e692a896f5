#!/usr/bin/env python3
"""translator: "translates" the draft it depends on into the language of
its context (bygate.dag merges the graph's and the task's context into
extra_payload.context)."""
import bygate_agent


def handle(ctx):
    extra = ctx.body.get("extra_payload") or {}
    lang = (extra.get("context") or {}).get("lang", "fr")
    ctx.state("TRANSLATING")
    return "[%s] %s" % (lang, extra.get("_dep_draft", ""))


if __name__ == "__main__":
    bygate_agent.run(handle)
