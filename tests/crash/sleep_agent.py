"""The exec twin of the sleep plugin for tests/crash/chaos.py --shared:
sleeps the task content's milliseconds, then answers the content (a thread
per task when max_inflight > 1)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402


def handle(ctx):
    time.sleep(int(ctx.content) / 1000.0)
    return ctx.content


if __name__ == "__main__":
    bygate_agent.run(handle)
