"""A test agent for the handler operations of examples/python/
bygate_agent.py on other executions (tests/integration/
test_handler_ops.py): the first word of the content chooses."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402


def handle(ctx):
    if ctx.resumed:
        post = (ctx.body.get("extra_payload") or {}).get("bygate_post")
        return {"content": "resumed: " + json.dumps(ctx.content),
                "reply_data": {"bygate_post": post}}
    what, _, arg = ctx.content.partition(" ")
    if what == "timer":  # "timer <ms>": wake this execution up later
        ctx.chunk(json.dumps(ctx.resume_later({"n": 2}, delay_ms=int(arg))))
        return None
    if what == "post":  # "post <message id>"
        return json.dumps(ctx.resume_later("hello", message_id=arg))
    if what == "cancel":  # "cancel <message id>"
        return json.dumps(ctx.cancel_call(arg, force=True, reason="late"))
    if what == "served":  # "served <json list>"
        return json.dumps(ctx.agent_types_served(json.loads(arg)))
    if what == "wait":
        return "WAITING_AGENT"
    return "noop"


bygate_agent.run(handle)
