"""Redis credentials (issue 11): bygated against a redis-server with
`requirepass` (redis.password), and as an ACL user that may run only the
commands bygated sends on only the keys of WIRE 1.2 (byai_gateway:*). The
ACL line is the one docs/operations.md gives to operators, read from it
here so the two cannot drift apart."""

import http.client
import re
import secrets

from harness import REPO, RespError, proc, timeout, wait_until
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300}


def documented_acl_line():
    """The `user bygated ...` line of docs/operations.md."""
    text = (REPO / "docs" / "operations.md").read_text()
    lines = re.findall(r"^\s*(user bygated on .*)$", text, re.M)
    assert len(lines) == 1, "docs/operations.md: one `user bygated on` line"
    return lines[0].strip()


def acl_rules(password):
    """The documented rules (the words after `user bygated`), with the
    placeholder password replaced."""
    words = documented_acl_line().split()[2:]
    assert ">CHANGE-ME" in words, words
    return [">" + password if w == ">CHANGE-ME" else w for w in words]


def done(c, keys, session, mid, t=20):
    return wait_until(lambda: (lambda r: r if r and r.get("status") in (
        "COMPLETED", "FAILED") else None)(pc.record(c, keys, session, mid)),
        t, what="%s finished" % mid)


def final_answer(c, keys, session, mid):
    fin = [e for e in pc.events(c, keys, session)
           if e["message_id"] == mid and e["event_type"] == "finalAnswer"]
    assert len(fin) == 1, fin
    return fin[0]["data"]["choices"][0]["delta"]["content"]


def bygated_connections(c, user):
    """CLIENT LIST lines of connections authenticated as `user`."""
    return [line for line in c.call("CLIENT", "LIST").splitlines()
            if " user=%s " % user in " " + line + " "]


def test_bygated_authenticates_with_requirepass(h):
    pw = secrets.token_hex(12)
    r = h.start_redis(args=["--requirepass", pw])
    c = h.client(redis=r, password=pw)
    with r.client() as anonymous:
        try:
            anonymous.call("GET", "x")
            assert False, "requirepass is not in force"
        except RespError as e:
            assert e.code == "NOAUTH", e
    d = h.start_bygated({"redis": {"password": pw},
                         "worker": dict(FAST)}, redis=r)
    mid, _ = pc.send(c, h.keys, "s-auth", "echo", "hello")
    assert done(c, h.keys, "s-auth", mid)["status"] == "COMPLETED"
    assert final_answer(c, h.keys, "s-auth", mid) == "hello"
    assert pc.pending_count(c, h.keys.ctrl_agent_type("echo")) == 0
    assert d.alive()


def test_a_wrong_password_is_named_and_nothing_is_consumed(h):
    pw = secrets.token_hex(12)
    r = h.start_redis(args=["--requirepass", pw])
    c = h.client(redis=r, password=pw)
    d = h.bygated({"redis": {"password": "not-" + pw},
                   "worker": dict(FAST)}, redis=r)
    d.start(wait=False)
    d.wait_log(re.compile(r"^.*redis \w+ connection: AUTH failed: "
                          r"WRONGPASS.*$", re.M), timeout=15)
    assert pw not in d.log_text(), "a password must never be logged"
    # refused before anything: no lease, no group
    assert c.call("EXISTS", h.keys.worker_online(d.config["worker"]["id"])) \
        == 0
    assert c.call("EXISTS", h.keys.ctrl_agent_type("echo")) == 0


@timeout(120)
def test_bygated_runs_under_the_documented_least_privilege_acl_user(h):
    admin_pw, pw = secrets.token_hex(12), secrets.token_hex(12)
    r = h.start_redis(args=["--requirepass", admin_pw])
    c = h.client(redis=r, password=admin_pw)
    c.call("ACL", "SETUSER", "bygated", *acl_rules(pw))
    c.call("ACL", "LOG", "RESET")

    port = proc.free_port()
    d = h.start_bygated({
        "redis": {"username": "bygated", "password": pw},
        "worker": dict(FAST),
        "pool": {"size": 3},
        "http": {"port": port},
        "metrics": {"history_interval_s": 1},
        "triggers": {"poll_ms": 50, "timers": {
            "acl_tick": {"agent_type": "echo", "content": "tick",
                         "every": "200ms", "max_running": 2}}},
        "agent_types": [
            h.agent_type("echo"),
            h.agent_type("alpha", plugin="flow",
                         options={"role": "caller", "target": "beta"}),
            h.agent_type("fan", plugin="flow",
                         options={"role": "fanout", "target": "beta"}),
            h.agent_type("beta", plugin="flow",
                         options={"role": "worker"}),
            h.agent_type("counter", plugin="flow",
                         options={"role": "counter"})]}, redis=r)

    # a plain task; a call to another agent (route, RESUME); a fan-out
    # joined by the Lua script; session kv
    mid, _ = pc.send(c, h.keys, "s-acl", "echo", "hello")
    assert done(c, h.keys, "s-acl", mid)["status"] == "COMPLETED"
    assert final_answer(c, h.keys, "s-acl", mid) == "hello"
    call, _ = pc.send(c, h.keys, "s-acl", "alpha", "plan")
    assert done(c, h.keys, "s-acl", call)["status"] == "COMPLETED"
    assert final_answer(c, h.keys, "s-acl", call) == \
        "alpha got: beta done: plan"
    fan, _ = pc.send(c, h.keys, "s-acl", "fan", "3")
    assert done(c, h.keys, "s-acl", fan, t=30)["status"] == "COMPLETED"
    kv, _ = pc.send(c, h.keys, "s-acl", "counter", "inc")
    assert done(c, h.keys, "s-acl", kv)["status"] == "COMPLETED"
    assert final_answer(c, h.keys, "s-acl", kv) == "1"
    # an idempotency key checked (the first runs, the copy does not)
    keyed = [pc.send(c, h.keys, "s-acl", "echo", "once",
                     metadata={"idempotency_key": "acl-1"})[0]
             for _ in range(2)]
    assert done(c, h.keys, "s-acl", keyed[0])["status"] == "COMPLETED"
    assert done(c, h.keys, "s-acl", keyed[1])["error_code"] == "DUPLICATE"
    # a timer trigger: its state read, its fire script, its runs pruned
    tk = h.keys.trigger("acl_tick")
    wait_until(lambda: int(c.hgetall(tk).get("fires", 0)) >= 3, 10,
               what="timer fires under the ACL user")
    c.call("HSET", tk, "paused", "1")  # no fire in flight at the checks
    wait_until(lambda: pc.pending_count(c, h.keys.ctrl_agent_type("echo"))
               == 0 and c.call("ZCARD", h.keys.trigger_active("acl_tick"))
               == 0, 10, what="the timer's runs done and pruned")
    # the trace flush and the metrics-history collector (by_framework:)
    wait_until(lambda: c.call("LLEN", h.keys.trace_spans(
        pc.record(c, h.keys, "s-acl", call)["trace_id"])) >= 3, 10,
        what="trace spans written under the ACL user")
    wait_until(lambda: c.call("ZCARD", h.keys.obs_history()) >= 1, 10,
               what="a metrics-history point under the ACL user")
    # /metrics reads the groups (XINFO GROUPS)
    hc = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    hc.request("GET", "/metrics")
    assert hc.getresponse().status == 200
    hc.close()
    for t in ("echo", "alpha", "fan", "beta", "counter"):
        assert pc.pending_count(c, h.keys.ctrl_agent_type(t)) == 0, t

    # every connection of bygated is the ACL user's
    mine = bygated_connections(c, "bygated")
    assert len(mine) >= 2, c.call("CLIENT", "LIST")
    # a graceful stop releases the lease and the registrations as the user
    d.stop()
    assert c.call("GET", h.keys.worker_online(d.config["worker"]["id"])) \
        is None
    denied = c.call("ACL", "LOG")
    assert denied == [], "commands or keys the ACL refused: %r" % (denied,)

    # and the user can do nothing else
    with r.client(username="bygated", password=pw) as u:
        for cmd in (("GET", "elsewhere:key"), ("FLUSHALL",),
                    ("CONFIG", "GET", "*"), ("KEYS", "*"),
                    ("CLIENT", "KILL", "TYPE", "normal"),
                    ("EVAL", "return 1", "1", "elsewhere:key")):
            try:
                u.call(*cmd)
                assert False, "%r was allowed" % (cmd,)
            except RespError as e:
                assert e.code == "NOPERM", (cmd, e)
