"""A private Redis Cluster on loopback for the integration tests: `masters`
masters with `replicas` replicas each, every node a RedisServer in its own
directory on free ports (client port and cluster-bus port), formed without
redis-cli (CLUSTER SET-CONFIG-EPOCH, ADDSLOTSRANGE, MEET, REPLICATE), with
helpers to find slot owners, kill nodes, wait for a failover and migrate
slots (in two steps, to observe ASK redirections in between).

Placement is deterministic: nodes[:masters] are the masters, master i owns
slots [i*16384//masters, (i+1)*16384//masters - 1], and its replicas are
nodes[masters + i*replicas : masters + (i+1)*replicas].
Used as a context manager; stop() and close() leave no process behind."""

import os
import shutil
import tempfile

from . import proc
from .redisserver import RedisServer
from .resp import RespError

__all__ = ["RedisCluster", "ClusterNode", "ClusterError", "SLOTS"]

SLOTS = 16384


class ClusterError(RuntimeError):
    pass


class ClusterNode(RedisServer):
    """A RedisServer with its cluster bus on a free port of its own
    (--cluster-port: the default, port + 10000, may be taken or above
    65535). `node_id` is set once the cluster has started the node."""

    def __init__(self, directory, *, args=(), label="redis-cluster-node"):
        super().__init__(directory, args=args, label=label)
        self.node_id = None
        self.bus_port = None
        self._bus_for = None  # the client port bus_port was picked for

    def __repr__(self):
        return "ClusterNode(%s:%s pid %s id %s)" % (
            self.host, self.port, self.pid, (self.node_id or "?")[:8])

    @property
    def addr(self):
        """"host:port", as in MOVED and ASK replies."""
        return "%s:%s" % (self.host, self.port)

    def argv(self, port):
        if self._bus_for != port:  # a retry on another port: another bus port
            self.bus_port = proc.free_port(exclude={port})
            self._bus_for = port
        return super().argv(port) + ["--cluster-port", self.bus_port]

    def role(self):
        """"master" or "replica", from ROLE (asks the node itself)."""
        with self.client(timeout=5.0) as c:
            role = c.call("ROLE")[0]
        return "replica" if role == "slave" else role


class RedisCluster:
    """start() starts every node and forms the cluster; close() stops every
    process (SIGTERM by pid, SIGKILL after a bound) and removes the
    directories it created (unless keep_dirs: the harness keeps them with
    the test's tmp directory, for the logs of a failed test). Every wait
    raises ClusterError after its timeout, naming what it waited for, the
    last thing found wrong, and each node's state and log tail."""

    def __init__(self, directory=None, masters=3, replicas=0,
                 node_timeout_ms=1000, *, full_coverage=True,
                 keep_dirs=False, timeout=30.0):
        if masters < 1 or replicas < 0:
            raise ValueError("need masters >= 1 and replicas >= 0")
        self._own_dir = directory is None or not os.path.exists(directory)
        self.dir = str(directory) if directory else tempfile.mkdtemp(
            prefix="bygate-cluster-")
        self.keep_dirs = keep_dirs
        self.n_masters, self.n_replicas = masters, replicas
        self.node_timeout_ms = node_timeout_ms
        self.timeout = timeout
        args = ["--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",  # in the node's --dir
                "--cluster-node-timeout", node_timeout_ms,
                "--cluster-require-full-coverage",
                "yes" if full_coverage else "no",
                # Any replica may fail over, however long it was cut off,
                # and replicas stay with the master they were given.
                "--cluster-replica-validity-factor", "0",
                "--cluster-allow-replica-migration", "no",
                "--repl-diskless-sync-delay", "0",  # replicas sync at once
                # CLUSTER SLOTS leaves out a replica until its replication
                # offset is not 0: the master's pings move it every second.
                "--repl-ping-replica-period", "1",
                "--appendonly", "no"]
        self.nodes = [ClusterNode(os.path.join(self.dir, "node%d" % i),
                                  args=args, label="redis-cluster-node%d" % i)
                      for i in range(masters * (1 + replicas))]
        self._admin = {}       # node -> RespClient for our own commands
        self._migrations = {}  # slot -> source node, begin to end_migration
        self._lost = {}        # killed master's id -> its replicas' ids

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "RedisCluster(%s)" % self.seeds()

    # -- start -----------------------------------------------------------

    def start(self):
        """Start every node and form the cluster with the placement above.
        Returns once every node has cluster_state:ok, every node's CLUSTER
        SLOTS shows exactly that placement (replicas included) and every
        replica's link to its master is up (its initial sync done). On
        failure, every node is stopped and the error raised."""
        try:
            for node in self.nodes:
                node.start()
            for i, node in enumerate(self.nodes):
                node.node_id = self.call(node, "CLUSTER", "MYID")
                # Distinct epochs up front, as redis-cli does: no collision
                # to resolve before a failover can be voted.
                self.call(node, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            for i, master in enumerate(self._planned_masters()):
                lo, hi = self._planned_range(i)
                self.call(master, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                self.call(first, "CLUSTER", "MEET", node.host, node.port,
                          node.bus_port)
            self._wait(self._check_all_known,
                       "every node to know every other node")
            for i, master in enumerate(self._planned_masters()):
                for replica in self._planned_replicas(i):
                    self.call(replica, "CLUSTER", "REPLICATE", master.node_id)
            self._wait(self._check_formed, "the cluster to form")
        except BaseException:
            self.stop()
            raise
        return self

    def _planned_masters(self):
        return self.nodes[:self.n_masters]

    def _planned_replicas(self, i):
        first = self.n_masters + i * self.n_replicas
        return self.nodes[first:first + self.n_replicas]

    def _planned_range(self, i):
        return (i * SLOTS // self.n_masters,
                (i + 1) * SLOTS // self.n_masters - 1)

    def _check_all_known(self):
        ids = {n.node_id for n in self.nodes}
        for node in self.nodes:
            view = self.cluster_nodes(node)
            if set(view) != ids:
                return "%r knows %d of %d nodes" % (node, len(view), len(ids))
            for nid, entry in view.items():
                if entry["flags"] & {"handshake", "noaddr", "fail", "fail?"}:
                    return "%r sees %s as %s" % (node, nid[:8],
                                                 ",".join(entry["flags"]))
        return None

    def _check_formed(self):
        expected = []
        for i, master in enumerate(self._planned_masters()):
            expected.append(self._planned_range(i) + (master.node_id, tuple(
                sorted(r.node_id for r in self._planned_replicas(i)))))
        for node in self.nodes:
            state = self.cluster_info(node).get("cluster_state")
            if state != "ok":
                return "%r: cluster_state:%s" % (node, state)
            slots = self.cluster_slots(node, replicas=True)
            if slots != expected:
                return "%r: CLUSTER SLOTS %s, expected %s" % (
                    node, _short(slots), _short(expected))
        for node in self.nodes[self.n_masters:]:
            info = _fields(self.call(node, "INFO", "replication"))
            if info.get("master_link_status") != "up":
                return "%r: master_link_status:%s" % (
                    node, info.get("master_link_status"))
        return None

    # -- lookups -----------------------------------------------------------

    def live(self):
        """The nodes whose process runs, in order."""
        return [n for n in self.nodes if n.alive()]

    def masters(self):
        """The live nodes that are masters now (ROLE on each)."""
        return [n for n in self.live() if n.role() == "master"]

    def replicas_of(self, master):
        """The live nodes replicating `master` now, in the view of the first
        other live node (its CLUSTER NODES)."""
        viewer = next((n for n in self.live() if n is not master), None)
        if viewer is None:
            return []
        view = self.cluster_nodes(viewer)
        return [n for n in self.live() if n is not master
                and view.get(n.node_id, {}).get("master") == master.node_id]

    def seeds(self):
        """"127.0.0.1:p1,127.0.0.1:p2,..." of every node (dead ones too)."""
        return ",".join(n.addr for n in self.nodes)

    def env(self):
        """The by-framework variables pointing a process at this cluster."""
        return {"REDIS_MODE": "cluster", "REDIS_CLUSTER_NODES": self.seeds(),
                "REDIS_KEY_SCHEMA_VERSION": "v2"}

    def keyslot(self, key):
        """CLUSTER KEYSLOT of key, asked of the first live node."""
        return self.call(self._any(), "CLUSTER", "KEYSLOT", key)

    def node_for_slot(self, slot):
        """The live master owning slot per the CLUSTER SLOTS of the first
        live node (call wait_ok() first while the cluster is changing).
        ClusterError if the owner is unknown or not running."""
        for lo, hi, owner in self.cluster_slots(self._any()):
            if lo <= slot <= hi:
                node = self._by_id(owner)
                if node is None or not node.alive():
                    raise ClusterError("slot %d is owned by %s, not running"
                                       % (slot, node or owner))
                return node
        raise ClusterError("slot %d is not assigned" % slot)

    def client(self, node, **kw):
        """A new RespClient to node (the caller closes it)."""
        return node.client(**kw)

    def call(self, node, *args):
        """One command on node over a connection kept for the cluster's own
        use; raises RespError on an error reply."""
        c = self._admin.get(node)
        if c is None:
            c = self._admin[node] = node.client(timeout=5.0)
        return c.call(*args)

    def cluster_info(self, node):
        """CLUSTER INFO of node as a dict of strings."""
        return _fields(self.call(node, "CLUSTER", "INFO"))

    def cluster_nodes(self, node):
        """CLUSTER NODES of node: {id: {"addr", "flags" (a set), "master"
        (an id or None), "slots" (the rest of the line)}}."""
        out = {}
        for line in self.call(node, "CLUSTER", "NODES").splitlines():
            f = line.split()
            if len(f) >= 8:
                out[f[0]] = {"addr": f[1].split("@")[0],
                             "flags": set(f[2].split(",")),
                             "master": None if f[3] == "-" else f[3],
                             "slots": f[8:]}
        return out

    def cluster_slots(self, node, replicas=False):
        """CLUSTER SLOTS of node as a sorted list of (first, last, master
        id), with a sorted tuple of replica ids appended if `replicas`."""
        out = []
        for entry in self.call(node, "CLUSTER", "SLOTS"):
            item = (entry[0], entry[1], entry[2][2])
            if replicas:
                item += (tuple(sorted(r[2] for r in entry[3:])),)
            out.append(item)
        return sorted(out)

    def _any(self):
        live = self.live()
        if not live:
            raise ClusterError("no node of the cluster is running")
        return live[0]

    def _by_id(self, node_id):
        return next((n for n in self.nodes if n.node_id == node_id), None)

    # -- failures ----------------------------------------------------------

    def kill(self, node):
        """SIGKILL node by pid, as in a crash; it leaves live() (a later
        node.start() brings it back on the same ports). The replicas it had
        are remembered for wait_failover."""
        try:
            self._lost[node.node_id] = [r.node_id
                                        for r in self.replicas_of(node)]
        except (OSError, RespError):
            pass  # wait_failover will ask the live nodes instead
        node.kill()
        client = self._admin.pop(node, None)
        if client is not None:
            client.close()

    def wait_ok(self, timeout=None):
        """Wait until every live node has cluster_state:ok and the same
        CLUSTER SLOTS (ranges and masters), covering every slot with a live
        master. Returns the agreed [(first, last, master node)]."""
        self._wait(self._check_ok, "cluster_state:ok and agreeing slots",
                   timeout)
        return [(lo, hi, self._by_id(owner))
                for lo, hi, owner in self.cluster_slots(self._any())]

    def _check_ok(self):
        live = self.live()
        if not live:
            return "no node is running"
        views = {}
        for node in live:
            state = self.cluster_info(node).get("cluster_state")
            if state != "ok":
                return "%r: cluster_state:%s" % (node, state)
            views[node] = self.cluster_slots(node)
        first = views[live[0]]
        for node, view in views.items():
            if view != first:
                return "%r: CLUSTER SLOTS %s but %r: %s" % (
                    live[0], _short(first), node, _short(view))
        live_ids = {n.node_id for n in live}
        covered = 0
        for lo, hi, owner in first:
            if lo != covered:
                return "slots %d-%d are not assigned" % (covered, lo - 1)
            if owner not in live_ids:
                return "slots %d-%d are owned by %s, not running" % (
                    lo, hi, owner[:8])
            covered = hi + 1
        if covered != SLOTS:
            return "slots %d-%d are not assigned" % (covered, SLOTS - 1)
        return None

    def wait_failover(self, dead_master, timeout=None):
        """Wait until a replica dead_master had when it was kill()ed (else:
        has in the live nodes' view) is a master in every live node's view
        and wait_ok's conditions hold. Returns that new master."""
        ids = self._lost.get(dead_master.node_id)
        if ids is None:
            ids = [r.node_id for r in self.replicas_of(dead_master)]
        if not ids:
            raise ClusterError("%r has no replica to fail over to"
                               % dead_master)
        found = []

        def check():
            live = self.live()
            views = [self.cluster_nodes(n) for n in live]
            for node in live:
                if node.node_id in ids and all(
                        "master" in v.get(node.node_id, {}).get("flags", ())
                        for v in views):
                    found[:] = [node]
                    return self._check_ok()
            return "no replica of %r promoted yet" % dead_master

        self._wait(check, "a replica of %r to take over" % dead_master,
                   timeout)
        return found[0]

    # -- slot migration ----------------------------------------------------

    def migrate_slot(self, slot, dst):
        """Move slot with all its keys from its owner to dst; returns once
        every live node's CLUSTER SLOTS names dst as the owner."""
        self.begin_migration(slot, dst)
        self.end_migration(slot, dst)

    def begin_migration(self, slot, dst, keys=()):
        """Open the migration of slot from its owner (the source, returned)
        to dst: SETSLOT IMPORTING on dst, then MIGRATING on the source, then
        MIGRATE `keys` (which must be in slot). Until end_migration the
        source serves the keys it still has and answers ASK for the others;
        dst serves the moved ones to clients sending ASKING first."""
        src = self.node_for_slot(slot)
        if src is dst:
            raise ClusterError("slot %d is already owned by %r" % (slot, dst))
        for key in keys:
            if self.keyslot(key) != slot:
                raise ValueError("key %r is not in slot %d" % (key, slot))
        self.call(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.node_id)
        self.call(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.node_id)
        self._migrations[slot] = src
        self._move_keys(src, dst, list(keys))
        return src

    def end_migration(self, slot, dst):
        """Finish what begin_migration(slot, dst) opened: MIGRATE the keys
        left in the slot (CLUSTER GETKEYSINSLOT, in batches), then CLUSTER
        SETSLOT NODE dst on dst, the source and every other live master.
        Returns once every live node's CLUSTER SLOTS names dst as owner."""
        src = self._migrations.pop(slot)
        while True:
            keys = self.call(src, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            self._move_keys(src, dst, keys)
        others = [m for m in self.masters() if m not in (src, dst)]
        for node in [dst, src] + others:
            self.call(node, "CLUSTER", "SETSLOT", slot, "NODE", dst.node_id)

        def check():
            for node in self.live():
                for lo, hi, owner in self.cluster_slots(node):
                    if lo <= slot <= hi and owner != dst.node_id:
                        return "%r: slot %d still owned by %s" % (
                            node, slot, owner[:8])
            return None

        self._wait(check, "slot %d to be owned by %r everywhere"
                   % (slot, dst))

    def _move_keys(self, src, dst, keys):
        if keys:
            self.call(src, "MIGRATE", dst.host, dst.port, "", 0, 5000,
                      "KEYS", *keys)

    # -- waiting and reports -----------------------------------------------

    def _wait(self, check, what, timeout=None):
        """Poll check() (None when satisfied, else what is wrong; connection
        and error replies count as wrong) until satisfied or timeout."""
        last = ["not checked yet"]

        def satisfied():
            try:
                last[0] = check()
            except (OSError, RespError) as e:
                last[0] = "%s: %s" % (type(e).__name__, e)
            return last[0] is None

        try:
            proc.wait_until(satisfied, self.timeout if timeout is None
                            else timeout, interval=0.05, what=what)
        except TimeoutError as e:
            raise ClusterError("%s; last problem: %s\n%s"
                               % (e, last[0], self.describe())) from None

    def describe(self, log_lines=5):
        """One paragraph per node: address, pid, running or not, id, and
        the tail of its log (for error messages)."""
        parts = []
        for i, n in enumerate(self.nodes):
            parts.append("node%d %s pid %s %s id %s\n%s" % (
                i, n.addr, n.pid, "running" if n.alive() else "NOT RUNNING",
                n.node_id, n.log_tail(log_lines)))
        return "\n".join(parts)

    # -- stop --------------------------------------------------------------

    def stop(self):
        """Stop every node by pid (replicas first; idempotent)."""
        for client in self._admin.values():
            client.close()
        self._admin.clear()
        errors = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception as e:  # stop the others anyway
                errors.append("%r: %s" % (node, e))
        if errors:
            raise ClusterError("stopping the cluster: " + "; ".join(errors))

    def close(self):
        """stop(), then remove the node directories and the base directory
        if this object created them (unless keep_dirs)."""
        try:
            self.stop()
        finally:
            if not self.keep_dirs:
                for node in self.nodes:
                    shutil.rmtree(node.dir, ignore_errors=True)
                if self._own_dir:
                    shutil.rmtree(self.dir, ignore_errors=True)


def _fields(text):
    """"key:value" lines (CLUSTER INFO, INFO) as a dict."""
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def _short(slots):
    """A slot list with shortened ids, for error messages."""
    return [tuple(x[:8] if isinstance(x, str) else
                  tuple(r[:8] for r in x) if isinstance(x, tuple) else x
                  for x in item) for item in slots]
