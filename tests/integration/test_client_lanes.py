"""`bygate status --lanes` (issue 12 item 7, docs/scheduling.md "Seeing
the lanes"): per agent type and lane, the entries waiting in the fleet's
ready set, the age of the oldest, the lane's stride pass and the fleet
places running, read from Redis without writing to it.

The numbers are checked against the ready set itself: with a live bygated
holding a backlog in two lanes (stopped with SIGSTOP while it is read, so
the set stands still), and with a ready set written by hand where the
oldest entry is not the one with the lowest score."""

import re
import signal
import time

from harness import timeout, wait_until
import pyclient as pc
from test_client import bygate_json, fake_worker, ok

FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2}

# What the command may send: reads, and the connection's own setup.
READ_ONLY = {"time", "scan", "smembers", "hgetall", "zcard", "zscan",
             "zcount", "select", "auth", "info", "config|resetstat"}


def ready_key(h, agent_type, part):
    """wire/keys.h BG_KEY_READY (under v2 in the slot of the stream)."""
    if h.keys.schema == "v1":
        return "byai_gateway:ctrl:agent_type:%s:bygate_ready:%s" % (
            agent_type, part)
    return ("byai_gateway:v2:{byai_gateway:v2:ctrl:agent_type:%s}:"
            "bygate_ready:%s" % (agent_type, part))


def fleet_key(h, kind, name):
    """wire/keys.h BG_KEY_FLEET_*_RUNNING; kind agent_type or lane."""
    if h.keys.schema == "v1":
        return "byai_gateway:fleet:%s:%s:running" % (kind, name)
    return "byai_gateway:v2:fleet:{limits}:%s:%s:running" % (kind, name)


def redis_ms(c):
    sec, usec = c.call("TIME")
    return int(sec) * 1000 + int(usec) // 1000


def member(ms, seq):
    """A lane member as supervisor/ready.c files it."""
    return "%d-%020d" % (ms, seq)


def lanes(h, *args, code=0):
    env = h.env(REDIS_KEY_SCHEMA_VERSION=h.keys.schema)
    return bygate_json(h, "status", "--lanes", *args, env=env, code=code)


def lanes_text(h, *args):
    env = h.env(REDIS_KEY_SCHEMA_VERSION=h.keys.schema)
    return ok(h.bygate("status", "--lanes", *args, env=env)).stdout


def table(text):
    """(agent type, lane) -> (waiting, oldest, pass, running) of the text
    table; a lane with spaces does not occur here."""
    rows = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"(\S+)\s+(\(all lanes\)|\S+)\s+(\d+)\s+"
                     r"(-|[\d.]+ s)\s+(\S+)\s+(\S+)$", line)
        if m:
            rows[(m[1], m[2])] = (int(m[3]), m[4], m[5], m[6])
    return rows


def by_name(doc, agent_type):
    [t] = [t for t in doc["agent_types"] if t["agent_type"] == agent_type]
    return t, {l["lane"]: l for l in t["lanes"]}


def start(h):
    """Pool 1 behind a window of 64: what cannot start is parked. The
    agent type and lane a take fleet places (fleet_max_running)."""
    return h.start_bygated({
        "worker": FAST, "pool": {"size": 1},
        "redis": {"key_schema": h.keys.schema},
        "sched": {"window": 64,
                  "lanes": {"a": {"fleet_max_running": 10}}},
        "agent_types": [h.agent_type("sleep", fleet_max_running=10)]})


def send_many(c, keys, session, n, ms, **meta):
    return pc.send_many(c, keys, session, "sleep", str(ms), n,
                        metadata=dict(meta))


def all_done(c, keys, session, mids):
    return all((pc.record(c, keys, session, m) or {}).get("status")
               == "COMPLETED" for m in mids)


@timeout(120)
def test_lanes_show_the_ready_set_of_a_backlog_and_nothing_once_it_ran(h):
    c = h.client(timeout=30)
    mids = send_many(c, h.keys, "s-lanes", 15, 100, lane="a")
    mids += send_many(c, h.keys, "s-lanes", 15, 100, lane="b")
    d = start(h)
    wait_until(lambda: c.call("ZCARD", ready_key(h, "sleep", "lane:b")),
               10, what="lane b's entries parked")
    d.signal(signal.SIGSTOP)  # the ready set and the places stand still
    try:
        doc = lanes(h)
        text = lanes_text(h)
        direct = {l: c.call("ZCARD", ready_key(h, "sleep", "lane:" + l))
                  for l in ("a", "b")}
        members = [m for l in ("a", "b") for m in
                   c.call("ZRANGE", ready_key(h, "sleep", "lane:" + l), 0,
                          -1)]
        passes = c.call("HGETALL", ready_key(h, "sleep", "pass"))
        running = {"sleep": c.call("ZCOUNT", fleet_key(h, "agent_type",
                                                       "sleep"),
                                   "(%d" % redis_ms(c), "+inf"),
                   "a": c.call("ZCOUNT", fleet_key(h, "lane", "a"),
                               "(%d" % redis_ms(c), "+inf")}
    finally:
        d.signal(signal.SIGCONT)
    t, by_lane = by_name(doc, "sleep")
    assert {l: by_lane[l]["waiting"] for l in ("a", "b")} == direct
    assert t["waiting"] == sum(l["waiting"] for l in t["lanes"]) \
        == len(members) > 0
    assert 0 < t["waiting"] <= 30
    # the oldest waiting entry is the smallest id, its age in Redis time
    oldest = min(members, key=lambda m: tuple(map(int, m.split("-"))))
    ms, seq = map(int, oldest.split("-"))
    assert t["oldest_entry_id"] == "%d-%d" % (ms, seq)
    assert t["oldest_age_ms"] == doc["now_ms"] - ms
    assert abs(doc["now_ms"] - redis_ms(c)) < 5000
    # the passes are the stride numbers of the picks so far (none yet:
    # null)
    passes = dict(zip(passes[::2], passes[1::2]))
    for l in ("a", "b"):
        p = passes.get("p:" + l)
        assert by_lane[l]["pass"] == (float(p) if p else None), (l, p)
    assert t["fleet_running"] == running["sleep"] <= 1
    assert by_lane["a"]["fleet_running"] == running["a"] <= 1
    # the table shows the same numbers
    rows = table(text)
    assert rows[("sleep", "a")][0] == direct["a"]
    assert rows[("sleep", "b")][0] == direct["b"]
    assert rows[("sleep", "(all lanes)")][0] == t["waiting"]
    assert rows[("sleep", "(all lanes)")][3] == str(running["sleep"])

    wait_until(lambda: all_done(c, h.keys, "s-lanes", mids), 60,
               what="every task")
    t, by_lane = by_name(lanes(h, "--agent-type", "sleep"), "sleep")
    assert t["waiting"] == 0 and t["oldest_entry_id"] is None
    assert sorted(by_lane) == ["a", "b"]  # the lanes keep their passes
    for l in by_lane.values():
        assert l["waiting"] == 0 and l["oldest_age_ms"] is None, l
        assert l["pass"] > 0 and l["fleet_running"] == 0, l
    assert t["fleet_running"] == 0
    assert c.call("EXISTS", ready_key(h, "sleep", "lanes")) == 0


@timeout(60)
def test_the_oldest_entry_is_the_smallest_id_not_the_lowest_score(h):
    c = h.client()
    now = redis_ms(c)
    lane_a = ready_key(h, "planner", "lane:a")
    # a priority-5 entry sent later scores lower than the one sent first
    c.call("ZADD", lane_a, now - 9000, member(now - 9000, 7),
           now - 2000 - 5 * 1000, member(now - 2000, 0))
    c.call("ZADD", ready_key(h, "planner", "lane:"), now - 500,
           member(now - 500, 3))
    c.call("SADD", ready_key(h, "planner", "lanes"), "a", "")
    c.call("HSET", ready_key(h, "planner", "pass"), "p:a", "2.5", "p:",
           "3", "p:idle", "1", "vtime", "2.5")
    # two live places and an expired one (not yet dropped)
    c.call("ZADD", fleet_key(h, "agent_type", "planner"), now + 60000,
           "w1:n:1", now + 60000, "w1:n:2", now - 1, "w0:n:9")
    c.call("ZADD", fleet_key(h, "lane", "a"), now + 60000, "w1:n:1")

    c.call("CONFIG", "RESETSTAT")
    doc = lanes(h, "--agent-type", "planner")
    stats = c.call("INFO", "commandstats")
    sent = set(re.findall(r"cmdstat_([a-z|]+):", stats))
    assert sent <= READ_ONLY, sent - READ_ONLY

    t, by_lane = by_name(doc, "planner")
    assert [l["lane"] for l in t["lanes"]] == ["", "a", "idle"]
    a = by_lane["a"]
    assert a["waiting"] == 2
    assert a["oldest_entry_id"] == "%d-7" % (now - 9000)
    assert 9000 <= a["oldest_age_ms"] < 9000 + 5000
    assert (a["pass"], a["fleet_running"]) == (2.5, 1)
    default = by_lane[""]
    assert (default["waiting"], default["pass"]) == (1, 3.0)
    assert default["fleet_running"] is None  # the default lane has no set
    idle = by_lane["idle"]
    assert (idle["waiting"], idle["oldest_entry_id"], idle["pass"]) == \
        (0, None, 1.0)
    assert t["waiting"] == 3 and t["oldest_entry_id"] == a["oldest_entry_id"]
    assert (t["vtime"], t["fleet_running"]) == (2.5, 2)

    rows = table(lanes_text(h, "--agent-type", "planner"))
    assert rows[("planner", "(default)")][0] == 1
    assert rows[("planner", "a")][0:1] + rows[("planner", "a")][2:] == \
        (2, "2.5", "1")
    assert rows[("planner", "(all lanes)")][0] == 3


@timeout(60)
def test_every_agent_type_is_found_declared_or_with_entries_waiting(h):
    c = h.client()
    fake_worker(h, "declared", client=c)
    now = redis_ms(c)  # no worker declares "orphan" any more
    c.call("ZADD", ready_key(h, "orphan", "lane:x"), now, member(now, 0))
    c.call("SADD", ready_key(h, "orphan", "lanes"), "x")
    doc = lanes(h)
    assert [t["agent_type"] for t in doc["agent_types"]] == \
        ["declared", "orphan"]
    declared, _ = by_name(doc, "declared")
    assert (declared["waiting"], declared["lanes"]) == (0, [])
    orphan, by_lane = by_name(doc, "orphan")
    assert orphan["waiting"] == by_lane["x"]["waiting"] == 1


@timeout(60)
def test_lanes_is_a_mode_of_status_without_a_session(h):
    env = h.env(REDIS_KEY_SCHEMA_VERSION=h.keys.schema)
    assert h.bygate("status", "--lanes", "--session", "s",
                    env=env).returncode == 2
    assert h.bygate("status", "--agent-type", "t", "--session", "s",
                    env=env).returncode == 2
    assert h.bygate("status", env=env).returncode == 2
    out = ok(h.bygate("status", "--lanes", env=env))
    assert out.stdout.split()[:2] == ["AGENT", "TYPE"]
    assert "no agent type known" in out.stdout
