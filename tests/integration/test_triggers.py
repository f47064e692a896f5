"""Timer triggers (issue 14, docs/triggers.md): each fire time becomes one
ASK_AGENT across the whole fleet, pause stops it for the fleet,
max_running skips fires that would overlap, missed fires follow the
configured policy, and a bygated killed right after its fire script ran
neither loses nor doubles the fire.

A timer run's session is named trigger-<name>-<fire time ms>, so the
sessions of a trigger's records say which fire times were sent."""

import http.client
import json
import re
import signal
import subprocess
import time

from harness import proc, timeout, wait_until
from test_client import bygate_json, ok
import pyclient as pc

FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2}


def timer_conf(h, timers, worker_id=None, **extra):
    return h.config(dict({
        "worker": FAST,
        "triggers": {"poll_ms": 50, "timers": timers},
        "agent_types": [h.agent_type("sleep")]}, **extra),
        worker_id=worker_id)


def fire_sessions(c, h, name):
    """The sessions of the trigger's ASK_AGENT entries, in stream order."""
    out = []
    for _id, fields in c.xrange(h.keys.ctrl_agent_type("sleep")):
        cmd = json.loads(fields["data"])
        meta = cmd["header"].get("metadata") or {}
        if meta.get("bygate_trigger") == name:
            out.append(cmd["header"]["session_id"])
    return out


def fire_times(sessions, name):
    prefix = "trigger-%s-" % name
    return [int(s[len(prefix):]) for s in sessions if s.startswith(prefix)]


def state(c, h, name):
    return c.hgetall(h.keys.trigger(name))


def exec_records(c, h, session):
    return [json.loads(v) for k, v in c.hgetall(h.keys.registry(session))
            .items() if k.startswith("exec:")]


def fleet(h, timers, n):
    return [h.start_bygated(config=timer_conf(h, timers)) for _ in range(n)]


@timeout(90)
def test_a_one_second_timer_on_three_bygated_fires_once_per_fire_time(h):
    timers = {"tick": {"agent_type": "sleep", "content": "10",
                       "every": "1s"}}
    ds = fleet(h, timers, 3)
    c = h.client()
    t0 = time.time()
    time.sleep(10)
    for d in ds:
        d.stop()
    sessions = fire_sessions(c, h, "tick")
    times = fire_times(sessions, "tick")
    assert len(times) == len(set(times)), sessions  # never twice
    # the figure: 9-11 tasks for the fire times of those 10 s
    # (the bygated stopped one after the other may add one after it)
    window = [t for t in times if t0 * 1000 < t <= t0 * 1000 + 10000]
    assert 9 <= len(window) <= 11, (window, t0)
    # consecutive seconds, none skipped
    assert times == list(range(times[0], times[0] + 1000 * len(times),
                               1000)), times
    assert times[0] >= int(t0 * 1000) - 1000
    # every fire ran exactly once
    for s in sessions:
        recs = exec_records(c, h, s)
        assert [r["status"] for r in recs] == ["COMPLETED"], (s, recs)
    st = state(c, h, "tick")
    assert int(st["fires"]) == len(times)
    assert json.loads(st["def"])["every_ms"] == 1000
    assert c.call("SISMEMBER", h.keys.triggers(), "tick") == 1
    # which bygated sent each fire is spread: every one polls
    text = "".join(d.log_text() for d in ds)
    assert text.count("trigger tick: fired") == len(times)


@timeout(90)
def test_pause_stops_a_timer_for_the_fleet_and_resume_restarts_it(h):
    timers = {"tick": {"agent_type": "sleep", "content": "10",
                       "every": "500ms"}}
    ds = fleet(h, timers, 2)
    c = h.client()
    wait_until(lambda: len(fire_sessions(c, h, "tick")) >= 2, 10,
               what="first fires")
    ok(h.bygate("triggers", "pause", "tick"))
    time.sleep(0.3)  # a fire claimed before the pause may still land
    before = len(fire_sessions(c, h, "tick"))
    time.sleep(2.5)
    assert len(fire_sessions(c, h, "tick")) == before
    assert int(state(c, h, "tick").get("skipped_paused", 0)) >= 3
    ok(h.bygate("triggers", "resume", "tick"))
    wait_until(lambda: len(fire_sessions(c, h, "tick")) >= before + 2, 10,
               what="fires after resume")
    for d in ds:
        d.stop()


@timeout(90)
def test_max_running_skips_the_fires_that_would_overlap(h):
    timers = {"slow": {"agent_type": "sleep", "content": "3000",
                       "every": "1s", "max_running": 1}}
    d, = fleet(h, timers, 1)
    c = h.client()
    time.sleep(9)
    d.stop()
    sessions = fire_sessions(c, h, "slow")
    st = state(c, h, "slow")
    assert 2 <= len(sessions) <= 4, sessions
    assert int(st["skipped_running"]) >= 4, st
    # the runs never overlapped
    spans = sorted((r["started_at"], r["finished_at"]) for s in sessions
                   for r in exec_records(c, h, s)
                   if r.get("started_at") and r.get("finished_at"))
    for a, b in zip(spans, spans[1:]):
        assert b[0] >= a[1], spans


@timeout(60)
def test_missed_fires_are_skipped_or_run_once_as_configured(h):
    c = h.client()
    # start 2.5-6 s past a 10 s fire time: the latest one is late (more
    # than the 2 s grace), the next not yet due
    wait_until(lambda: 2500 <= time.time() * 1000 % 10000 <= 6000, 11,
               interval=0.01, what="the middle of a period")
    now = int(time.time() * 1000)
    old = now - now % 10000 - 30000  # as if the fleet stopped 30 s ago
    for name in ("skipper", "catcher"):
        c.call("HSET", h.keys.trigger(name), "claimed_ms", str(old))
    timers = {
        "skipper": {"agent_type": "sleep", "content": "10", "every": "10s",
                    "missed": "skip"},
        "catcher": {"agent_type": "sleep", "content": "10", "every": "10s",
                    "missed": "run_once"},
    }
    d, = fleet(h, timers, 1)
    wait_until(lambda: int(state(c, h, "catcher").get("fires", 0)) == 1, 10,
               what="the run_once catch-up fire")
    wait_until(lambda: int(state(c, h, "skipper").get("missed", 0)) >= 2, 10,
               what="the skipped fires counted")
    d.stop()
    caught = fire_times(fire_sessions(c, h, "catcher"), "catcher")
    skipped = fire_times(fire_sessions(c, h, "skipper"), "skipper")
    # run_once: one fire for the latest missed time, the rest counted
    assert len(caught) in (1, 2) and caught[0] > old, caught
    assert int(state(c, h, "catcher")["missed"]) >= 2
    # skip: nothing for the missed times (a new on-time fire may follow)
    assert all(t > now for t in skipped), (skipped, now)


@timeout(90)
def test_a_bygated_killed_after_its_fire_script_loses_and_doubles_nothing(h):
    """The claim and the send are one script: killed right after it ran
    (fault point trigger.after_fire, the answer unread), the fire it sent
    is there once, and the fire times after it are sent by its peer."""
    timers = {"tick": {"agent_type": "sleep", "content": "10",
                       "every": "1s"}}
    victim = h.bygated(config=timer_conf(h, timers))
    victim.env = dict(victim.env, BYGATE_FAULT="trigger.after_fire")
    victim.start()
    victim.wait_exit(15)
    assert victim.returncode != 0
    c = h.client()
    first = fire_times(fire_sessions(c, h, "tick"), "tick")
    if h.cluster_mode:
        # under Cluster the script claims the fire into the trigger's
        # outbox (supervisor/trigger_outbox.h): a peer sends it
        assert first == [], first
        first = [int(c.call("HGET", h.keys.trigger("tick"), "claimed_ms"))]
    else:
        assert len(first) == 1, first  # sent, though its sender died
    peer, = fleet(h, timers, 1)
    again = h.bygated(config=victim.config)
    again.start()
    time.sleep(8 if h.cluster_mode else 4)
    peer.stop()
    again.stop()
    times = fire_times(fire_sessions(c, h, "tick"), "tick")
    if h.cluster_mode:
        times.sort()  # several fires at once reach the stream in any order
    assert len(times) == len(set(times)), times
    assert times[0] == first[0]
    assert len(times) >= 4
    for s in fire_sessions(c, h, "tick"):
        assert len(exec_records(c, h, s)) == 1


def test_bad_trigger_configurations_are_refused_with_the_reason(h):
    cases = [
        ({"t": {"agent_type": "sleep", "content": "x"}},
         "give exactly one of every and cron"),
        ({"t": {"agent_type": "sleep", "content": "x", "every": "soon"}},
         "triggers.timers.t.every"),
        ({"t": {"agent_type": "sleep", "content": "x", "cron": "61 * * * *"}},
         "triggers.timers.t.cron"),
        ({"t": {"agent_type": "sleep", "content": " ", "every": "1s"}},
         "is blank"),
        ({"t": {"agent_type": "sleep", "content": "x", "every": "1s",
                "missed": "later"}}, "missed"),
        ({"t": {"agent_type": "sleep", "content": "x", "every": "1s",
                "colour": "red"}}, "unknown key"),
        ({"t": {"agent_type": "sleep", "content": "x",
                "cron": "0 0 31 2 *"}}, "names no date that comes"),
        ({"t": {"agent_type": "sleep", "content": "x",
                "every": 18446744073709552}}, "every"),
    ]
    for timers, why in cases:
        d = h.bygated(config=timer_conf(h, timers))
        d.start(wait=False)
        d.wait_exit(10)
        assert d.returncode != 0
        assert why in d.log_text(), (why, d.log_text()[-500:])


@timeout(60)
def test_sighup_adds_and_removes_triggers_and_keeps_their_counters(h):
    conf = timer_conf(h, {"a": {"agent_type": "sleep", "content": "10",
                                "every": "300ms"}})
    d = h.start_bygated(config=conf)
    c = h.client()
    wait_until(lambda: len(fire_sessions(c, h, "a")) >= 2, 10,
               what="a fires")
    d.config["triggers"]["timers"] = {
        "b": {"agent_type": "sleep", "content": "10", "every": "300ms"}}
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", timeout=5)
    wait_until(lambda: len(fire_sessions(c, h, "b")) >= 2, 10,
               what="b fires after the reload")
    time.sleep(0.5)
    a_before = len(fire_sessions(c, h, "a"))
    time.sleep(1.5)
    assert len(fire_sessions(c, h, "a")) == a_before  # a is gone
    assert json.loads(state(c, h, "b")["def"])["name"] == "b"
    d.stop()


@timeout(60)
def test_a_manual_fire_request_is_fired_once_by_the_fleet(h):
    timers = {"daily": {"agent_type": "sleep", "content": "10",
                        "cron": "0 3 * * *"}}
    ds = fleet(h, timers, 2)
    c = h.client()
    key = h.keys.trigger("daily")
    wait_until(lambda: c.call("HGET", key, "next_ms"), 10,
               what="next fire time published")
    nxt = int(c.call("HGET", key, "next_ms"))
    assert nxt > time.time() * 1000 and nxt % 86400000 == 3 * 3600000
    for n in (1, 2):
        assert c.call("HINCRBY", key, "fire_requests", 1) == n
        wait_until(lambda: c.call("HGET", key, "manual:%d" % n), 10,
                   what="manual fire %d answered" % n)
    answers = [c.call("HGET", key, "manual:%d" % n) for n in (1, 2)]
    assert all(a.startswith("fired msg-") for a in answers), answers
    sessions = fire_sessions(c, h, "daily")
    assert sessions == ["trigger-daily-manual-1", "trigger-daily-manual-2"]
    assert c.call("HGET", key, "fire_done") == "2"
    for d in ds:
        d.stop()


def test_the_metrics_count_each_triggers_fires_by_outcome(h):
    port = proc.free_port()
    conf = timer_conf(h, {"m": {"agent_type": "sleep", "content": "10",
                                "every": "200ms"}},
                      http={"port": port})
    d = h.start_bygated(config=conf)
    c = h.client()
    wait_until(lambda: int(state(c, h, "m").get("fires", 0)) >= 2, 10,
               what="fires")

    def fired():
        hc = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        hc.request("GET", "/metrics")
        text = hc.getresponse().read().decode()
        hc.close()
        m = re.search(r'bygate_trigger_fires_total\{trigger="m",'
                      r'outcome="fired"\} (\d+)', text)
        return m and int(m.group(1)) >= 2 and \
            'bygate_trigger_next_fire_seconds{trigger="m"}' in text
    wait_until(fired, 10, what="trigger metrics")
    d.stop()


def test_a_webhook_secret_is_masked_in_the_configuration_dump(h):
    conf = h.config({"triggers": {"webhooks": {"gh": {
        "agent_type": "sleep", "secret": "s3cr3t-of-sixteen-bytes"}}}})
    d = h.bygated(config=conf)
    d.write_config()
    out = subprocess.run([str(h.bin("bygated")), "-T", "-c",
                          str(d.config_path)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "s3cr3t" not in out.stdout
    assert 'secret = "***"' in out.stdout and "gh" in out.stdout


@timeout(60)
def test_the_cli_lists_and_fires_the_triggers_of_running_bygated(h):
    timers = {"daily": {"agent_type": "sleep", "content": "10",
                        "cron": "0 3 * * *", "max_running": 2},
              "often": {"agent_type": "sleep", "content": "10",
                        "every": "300ms"}}
    conf = timer_conf(h, timers)
    conf["triggers"]["webhooks"] = {"gh": {
        "agent_type": "sleep", "secret": "0123456789abcdef0123"}}
    d = h.start_bygated(config=conf)
    c = h.client()
    wait_until(lambda: len(fire_sessions(c, h, "often")) >= 2, 10,
               what="often fires")
    doc = {t["name"]: t for t in bygate_json(h, "triggers")}
    assert set(doc) == {"daily", "often", "gh"}
    assert doc["daily"]["schedule"] == "cron 0 3 * * *" or \
        "0 3 * * *" in doc["daily"]["schedule"]
    assert doc["daily"]["next_ms"] % 86400000 == 3 * 3600000
    assert doc["often"]["counts"]["fires"] >= 2
    assert doc["often"]["last_outcome"] == "fired"
    assert doc["gh"]["kind"] == "webhook" and doc["gh"]["path"] == "/hooks/gh"
    assert "secret" not in json.dumps(doc["gh"])
    table = ok(h.bygate("triggers")).stdout
    assert "daily" in table and "often" in table and "gh" in table
    fired = bygate_json(h, "triggers", "fire", "daily")
    assert fired["outcome"] == "fired", fired
    mid = fired["message_id"]
    wait_until(lambda: (pc.record(c, h.keys, "trigger-daily-manual-1", mid)
                        or {}).get("status") == "COMPLETED", 10,
               what="the manual fire ran")
    # a webhook fired by hand gets a content of its own
    hook = bygate_json(h, "triggers", "fire", "gh")
    assert hook["outcome"] == "fired", hook
    unknown = h.bygate("triggers", "fire", "nope")
    assert unknown.returncode != 0 and "nope" in unknown.stderr
    d.stop()


@timeout(60)
def test_a_corrupt_state_stops_the_trigger_with_one_warning_not_a_flood(h):
    c = h.client()
    key = h.keys.trigger("hr")
    c.call("HSET", key, "fire_done", "-1")
    c.call("HSET", h.keys.trigger("bad"), "claimed_ms", "abc")
    timers = {"hr": {"agent_type": "sleep", "content": "10", "every": "1h"},
              "bad": {"agent_type": "sleep", "content": "10",
                      "every": "200ms"}}
    d, = fleet(h, timers, 1)
    time.sleep(2)
    assert fire_sessions(c, h, "hr") == [] and \
        fire_sessions(c, h, "bad") == []
    log = d.log_text()
    assert log.count("trigger hr: ") == 1, log
    assert log.count("trigger bad: ") == 1, log
    assert "is not a count" in log
    # repaired by hand, it fires again
    c.call("HDEL", h.keys.trigger("bad"), "claimed_ms")
    wait_until(lambda: fire_sessions(c, h, "bad"), 10, what="bad repaired")
    d.stop()


@timeout(60)
def test_a_period_shorter_than_the_poll_fires_every_fire_time(h):
    timers = {"quick": {"agent_type": "sleep", "content": "1",
                        "every": "100ms"}}
    conf = timer_conf(h, timers)
    conf["triggers"]["poll_ms"] = 250
    d = h.start_bygated(config=conf)
    c = h.client()
    time.sleep(3)
    d.stop()
    times = fire_times(fire_sessions(c, h, "quick"), "quick")
    if h.cluster_mode:
        times.sort()  # several fires at once reach the stream in any order
    assert len(times) >= 25, times
    assert times == list(range(times[0], times[-1] + 100, 100)), times
    assert int(state(c, h, "quick").get("missed", 0)) == 0


@timeout(60)
def test_a_long_outage_of_a_minute_cron_catches_up_once_not_in_a_burst(h):
    c = h.client()
    now = int(time.time() * 1000)
    c.call("HSET", h.keys.trigger("minutely"), "claimed_ms",
           str(now - now % 60000 - 200 * 86400000))
    timers = {"minutely": {"agent_type": "sleep", "content": "10",
                           "cron": "* * * * *", "missed": "run_once"}}
    d, = fleet(h, timers, 1)
    wait_until(lambda: int(state(c, h, "minutely").get("fires", 0)) >= 1,
               10, what="the catch-up fire")
    time.sleep(1)
    d.stop()
    times = fire_times(fire_sessions(c, h, "minutely"), "minutely")
    assert 1 <= len(times) <= 2, times  # the latest, maybe a new minute
    assert times[0] > now - 120000, times
    assert int(state(c, h, "minutely")["missed"]) >= 99999  # counted to 10^5
