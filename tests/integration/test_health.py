"""Health that tells the truth (issue 11, item 5): `bygated -t` loads every
handler; an agent type whose handler cannot start is out of routing, not
read, and named by /readyz until a child loads it again (a spare child
tries it with back-off, no reload needed); a hung task ends
with the (finite) task timeout; /metrics shows the oldest running task's
age and each agent type's consumer-group lag."""

import http.client
import json
import re
import shutil
import signal
import subprocess
import time

from harness import wait_until
from bglib import proc
import pyclient as pc

FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2}


def start(h, agent_types, **kw):
    port = proc.free_port()
    d = h.start_bygated(dict({"http": {"port": port}, "worker": FAST,
                              "agent_types": agent_types}, **kw))
    d.http_port = port
    return d


def get(d, path):
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def readyz(d):
    status, body = get(d, "/readyz")
    return status, json.loads(body)


def members(h, t):
    return set(h.client().call("SMEMBERS", h.keys.agent_type_members(t)))


def broken_type(h, name="broken"):
    """An agent type whose plugin file does not exist (yet)."""
    t = h.agent_type("echo")
    t["name"] = name
    t["plugin"] = str(h.tmp / ("%s.so" % name))
    return t


def status_of(c, h, session, mid):
    return (pc.record(c, h.keys, session, mid) or {}).get("status")


def test_config_check_loads_each_plugin_and_names_the_broken_type(h):
    d = h.bygated({"agent_types": [h.agent_type("echo"), broken_type(h)]})
    d.write_config()
    r = subprocess.run([str(h.bin("bygated")), "-t", "-c", d.config_path],
                       capture_output=True, text=True, timeout=30,
                       env=h.env())
    assert r.returncode == 1, r
    assert "agent type 'broken'" in r.stderr, r.stderr
    assert "broken.so" in r.stderr and "agent type 'echo'" not in r.stderr


def test_config_check_names_an_exec_program_that_cannot_start(h):
    d = h.bygated({"agent_types": [
        h.agent_type("echo"),
        {"name": "prog", "handler": "exec",
         "command": "no-such-program-here --x"}]})
    d.write_config()
    r = subprocess.run([str(h.bin("bygated")), "-t", "-c", d.config_path],
                       capture_output=True, text=True, timeout=30,
                       env=h.env())
    assert r.returncode == 1, r
    assert "agent type 'prog'" in r.stderr, r.stderr
    assert "no-such-program-here" in r.stderr, r.stderr


def test_config_check_passes_when_every_handler_loads(h):
    d = h.bygated({"agent_types": [h.agent_type("echo"),
                                   h.agent_type("sleep")]})
    d.write_config()
    r = subprocess.run([str(h.bin("bygated")), "-t", "-c", d.config_path],
                       capture_output=True, text=True, timeout=30,
                       env=h.env())
    assert r.returncode == 0, r
    assert "configuration is valid" in r.stdout


def test_a_type_that_cannot_load_is_degraded_unrouted_unread_and_recovers(h):
    d = start(h, [h.agent_type("echo"), broken_type(h)])
    w = h.worker_id
    c = h.client()
    # degraded, named, still 200: echo is served
    st, body = wait_until(lambda: (lambda s, b: (s, b)
                                   if b["reason"] == "degraded" else None)(
        *readyz(d)), 15, what="readyz degraded")
    assert st == 200 and body["ready"] is True, body
    assert list(body["unserved_agent_types"]) == ["broken"], body
    assert "broken.so" in body["unserved_agent_types"]["broken"]
    wait_until(lambda: w not in members(h, "broken"), 10,
               what="worker out of broken's members")
    assert w in members(h, "echo")
    # FAIL_FAST senders are refused at once instead of waiting
    t0 = time.monotonic()
    out = h.bygate("send", "--agent-type", "broken", "--session", "s-b",
                   "--content", "hi", timeout=20)
    assert out.returncode == 1, out
    assert "AGENT_TYPE_UNAVAILABLE" in out.stderr, out.stderr
    assert time.monotonic() - t0 < 5
    # echo works meanwhile
    ok = pc.send(c, h.keys, "s-e", "echo", "fine")[0]
    wait_until(lambda: status_of(c, h, "s-e", ok) == "COMPLETED", 15,
               what="echo task")
    # a task put on broken's stream anyway waits there, unread
    waiting = pc.send(c, h.keys, "s-b", "broken", "later")[0]
    time.sleep(1.5)
    assert pc.pending_count(c, h.keys.ctrl_agent_type("broken")) == 0
    assert status_of(c, h, "s-b", waiting) == "QUEUED"
    # the plugin is fixed; SIGHUP recycles the children, which load it
    shutil.copy(str(h.plugin("echo")), str(h.tmp / "broken.so"))
    d.signal(signal.SIGHUP)
    wait_until(lambda: readyz(d)[1]["reason"] == "serving", 20,
               what="readyz serving again")
    wait_until(lambda: w in members(h, "broken"), 10,
               what="worker back in broken's members")
    wait_until(lambda: status_of(c, h, "s-b", waiting) == "COMPLETED", 20,
               what="the waiting task completed")


def test_readyz_is_503_when_the_only_type_cannot_load(h):
    d = start(h, [broken_type(h)])
    st, body = wait_until(lambda: (lambda s, b: (s, b)
                                   if b["reason"] == "degraded" else None)(
        *readyz(d)), 15, what="readyz degraded")
    assert st == 503 and body["ready"] is False, body
    assert list(body["unserved_agent_types"]) == ["broken"]
    wait_until(lambda: h.worker_id not in members(h, "broken"), 10,
               what="worker out of broken's members")


def spare_tries(d):
    """How many times a spare child tried a down type (a debug line)."""
    return d.log_text(since_start=True).count(": spare child pid ")


def alarms(d):
    """bygated's WARN and ERROR lines so far."""
    return [ln for ln in d.log_text(since_start=True).splitlines()
            if re.match(r"\S+ (warn|error) ", ln)]


def test_a_type_whose_plugin_appears_is_served_again_without_a_reload(h):
    d = start(h, [h.agent_type("echo"), broken_type(h)],
              pool={"respawn_backoff_max_ms": 500})
    w = h.worker_id
    c = h.client()
    wait_until(lambda: readyz(d)[1]["reason"] == "degraded", 15,
               what="readyz degraded")
    wait_until(lambda: w not in members(h, "broken"), 10,
               what="worker out of broken's members")
    waiting = pc.send(c, h.keys, "s-b", "broken", "later")[0]
    # it is tried again meanwhile, and stays down while the file is
    # missing; a try that fails as the last one did adds no warning
    wait_until(lambda: spare_tries(d) >= 2, 10, what="two tries")
    loud = alarms(d)
    wait_until(lambda: spare_tries(d) >= 5, 10, what="five tries")
    assert alarms(d) == loud, d.log_text(since_start=True)
    assert "crash storm" not in d.log_text(since_start=True)
    assert readyz(d)[1]["reason"] == "degraded"
    assert status_of(c, h, "s-b", waiting) == "QUEUED"
    # the plugin is put in place; no SIGHUP, no RELOAD_PLUGINS
    shutil.copy(str(h.plugin("echo")), str(h.tmp / "broken.so"))
    st, body = wait_until(lambda: (lambda s, b: (s, b)
                                   if b["reason"] == "serving" else None)(
        *readyz(d)), 5, what="readyz serving again")
    assert st == 200 and "unserved_agent_types" not in body, body
    wait_until(lambda: w in members(h, "broken"), 5,
               what="worker back in broken's members")
    wait_until(lambda: status_of(c, h, "s-b", waiting) == "COMPLETED", 10,
               what="the waiting task completed")
    mid = pc.send(c, h.keys, "s-b2", "broken", "now")[0]
    wait_until(lambda: status_of(c, h, "s-b2", mid) == "COMPLETED", 10,
               what="a new task of the type")
    log = d.log_text(since_start=True)
    assert "agent type broken is served again (a spare child loaded it)" \
        in log, log
    assert "SIGHUP" not in log and "plugin reload" not in log, log


def test_the_only_type_comes_back_by_itself_once_its_plugin_loads(h):
    d = start(h, [broken_type(h)],
              pool={"size": 2, "respawn_backoff_max_ms": 400,
                    "crash_storm_deaths": 4,
                    "crash_storm_window_ms": 60000})
    wait_until(lambda: readyz(d)[0] == 503, 15, what="readyz 503")
    wait_until(lambda: spare_tries(d) >= 2, 15, what="two tries")
    loud = alarms(d)
    wait_until(lambda: spare_tries(d) >= 6, 15, what="six tries")
    # no child of the pool is started meanwhile: no new warning, and
    # the breaker (four deaths) stays closed
    assert alarms(d) == loud, d.log_text(since_start=True)
    assert "crash storm" not in d.log_text(since_start=True)
    shutil.copy(str(h.plugin("echo")), str(h.tmp / "broken.so"))
    st, _ = wait_until(lambda: (lambda s, b: (s, b)
                                if b["reason"] == "serving" else None)(
        *readyz(d)), 5, what="readyz serving again")
    assert st == 200
    wait_until(lambda: h.worker_id in members(h, "broken"), 5,
               what="worker back in broken's members")
    c = h.client()
    mid = pc.send(c, h.keys, "s-o", "broken", "hi")[0]
    wait_until(lambda: status_of(c, h, "s-o", mid) == "COMPLETED", 10,
               what="its task completed")


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    pat = re.compile(r"^%s(\{%s\})? (\S+)$" % (re.escape(name),
                                               re.escape(want)), re.M)
    m = pat.search(text)
    return float(m.group(2)) if m else None


def test_hung_tasks_end_with_the_timeout_and_their_age_is_shown(h):
    d = start(h, [h.agent_type("sleep", timeout_ms=4000)],
              pool={"size": 2})
    c = h.client()
    mids = [pc.send(c, h.keys, "s-h", "sleep", "60000")[0] for _ in range(4)]
    wait_until(lambda: sum(status_of(c, h, "s-h", m) == "RUNNING"
                           for m in mids) == 2, 15, what="two running")
    time.sleep(1.2)
    text = get(d, "/metrics")[1]
    age = metric(text, "bygate_oldest_running_task_age_seconds")
    assert age is not None and age > 0, text
    # two more are waiting in the stream: lag (Redis 7) or pending
    lag = wait_until(lambda: metric(get(d, "/metrics")[1],
                                    "bygate_consumer_group_lag",
                                    agent_type="sleep") is not None, 10,
                     what="lag metric")
    assert lag
    for m in mids:
        rec = wait_until(lambda: (lambda r: r if r and r["status"] ==
                                  "FAILED" else None)(
            pc.record(c, h.keys, "s-h", m)), 30, what="timeout")
        assert rec["error_code"] == "TIMEOUT", rec
