"""The bygate CLI, libbygate and bygate-state on a real Redis Cluster
(docs/cluster.md): v2 keys on the masters that own their slots, every kind
of redirection followed (a slot migrated: MOVED; a slot in migration: ASK; a
master killed and its replica promoted), the transactions split by slot, the
enumeration over every master, and the refusals (v1 keys, a database other
than 0, cross-slot scripts, bygated itself)."""

import json
import subprocess

from harness import Keys, RespError, proc

K = Keys("v2")


def cli_env(c, **extra):
    return proc.clean_env(dict(c.env(), **extra))


def send(h, c, session, content="hi", *more, env=None):
    out = h.bygate("--json", "send", "--agent-type", "echo", "--session",
                   session, "--content", content, "--route-policy",
                   "SEND_ANYWAY", *more, env=env or cli_env(c))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def owner_of(c, key):
    return c.node_for_slot(c.keyslot(key))


def other_master(c, node):
    return next(m for m in c.masters() if m is not node)


def call_fields(c, key):
    with c.client(owner_of(c, key)) as r:
        return r.call("HKEYS", key)


def to_move(c, session):
    """The session's registry, its slot, the master serving it and
    another master to move it to."""
    reg = K.registry(session)
    src = owner_of(c, reg)
    return reg, c.keyslot(reg), src, other_master(c, src)


def redirect_from(c, node, key):
    """The error `node` answers to a read of `key` (a MOVED or an ASK)."""
    with c.client(node) as r:
        try:
            r.call("HGET", key, "x")
        except RespError as e:
            return str(e)
    raise AssertionError("%s still serves %s" % (node.addr, key))


def hget(c, key, field):
    with c.client(owner_of(c, key)) as r:
        return r.call("HGET", key, field)


def sessions_on_every_master(c, n=12):
    """Session ids whose registries fall on each of the masters."""
    seen = {}
    for i in range(200):
        s = "cs-%d" % i
        seen.setdefault(owner_of(c, K.registry(s)).port, []).append(s)
        if len(seen) == len(c.masters()) and \
                sum(len(v) for v in seen.values()) >= n:
            break
    assert len(seen) == len(c.masters())
    return [s for v in seen.values() for s in v][:n]


def test_send_writes_each_entity_on_its_own_master(h):
    c = h.start_cluster(masters=3)
    sessions = sessions_on_every_master(c)
    sent = {s: send(h, c, s) for s in sessions}
    for s, resp in sent.items():
        reg = K.registry(s)
        # the record and msg_map: one transaction on the session's master
        assert hget(c, reg, "msg_map:" + resp["message_id"]) == \
            resp["execution_id"]
        rec = json.loads(hget(c, reg, "exec:" + resp["execution_id"]))
        assert rec["status"] == "QUEUED" and rec["session_id"] == s
        with c.client(owner_of(c, reg)) as r:
            assert 0 < r.call("TTL", reg) <= 7 * 86400
    # the commands: on the agent-type stream's master, in order
    stream = K.ctrl_agent_type("echo")
    with c.client(owner_of(c, stream)) as r:
        entries = r.call("XRANGE", stream, "-", "+")
    ids = [e[0] for e in entries]
    assert ids == [sent[s]["entry_id"] for s in sessions]
    # and the CLI reads them back, whichever master holds them
    for s in sessions[:4]:
        out = h.bygate("--json", "status", "--session", s, env=cli_env(c))
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        text = json.dumps(rows)
        assert sent[s]["execution_id"] in text and "QUEUED" in text


def test_one_seed_is_enough_and_every_master_is_scanned(h):
    c = h.start_cluster(masters=3)
    # workers registered on three different masters (their tags differ)
    workers = []
    for i in range(60):
        w = "cw-%d" % i
        port = owner_of(c, K.worker_online(w)).port
        if port not in [p for p, _ in workers]:
            workers.append((port, w))
        if len(workers) == 3:
            break
    assert len(workers) == 3
    for _, w in workers:
        out = h.bygate("suspend", w, "--force", "--reason", "t",
                       env=cli_env(c))
        assert out.returncode == 0, out.stderr
    # the admin hash on the worker's master, the index on its own: the
    # transaction of a standalone server, split by slot
    for _, w in workers:
        assert hget(c, K.worker_admin(w), "lifecycle") == "suspended"
    # seeds: one node only, not a master of any of them
    env = cli_env(c, REDIS_CLUSTER_NODES=c.nodes[0].addr)
    out = h.bygate("--json", "workers", env=env)
    assert out.returncode == 0, out.stderr
    listed = json.dumps(json.loads(out.stdout))
    for _, w in workers:
        assert w in listed


def test_a_migrated_slot_is_followed_by_moved(h):
    c = h.start_cluster(masters=3)
    s = "moved-1"
    first = send(h, c, s)
    reg, slot, src, dst = to_move(c, s)
    c.migrate_slot(slot, dst)
    assert owner_of(c, reg) is dst
    assert redirect_from(c, src, reg).startswith("MOVED")
    # the seed list names the old owner first: its map is stale
    env = cli_env(c, REDIS_CLUSTER_NODES="%s,%s" % (src.addr, dst.addr))
    out = h.bygate("--json", "status", "--session", s, env=env)
    assert out.returncode == 0, out.stderr
    assert first["execution_id"] in out.stdout
    second = send(h, c, s, "again", env=env)
    assert hget(c, reg, "exec:" + second["execution_id"]) is not None


def test_a_slot_in_migration_is_followed_by_ask(h):
    c = h.start_cluster(masters=3)
    s = "ask-1"
    first = send(h, c, s)
    reg, slot, src, dst = to_move(c, s)
    c.begin_migration(slot, dst, keys=[reg])
    try:
        assert redirect_from(c, src, reg).startswith("ASK")
        out = h.bygate("--json", "status", "--session", s,
                       env=cli_env(c))
        assert out.returncode == 0, out.stderr
        assert first["execution_id"] in out.stdout
        # the send's transaction cannot follow an ASK command by
        # command: it waits for the migration's end (TRYAGAIN-like), so
        # it is tried after the migration below
    finally:
        c.end_migration(slot, dst)
    second = send(h, c, s, "after")
    assert hget(c, reg, "exec:" + second["execution_id"]) is not None


def test_a_master_killed_is_replaced_by_its_replica(h):
    c = h.start_cluster(masters=3, replicas=1)
    s = "fail-1"
    first = send(h, c, s)
    reg = K.registry(s)
    victim = owner_of(c, reg)
    with c.client(victim) as r:
        assert r.call("WAIT", 1, 2000) >= 1  # the record is on the replica
    c.kill(victim)
    # sent while the cluster still names the dead master: the CLI waits,
    # reading the map again, until the replica is promoted
    out = h.bygate("--json", "status", "--session", s, env=cli_env(c),
                   timeout=60)
    assert out.returncode == 0, out.stderr
    assert first["execution_id"] in out.stdout
    promoted = c.wait_failover(victim)
    assert owner_of(c, reg) is promoted
    second = send(h, c, s, "after the failover")
    with c.client(promoted) as r:
        assert r.call("HGET", reg, "exec:" + second["execution_id"])


def test_refusals_are_clear(h):
    c = h.start_cluster(masters=3)
    # v1 keys under Cluster: refused, as by-framework refuses them
    out = h.bygate("status", "--session", "s",
                   env=cli_env(c, REDIS_KEY_SCHEMA_VERSION="v1"))
    assert out.returncode != 0
    assert "needs the v2 key schema" in out.stderr
    # a database other than 0
    out = h.bygate("status", "--session", "s",
                   env=cli_env(c, REDIS_DATABASE="2"))
    assert out.returncode != 0 and "only database 0" in out.stderr
    # a keyed send waiting in the pending deliveries: three slots;
    # nothing sent
    out = h.bygate("send", "--agent-type", "echo", "--session", "s",
                   "--content", "x", "--route-policy", "QUEUE_ONLY",
                   "--idempotency-key", "k1", env=cli_env(c))
    assert out.returncode != 0
    assert "not available under Redis Cluster" in out.stderr
    stream = K.ctrl_agent_type("echo")
    with c.client(owner_of(c, stream)) as r:
        assert r.call("EXISTS", stream) == 0
    # a keyed send straight to the stream: once, a copy answered with
    # the first's ids and its record taken back
    first = send(h, c, "s-key", "x", "--idempotency-key", "k2")
    copy = send(h, c, "s-key", "x", "--idempotency-key", "k2")
    assert copy["message_id"] == first["message_id"]
    with c.client(owner_of(c, stream)) as r:
        assert r.call("XLEN", stream) == 1
    reg = K.registry("s-key")
    fields = call_fields(c, reg)
    assert [f for f in fields if f.startswith("exec:")] == \
        ["exec:" + first["execution_id"]]
    # no node answers: a clear connection error
    out = h.bygate("status", "--session", "s",
                   env=cli_env(c, REDIS_CLUSTER_NODES="127.0.0.1:1"))
    assert out.returncode == 3, out.stderr
    assert "127.0.0.1:1" in out.stderr


def test_bygated_refuses_what_it_cannot_run_on_a_cluster(h):
    c = h.start_cluster(masters=3)
    for extra, overrides, why in (
            ({"REDIS_KEY_SCHEMA_VERSION": "v1"}, None, "v2 key schema"),
            ({"REDIS_DATABASE": "2"}, None, "only database 0")):
        d = h.bygated(overrides, env=cli_env(c, **extra))
        d.start(wait=False)
        assert d.wait_exit(timeout=30) == 3
        assert why in d.log_text(), d.log_tail()


def test_bygate_state_check_reads_the_cluster(h):
    """The check's XPENDING and HGETs go to the masters of their keys: the
    fixture's entries are not in the cluster, so it reports them (exit 1),
    which it can only do after reading every one of them."""
    c = h.start_cluster(masters=3)
    state = h.tmp / "state"
    state.mkdir()
    out = subprocess.run([str(h.build / "tests" / "test_state"),
                          "--make-fixture", str(state)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([str(h.bin("bygate-state")), "-d", str(state),
                          "check", "--json"], env=cli_env(c),
                         capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["discrepancies"] > 0, report
    # no node: exit 3, naming it
    out = subprocess.run([str(h.bin("bygate-state")), "-d", str(state),
                          "check", "--redis", "127.0.0.1:1"],
                         env=cli_env(c), capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "127.0.0.1:1" in out.stderr


def test_a_retry_whose_entry_is_refused_puts_the_record_back(h):
    """`bygate retry` under Cluster: the record compared and set in the
    session's slot, then the entry added in the stream's (client/requeue.h).
    The XADD refused (the stream's master out of memory, the session's on
    another master): nothing is queued and the record is FAILED again, byte
    for byte; with the memory back, the retry runs the task."""
    import test_queues as q
    import pyclient as pc
    h.use_cluster()
    c = h.redis.cluster
    stream = K.ctrl_agent_type("flaky")
    sess = next(s for s in ("s-rb-%d" % i for i in range(100))
                if owner_of(c, K.registry(s)) is not owner_of(c, stream))
    d = q.fail_then_fix(h)
    cl = h.client()
    mid, _eid = pc.send(cl, K, sess, "flaky", "again")
    q.wait_status(h, mid, "FAILED", session=sess)
    d.stop()
    reg = K.registry(sess)
    before = {f: hget(c, reg, f) for f in call_fields(c, reg)}
    with c.client(owner_of(c, stream)) as r:
        r.call("CONFIG", "SET", "maxmemory", "1")
    try:
        out = h.bygate("retry", mid, "--session", sess, env=cli_env(c))
    finally:
        with c.client(owner_of(c, stream)) as r:
            r.call("CONFIG", "SET", "maxmemory", "0")
    assert out.returncode != 0
    assert "OOM" in out.stderr and "record put back" in out.stderr, \
        out.stderr
    assert {f: hget(c, reg, f) for f in call_fields(c, reg)} == before
    h.start_bygated({"agent_types": [h.agent_type("flaky", plugin="echo")]})
    out = h.bygate("--json", "retry", mid, "--session", sess,
                   env=cli_env(c))
    assert out.returncode == 0, out.stderr
    assert q.wait_status(h, mid, "COMPLETED", session=sess)


def test_a_dead_letter_being_requeued_elsewhere_is_left_to_that_requeue(h):
    """`bygate dlq requeue` under Cluster claims the dead letter first (a
    key in its slot holding the requeue's token, for a minute): a second
    requeue meanwhile is told so, changes nothing and leaves the first's
    claim alone; a requeue whose record changed releases its own claim."""
    import pyclient as pc
    import test_queues as q
    h.use_cluster()
    c = h.redis.cluster
    cl = h.client()
    cmd = pc.ask_command(q.S, "echo", "claimed elsewhere")
    dl = q.poison_letter(h, cmd, "exec-p9", "FAILED")
    claim = "{%s}:bygate_requeue:%s" % (h.keys.deadletter(), dl)
    cl.call("SET", claim, "rq-other", "PX", "60000")
    out = h.bygate("dlq", "requeue", dl, env=cli_env(c))
    assert out.returncode != 0
    assert "being requeued by another client" in out.stderr, out.stderr
    assert cl.call("GET", claim) == "rq-other"
    assert len(cl.call("XRANGE", h.keys.deadletter(), dl, dl)) == 1
    stream = h.keys.ctrl_agent_type("echo")
    assert cl.call("XLEN", stream) == 0
    # the other requeue gone (its claim expired): this one goes on
    cl.call("DEL", claim)
    out = h.bygate("--json", "dlq", "requeue", dl, env=cli_env(c))
    assert out.returncode == 0, out.stderr
    assert cl.call("EXISTS", claim) == 0
    assert cl.call("XRANGE", h.keys.deadletter(), dl, dl) == []
    assert cl.call("XLEN", stream) == 1
