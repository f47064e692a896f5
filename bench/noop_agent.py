"""The no-op Python agent of the handlers phase of bench/run.py (exec
handler, both modes): answers every task with an empty result."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "python"))
import bygate_agent  # noqa: E402

if __name__ == "__main__":
    bygate_agent.run(lambda ctx: None)
