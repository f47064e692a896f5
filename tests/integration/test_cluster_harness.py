"""Self-tests of the Redis Cluster fixture (bglib.rediscluster, h.start_cluster):
formation and MOVED redirections, cleanup by pid, slot migration (full and
in two steps with ASK redirections in between) and failover to a replica."""

import os

from harness import RedisCluster, RespError, pid_alive


def error_of(client, *args):
    """The RespError that `client.call(*args)` raises (AssertionError if the
    command succeeds)."""
    try:
        reply = client.call(*args)
    except RespError as e:
        return e
    raise AssertionError("%r answered %r, expected an error" % (args, reply))


def other_master(c, node):
    return next(m for m in c.masters() if m is not node)


def test_cluster_forms_redirects_and_cleans_up(h):
    with RedisCluster(h.tmp / "standalone", masters=3) as c:
        assert len(c.nodes) == 3
        for node in c.nodes:
            assert c.cluster_info(node)["cluster_state"] == "ok"
            assert node.role() == "master"
        assert c.masters() == c.nodes
        assert [c.keyslot(k) for k in ("foo", "bar", "somekey")] == \
            [12182, 5061, 11058]
        assert c.seeds() == ",".join("127.0.0.1:%d" % n.port for n in c.nodes)
        assert c.env() == {"REDIS_MODE": "cluster",
                           "REDIS_CLUSTER_NODES": c.seeds(),
                           "REDIS_KEY_SCHEMA_VERSION": "v2"}
        owner = c.node_for_slot(12182)
        assert owner is c.nodes[2]  # slots 10923-16383: the third master
        with c.client(other_master(c, owner)) as wrong:
            err = error_of(wrong, "SET", "foo", "1")
        assert err.message == "MOVED 12182 127.0.0.1:%d" % owner.port
        with c.client(owner) as right:
            assert right.call("SET", "foo", "1") == "OK"
        pids = [n.pid for n in c.nodes]
        assert all(pid_alive(p) for p in pids)
    assert not any(pid_alive(p) for p in pids)
    assert not os.path.exists(c.dir)


def test_cluster_migrate_slot(h):
    c = h.start_cluster(masters=3)
    slot = c.keyslot("foo")
    src = c.node_for_slot(slot)
    dst = other_master(c, src)
    with c.client(src) as s:
        s.call("SET", "foo", "v1")
        s.call("SET", "{foo}.other", "v2")
    c.migrate_slot(slot, dst)
    assert c.node_for_slot(slot) is dst
    with c.client(dst) as d:
        assert d.call("GET", "foo") == "v1"
        assert d.call("GET", "{foo}.other") == "v2"
    with c.client(src) as s:
        assert error_of(s, "GET", "foo").message == \
            "MOVED %d %s" % (slot, dst.addr)
    c.wait_ok()


def test_cluster_begin_migration_asks(h):
    c = h.start_cluster(masters=3)
    moved, stays = "{m}moved", "{m}stays"
    slot = c.keyslot(moved)
    src = c.node_for_slot(slot)
    dst = other_master(c, src)
    with c.client(src) as s, c.client(dst) as d:
        s.call("SET", moved, "1")
        s.call("SET", stays, "2")
        assert c.begin_migration(slot, dst, keys=[moved]) is src
        assert s.call("GET", stays) == "2"  # not moved yet: still served
        assert error_of(s, "GET", moved).message == \
            "ASK %d %s" % (slot, dst.addr)
        # Without ASKING the target still redirects to the owner.
        assert error_of(d, "GET", moved).code == "MOVED"
        assert d.pipeline([("ASKING",), ("GET", moved)]) == ["OK", "1"]
        c.end_migration(slot, dst)
        assert d.call("GET", stays) == "2"
        assert d.call("GET", moved) == "1"
        assert error_of(s, "GET", stays).message == \
            "MOVED %d %s" % (slot, dst.addr)
    assert c.node_for_slot(slot) is dst


def test_cluster_failover_to_replica(h):
    c = h.start_cluster(masters=3, replicas=1, node_timeout_ms=1000)
    assert [n.role() for n in c.nodes] == ["master"] * 3 + ["replica"] * 3
    slot = c.keyslot("foo")
    master = c.node_for_slot(slot)
    [replica] = c.replicas_of(master)
    assert replica is c.nodes[3 + c.nodes.index(master)]
    with c.client(master) as m:
        m.call("SET", "foo", "before")
        assert m.call("WAIT", 1, 0) == 1
    c.kill(master)
    assert not pid_alive(master.pid)
    assert c.wait_failover(master) is replica
    assert replica.role() == "master"
    c.wait_ok()
    assert c.node_for_slot(slot) is replica
    assert master not in c.masters() and replica in c.masters()
    with c.client(replica) as r:
        assert r.call("GET", "foo") == "before"
        assert r.call("SET", "foo", "after") == "OK"
