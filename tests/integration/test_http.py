"""bygated's HTTP endpoint (issue 4): /livez, /readyz with the WIRE 5.7 body
and the DESIGN 8 reasons, /metrics as strict Prometheus text 0.0.4."""

import http.client
import json
import math
import os
import re
import signal
import time

from harness import wait_until
from bglib import proc
import pyclient as pc

WIRE_5_7_KEYS = {"ready", "reason", "worker_id", "admin_lifecycle",
                 "consumer_healthy", "uptime_ms"}
FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000}


def start(h, redis=None, agent_types=None, **worker):
    port = proc.free_port()
    d = h.start_bygated({"http": {"port": port},
                         "worker": dict(FAST, **worker),
                         "agent_types": agent_types or [
                             h.agent_type("echo"), h.agent_type("sleep")]},
                        redis=redis)
    d.http_port = port
    return d


def request(d, path, method="GET"):
    """(status, headers dict with lower-case names, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        return (r.status, {k.lower(): v for k, v in r.getheaders()},
                r.read().decode())
    finally:
        c.close()


def readyz(d):
    status, headers, body = request(d, "/readyz")
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


def wait_reason(d, reason, t=10):
    return wait_until(lambda: (lambda s, b: (s, b) if b["reason"] == reason
                               else None)(*readyz(d)), t,
                      what="/readyz reason %s" % reason)


# ---- a strict parser of the Prometheus text format 0.0.4 ----------------

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_labels(s, i):
    """Parse `{a="x",b="y"}` from s[i] == '{'; returns (dict, next index)."""
    labels, i = {}, i + 1
    while s[i] != "}":
        m = LABEL.match(s, i)
        assert m, "bad label name at %r" % s[i:]
        name, i = m.group(0), m.end()
        assert s[i:i + 2] == '="', "expected =\" at %r" % s[i:]
        i += 2
        val = []
        while s[i] != '"':
            if s[i] == "\\":
                esc = s[i + 1]
                assert esc in '\\"n', "bad escape \\%s" % esc
                val.append("\n" if esc == "n" else esc)
                i += 2
            else:
                assert s[i] != "\n"
                val.append(s[i])
                i += 1
        assert name not in labels, "duplicate label " + name
        labels[name] = "".join(val)
        i += 1
        if s[i] == ",":
            i += 1
    return labels, i + 1


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def parse_prometheus(text):
    """{(name, frozenset(labels)): value}; asserts every sample follows the
    TYPE line of its family, families are contiguous and declared once,
    series are unique and histograms are cumulative up to +Inf = count."""
    assert text.endswith("\n")
    types, current, series = {}, None, {}
    for line in text[:-1].split("\n"):
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert NAME.fullmatch(name) and typ in TYPES, line
            assert name not in types, "TYPE twice for " + name
            types[name], current = typ, name
            continue
        if line.startswith("# HELP "):
            assert NAME.fullmatch(line.split(" ", 3)[2]), line
            continue
        assert not line.startswith("#") and line, "stray line %r" % line
        m = NAME.match(line)
        assert m, "bad sample %r" % line
        name, i = m.group(0), m.end()
        labels = {}
        if line[i] == "{":
            labels, i = parse_labels(line, i)
        assert line[i] == " ", "bad sample %r" % line
        value = float(line[i + 1:])  # accepts NaN, +Inf, -Inf
        fam = family_of(name, types)
        assert fam == current, "%s outside its family's TYPE block" % name
        key = (name, frozenset(labels.items()))
        assert key not in series, "duplicate series %r" % (key,)
        series[key] = value
    check_histograms(series, types)
    return series


def check_histograms(series, types):
    for fam in (n for n, t in types.items() if t == "histogram"):
        groups = {}
        for (name, labels), v in series.items():
            if name == fam + "_bucket":
                rest = frozenset(x for x in labels if x[0] != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((float(le), v))
        for rest, buckets in groups.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), "%s not cumulative" % fam
            assert math.isinf(buckets[-1][0])
            assert buckets[-1][1] == series[(fam + "_count", rest)]
            assert (fam + "_sum", rest) in series


def metrics(d):
    status, headers, body = request(d, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_prometheus(body)


def sample(series, name, **labels):
    return series.get((name, frozenset(labels.items())), 0.0)


def wait_finished(c, keys, session, mid, t=20):
    return wait_until(lambda: (pc.record(c, keys, session, mid) or {})
                      .get("status") in ("COMPLETED", "FAILED"), t,
                      what="execution %s to finish" % mid)


def wait_running(c, keys, session, mid, t=10):
    wait_until(lambda: (pc.record(c, keys, session, mid) or {})
               .get("status") == "RUNNING", t, what="%s running" % mid)


# ---- tests ---------------------------------------------------------------

def test_livez_answers_ok(h):
    d = start(h)
    assert request(d, "/livez")[0::2] == (200, "ok\n")


def test_readyz_is_200_serving_with_the_wire_5_7_body(h):
    d = start(h)
    status, body = wait_reason(d, "serving")
    assert status == 200
    assert set(body) == WIRE_5_7_KEYS
    assert body["ready"] is True and body["consumer_healthy"] is True
    assert body["worker_id"] == d.config["worker"]["id"]
    assert body["admin_lifecycle"] == "active"
    assert isinstance(body["uptime_ms"], int) and body["uptime_ms"] >= 0


def test_metrics_parse_and_count_exactly_the_tasks_sent(h):
    d = start(h)
    c = h.client()
    before = metrics(d)
    assert sample(before, "bygate_up") == 1
    mids = [pc.send(c, h.keys, "s-m", "echo", "hello %d" % i)[0]
            for i in range(5)]
    for m in mids:
        wait_finished(c, h.keys, "s-m", m)
    # the finish is applied before the record is read back: counted by now
    after = metrics(d)
    done = {o: sample(after, "bygate_tasks_total", agent_type="echo",
                      outcome=o) - sample(before, "bygate_tasks_total",
                                          agent_type="echo", outcome=o)
            for o in ("completed", "failed", "cancelled", "deadlettered",
                      "acked", "suspended", "other")}
    assert done["completed"] == 5 and sum(done.values()) == 5, done
    assert sample(after, "bygate_task_duration_seconds_count",
                  agent_type="echo") == 5
    assert sample(after, "bygate_pool_children", state="alive") == 2
    assert sample(after, "bygate_tasks_in_children") == 0
    # 2 children + a prefetch of min(fetch_count, 2), nothing running
    # (once bygated has handled the last finish's reply, which may come
    # after the record reads back final)
    wait_until(lambda: sample(metrics(d), "bygate_read_capacity") == 4, 5,
               what="the read capacity back to 4")
    assert sample(after, "bygate_redis_up", conn="read") == 1
    assert sample(after, "bygate_lease_held") == 1


def test_pending_entries_gauge_shows_a_running_task(h):
    d = start(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-p", "sleep", "5000")
    wait_running(c, h.keys, "s-p", mid)
    stream = h.keys.ctrl_agent_type("sleep")
    wait_until(lambda: sample(metrics(d), "bygate_pending_entries",
                              stream=stream, scope="worker") == 1, 8,
               what="the pending-entries gauge to refresh")
    s = metrics(d)
    assert sample(s, "bygate_pending_entries", stream=stream,
                  scope="group") == 1
    age = ("bygate_oldest_pending_age_seconds",
           frozenset({"stream": stream, "scope": "worker"}.items()))
    assert age in s  # sample() reads a missing series as 0
    assert 0 <= s[age] < 60
    d.interrupt()  # SIGINT: no need to wait for the task


def test_unknown_paths_are_404_and_other_methods_405(h):
    d = start(h)
    assert request(d, "/nope")[0] == 404
    assert request(d, "/readyz/extra")[0] == 404
    status, headers, _ = request(d, "/metrics", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert request(d, "/readyz", method="DELETE")[0] == 405
    assert request(d, "/livez", method="HEAD")[0] == 200


def test_readyz_is_503_draining_while_sigterm_drains(h):
    d = start(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-d", "sleep", "3000")
    wait_running(c, h.keys, "s-d", mid)
    d.signal(signal.SIGTERM)
    status, body = wait_reason(d, "draining", t=5)
    assert status == 503 and body["ready"] is False
    d.wait_exit(20)
    assert d.returncode == 0


def test_readyz_is_503_redis_unavailable_when_redis_dies(h):
    r = h.start_redis()
    d = start(h, redis=r)
    wait_reason(d, "serving")
    r.kill()
    status, body = wait_reason(d, "redis_unavailable", t=10)
    assert status == 503 and body["ready"] is False
    assert request(d, "/livez")[0] == 200


def set_lifecycle(h, c, w, lifecycle):
    c.call("HSET", h.keys.worker_admin(w), "lifecycle", lifecycle,
           "reason", "test", "updated_at", int(time.time() * 1000))


def test_readyz_is_503_suspended_while_the_admin_suspends(h):
    d = start(h)
    c = h.client()
    wait_reason(d, "serving")
    set_lifecycle(h, c, d.config["worker"]["id"], "suspended")
    status, body = wait_reason(d, "suspended", t=10)
    assert status == 503 and body["admin_lifecycle"] == "suspended"
    assert body["consumer_healthy"] is True  # the worker stream is read


def test_readyz_is_503_evicted_while_an_evicted_worker_drains(h):
    d = start(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-e", "sleep", "4000")
    wait_running(c, h.keys, "s-e", mid)
    set_lifecycle(h, c, d.config["worker"]["id"], "evicted")
    status, body = wait_reason(d, "evicted", t=10)
    assert status == 503 and body["admin_lifecycle"] == "evicted"
    d.interrupt()


def fd_flags_of_sockets(pid, port, state):
    """fdinfo flags of pid's TCP sockets with local port `port` in `state`
    (/proc/net/tcp hex: 0A listen, 01 established)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if int(p[1].rsplit(":", 1)[1], 16) == port and p[3] == state:
                    inodes.add("socket:[%s]" % p[9])
    flags = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) not in inodes:
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags += [int(line.split()[1], 8) for line in f
                          if line.startswith("flags:")]
        except OSError:
            continue
    return flags


def test_the_listener_and_its_connections_are_close_on_exec(h):
    d = start(h)
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=5)
    c.request("GET", "/livez")
    c.getresponse().read()  # keep-alive: the connection stays open
    for state in ("0A", "01"):
        flags = wait_until(lambda: fd_flags_of_sockets(d.pid, d.http_port,
                                                       state), 5,
                           what="bygated's socket in state " + state)
        assert all(f & os.O_CLOEXEC for f in flags), (state, flags)
    c.close()


def test_readyz_is_503_consumer_stalled_when_reads_stop(h):
    # fault point: from the 2nd read on none is issued (a wedged consumer)
    port = proc.free_port()
    d = h.bygated({"http": {"port": port}, "worker": dict(FAST),
                   "agent_types": [h.agent_type("echo")]})
    d.env = dict(d.env, BYGATE_FAULT="consume.stall:2")
    d.start()
    d.http_port = port
    status, body = wait_reason(d, "consumer_stalled", t=15)
    assert status == 503 and body["consumer_healthy"] is False
    assert body["ready"] is False
