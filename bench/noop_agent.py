"""The no-op Python agent of the handlers phase of bench/run.py (exec
handler, both modes): answers every task with an empty result, after
--sleep-ms milliseconds of waiting (an LLM call's I/O wait; 0 = none)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "python"))
import bygate_agent  # noqa: E402


def main():
    wait = 0.0
    if len(sys.argv) == 3 and sys.argv[1] == "--sleep-ms":
        wait = int(sys.argv[2]) / 1000.0

    def handle(ctx):
        if wait:
            time.sleep(wait)
        return None
    bygate_agent.run(handle)


if __name__ == "__main__":
    main()
