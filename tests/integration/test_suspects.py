"""The collateral of a crash (issue 9, item 9; docs/recovery.md "Suspects"):
when bygated dies with several entries in flight, the restart re-runs them
one at a time before reading anything, and a death counts against
max_deliveries only for an entry that was alone in flight. The death is the
fault point task.crash_on_content (bygated exits 86 while it runs a task
whose entry holds BYGATE_FAULT_MARKER); the test restarts bygated each time
it dies, as systemd would."""

from harness import wait_until, timeout
import pyclient as pc

MARKER = "crash-bygated-here"
FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 500,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 500}


def cfg(h, max_deliveries):
    worker = dict(FAST, max_deliveries=max_deliveries)
    # the culprit's content is not a number: it sleeps default_ms, long
    # enough to be running when bygated dies
    return {"worker": worker, "pool": {"size": 4},
            "agent_types": [h.agent_type("sleep",
                                         options={"default_ms": 3000})]}


def crashing_bygated(h, conf, delay_ms=300):
    d = h.bygated(conf)
    d.env = dict(d.env, BYGATE_FAULT="task.crash_on_content",
                 BYGATE_FAULT_MARKER=MARKER,
                 BYGATE_FAULT_DELAY_MS=str(delay_ms))
    return d.start()


terminal = pc.terminal


def count(evs, mid, kind):
    return sum(1 for e in evs if e["message_id"] == mid
               and e["event_type"] == kind)


def assert_completed_once(c, keys, s, m):
    rec = terminal(c, keys, s, m)
    assert rec and rec["status"] == "COMPLETED", rec
    tl = [t["status"] for t in rec["timeline"]]
    assert sum(1 for x in tl if x in ("COMPLETED", "FAILED")) == 1, tl
    evs = pc.events(c, keys, s)
    assert count(evs, m, "finalAnswer") == 1, evs
    assert count(evs, m, "appStreamResponse") == 1, evs
    return rec


def restart_until(d, done, limit, t):
    """Restart bygated whenever it has died at the fault point (exit 86),
    as systemd's Restart=on-failure would, until done(); returns the
    number of restarts."""
    n = [0]

    def step():
        if not d.alive():
            assert d.returncode == 86, (
                "bygated died with status %s, not at the fault point:\n%s"
                % (d.returncode, d.log_tail()))
            n[0] += 1
            assert n[0] <= limit, "more than %d restarts:\n%s" % (
                limit, d.log_tail())
            d.start(wait=False)
        return done()
    wait_until(step, t, what="every task to end across restarts")
    return n[0]


def send_batch(c, keys, culprit_first=False):
    """Three benign tasks (1 s) and the culprit, in one pipeline, each in
    its own session: [(session, message id)], culprit last in the list."""
    benign = [pc.ask_command("s-benign-%d" % i, "sleep", "1000")
              for i in range(3)]
    culprit = pc.ask_command("s-culprit", "sleep", MARKER)
    order = [culprit] + benign if culprit_first else benign + [culprit]
    cmds = []
    for cmd in order:
        cmds += pc.send_commands(keys, cmd)[1]
    c.pipeline(cmds)
    return [(x["header"]["session_id"], x["header"]["message_id"])
            for x in benign + [culprit]]


def died_beside_others(c, keys, d, tasks):
    """The first death happens with every task of the batch running."""
    wait_until(lambda: not d.alive(), 20, what="bygated to die on the culprit")
    assert all((pc.record(c, keys, s, m) or {}).get("status") == "RUNNING"
               for s, m in tasks), "the culprit did not die beside the others"


def assert_only_the_culprit_dead_lettered(c, keys, culprit, max_deliveries):
    s, m = culprit
    rec = terminal(c, keys, s, m)
    assert rec and rec["status"] == "FAILED", rec
    assert rec["error_code"] == "max_deliveries", rec
    msg = rec["error_message"]
    assert "max_deliveries %d" % max_deliveries in msg, msg
    assert "bygated died" in msg and "alone" in msg, msg
    dl = c.stream_data(keys.deadletter())
    assert len(dl) == 1, dl
    assert dl[0]["execution_id"] == rec["execution_id"], dl
    assert dl[0]["error_code"] == "max_deliveries", dl
    assert dl[0]["delivery_count"] == max_deliveries + 1, dl
    assert count(pc.events(c, keys, s), m, "appStreamResponse") == 1


def assert_serving(h, c, d):
    """bygated runs, reads again and finishes new work."""
    d.wait_log("suspects done", timeout=20)
    d.wait_log("bygated ready", timeout=20)
    mid, _ = pc.send(c, h.keys, "s-after", "sleep", "10")
    wait_until(lambda: terminal(c, h.keys, "s-after", mid), 20,
               what="a task sent after the suspects")
    assert_completed_once(c, h.keys, "s-after", mid)
    assert d.alive()
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


@timeout(150)
def test_a_task_that_crashes_bygated_repeatedly_is_the_only_one_dead_lettered(h):
    c = h.client()
    d = crashing_bygated(h, cfg(h, max_deliveries=3))
    tasks = send_batch(c, h.keys)
    died_beside_others(c, h.keys, d, tasks)
    restarts = restart_until(
        d, lambda: all(terminal(c, h.keys, s, m) for s, m in tasks),
        limit=10, t=120)
    # once beside the others (nobody charged), then max_deliveries times
    # alone (charged each time): the next start dead-letters it unrun
    assert restarts == 4, restarts
    for s, m in tasks[:3]:
        assert_completed_once(c, h.keys, s, m)
    assert_only_the_culprit_dead_lettered(c, h.keys, tasks[3], 3)
    assert_serving(h, c, d)


@timeout(120)
def test_tasks_beside_a_crash_are_not_charged_for_it(h):
    # max_deliveries 1: a single charged death dead-letters an entry, so
    # the benign tasks beside the first death would all be dead-lettered
    # if that death counted against them. The culprit runs first among
    # the suspects this time: the others wait and are still not charged.
    c = h.client()
    d = crashing_bygated(h, cfg(h, max_deliveries=1))
    tasks = send_batch(c, h.keys, culprit_first=True)
    died_beside_others(c, h.keys, d, tasks)
    restart_until(d, lambda: all(terminal(c, h.keys, s, m)
                                 for s, m in tasks), limit=10, t=90)
    for s, m in tasks[:3]:
        assert_completed_once(c, h.keys, s, m)
    assert_only_the_culprit_dead_lettered(c, h.keys, tasks[3], 1)
    assert_serving(h, c, d)


def run_window(rec):
    """(start, end) of the last run: its last RUNNING and its end."""
    tl = rec["timeline"]
    start = [t["timestamp"] for t in tl if t["status"] == "RUNNING"][-1]
    return start, tl[-1]["timestamp"]


@timeout(90)
def test_after_an_unclean_exit_suspects_run_one_at_a_time_then_reading_resumes(h):
    c = h.client()
    conf = cfg(h, max_deliveries=3)
    d = h.start_bygated(conf)
    tasks = [("s-susp-%d" % i, pc.send(c, h.keys, "s-susp-%d" % i, "sleep",
                                       "700")[0]) for i in range(3)]
    wait_until(lambda: all((pc.record(c, h.keys, s, m) or {})
                           .get("status") == "RUNNING" for s, m in tasks),
               10, what="tasks running")
    d.kill()
    d.start(wait=False)
    d.wait_log("re-running them one at a time", timeout=20)
    # sent while the suspects run: read only once they are done
    late, _ = pc.send(c, h.keys, "s-late", "sleep", "10")
    for s, m in tasks:
        wait_until(lambda: terminal(c, h.keys, s, m), 30,
                   what="suspect %s to finish" % m)
    recs = [assert_completed_once(c, h.keys, s, m) for s, m in tasks]
    windows = sorted(run_window(r) for r in recs)
    for (s0, e0), (s1, e1) in zip(windows, windows[1:]):
        assert s1 >= e0, "suspect re-runs overlapped: %r" % windows
    wait_until(lambda: terminal(c, h.keys, "s-late", late), 20,
               what="the task sent during the suspects")
    late_rec = assert_completed_once(c, h.keys, "s-late", late)
    assert run_window(late_rec)[0] >= windows[-1][1], (late_rec, windows)
    assert d.wait_log("suspects done", timeout=5)
    assert d.alive()
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    # a later clean stop leaves nothing to re-run: the next start reads
    assert d.stop() == 0
    d.start()
    # (its suspect line would precede the ready line start() waited for)
    assert "suspects" not in d.log_text(since_start=True)


@timeout(60)
def test_entries_left_by_a_clean_stop_are_rerun_at_once_and_not_charged(h):
    c = h.client()
    d = h.start_bygated(cfg(h, max_deliveries=3))
    stream = h.keys.ctrl_agent_type("sleep")
    mid, _ = pc.send(c, h.keys, "s-int", "sleep", "1500")
    wait_until(lambda: (pc.record(c, h.keys, "s-int", mid) or {})
               .get("status") == "RUNNING", 10, what="task running")
    d.interrupt()  # SIGINT: children killed, the entry left pending
    [[entry, _, _, n]] = c.call("XPENDING", stream, "agent_engines",
                                "-", "+", 10)
    assert n == 1
    d.start()  # ready (reading) at once: no suspect re-run first
    assert "suspects" not in d.log_text(since_start=True)
    d.wait_log("re-running own entry %s" % entry, timeout=10)
    [[_, _, _, n]] = c.call("XPENDING", stream, "agent_engines",
                            "-", "+", 10)
    assert n == 1, "a clean stop was charged a delivery"
    wait_until(lambda: terminal(c, h.keys, "s-int", mid), 20,
               what="the re-run to finish")
    assert_completed_once(c, h.keys, "s-int", mid)
