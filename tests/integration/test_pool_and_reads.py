"""Pool recycling, bounded reads with CLIENT UNBLOCK, Redis reconnects and
fast stop: behaviours an operator relies on."""

import json
import signal

from harness import wait_until, pid_alive, timeout
import pyclient as pc


def done(c, keys, session, mids):
    recs = [pc.record(c, keys, session, m) for m in mids]
    return all(r and r["status"] == "COMPLETED" for r in recs)


def test_children_are_recycled_after_max_tasks_and_no_task_is_lost(h):
    d = h.start_bygated({"pool": {"size": 2, "max_tasks_per_child": 5}})
    c = h.client()
    first = set(wait_until(lambda: d.child_pids(), 10, what="children"))
    mids = [pc.send(c, h.keys, "s-rec", "echo", "task %d" % i)[0]
            for i in range(60)]
    wait_until(lambda: done(c, h.keys, "s-rec", mids), 30,
               what="60 tasks complete")
    wait_until(lambda: len(d.child_pids()) == 2, 10, what="pool full")
    assert not first & set(d.child_pids()), "children were never recycled"
    assert pc.pending_count(c, h.keys.ctrl_agent_type("echo")) == 0


@timeout(60)
def test_reads_never_exceed_capacity_and_resume_through_unblock(h):
    # block_ms is huge: without CLIENT UNBLOCK the read issued while the
    # only child is busy would sit for a minute and the test would time out.
    h.start_bygated({"pool": {"size": 1}, "worker": {"fetch_count": 1,
                                                    "block_ms": 60000},
                     "sched": {"window": 0},  # reads only what can run
                     "agent_types": [h.agent_type("sleep")]})
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    mids = [pc.send(c, h.keys, "s-cap", "sleep", "300")[0] for _ in range(6)]
    # first the reads that fill the capacity: the first task runs and a
    # second entry is prefetched (more, if the reads overshoot)
    wait_until(lambda: any((pc.record(c, h.keys, "s-cap", m) or {})
                           .get("status") == "RUNNING" for m in mids) and
               pc.pending_count(c, stream) >= 2, 10,
               what="one task running and one prefetched")
    # one running + one prefetched at most; the rest stays in the stream
    assert pc.pending_count(c, stream) <= 2
    wait_until(lambda: done(c, h.keys, "s-cap", mids), 30,
               what="6 tasks complete")
    assert pc.pending_count(c, stream) == 0


def test_tasks_complete_across_a_redis_connection_loss(h):
    d = h.start_bygated({"agent_types": [h.agent_type("sleep")]})
    c = h.client()
    mids = [pc.send(c, h.keys, "s-conn", "sleep", "400")[0] for _ in range(2)]
    wait_until(lambda: all((pc.record(c, h.keys, "s-conn", m) or {})
                           .get("status") == "RUNNING" for m in mids), 10,
               what="tasks running")
    c.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    wait_until(lambda: done(c, h.keys, "s-conn", mids), 20,
               what="tasks complete after reconnect")
    later = pc.send(c, h.keys, "s-conn", "sleep", "1")[0]
    wait_until(lambda: done(c, h.keys, "s-conn", [later]), 20,
               what="new task after reconnect")
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    assert d.alive()


def test_sigint_stops_at_once_and_leaves_running_work_pending(h):
    d = h.start_bygated({"agent_types": [h.agent_type("sleep")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-int", "sleep", "20000")
    wait_until(lambda: (pc.record(c, h.keys, "s-int", mid) or {})
               .get("status") == "RUNNING", 10, what="task running")
    kids = d.child_pids()
    assert kids  # else the check below passes on nothing
    d.signal(signal.SIGINT)
    d.wait_exit(5)
    assert all(not pid_alive(p) for p in kids)
    # not finished: recovered from the PEL by the next bygated
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 1


def test_a_plugin_that_cannot_load_keeps_bygated_alive_and_explains(h):
    bad = h.agent_type("echo")
    bad["plugin"] = str(h.tmp / "missing.so")
    d = h.bygated({"agent_types": [bad]})
    d.start(wait=False)
    d.wait_log("missing.so", timeout=10)
    # it is tried again in a spare child (the slots are not respawned
    # while no type loads): bygated has been through several tries
    wait_until(lambda: not d.alive() or
               d.log_text().count(": spare child pid ") >= 3, 15,
               what="three failed tries")
    assert d.alive()


def test_every_descriptor_of_bygated_is_close_on_exec(h):
    import os
    d = h.start_bygated()
    c = h.client()
    mid = pc.send(c, h.keys, "s-cloexec", "echo", "hi")[0]
    wait_until(lambda: done(c, h.keys, "s-cloexec", [mid]), 10, what="task")
    leaky = []
    for fd in os.listdir("/proc/%d/fd" % d.pid):
        if int(fd) <= 2:
            continue
        with open("/proc/%d/fdinfo/%s" % (d.pid, fd)) as f:
            flags = [l for l in f if l.startswith("flags:")][0]
        if not int(flags.split()[1], 8) & 0o2000000:
            leaky.append((fd, os.readlink("/proc/%d/fd/%s" % (d.pid, fd))))
    assert leaky == [], leaky


def test_a_hung_redis_trips_request_deadlines_and_work_resumes(h):
    import os
    d = h.start_bygated({"redis": {"command_timeout_ms": 300},
                         "worker": {"block_ms": 200},
                         "agent_types": [h.agent_type("sleep")]})
    c = h.client()
    mid = pc.send(c, h.keys, "s-hung", "sleep", "300")[0]
    os.kill(h.redis.pid, signal.SIGSTOP)
    try:
        d.wait_log("deadline expired", timeout=10)
    finally:
        os.kill(h.redis.pid, signal.SIGCONT)
    wait_until(lambda: done(c, h.keys, "s-hung", [mid]), 20,
               what="task completes after redis resumes")
    later = pc.send(c, h.keys, "s-hung", "sleep", "1")[0]
    wait_until(lambda: done(c, h.keys, "s-hung", [later]), 20,
               what="new task after redis resumes")
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    assert d.alive()


def test_a_task_past_its_timeout_fails_with_timeout_and_the_next_succeeds(h):
    d = h.start_bygated({"pool": {"size": 1},
                         "agent_types": [h.agent_type("sleep",
                                                      timeout_ms=300),
                                         h.agent_type("crash",
                                                      timeout_ms=300)]})
    c = h.client()
    slow = pc.send(c, h.keys, "s-to", "sleep", "10000")[0]
    hang = pc.send(c, h.keys, "s-to", "crash", "hang")[0]
    for m in (slow, hang):
        rec = wait_until(lambda: (lambda r: r if r and r["status"] ==
                                  "FAILED" else None)(
            pc.record(c, h.keys, "s-to", m)), 20, what="timeout")
        assert rec["error_code"] == "TIMEOUT", rec
        assert "timed out after 300 ms" in rec["error_message"], rec
    # the handler that ignores SIGTERM needed the SIGKILL after the grace
    assert "SIGKILL" in d.log_text()
    assert "wchan" in d.log_text()
    ok = pc.send(c, h.keys, "s-to", "sleep", "5")[0]
    wait_until(lambda: done(c, h.keys, "s-to", [ok]), 10, what="next task")
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
