"""The failure catalogue (issue 11): what Redis can do to bygated besides
dying, each made to happen deterministically, with what bygated must do.

- A stream trimmed (XTRIM) or an entry deleted (XDEL) while entries are
  pending: XCLAIM returns nothing for a deleted entry (Redis 7 also drops
  it from the pending list; Redis 6 keeps it and returns a nil). Nothing is
  left to run: the entry is acknowledged and dead-lettered with the reason,
  never claimed again; the entries beside it run once.
- The connection bygated reads on killed in the middle of its blocking
  XREADGROUP: it reconnects, and every task sent before, during and after
  runs once.
- Redis restarted empty: the consumer group is created again, the lease
  re-taken, the task in flight is accounted for in the log (its entry is
  gone: not finished here), and new tasks run.
"""

import re

from harness import blocked_in, timeout, wait_task_end, wait_until
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 500}
GROUP = "agent_engines"


def conf(h, **worker):
    return {"worker": dict(FAST, **worker), "pool": {"size": 2},
            "agent_types": [h.agent_type("sleep")]}


terminal = pc.terminal
wait_terminal = pc.wait_terminal


def assert_ran_once(c, keys, s, m):
    rec = terminal(c, keys, s, m)
    assert rec and rec["status"] == "COMPLETED", rec
    tl = [t["status"] for t in rec["timeline"]]
    assert tl.count("COMPLETED") == 1 and tl.count("RUNNING") == 1, tl
    evs = [e for e in pc.events(c, keys, s) if e["message_id"] == m]
    assert [e["event_type"] for e in evs].count("appStreamResponse") == 1
    assert [e["event_type"] for e in evs].count("finalAnswer") == 1


def entry_of(c, stream, mid):
    """The stream entry id of message mid."""
    for eid, fields in c.call("XRANGE", stream, "-", "+"):
        data = dict(zip(fields[::2], fields[1::2])).get("data", "")
        if mid in data:
            return eid
    raise AssertionError("no entry for %s on %s" % (mid, stream))


def pending_ids(c, stream):
    return [e[0] for e in c.call("XPENDING", stream, GROUP, "-", "+", "100")]


def deleted_and_kept(h, c, stream, worker):
    """Three tasks delivered to `worker` (pending there, never run): the
    first trimmed off the stream with XTRIM MINID, the third deleted with
    XDEL, the second left. Returns ([deleted ids], kept message id)."""
    mids = [pc.send(c, h.keys, "s-trim", "sleep", "10")[0] for _ in range(3)]
    ids = [entry_of(c, stream, m) for m in mids]
    c.call("XREADGROUP", "GROUP", GROUP, worker, "COUNT", "3",
           "STREAMS", stream, ">")
    assert pending_ids(c, stream) == ids
    assert c.call("XTRIM", stream, "MINID", ids[1]) == 1
    assert c.call("XDEL", stream, ids[2]) == 1
    return [ids[0], ids[2]], mids[1]


def assert_dead_lettered_as_deleted(c, h, d, stream, gone):
    """Each id of gone is dead-lettered as deleted (log and stream)."""
    for eid in gone:
        d.wait_log(re.compile(r"^.*entry %s on %s dead-lettered "
                              r"\(entry_deleted\): .*deleted.*$"
                              % (re.escape(eid), re.escape(stream)), re.M),
                   timeout=15)
    dl = wait_until(lambda: (lambda v: v if len(v) >= len(gone) else None)(
        c.stream_data(h.keys.deadletter())), 10,
        what="the dead letters of the deleted entries")
    assert sorted(x["entry_id"] for x in dl) == sorted(gone), dl
    for x in dl:
        assert x["error_code"] == "entry_deleted", x
        assert x["stream"] == stream and x["entry"] is None, x
        assert "deleted" in x["reason"], x


@timeout(60)
def test_entries_deleted_while_pending_are_dead_lettered_not_retried(h):
    """A bygated whose previous run stopped cleanly claims the entries
    pending for it at start (supervisor/recover.c)."""
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    d = h.start_bygated(conf(h))
    d.stop()  # clean: the restart claims what is pending (no suspects)
    gone, kept = deleted_and_kept(h, c, stream, d.config["worker"]["id"])
    d2 = h.bygated(config=d.config)
    d2.start()
    d2.wait_log("start-up reconcile done: 0 finishes re-sent, 3 entries "
                "re-run or dead-lettered", timeout=10)
    wait_terminal(c, h.keys, "s-trim", kept)
    assert_ran_once(c, h.keys, "s-trim", kept)
    assert_dead_lettered_as_deleted(c, h, d2, stream, gone)
    # acknowledged: nothing is left to claim again (Redis 6 would keep a
    # deleted entry pending until it is)
    assert pending_ids(c, stream) == []
    assert d2.alive()


@timeout(60)
def test_entries_deleted_while_pending_after_a_crash_are_skipped(h):
    """After a kill -9 the entries pending are suspects, re-run one at a
    time (supervisor/suspects.c): a deleted one is passed over, the
    others run once and reading resumes."""
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    d = h.start_bygated(conf(h))
    d.kill()  # unclean: the restart re-runs the pending entries as suspects
    gone, kept = deleted_and_kept(h, c, stream, d.config["worker"]["id"])
    d2 = h.bygated(config=d.config)
    d2.start()
    d2.wait_log("unclean exit of the previous bygated: 3 entries were "
                "pending here", timeout=10)
    for eid in gone:
        d2.wait_log(re.compile(r"^.*suspect entry %s on %s .*(skipped|"
                               r"dead-lettered).*$" % (re.escape(eid),
                                                       re.escape(stream)),
                               re.M), timeout=15)
    d2.wait_log("suspects done: 3 entries re-run one at a time",
                timeout=15)
    wait_terminal(c, h.keys, "s-trim", kept)
    assert_ran_once(c, h.keys, "s-trim", kept)
    assert pending_ids(c, stream) == []
    after, _ = pc.send(c, h.keys, "s-trim", "sleep", "10")
    wait_terminal(c, h.keys, "s-trim", after)
    assert_ran_once(c, h.keys, "s-trim", after)


@timeout(60)
def test_a_killed_read_connection_is_reopened_and_nothing_is_lost(h):
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    d = h.start_bygated(conf(h, block_ms=5000))
    before, _ = pc.send(c, h.keys, "s-rd", "sleep", "1500")
    wait_until(lambda: (pc.record(c, h.keys, "s-rd", before) or {})
               .get("status") == "RUNNING", 10, what="a task running")
    # bygated's read connection, blocked in its XREADGROUP
    line = wait_until(lambda: (lambda b: b[0] if len(b) == 1 else None)(
        blocked_in(c, "xreadgroup")), 10, what="the blocked read")
    cid = re.search(r"\bid=(\d+)", line).group(1)
    mark = d.log_mark()
    assert c.call("CLIENT", "KILL", "ID", cid) == 1
    during = [pc.send(c, h.keys, "s-rd", "sleep", "10")[0]
              for _ in range(3)]
    d.wait_log(re.compile(r"^.*redis read connection to .* lost.*$", re.M),
               since=mark)
    d.wait_log(re.compile(r"^.*redis read connection ready.*$", re.M),
               since=mark)
    after = [pc.send(c, h.keys, "s-rd", "sleep", "10")[0] for _ in range(3)]
    for m in [before] + during + after:
        wait_terminal(c, h.keys, "s-rd", m)
        assert_ran_once(c, h.keys, "s-rd", m)
    assert pending_ids(c, stream) == []
    group = pc_group(c, stream)
    assert group["lag"] == 0 and group["entries-read"] == 7, group
    # only the read connection was lost
    assert "write connection to" not in d.log_text(since=mark)
    assert d.alive()


def pc_group(c, stream):
    groups = [dict(zip(g[::2], g[1::2]))
              for g in c.call("XINFO", "GROUPS", stream)]
    return [g for g in groups if g["name"] == GROUP][0]


@timeout(90)
def test_redis_restarted_empty_the_group_is_recreated_and_work_accounted(h):
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    d = h.start_bygated(conf(h))
    lost, _ = pc.send(c, h.keys, "s-empty", "sleep", "2000")
    wait_until(lambda: (pc.record(c, h.keys, "s-empty", lost) or {})
               .get("status") == "RUNNING", 10, what="a task running")
    c.call("SET", "catalogue:marker", "1")
    mark = d.log_mark()
    c.close()
    port = h.redis.port
    h.redis.kill()
    h.redis.start(port)  # no persistence: an empty Redis on the same port
    c = h.client()
    assert c.call("GET", "catalogue:marker") is None  # empty indeed
    # the lease key is gone: the next heartbeat re-creates it and says
    # that every entry in flight is checked before it is finished
    w = d.config["worker"]["id"]
    d.wait_log("lease of worker %s had lapsed (re-created by this "
               "heartbeat)" % w, since=mark, timeout=20)
    # the task in flight: its entry went with the data, so its finish is
    # not applied here (it would re-create its record), and the log says so
    line = wait_task_end(d, lost, timeout=30, since=mark)
    assert "not finishing it here" in line, line
    assert pc.record(c, h.keys, "s-empty", lost) is None
    # the read finds no group: it is created again, from the start of the
    # stream (MKSTREAM), so what is sent meanwhile is read
    d.wait_log(re.compile(r"^.*XREADGROUP failed: NOGROUP.*$", re.M),
               since=mark, timeout=20)
    new, _ = pc.send(c, h.keys, "s-empty", "sleep", "10")
    wait_terminal(c, h.keys, "s-empty", new)
    assert_ran_once(c, h.keys, "s-empty", new)
    assert pending_ids(c, stream) == []
    group = pc_group(c, stream)
    assert group["lag"] == 0 and group["entries-read"] == 1, group
    assert d.alive()
