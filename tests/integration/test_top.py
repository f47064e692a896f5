"""`bygate top`: the live view of the fleet (Redis, and each bygated's
GET /status), --once for scripts, under tmux as a terminal shows it, and
--replay of an event log. docs/client.md "bygate top"."""

import json
import os
import re
import shutil
import subprocess
import time

from harness import wait_until, timeout
from bglib import proc
import pyclient as pc
from test_client import ok

AGENT = "fast"
N = 2000


def fast_agent(h):
    """A no-op handler slowed to 5 ms a task, so a 2,000-task run lasts a
    few seconds on a 2-child pool: long enough to be looked at."""
    return h.agent_type(AGENT, plugin="sleep", options={"default_ms": 5})


def start(h, events):
    port = proc.free_port()
    d = h.start_bygated({"http": {"port": port}, "pool": {"size": 2},
                         "log": {"events_file": str(events),
                                 "level": "info"},
                         "agent_types": [fast_agent(h)]})
    d.http_port = port
    return d


def ended_count(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for l in f if '"event":"ended"' in l)


def agent_row(text):
    """The AGENT TYPES row of AGENT, as a dict of its columns."""
    lines = text.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("AGENT TYPES"))
    head = lines[i + 1].split()
    for l in lines[i + 2:]:
        cols = l.split()
        if cols and cols[0] == AGENT:
            return dict(zip(head, cols))
    raise AssertionError("no %s row in:\n%s" % (AGENT, text))


def children_rows(text):
    lines = text.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("CHILDREN"))
    rows = []
    for l in lines[i + 2:]:
        if not l.strip() or not l.startswith("  "):
            break
        rows.append(l.split())
    return rows


def assert_shows_a_run(text):
    """Backlog, running children and a rate, as a user reads them."""
    row = agent_row(text)
    assert int(row["backlog"]) > 0, text
    assert float(row["rate/s"]) > 0, text
    assert int(row["running"]) >= 1, text
    kids = [r for r in children_rows(text) if AGENT in r]
    assert kids and all(int(r[2]) > 0 for r in kids), text  # pids


def tmux_capture_of_top(h, d, until):
    """Run `bygate top` in a detached tmux of 200x60 and return the first
    capture of its pane for which until(text) holds."""
    tmux = shutil.which("tmux")
    assert tmux, "tmux is not installed (make deps installs it)"
    sock = str(h.tmp / "tmux.sock")
    env = h.env()
    cmd = " ".join(["env"] + ["%s=%s" % kv for kv in env.items()
                              if kv[0].startswith("REDIS")] +
                   [str(h.bin("bygate")), "-c", d.config_path, "top",
                    "--interval", "300"])
    subprocess.run([tmux, "-S", sock, "new-session", "-d", "-x", "200",
                    "-y", "60", cmd], check=True, env=env)
    try:
        seen = {}

        def shown():
            out = subprocess.run([tmux, "-S", sock, "capture-pane", "-p"],
                                 capture_output=True, text=True)
            seen["text"] = out.stdout
            try:
                return until(out.stdout)
            except (AssertionError, StopIteration, ValueError, KeyError):
                return False
        wait_until(shown, 20, interval=0.2,
                   what="tmux's pane to show the run")
        subprocess.run([tmux, "-S", sock, "send-keys", "q"])
        return seen["text"]
    finally:
        subprocess.run([tmux, "-S", sock, "kill-server"],
                       capture_output=True)


def shows_a_run(text):
    assert_shows_a_run(text)
    return True


@timeout(90)
def test_top_and_events_replay_show_a_2000_task_run(h):
    """The acceptance line: `bygate top --once` and a tmux capture of
    `bygate top` during a 2,000-task run show the backlog, the running
    children and the rates; `bygate events --replay` of that run's log
    reproduces its sequence."""
    events = h.tmp / "events.jsonl"
    d = start(h, events)
    c = h.client()
    mids = pc.send_many(c, h.keys, "s-top", AGENT, "x", N)
    wait_until(lambda: ended_count(events) > 0, 20,
               what="the run to start")

    once = ok(h.bygate("-c", d.config_path, "top", "--once", "--interval",
                       "300")).stdout
    assert "\033[" not in once
    assert_shows_a_run(once)

    screen = tmux_capture_of_top(h, d, shows_a_run)
    assert "keys: q quit" in screen

    wait_until(lambda: ended_count(events) >= N, 60, interval=0.2,
               what="the %d tasks to end" % N)
    with open(events) as f:
        logged = [l.rstrip("\n") for l in f if l.strip()]
    out = ok(h.bygate("events", "--replay", events, "--speed", "0",
                      "--jsonl")).stdout.splitlines()
    assert out == logged
    seq = {}
    for e in map(json.loads, out):
        seq.setdefault(e["message_id"], []).append(e["event"])
    assert set(seq) == set(mids)
    assert all(s == ["queued", "started", "ended"] for s in seq.values())


@timeout(60)
def test_top_once_json_gives_the_frame_as_a_document(h):
    events = h.tmp / "events.jsonl"
    d = start(h, events)
    c = h.client()
    pc.send_many(c, h.keys, "s-j", AGENT, "x", 3)
    wait_until(lambda: ended_count(events) >= 3, 20, what="3 tasks")
    doc = json.loads(ok(h.bygate("-c", d.config_path, "top", "--once",
                                 "--json", "--interval", "100")).stdout)
    w = next(w for w in doc["workers"] if w["worker_id"] == h.worker_id)
    assert w["online"] is True and w["lifecycle"] == "active"
    assert w["pool"]["size"] == 2 and w["generation"] >= 0
    t = next(t for t in doc["agent_types"] if t["agent_type"] == AGENT)
    assert t["done"] == 3 and t["backlog"] == 0 and t["running"] == 0
    assert t["length"] == 3 and t["run_ms_p50"] is not None


@timeout(60)
def test_top_replay_once_shows_the_end_of_a_logged_run(h):
    events = h.tmp / "events.jsonl"
    start(h, events)
    c = h.client()
    pc.send_many(c, h.keys, "s-r", AGENT, "x", 20)
    wait_until(lambda: ended_count(events) >= 20, 20, what="20 tasks")
    doc = json.loads(ok(h.bygate("top", "--replay", events, "--once",
                                 "--json")).stdout)
    t = next(t for t in doc["agent_types"] if t["agent_type"] == AGENT)
    assert t["done"] == 20 and t["backlog"] == 0 and t["running"] == 0
    assert doc["children"] == [] and doc["workers"][0]["worker_id"]
    text = ok(h.bygate("top", "--replay", events, "--once")).stdout
    assert agent_row(text)["done"] == "20"


@timeout(30)
def test_top_replay_of_a_run_cut_short_shows_its_backlog_and_children(h):
    """A log that ends mid-run: what was queued and not started is the
    backlog, what started and did not end runs, with its pid."""
    path = h.tmp / "cut.jsonl"
    ev = lambda name, mid, ts, **kw: json.dumps(dict(
        {"event": name, "ts_ms": ts, "agent_type": "a", "message_id": mid,
         "execution_id": "e-" + mid, "worker_id": "w1"}, **kw))
    path.write_text("\n".join([
        ev("queued", "m1", 1000), ev("queued", "m2", 1001),
        ev("queued", "m3", 1002), ev("started", "m1", 1003, pid=42, slot=0),
        ev("ended", "m1", 1010, status="FAILED", run_ms=7, error="boom"),
        ev("started", "m2", 1011, pid=43, slot=1)]) + "\n")
    doc = json.loads(ok(h.bygate("top", "--replay", path, "--once",
                                 "--json")).stdout)
    t = doc["agent_types"][0]
    assert (t["backlog"], t["running"], t["done"], t["failed"]) == (1, 1, 1, 1)
    assert [(k["message_id"], k["pid"]) for k in doc["children"]] == [
        ("m2", 43)]
    assert doc["failures"][0]["error"] == "boom"


@timeout(30)
def test_top_rejects_a_bad_sort_key(h):
    out = h.bygate("top", "--once", "--sort", "nosuch")
    assert out.returncode == 2 and "--sort" in out.stderr


@timeout(60)
def test_top_keys_cycle_the_sort_and_set_a_filter(h):
    """Under tmux: 's' moves to the next sort key, '/' then text and Enter
    filters the agent types, 'q' quits."""
    events = h.tmp / "events.jsonl"
    d = start(h, events)
    tmux = shutil.which("tmux")
    sock = str(h.tmp / "tmux.sock")
    env = h.env()
    cmd = " ".join(["env"] + ["%s=%s" % kv for kv in env.items()
                              if kv[0].startswith("REDIS")] +
                   [str(h.bin("bygate")), "-c", d.config_path, "top",
                    "--interval", "200"])
    subprocess.run([tmux, "-S", sock, "new-session", "-d", "-x", "200",
                    "-y", "60", cmd], check=True, env=env)

    def pane():
        return subprocess.run([tmux, "-S", sock, "capture-pane", "-p"],
                              capture_output=True, text=True).stdout

    def keys(*k):
        subprocess.run([tmux, "-S", sock, "send-keys", *k], check=True)
    try:
        wait_until(lambda: any(l.startswith("  %s " % AGENT)
                               for l in pane().splitlines()), 10,
                   what="the first frame with the agent type's row")
        keys("s")
        wait_until(lambda: "sort: rate" in pane(), 10, what="sort: rate")
        keys("/", "nomatch", "Enter")
        wait_until(lambda: "filter: nomatch" in pane(), 10,
                   what="the filter")
        assert not any(l.startswith("  %s " % AGENT)
                       for l in pane().splitlines())
        keys("q")
        wait_until(lambda: subprocess.run(
            [tmux, "-S", sock, "has-session"],
            capture_output=True).returncode != 0, 10,
            what="top to quit on q")
    finally:
        subprocess.run([tmux, "-S", sock, "kill-server"],
                       capture_output=True)


@timeout(30)
def test_top_shows_the_lanes_of_the_fleets_ready_set(h):
    from test_client_lanes import ready_key, redis_ms, member
    c = h.client()
    now = redis_ms(c)
    c.call("ZADD", ready_key(h, "planner", "lane:batch"), now - 3000,
           member(now - 3000, 1), now - 100, member(now - 100, 2))
    c.call("SADD", ready_key(h, "planner", "lanes"), "batch")
    env = h.env(REDIS_KEY_SCHEMA_VERSION=h.keys.schema)
    text = ok(h.bygate("top", "--once", "--interval", "50", env=env)).stdout
    lines = text.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("LANES"))
    row = lines[i + 2].split()
    assert row[:3] == ["planner", "batch", "2"], text
    assert row[3].endswith("s"), text  # about 3 s old


@timeout(60)
def test_top_without_an_http_endpoint_shows_children_from_redis(h):
    h.start_bygated({"pool": {"size": 2}, "agent_types": [
        h.agent_type("sleep", options={"default_ms": 2000})]})
    c = h.client()
    mids = pc.send_many(c, h.keys, "s-nohttp", "sleep", "x", 2)
    wait_until(lambda: all((pc.record(c, h.keys, "s-nohttp", m) or {}).get(
        "status") == "RUNNING" for m in mids), 20, what="both running")
    text = ok(h.bygate("top", "--once", "--interval", "50")).stdout
    kids = children_rows(text)
    assert {r[5] for r in kids} == set(mids), text
    assert all(r[1] == "-" and r[2] == "-" for r in kids), text  # no pid
    lines = [l.split() for l in text.splitlines()]
    sleep_row = next(l for l in lines if l and l[0] == "sleep")
    assert sleep_row[6] == "2", text  # running
