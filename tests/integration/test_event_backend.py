"""bygated on libevent's poll backend (EVENT_NOEPOLL set in its
environment): the children's doorbells are edge-triggered only where the
backend honours it (epoll); elsewhere each is drained when it rings
(supervisor/pool_lifecycle.c), so tasks run and an idle bygated sleeps
instead of waking on a doorbell that stays readable."""

import os
import time

from harness import wait_until
import pyclient as pc
from bglib import proc

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def test_on_the_poll_backend_tasks_run_and_an_idle_bygated_sleeps(h):
    d = h.start_bygated({"pool": {"size": 2},
                         "agent_types": [h.agent_type("echo")]},
                        env=proc.clean_env({"EVENT_NOEPOLL": "1",
                                            "EVENT_SHOW_METHOD": "1"}))
    c = h.client()
    mids = pc.send_many(c, h.keys, "s-poll", "echo", "hi", 10)
    for m in mids:
        wait_until(lambda m=m: (pc.record(c, h.keys, "s-poll", m) or {})
                   .get("status") == "COMPLETED", 30, what=m)
    assert "libevent using: poll" in d.log_tail(200)
    before = cpu_s(d.pid)
    time.sleep(2.0)
    # a doorbell left readable wakes the loop without end: ~2 s of CPU
    assert cpu_s(d.pid) - before < 0.5
