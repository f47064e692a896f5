#!/usr/bin/env python3
"""planner: calls researcher, then writer, one at a time and each time
waiting for the reply (the task ends WAITING_AGENT and the callee's result
resumes it as a new task, possibly on another worker). Its progress lives
in the session's kv store, keyed by its own message id, so any process
can pick up the next step. The final answer quotes the original request,
and, when the session's conversation (docs/history.md) has earlier turns,
says which turn this is and what the user asked before it."""
import bygate_agent


def text(content):
    return content if isinstance(content, str) else str(content)


def handle(ctx):
    key = "planner:" + ctx.message_id
    state = ctx.kv_get(key) or {}
    step = state.get("step", 0) if ctx.resumed else 0
    if step == 0:
        asked = [m["content"] for m in ctx.history(50) if m["role"] == "user"]
        state = {"step": 1, "request": text(ctx.content),
                 "turn": len(asked) + 1,
                 "before": text(asked[-1]) if asked else ""}
        ctx.kv_set(key, state)
        ctx.state("PLANNER_CALLING_RESEARCHER")
        ctx.call_agent("researcher", state["request"])
        return None  # WAITING_AGENT until the researcher answers
    if step == 1:
        state.update(step=2, research=text(ctx.content))
        ctx.kv_set(key, state)
        ctx.state("PLANNER_CALLING_WRITER")
        ctx.call_agent("writer", "write up: " + state["research"])
        return None
    state.update(step=3, draft=text(ctx.content))
    ctx.kv_set(key, state)
    answer = 'Plan for "%s": %s' % (state["request"], state["draft"])
    if state.get("before"):
        answer += ' (turn %d, after "%s")' % (state["turn"], state["before"])
    return answer


if __name__ == "__main__":
    bygate_agent.run(handle)
