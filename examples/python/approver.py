#!/usr/bin/env python3
"""approver: asks the user to approve the request (ask_user), then, when
the user's answer resumes it, finishes with "approved: <answer>"."""
import bygate_agent


def handle(ctx):
    if not ctx.resumed:
        ctx.ask_user("Approve %s?" % ctx.content)
        return None  # the task ends WAITING_USER
    return {"status": "COMPLETED", "content": "approved: %s" % ctx.content}


if __name__ == "__main__":
    bygate_agent.run(handle)
