"""A test-side Redis Cluster client and backend (BYGATE_TEST_REDIS=cluster):
the integration tests written for one redis-server run unchanged against a
RedisCluster. ClusterRespClient is a RespClient that sends each command to
the master of its keys' slot (CRC16 and hash tags as Redis computes them),
follows MOVED and ASK, keeps a MULTI ... EXEC on one node, and answers the
keyless commands that enumerate (KEYS, SCAN, DBSIZE, FLUSHALL, FLUSHDB) from
every master. ClusterBackend stands where the harness's RedisServer stands
(host, port, client(), env(), log_tail())."""

from .resp import RespClient, RespError

__all__ = ["ClusterRespClient", "ClusterBackend", "key_slot"]

SLOTS = 16384


def _crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _bytes(k):
    return k if isinstance(k, bytes) else str(k).encode()


def key_slot(key):
    k = _bytes(key)
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return _crc16(k) % SLOTS


# command -> position of its first key (the one that picks the node)
_KEYLESS = {"PING", "ECHO", "INFO", "TIME", "CLIENT", "CONFIG", "CLUSTER",
            "COMMAND", "SCRIPT", "MULTI", "EXEC", "DISCARD", "SELECT",
            "AUTH", "HELLO", "SLOWLOG", "ROLE", "WAIT", "ACL", "MONITOR",
            "LASTSAVE", "DEBUG", "MEMORY", "LATENCY", "UNWATCH"}
_EVERY_MASTER = {"KEYS", "SCAN", "DBSIZE", "FLUSHALL", "FLUSHDB"}


def _first_key(args):
    name = str(args[0]).upper()
    if name in _KEYLESS or name in _EVERY_MASTER:
        return None
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL"):
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    if name in ("XREAD", "XREADGROUP"):
        skip = 4 if name == "XREADGROUP" else 1  # GROUP g c: not keywords
        up = [str(a).upper() for a in args[skip:]]
        return args[skip + up.index("STREAMS") + 1]
    if name in ("XGROUP", "XINFO", "OBJECT"):
        return args[2] if len(args) > 2 else None
    return args[1] if len(args) > 1 else None


class ClusterRespClient(RespClient):
    """Not thread-safe, as RespClient. host/port: any node (a seed)."""

    def __init__(self, host="127.0.0.1", port=6379, **kw):
        super().__init__(host, port, **kw)
        self._kw = kw
        self._nodes = {}   # (host, port) -> RespClient
        self._owner = {}   # slot -> (host, port)
        self._masters = []

    def __repr__(self):
        return "ClusterRespClient(%s:%d)" % (self.host, self.port)

    def _node(self, addr):
        c = self._nodes.get(addr)
        if c is None:
            c = RespClient(addr[0], addr[1], **self._kw)
            self._nodes[addr] = c
        return c

    def _refresh(self):
        last = None
        for addr in [(self.host, self.port)] + list(self._nodes):
            try:
                slots = self._node(addr).call("CLUSTER", "SLOTS")
            except (OSError, RespError) as e:
                last = e
                continue
            owner, masters = {}, []
            if not slots:
                last = "an empty map"
                continue
            for first, last_slot, master, *_ in slots:
                a = (master[0] or addr[0], int(master[1]))
                if a not in masters:
                    masters.append(a)
                for s in range(int(first), int(last_slot) + 1):
                    owner[s] = a
            self._owner, self._masters = owner, masters
            return
        raise ConnectionError("no cluster node answers CLUSTER SLOTS: %s"
                              % last)

    def _addr_for(self, args):
        if not self._owner:
            self._refresh()
        key = _first_key(args)
        if key is None:
            return self._masters[0]
        return self._owner[key_slot(key)]

    def close(self):
        for c in self._nodes.values():
            c.close()
        self._nodes = {}
        super().close()

    def _every_master(self, args, decode, timeout):
        self._refresh()
        name = str(args[0]).upper()
        replies = [self._node(a)._exchange([args if name != "SCAN" else
                                            ("SCAN", 0) + tuple(args[2:])],
                                           decode, timeout)[0]
                   for a in self._masters]
        for r in replies:
            if isinstance(r, RespError):
                return r
        if name == "KEYS":
            return [k for r in replies for k in r]
        if name == "SCAN":
            # every master's keys at once: a SCAN loop ends after one call
            keys = []
            for a in self._masters:
                cursor = 0
                while True:
                    cursor, got = self._node(a)._exchange(
                        [("SCAN", cursor) + tuple(args[2:])], decode,
                        timeout)[0]
                    keys += got
                    if str(cursor) == "0":
                        break
            return ["0", keys]
        if name == "DBSIZE":
            return sum(replies)
        return replies[0]

    def _one(self, args, decode, timeout):
        if str(args[0]).upper() in _EVERY_MASTER:
            return self._every_master(args, decode, timeout)
        addr = self._addr_for(args)
        asking = False
        for _ in range(100):
            node = self._node(addr)
            if not node.connected:
                try:  # not sent yet: safe to ask the map again and retry
                    node.connect()
                except OSError:
                    import time
                    time.sleep(0.1)
                    self._owner = {}
                    addr = self._addr_for(args)
                    continue
            cmds = [("ASKING",), args] if asking else [args]
            try:
                reply = node._exchange(cmds, decode, timeout)[-1]
            except ConnectionError:
                self._owner = {}
                raise
            asking = False
            if isinstance(reply, RespError):
                text = str(reply)
                if text.startswith(("MOVED ", "ASK ")):
                    kind, _slot, target = text.split(" ", 2)
                    host, port = target.rsplit(":", 1)
                    addr = (host or addr[0], int(port))
                    if kind == "MOVED":
                        self._owner = {}
                    else:
                        asking = True
                    continue
                if text.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                    import time
                    time.sleep(0.1)
                    self._owner = {}
                    addr = self._addr_for(args)
                    continue
            return reply
        raise RespError("too many redirections for %s" % (args[0],))

    def _exchange(self, commands, decode, timeout):
        commands = [tuple(c) for c in commands]
        if (len(commands) >= 2 and str(commands[0][0]).upper() == "MULTI"
                and str(commands[-1][0]).upper() == "EXEC"):
            return self._transaction(commands, decode, timeout)
        return [self._one(c, decode, timeout) for c in commands]

    def _transaction(self, commands, decode, timeout):
        """MULTI ... EXEC: on its slot's master when its keys share one;
        else one transaction per run of consecutive commands of one slot,
        in order (a record written before its entry stays before it), the
        replies put back as one EXEC's."""
        body = commands[1:-1]
        slots = [key_slot(k) if (k := _first_key(c)) is not None else None
                 for c in body]
        keyed = {s for s in slots if s is not None}
        if len(keyed) <= 1:
            first = next((c for c in body if _first_key(c) is not None),
                         commands[0])
            return self._node(self._addr_for(first))._exchange(
                commands, decode, timeout)
        replies = [None] * len(body)
        runs, start = [], 0
        for i in range(1, len(body) + 1):
            if i == len(body) or slots[i] != slots[start]:
                runs.append(list(range(start, i)))
                start = i
        for idx in runs:
            part = [("MULTI",)] + [body[i] for i in idx] + [("EXEC",)]
            got = self._transaction(part, decode, timeout)[-1]
            if isinstance(got, RespError):
                return ["OK"] + ["QUEUED"] * len(body) + [got]
            for i, r in zip(idx, got):
                replies[i] = r
        return ["OK"] + ["QUEUED"] * len(body) + [replies]


class ClusterBackend:
    """A RedisCluster where the harness expects a RedisServer: host and port
    of its first node, clients that route by slot, the by-framework
    variables of cluster mode."""

    def __init__(self, cluster):
        self.cluster = cluster

    @property
    def host(self):
        return self.cluster.nodes[0].host

    @property
    def port(self):
        return self.cluster.nodes[0].port

    def client(self, **kw):
        return ClusterRespClient(self.host, self.port, **kw)

    def env(self):
        return dict(self.cluster.env(), REDIS_HOST=self.host,
                    REDIS_PORT=str(self.port))

    def log_tail(self, lines=20):
        return "\n".join("%s:\n%s" % (n.addr, n.log_tail(lines))
                         for n in self.cluster.nodes)

    def stop(self):
        self.cluster.stop()

    def close(self):
        self.cluster.close()
