"""The fleet metrics history (WIRE 9.3, supervisor/history.h): one process
of the fleet holds by_framework:obs:collector_lock (SET NX EX 15, kept by
its holder) and adds a point to the ZSET by_framework:obs:history every
metrics.history_interval_s, scored by its generated_at, trimming points
older than 2 h; a bygated releases the lock when it stops, and leaves it
to a Python worker that holds it."""

import json
import time

from harness import wait_until
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300}
POINT_KEYS = {
    "generated_at", "workers_online", "active_executions",
    "queued_executions", "completed_executions", "failed_executions",
    "cancelled_executions", "terminal_executions", "queue_depth_total",
    "consumer_pending_total", "max_delivery_count", "alert_count",
    "latency_p95_ms", "queue_latency_p95_ms", "total_latency_p95_ms",
    "success_ratio_ppm", "deadletter_count", "freshness_age_ms"}


def start(h, **metrics):
    return h.start_bygated({
        "worker": dict(FAST),
        "metrics": dict({"history_interval_s": 1}, **metrics),
        "agent_types": [h.agent_type("echo"), h.agent_type("fail")]})


def points(c, keys):
    raw = c.call("ZRANGE", keys.obs_history(), 0, -1, "WITHSCORES")
    return [(json.loads(raw[i]), int(float(raw[i + 1])))
            for i in range(0, len(raw), 2)]


def wait_points(c, keys, n, t=15):
    return wait_until(lambda: (lambda p: p if len(p) >= n else None)(
        points(c, keys)), t, what="%d history points" % n)


def test_one_bygated_of_two_is_the_collector(h):
    a, b = start(h), start(h)
    c = h.client()
    wait_points(c, h.keys, 3)
    holder = c.call("GET", h.keys.obs_collector_lock())
    assert holder in (a.config["worker"]["id"], b.config["worker"]["id"])
    assert 0 < c.call("TTL", h.keys.obs_collector_lock()) <= 15
    # one point per interval, not two: generated_at of successive points
    # are about an interval apart
    p = [g for _, g in points(c, h.keys)]
    assert all(b2 - b1 >= 500 for b1, b2 in zip(p, p[1:])), p


def test_a_point_has_the_reference_keys_and_counts_outcomes(h):
    start(h)
    c = h.client()
    ok_mid, _ = pc.send(c, h.keys, "s-h", "echo", "x")
    bad_mid, _ = pc.send(c, h.keys, "s-h", "fail", "x")
    for m in (ok_mid, bad_mid):
        wait_until(lambda: pc.record(c, h.keys, "s-h", m)["status"] in (
            "COMPLETED", "FAILED"), 15, what="finished")
    since = int(time.time() * 1000)
    point, score = wait_until(lambda: next(
        (x for x in points(c, h.keys) if x[1] > since + 100), None), 15,
        what="a point after the tasks")
    assert set(point) == POINT_KEYS
    assert point["generated_at"] == score
    assert point["workers_online"] == 1
    assert (point["completed_executions"], point["failed_executions"],
            point["terminal_executions"]) == (1, 1, 2)
    assert point["success_ratio_ppm"] == 500000
    assert point["queue_depth_total"] == 0
    assert point["consumer_pending_total"] == 0


def test_the_lock_passes_to_the_other_bygated_when_its_holder_stops(h):
    a, b = start(h), start(h)
    c = h.client()
    wait_points(c, h.keys, 2)
    ids = {a.config["worker"]["id"]: a, b.config["worker"]["id"]: b}
    holder = c.call("GET", h.keys.obs_collector_lock())
    ids[holder].stop()
    other = [w for w in ids if w != holder][0]
    # released at the stop (DEL by its holder), then taken at once by the
    # other, well before the lock's 15 s would have run out
    wait_until(lambda: c.call("GET", h.keys.obs_collector_lock()) == other,
               5, what="the lock taken by " + other)
    n = len(points(c, h.keys))
    wait_points(c, h.keys, n + 2)


def test_a_lock_held_by_a_python_worker_is_left_alone(h):
    c = h.client()
    c.call("SET", "by_framework:obs:collector_lock", "py-worker-1", "EX", 15)
    d = start(h)
    # the bygated's first interval has passed when its lease was renewed
    # a few times; no point, the lock untouched
    time.sleep(2.5)
    assert points(c, h.keys) == []
    assert c.call("GET", h.keys.obs_collector_lock()) == "py-worker-1"
    c.call("DEL", h.keys.obs_collector_lock())  # the Python worker stops
    wait_points(c, h.keys, 1)
    assert c.call("GET", h.keys.obs_collector_lock()) == \
        d.config["worker"]["id"]


def test_points_older_than_two_hours_are_trimmed(h):
    c = h.client()
    old = int(time.time() * 1000) - 3 * 3600 * 1000
    c.call("ZADD", h.keys.obs_history(), old, json.dumps({"generated_at":
                                                          old}))
    start(h)
    wait_points(c, h.keys, 1)
    wait_until(lambda: all(s > old for _, s in points(c, h.keys)), 10,
               what="the old point trimmed")


def test_history_off_takes_no_lock(h):
    start(h, history=False)
    c = h.client()
    time.sleep(2.5)
    assert c.call("EXISTS", h.keys.obs_collector_lock()) == 0
    assert points(c, h.keys) == []
