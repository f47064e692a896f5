"""The no-op Python agent of the handlers benchmark (bench/run.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "examples", "python"))
import bygate_agent  # noqa: E402

if __name__ == "__main__":
    bygate_agent.run(lambda ctx: "")
