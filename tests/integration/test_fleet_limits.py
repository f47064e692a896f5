"""Fleet-wide limits (issue 12 items 4 and 5, docs/scheduling.md "Fleet
limits"): fleet_max_running of an agent type and of a lane holds across two
bygated, the places of a kill -9'd worker are free again within the lease
TTL, and a rate limit spaces the starts of the whole fleet."""

import time

from harness import entry_data, timeout, wait_until
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 500,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 500}


def cfg(h, sleep=None, pool=3, **over):
    conf = {"worker": dict(FAST), "pool": {"size": pool},
            "redis": {"key_schema": h.keys.schema},  # the test's v1 or v2
            "agent_types": [h.agent_type("sleep", **(sleep or {}))]}
    conf.update(over)
    return conf


def fleet_key(h, kind, name, what="running"):
    """The gate's keys (wire/keys.h BG_KEY_FLEET_*): kind agent_type or
    lane; every one shares the {limits} hash tag under v2."""
    if h.keys.schema == "v1":
        return "byai_gateway:fleet:%s:%s:%s" % (kind, name, what)
    return "byai_gateway:v2:fleet:{limits}:%s:%s:%s" % (kind, name, what)


def live_places(c, key):
    """Members of a running set whose expiry (Redis time, ms) is ahead."""
    sec, usec = c.call("TIME")
    now = int(sec) * 1000 + int(usec) // 1000
    return c.call("ZRANGEBYSCORE", key, "(%d" % now, "+inf")


def send_many(c, h, session, n, content, **kw):
    return pc.send_many(c, h.keys, session, "sleep", content, n, **kw)


def ends_ms(c, h, session):
    """message id -> Redis ms of its first event on the session's data
    stream (a sleep task answers only when it ends)."""
    out = {}
    for eid, fields in c.xrange(h.keys.data_stream(session)):
        m = (entry_data(fields) or {}).get("message_id")
        if m and m not in out:
            out[m] = int(eid.split("-")[0])
    return out


def all_done(c, h, session, mids):
    return all((pc.record(c, h.keys, session, m) or {}).get("status")
               == "COMPLETED" for m in mids)


def most_at_once(intervals):
    edges = sorted([(a, 1) for a, _ in intervals] +
                   [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    n = best = 0
    for _, step in edges:
        n += step
        best = max(best, n)
    return best


def sample_while(c, key, until, every=0.02):
    """Largest count of live places seen until until() is true."""
    most = 0
    while not until():
        most = max(most, len(live_places(c, key)))
        time.sleep(every)
    return most


@timeout(60)
def test_fleet_max_running_holds_across_two_workers(h):
    conf = cfg(h, sleep={"fleet_max_running": 3})
    h.start_bygated(conf)
    h.start_bygated(cfg(h, sleep={"fleet_max_running": 3}))
    c = h.client()
    mids = send_many(c, h, "s-cap", 12, "600")
    key = fleet_key(h, "agent_type", "sleep")
    deadline = time.time() + 30
    most = sample_while(c, key, lambda: all_done(c, h, "s-cap", mids)
                        or time.time() > deadline)
    assert all_done(c, h, "s-cap", mids)
    assert most == 3, most
    # each task ran at least its 600 ms before its answer: the intervals
    # seen from the answers never overlap more than the cap
    ends = ends_ms(c, h, "s-cap")
    assert most_at_once([(ends[m] - 600, ends[m]) for m in mids]) <= 3
    assert live_places(c, key) == []  # every place given back


@timeout(60)
def test_a_killed_workers_places_are_free_within_the_lease_ttl(h):
    a = h.start_bygated(cfg(h, sleep={"fleet_max_running": 3}))
    b = h.start_bygated(cfg(h, sleep={"fleet_max_running": 3}))
    c = h.client()
    send_many(c, h, "s-kill", 10, "4000")
    key = fleet_key(h, "agent_type", "sleep")
    wait_until(lambda: len(live_places(c, key)) == 3, 10,
               what="three places taken")
    held = live_places(c, key)

    def owned(d):
        w = d.config["worker"]["id"] + ":"
        return [m for m in live_places(c, key) if m.startswith(w)]
    victim = a if len(owned(a)) >= len(owned(b)) else b
    other = b if victim is a else a
    assert owned(victim), held
    victim.kill_all()
    killed = time.time()
    wait_until(lambda: not owned(victim), FAST["lease_ttl_s"] + 1.0,
               what="the dead worker's places to expire")
    # the survivor takes the freed places: the count is right again
    wait_until(lambda: len(owned(other)) == 3, FAST["lease_ttl_s"] + 2.0,
               what="the survivor to hold every place")
    assert time.time() - killed <= FAST["lease_ttl_s"] + 2.0
    assert len(live_places(c, key)) == 3


@timeout(90)
def test_a_rate_limit_spaces_the_starts_of_the_fleet(h):
    rate = {"rate_limit": 50, "rate_period_ms": 1000}
    h.start_bygated(cfg(h, sleep=rate, pool=4))
    h.start_bygated(cfg(h, sleep=rate, pool=4))
    c = h.client()
    mids = send_many(c, h, "s-rate", 650, "0")
    wait_until(lambda: len(ends_ms(c, h, "s-rate")) >= 600, 40,
               what="600 tasks answered")
    ends = sorted(ends_ms(c, h, "s-rate").values())
    first = ends[0]
    window = [t for t in ends if first + 1000 <= t < first + 11000]
    per_s = len(window) / 10.0
    assert 45.0 <= per_s <= 55.0, per_s
    # never a burst: no second holds more than the limit and its burst
    for t0 in range(first, first + 11000, 250):
        n = sum(1 for t in ends if t0 <= t < t0 + 1000)
        assert n <= 50 + 50 // 20 + 1 + 2, (t0 - first, n)
    assert len(mids) == 650


@timeout(60)
def test_a_lane_cap_holds_and_other_lanes_are_not_held_back(h):
    lanes = {"lanes": {"batch": {"fleet_max_running": 2}}}
    h.start_bygated(cfg(h, sched=lanes))
    h.start_bygated(cfg(h, sched=lanes))
    c = h.client()
    batch = send_many(c, h, "s-lane", 8, "500",
                      metadata={"lane": "batch"})
    free = send_many(c, h, "s-lane", 3, "500")
    key = fleet_key(h, "lane", "batch")
    deadline = time.time() + 30
    most = sample_while(c, key, lambda: all_done(c, h, "s-lane", batch)
                        or time.time() > deadline)
    assert all_done(c, h, "s-lane", batch + free)
    assert most == 2, most
    ends = ends_ms(c, h, "s-lane")
    assert most_at_once([(ends[m] - 500, ends[m]) for m in batch]) <= 2
    # the default lane has no cap: its tasks did not wait for batch's
    assert max(ends[m] for m in free) < max(ends[m] for m in batch)
    assert c.call("EXISTS", fleet_key(h, "agent_type", "sleep")) == 0
