"""Fair scheduling (issue 12, docs/scheduling.md): lanes by weight and
priorities with aging, fleet-wide through the ready set (supervisor/
ready.h), with a backlog far deeper than any read.

Tasks are the sleep plugin's: the content is the milliseconds to sleep.
Lanes come from the header's metadata.lane, priorities from
metadata.priority, as unmodified by-framework clients send them."""

import time

from harness import timeout, wait_until
import pyclient as pc

FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2}


def start(h, size, sched=None, **kw):
    return h.start_bygated(dict({
        "worker": FAST, "pool": {"size": size},
        "sched": dict({"window": 64}, **(sched or {})),
        "agent_types": [h.agent_type("sleep")]}, **kw))


def send_many(c, keys, session, n, ms, target="sleep", fmt="%d", **meta):
    """n tasks in one pipeline (content fmt % ms); their message ids."""
    return pc.send_many(c, keys, session, target, fmt % ms, n,
                        metadata=dict(meta))


def records(c, keys, session, mids):
    return [pc.record(c, keys, session, m) for m in mids]


def all_done(c, keys, session, mids):
    recs = records(c, keys, session, mids)
    return recs if all(r and r["status"] == "COMPLETED" for r in recs) \
        else None


def max_overlap(recs):
    """Most tasks of recs running at one instant."""
    ev = sorted([(r["started_at"], 1) for r in recs] +
                [(r["finished_at"], -1) for r in recs],
                key=lambda e: (e[0], e[1]))
    n = best = 0
    for _, d in ev:
        n += d
        best = max(best, n)
    return best


@timeout(120)
def test_two_lanes_share_the_pool_by_weight_behind_a_deep_backlog(h):
    c = h.client(timeout=30)
    # all of lane a's tasks are in the stream before any of lane b's
    a = send_many(c, h.keys, "s-lanes", 300, 20, lane="a")
    b = send_many(c, h.keys, "s-lanes", 300, 20, lane="b")
    start(h, 6, {"lanes": {"a": {"weight": 2}}})
    ra = wait_until(lambda: all_done(c, h.keys, "s-lanes", a), 60,
                    what="lane a")
    rb = wait_until(lambda: all_done(c, h.keys, "s-lanes", b), 60,
                    what="lane b")
    # while both lanes had work: until the first of them ran out
    end = min(max(r["started_at"] for r in ra),
              max(r["started_at"] for r in rb))
    begin = min(r["started_at"] for r in ra + rb)
    na = sum(1 for r in ra if r["started_at"] <= end)
    nb = sum(1 for r in rb if r["started_at"] <= end)
    assert end - begin > 500, (begin, end)
    ratio = na / nb
    assert 2 * 0.85 <= ratio <= 2 * 1.15, (na, nb, ratio)
    # lane b alone afterwards gets the whole pool
    alone = [r for r in rb if r["started_at"] > end + 100]
    assert len(alone) >= 20 and max_overlap(alone) >= 5, \
        (len(alone), max_overlap(alone))


@timeout(120)
def test_a_priority_task_behind_a_thousand_starts_with_the_next_child(h):
    c = h.client(timeout=30)
    start(h, 2)
    low = send_many(c, h.keys, "s-prio", 1000, 30, priority=0)
    time.sleep(0.5)  # the backlog is read and waiting
    sent_ms = int(time.time() * 1000)
    [urgent] = send_many(c, h.keys, "s-prio", 1, 30, priority=9)
    rec = wait_until(lambda: (lambda r: r if r and r["started_at"] else
                              None)(pc.record(c, h.keys, "s-prio", urgent)),
                     10, what="the priority task to start")
    started = [r["started_at"] for r in records(c, h.keys, "s-prio", low)
               if r and r["started_at"]]
    ahead = [s for s in started if sent_ms <= s < rec["started_at"]]
    # the two children were busy: at most one task each started first
    assert len(ahead) <= 2, (len(ahead), rec["started_at"] - sent_ms)


@timeout(120)
def test_aging_runs_a_low_priority_task_under_a_stream_of_high_ones(h):
    """Its priority rises by one per priority_aging_ms of waiting: a
    priority 9 task sent more than 9 x aging_ms after it never runs before
    it, however steady their stream."""
    c = h.client(timeout=30)
    aging = 100
    start(h, 1, {"priority_aging_ms": aging})
    high = send_many(c, h.keys, "s-age", 20, 50, priority=9)
    [low] = send_many(c, h.keys, "s-age", 1, 10, priority=0)
    rec = None
    deadline = time.time() + 30
    while time.time() < deadline:  # more priority 9 than one child runs
        high += send_many(c, h.keys, "s-age", 2, 50, priority=9)
        rec = pc.record(c, h.keys, "s-age", low)
        if rec and rec["started_at"]:
            break
        time.sleep(0.05)
    assert rec and rec["started_at"], "the low priority task never started"
    bound = rec["created_at"] + 9 * aging
    before = [r for r in records(c, h.keys, "s-age", high)
              if r and r["started_at"] and r["started_at"] < rec["started_at"]]
    late = [r["created_at"] - rec["created_at"] for r in before
            if r["created_at"] > bound + 20]
    assert late == [], late
    # and the stream went on: some priority 9 tasks sent after the bound
    # waited for it
    assert max(r["created_at"] for r in
               records(c, h.keys, "s-age", high)) > bound


@timeout(120)
def test_nothing_is_lost_or_run_twice_when_bygated_dies_with_a_full_ready_set(
        h):
    c = h.client(timeout=30)
    d = start(h, 2)
    mids = send_many(c, h.keys, "s-crash", 200, 10, lane="x")
    mids += send_many(c, h.keys, "s-crash", 100, 10, lane="y")
    time.sleep(0.3)
    d.kill()
    d2 = h.bygated(config=d.config)
    d2.start()
    recs = wait_until(lambda: all_done(c, h.keys, "s-crash", mids), 90,
                      what="every task after the restart")
    for r in recs:
        tl = [t["status"] for t in r["timeline"]]
        assert tl.count("COMPLETED") == 1, r
    evs = pc.events(c, h.keys, "s-crash")
    finals = [e["message_id"] for e in evs if e["event_type"] == "finalAnswer"]
    assert sorted(finals) == sorted(mids)



def last_running_ms(rec):
    """When the record's last attempt started (its last RUNNING)."""
    runs = [t["timestamp"] for t in rec["timeline"] if t["status"] == "RUNNING"]
    return runs[-1] if runs else None


def resume_goes_first(h, c, pool, agent, session, mid, waiting, resume,
                      lane=None, n=500):
    """Issue 12: work already started goes first. The flow's task `mid`
    of `agent` waits (status `waiting`); n new tasks of its agent type
    (and lane) are queued behind it on a pool of `pool`; resume() then
    sends the RESUME, into the agent-type stream after all n. Checks that
    it starts with the next free child, ahead of every one still waiting:
    of the n, at most pool + 2 start between the RESUME's stream entry
    and the resumed task's start. Returns the resumed task's record."""
    wait_until(lambda: (pc.record(c, h.keys, session, mid) or {})
               .get("status") == waiting, 10, what="the flow waiting")
    meta = {"lane": lane} if lane is not None else {}
    # "sleep 20": the flow role's plain work (tests/plugins/flow.c)
    new = send_many(c, h.keys, session + "-new", n, 20, target=agent,
                    fmt="sleep %d", **meta)
    wait_until(lambda: sum(1 for r in records(c, h.keys, session + "-new",
                                              new)
                           if r and r["started_at"]) >= 20, 30,
               what="the new tasks running")
    resume()
    rec = wait_until(lambda: (lambda r: r if r and r["status"] ==
                              "COMPLETED" else None)(
        pc.record(c, h.keys, session, mid)), 30, what="the resumed task")
    resumed_ms = last_running_ms(rec)
    # when the RESUME was sent: its stream entry's id, after all n
    entries = c.xrange(h.keys.ctrl_agent_type(agent))
    [resume_id] = [eid for eid, f in entries
                   if '"RESUME"' in f.get("data", "")]
    new_ids = {m for m in new}
    last_new = max((eid for eid, f in entries
                    if any(m in f.get("data", "") for m in new_ids)),
                   key=lambda e: tuple(map(int, e.split("-"))))
    assert tuple(map(int, resume_id.split("-"))) > \
        tuple(map(int, last_new.split("-")))
    sent_ms = int(resume_id.split("-")[0])
    started = [r["started_at"] for r in records(c, h.keys, session + "-new",
                                                 new)
               if r and r["started_at"]]
    ahead = [s for s in started if sent_ms <= s < resumed_ms]
    # the backlog was still there: most of the n had not started
    assert sum(1 for s in started if s < resumed_ms) < n // 2, \
        (len(started), resumed_ms - sent_ms)
    # the pool's children were busy: at most one task each (and one for
    # a start already on its way) went first
    assert len(ahead) <= pool + 2, (len(ahead), resumed_ms - sent_ms)
    wait_until(lambda: all_done(c, h.keys, session + "-new", new), 60,
               what="the %d new tasks" % n)
    return rec


@timeout(120)
def test_a_reply_to_ask_user_runs_before_the_500_new_tasks_queued_ahead(h):
    """The answer to an ask_user (`bygate reply`, in the flow's lane)."""
    pool, lane = 2, "flows"
    c = h.client(timeout=30)
    h.start_bygated({
        "worker": FAST, "pool": {"size": pool}, "sched": {"window": 64},
        "agent_types": [h.agent_type("asker", plugin="flow",
                                     options={"role": "asker"})]})
    mid, _ = pc.send(c, h.keys, "s-reply", "asker", "book a room",
                     metadata={"lane": lane})

    def reply():
        out = h.bygate("reply", mid, "--session", "s-reply", "--content",
                       "Kyoto", "--route-policy", "SEND_ANYWAY",
                       "--metadata", '{"lane": "%s"}' % lane)
        assert out.returncode == 0, out.stdout + out.stderr
    rec = resume_goes_first(h, c, pool, "asker", "s-reply", mid,
                            "WAITING_USER", reply, lane)
    assert [t["status"] for t in rec["timeline"]] == [
        "QUEUED", "RUNNING", "WAITING_USER", "RUNNING", "COMPLETED"], rec


@timeout(120)
def test_a_sub_agents_callback_runs_before_the_500_new_tasks_queued_ahead(h):
    """The RESUME of a sub-agent's callback (alpha calls beta, which sleeps
    1.5 s and calls back). The callback carries the sub-agent's metadata
    (none here): everything is in the default lane."""
    pool = 2
    c = h.client(timeout=30)
    h.start_bygated({
        "worker": FAST, "pool": {"size": pool}, "sched": {"window": 64},
        "agent_types": [h.agent_type("alpha", plugin="flow",
                                     options={"role": "caller",
                                              "target": "beta"}),
                        h.agent_type("beta", plugin="sleep")]})
    mid, _ = pc.send(c, h.keys, "s-callback", "alpha", "1500")
    rec = resume_goes_first(h, c, pool, "alpha", "s-callback", mid,
                            "WAITING_AGENT", lambda: None)
    assert [t["status"] for t in rec["timeline"]] == [
        "QUEUED", "RUNNING", "WAITING_AGENT", "RUNNING", "COMPLETED"], rec


@timeout(60)
def test_a_sub_agents_task_and_its_callback_stay_in_the_callers_lane(h):
    """call_agent copies the caller's metadata.lane and metadata.priority
    into the sub-agent's ASK when the handler does not set them, and the
    callback carries them back: a tenant's sub-agent work keeps its lane's
    weight and caps."""
    c = h.client()
    h.start_bygated({
        "worker": FAST, "pool": {"size": 2}, "sched": {"window": 64},
        "agent_types": [h.agent_type("alpha", plugin="flow",
                                     options={"role": "caller",
                                              "target": "beta"}),
                        h.agent_type("beta", plugin="sleep")]})
    mid, _ = pc.send(c, h.keys, "s-inherit", "alpha", "50",
                     metadata={"lane": "tenant-x", "priority": 4})
    wait_until(lambda: (pc.record(c, h.keys, "s-inherit", mid) or {})
               .get("status") == "COMPLETED", 20, what="the flow")

    def metadata_of(stream, pred):
        for cmd in c.stream_data(stream):
            if pred(cmd):
                return cmd["header"]["metadata"]
        raise AssertionError("no such entry on %s" % stream)
    ask = metadata_of(h.keys.ctrl_agent_type("beta"),
                      lambda cmd: cmd["header"]["parent_message_id"] == mid)
    resume = metadata_of(h.keys.ctrl_agent_type("alpha"),
                         lambda cmd: cmd["action_type"] == "RESUME")
    for md in (ask, resume):
        assert (md.get("lane"), md.get("priority")) == ("tenant-x", 4), md



@timeout(120)
def test_the_ready_set_goes_on_after_the_script_cache_is_flushed(h):
    """The ready set's scripts go as EVALSHA once their text was sent on
    the connection: after SCRIPT FLUSH the NOSCRIPT refusal makes the next
    call send the text again, and a backlog parked before and after the
    flush still runs, each task once."""
    c = h.client(timeout=30)
    start(h, 1)
    first = send_many(c, h.keys, "s-flush", 20, 5)
    wait_until(lambda: all_done(c, h.keys, "s-flush", first), 60,
               what="the backlog before the flush")
    c.call("SCRIPT", "FLUSH")
    second = send_many(c, h.keys, "s-flush", 20, 5)
    recs = wait_until(lambda: all_done(c, h.keys, "s-flush", second), 60,
                      what="the backlog after the flush")
    for r in recs:
        assert [x["status"] for x in r["timeline"]] == [
            "QUEUED", "RUNNING", "COMPLETED"], r["timeline"]
    noscript = c.call("INFO", "errorstats")
    assert "errorstat_NOSCRIPT" in noscript, noscript


@timeout(120)
def test_entries_deleted_while_parked_are_skipped_and_the_rest_run_once(h):
    """A pick claims the entries of a lane together (one XCLAIM): the
    entries deleted from the stream while parked are left out of it, and
    their places go to the next entries, each run once."""
    c = h.client(timeout=30)
    start(h, 1)
    mids = send_many(c, h.keys, "s-del", 60, 30)
    time.sleep(0.5)  # the backlog is parked; the first ones ran
    entries = c.xrange(h.keys.ctrl_agent_type("sleep"))
    gone = mids[-20::2]  # ten among the tail, which is still parked
    for eid, f in entries:
        if any(m in f.get("data", "") for m in gone):
            c.call("XDEL", h.keys.ctrl_agent_type("sleep"), eid)
    kept = [m for m in mids if m not in gone]
    recs = wait_until(lambda: all_done(c, h.keys, "s-del", kept), 60,
                      what="the tasks not deleted")
    for r in recs:
        assert [x["status"] for x in r["timeline"]] == [
            "QUEUED", "RUNNING", "COMPLETED"], r["timeline"]
    for r in records(c, h.keys, "s-del", gone):
        assert r["status"] == "QUEUED" and not r["started_at"], r


@timeout(60)
def test_a_lane_at_its_max_running_does_not_keep_idle_children_from_others(h):
    """Six of lane x's tasks wait here behind its max_running of 1 while
    three children idle: lane y's tasks, parked behind them, are picked
    for those children and all finish while x's first task still runs
    (it takes 4 s; y's take 100 ms each)."""
    start(h, 4, sched={"lanes": {"x": {"max_running": 1}}})
    c = h.client()
    xs = send_many(c, h.keys, "s-capped", 7, 4000, lane="x")
    wait_until(lambda: any(r and r["status"] == "RUNNING" for r in
                           records(c, h.keys, "s-capped", xs)), 10,
               what="lane x's first task running")
    time.sleep(1.0)
    ys = send_many(c, h.keys, "s-capped", 20, 100, lane="y")
    wait_until(lambda: all_done(c, h.keys, "s-capped", ys), 30,
               what="lane y's 20 tasks")
    first_x = min((r for r in records(c, h.keys, "s-capped", xs)
                   if r.get("started_at")), key=lambda r: r["started_at"])
    last_y = max(r["finished_at"] for r in records(c, h.keys, "s-capped",
                                                   ys))
    assert first_x["status"] == "RUNNING" or \
        last_y < first_x["finished_at"], (first_x, last_y)
