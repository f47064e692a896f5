"""Primers and followers (issue 13 item 3, docs/scheduling.md "Primers and
followers"): sched.primer_share keeps places of the pool for primers, so
that a burst of followers never starves a new group's primer: it starts
with the next free child.

A task is a primer or a follower by its header's metadata.bygate_role, as
the bygate.group workflow marks the calls it makes. Tasks are the sleep
plugin's (the content is the milliseconds to sleep). When a task really
started in a child is read from bygated's log ("task started", a debug
line, the test configuration's level), not from the record: a task queued
here already has its record RUNNING."""

import calendar
import re
import time

from harness import timeout, wait_until
import pyclient as pc

FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2}
POOL = 4
FOLLOWER_MS = 400
STARTED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*"
                     r"task started \(ASK_AGENT entry ([0-9-]+)")


def start(h, share, window=32, size=POOL, **kw):
    return h.start_bygated(dict({
        "worker": FAST, "pool": {"size": size},
        "sched": {"window": window, "primer_share": share},
        "agent_types": [h.agent_type("sleep")]}, **kw))


def send(c, h, session, n, ms, role):
    return pc.send_many(c, h.keys, session, "sleep", "%d" % ms, n,
                        metadata={"bygate_role": role, "bygate_group": "g1"})


def starts(d):
    """{stream entry id: ms when a child started it} from the log."""
    out = {}
    with open(d.log_path, errors="replace") as f:
        for line in f:
            m = STARTED.match(line)
            if m:
                t = calendar.timegm(time.strptime(m.group(1),
                                                  "%Y-%m-%dT%H:%M:%S"))
                out.setdefault(m.group(3), t * 1000 + int(m.group(2)))
    return out


def entry_ids(c, h, mids):
    """{message id: its stream entry id} for the messages mids."""
    want, out = set(mids), {}
    for eid, f in c.xrange(h.keys.ctrl_agent_type("sleep")):
        m = re.search(r'"message_id": *"([^"]+)"', f.get("data", ""))
        if m and m.group(1) in want:
            out[m.group(1)] = eid
    return out


def ms_of(eid):
    return int(eid.split("-")[0])


def burst_then_primer(h, d, c, n=500):
    """n followers, then (their backlog read and the pool busy) one primer.
    Returns (primer entry id, its start ms or None after 3 s, the
    followers' entry ids, starts)."""
    followers = send(c, h, "s-f", n, FOLLOWER_MS, "follower")
    wait_until(lambda: len(starts(d)) >= 2 * POOL, 30,
               what="the followers running")
    [primer] = send(c, h, "s-p", 1, 50, "primer")
    ids = entry_ids(c, h, followers + [primer])
    p_eid = ids.pop(primer)
    try:
        wait_until(lambda: p_eid in starts(d), 3, what="the primer")
    except Exception:
        pass
    s = starts(d)
    return p_eid, s.get(p_eid), list(ids.values()), s


@timeout(120)
def test_a_burst_of_followers_does_not_delay_a_primer_past_the_next_child(h):
    c = h.client(timeout=30)
    d = start(h, 25)
    p_eid, p_start, f_eids, s = burst_then_primer(h, d, c)
    sent = ms_of(p_eid)
    assert p_start is not None, "the primer did not start within 3 s"
    delay = p_start - sent
    # started after the primer was sent (its XADD), before it: none (a
    # start already on its way when the entry was read aside, 5 ms)
    ahead = [e for e in f_eids if e in s and sent + 5 <= s[e] < p_start]
    waiting = [e for e in f_eids if e not in s or s[e] >= p_start]
    print("primer: sent -> started %d ms (followers of %d ms, pool %d); "
          "followers started in between: %d; still waiting: %d"
          % (delay, FOLLOWER_MS, POOL, len(ahead), len(waiting)))
    assert ahead == [], (delay, len(ahead))
    assert len(waiting) > 400, len(waiting)
    # the next free child (no task started here in between, above):
    # within one follower's run and the finish that frees its child
    # (slack for a loaded machine)
    assert delay <= FOLLOWER_MS + 300, delay


@timeout(120)
def test_primers_beyond_the_readers_places_come_first_from_the_ready_set(h):
    """Pool 4 at 25 %: one place, so the reader keeps one primer and parks
    the other two in the agent type's primers set, which every pick
    empties before any lane: they start within a child or two, not behind
    the 500 followers parked before them."""
    c = h.client(timeout=30)
    d = start(h, 25)
    followers = send(c, h, "s-f", 500, FOLLOWER_MS, "follower")
    wait_until(lambda: len(starts(d)) >= 2 * POOL, 30,
               what="the followers running")
    prims = send(c, h, "s-p", 3, 50, "primer")
    ids = entry_ids(c, h, followers + prims)
    p_eids = [ids.pop(m) for m in prims]
    wait_until(lambda: all(e in starts(d) for e in p_eids), 5,
               what="the three primers")
    s = starts(d)
    sent = ms_of(p_eids[0])
    last = max(s[e] for e in p_eids)
    ahead = [e for e in ids.values() if e in s and sent + 5 <= s[e] < last]
    print("3 primers: sent -> started %s ms; followers started in "
          "between: %d" % ([s[e] - sent for e in p_eids], len(ahead)))
    # beyond the place, a primer comes with the next pick: a follower
    # prefetched here may take the child that frees first (the places
    # hold only while running primers do not fill them), never the
    # backlog (~50 s)
    assert last - sent <= 3 * FOLLOWER_MS, last - sent
    assert len(ahead) <= 2 * POOL, len(ahead)


@timeout(120)
def test_with_the_share_off_the_primer_waits_behind_the_burst(h):
    """The control: primer_share = 0 makes primers ordinary tasks, queued
    in stream order behind the 500 followers (~50 s on this pool)."""
    c = h.client(timeout=30)
    d = start(h, 0)
    p_eid, p_start, f_eids, s = burst_then_primer(h, d, c)
    sent = ms_of(p_eid)
    ahead = [e for e in f_eids if e in s and sent + 5 <= s[e] <
             (p_start or 1 << 62)]
    print("share 0: primer started %s; followers started after it was "
          "sent: %d" % ("after %d ms" % (p_start - sent) if p_start
                        else "not within 3 s", len(ahead)))
    assert p_start is None
    assert len(ahead) >= 3000 // FOLLOWER_MS * POOL - POOL, len(ahead)


@timeout(120)
def test_followers_use_every_child_while_no_primer_waits(h):
    c = h.client(timeout=30)
    d = start(h, 50)  # two of four places kept for primers
    followers = send(c, h, "s-f", 40, 200, "follower")
    recs = wait_until(lambda: (lambda r: r if all(
        x and x["status"] == "COMPLETED" for x in r) else None)(
        [pc.record(c, h.keys, "s-f", m) for m in followers]), 30,
        what="the followers")
    assert len(recs) == 40
    # running at once: count from the children's starts in the log, each
    # running 200 ms
    st = sorted(starts(d).values())
    most = max(sum(1 for u in st if t <= u < t + 190) for t in st)
    assert most == POOL, most


@timeout(120)
def test_without_the_ready_set_a_primer_held_here_goes_first(h):
    """sched.window = 0: no ready set, the worker reads what it can start
    plus the prefetch, in stream order. A primer among what it holds
    starts with the next free child, before followers read earlier."""
    c = h.client(timeout=30)
    followers = send(c, h, "s-f", 3, FOLLOWER_MS, "follower")
    [primer] = send(c, h, "s-p", 1, 50, "primer")
    d = start(h, 50, window=0, size=2, worker=dict(FAST, fetch_count=2))
    ids = entry_ids(c, h, followers + [primer])
    p_eid = ids[primer]
    wait_until(lambda: all(e in starts(d) for e in ids.values()), 10,
               what="every task")
    s = starts(d)
    # the four are read at once; two children: the primer is among the
    # first two to start, the third follower waits for a child
    order = sorted(ids.values(), key=lambda e: s[e])
    assert p_eid in order[:2], order
    assert s[p_eid] < s[ids[followers[2]]]
