#!/usr/bin/env python3
"""Redis's side of bygated's trace writes alone, without bygated: N
synthetic traces (one worker.execute span each, of the size a noop task
writes, and a root end, over 100 sessions, one worker and one agent type)
written as a flush writes them, in flushes of F traces, to a fresh
redis-server; prints Redis CPU (used_cpu_sys + used_cpu_user) per trace
and the script's commandstats.

    python3 bench/trace_write.py [--traces 20000] [--flush 800] [--repeat 3]
        [--batched [--max-traces 128] [--max-args 4096]] [--check]

By default the script of supervisor/trace.c (--script another tree's),
as bygated sends it: one EVALSHA per trace (KEYS meta, spans; ARGV ttl,
13 fields, spans), then ZADD LT + EXPIRE per index key, one pipeline per
flush. --batched: the experiment kept here (BATCHED_LUA), one script
call for up to --max-traces traces / --max-args arguments, the index
ZADDs and EXPIREs inside the calls. --check: write the same traces twice
(the second time with an earlier start and a later end, as a second
writer would) both ways and compare every key, type, value and TTL (exit
1 on a difference)."""
import argparse
import ast
import json
import pathlib
import re
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bglib.redisserver import RedisServer  # noqa: E402

TTL = "900"

# The experiment: one script call for many traces and the index keys, as
# records "t" (a trace: KEYS meta, spans; ARGV "t", the 13 fields of the
# per-trace script, n, n spans) and "z" (an index key: KEYS key; ARGV "z",
# n, "1" to EXPIRE after, n pairs score, trace id) after ARGV[1] = TTL.
BATCHED_LUA = (
    
'local ttl, a, k = ARGV[1], 2, 1\n'
    "local function n(x) return tonumber(x or '') or 0 end\n"
    "local function i(x) return string.format('%.0f', x) end\n"
    'while a <= #ARGV do\n'
    " if ARGV[a] == 't' then\n"
    '  local m, sp = KEYS[k], KEYS[k + 1]\n'
    '  k = k + 2\n'
    "  local h = redis.call('HMGET', m, 'start_ts', 'updated_at', 'end_ts')\n"
    '  local st, had = n(ARGV[a + 4]), n(h[1])\n'
    '  if had > 0 and (st <= 0 or had < st) then st = had end\n'
    "  local f = {'trace_id', ARGV[a + 1], 'start_ts', i(st), 'updated_at',\n"
    '    i(math.max(n(ARGV[a + 5]), n(h[2])))}\n'
    "  if ARGV[a + 2] ~= '' then\n"
    "    f[#f + 1] = 'session_id'; f[#f + 1] = ARGV[a + 2] end\n"
    "  if ARGV[a + 6] == '1' then\n"
    "    for _, x in ipairs({'status', ARGV[a + 7], 'end_ts', ARGV[a + 8],\n"
    "      'metadata', ARGV[a + 10]}) do f[#f + 1] = x end\n"
    "    if ARGV[a + 9] ~= '' then\n"
    "      f[#f + 1] = 'output'; f[#f + 1] = ARGV[a + 9] end\n"
    "  elseif ARGV[a + 3] ~= '' and not h[3] then\n"
    "    f[#f + 1] = 'status'; f[#f + 1] = ARGV[a + 3] end\n"
    "  redis.call('HSET', m, unpack(f))\n"
    "  if ARGV[a + 11] ~= '' then\n"
    "    redis.call('HSETNX', m, 'name', ARGV[a + 11])\n"
    "    redis.call('HSETNX', m, 'root_agent_type', ARGV[a + 12])\n"
    "    redis.call('HSETNX', m, 'root_message_id', ARGV[a + 13]) end\n"
    '  local ns = n(ARGV[a + 14])\n'
    '  for c = 0, ns - 1, 1000 do\n'
    "    redis.call('RPUSH', sp, unpack(ARGV, a + 15 + c,\n"
    '      a + 14 + math.min(c + 1000, ns))) end\n'
    "  if ns > 0 then redis.call('EXPIRE', sp, ttl) end\n"
    "  redis.call('EXPIRE', m, ttl)\n"
    '  a = a + 15 + ns\n'
    " elseif ARGV[a] == 'z' then\n"
    '  local key, nm, b = KEYS[k], n(ARGV[a + 1]), a + 3\n'
    '  k = k + 1\n'
    '  for c = 0, nm - 1, 256 do\n'
    "    redis.call('ZADD', key, 'LT', unpack(ARGV, b + 2 * c,\n"
    '      b + 2 * math.min(c + 256, nm) - 1)) end\n'
    "  if ARGV[a + 2] == '1' then redis.call('EXPIRE', key, ttl) end\n"
    '  a = b + 2 * nm\n'
    " else return redis.error_reply('bad trace record at ' .. a) end\n"
    'end\n'
    'return k - 1\n')
CALL_MAX_ARGS, CALL_MAX_TRACES = 4096, 128


def lua_of(path):
    """The flush_lua C string literal of a trace.c, as Python text."""
    text = pathlib.Path(path).read_text()
    m = re.search(r"static const char flush_lua\[\] =(.*?);\n", text, re.S)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    return "".join(ast.literal_eval('"%s"' % p) for p in parts)


def trace(i, t0):
    tid = "%032x" % (0x5EED0000 + i)
    sess = "bench-s%d" % (i % 100)
    span = json.dumps({
        "trace_id": tid, "span_id": "e%031x:worker.execute" % i,
        "parent_span_id": "m%031x:client.dispatch" % i,
        "operation": "worker.execute", "component": "worker",
        "start_ts": t0 + i, "end_ts": t0 + i + 3, "duration_ms": 3,
        "status": "COMPLETED", "name": "worker.execute", "source": "redis",
        "tokens": {}, "cost": {}, "session_id": sess,
        "execution_id": "e%031x" % i, "message_id": "m%031x" % i,
        "worker_id": "bench-w1", "target_agent_type": "noop",
        "retryable": False, "queue_wait_ms": 0, "chunk_count": 0,
        "metadata": {}}, separators=(",", ":"))
    return {"id": tid, "session": sess, "start": t0 + i, "end": t0 + i + 3,
            "span": span}


def index_entries(traces):
    idx = {}
    for t in traces:
        for key in ("by_framework:trace:idx:session:" + t["session"],
                    "by_framework:trace:idx:worker:bench-w1",
                    "by_framework:trace:idx:agent:noop"):
            idx.setdefault(key, []).append((str(t["start"]), t["id"]))
    return idx


def fields(t):
    return [t["id"], t["session"], "COMPLETED", str(t["start"]),
            str(t["end"]), "1", "COMPLETED", str(t["end"]), '"ok"', "{}",
            "", "", ""]


def per_trace_flush(c, sha, traces):
    cmds = [("EVALSHA", sha, "2", "by_framework:trace:" + t["id"],
             "by_framework:trace:spans:" + t["id"], TTL, *fields(t),
             t["span"]) for t in traces]
    for key, members in sorted(index_entries(traces).items()):
        for k in range(0, len(members), 256):
            cmds.append(("ZADD", key, "LT", *[x for m in members[k:k + 256]
                                              for x in m]))
        cmds.append(("EXPIRE", key, TTL))
    c.pipeline(cmds)


def batched_flush(c, sha, traces):
    calls, keys, args, n = [], [], [TTL], 0

    def send():
        nonlocal keys, args, n
        if len(args) > 1:
            calls.append(("EVALSHA", sha, str(len(keys)), *keys, *args))
        keys, args, n = [], [TTL], 0
    for t in traces:
        if n >= CALL_MAX_TRACES or (n and len(keys) + len(args) + 18 >
                                    CALL_MAX_ARGS):
            send()
        keys += ["by_framework:trace:" + t["id"],
                 "by_framework:trace:spans:" + t["id"]]
        args += ["t", *fields(t), "1", t["span"]]
        n += 1
    for key, members in sorted(index_entries(traces).items()):
        i = 0
        while i < len(members):
            if len(keys) + len(args) + 6 > CALL_MAX_ARGS:
                send()
            room = (CALL_MAX_ARGS - len(keys) - len(args) - 4) // 2
            part = members[i:i + room]
            keys.append(key)
            args += ["z", str(len(part)),
                     "1" if i + len(part) == len(members) else "0",
                     *[x for m in part for x in m]]
            i += len(part)
    send()
    c.pipeline(calls)


def cpu(c):
    info = c.call("INFO", "cpu", decode="utf-8")
    d = dict(line.split(":", 1) for line in info.splitlines()
             if ":" in line)
    return float(d["used_cpu_sys"]) + float(d["used_cpu_user"])


def one(a, lua):
    r = RedisServer(label="redis-server (trace_write)")
    r.start()
    try:
        c = r.client(timeout=60.0)
        sha = c.call("SCRIPT", "LOAD", lua, decode="utf-8")
        c.call("CONFIG", "RESETSTAT")
        traces = [trace(i, 1_800_000_000_000) for i in range(a.traces)]
        flush = batched_flush if a.batched else per_trace_flush
        c0 = cpu(c)
        for k in range(0, len(traces), a.flush):
            flush(c, sha, traces[k:k + a.flush])
        c1 = cpu(c)
        keys = c.call("DBSIZE")
        stats = c.call("INFO", "commandstats", decode="utf-8")
        ev = re.search(r"cmdstat_evalsha:calls=(\d+),usec=(\d+)", stats)
        c.close()
        return {"us_per_trace": (c1 - c0) * 1e6 / a.traces, "keys": keys,
                "evalsha_calls": int(ev.group(1)),
                "evalsha_us_per_trace": int(ev.group(2)) / a.traces}
    finally:
        r.stop()
        r.close()


def state(lua, per_trace, n, flush):
    """Every key of a fresh Redis after writing n traces twice."""
    r = RedisServer(label="redis-server (trace_write check)")
    r.start()
    try:
        c = r.client(timeout=60.0)
        sha = c.call("SCRIPT", "LOAD", lua, decode="utf-8")
        write = per_trace_flush if per_trace else batched_flush
        first = [trace(i, 1_800_000_000_000) for i in range(n)]
        again = [dict(t, start=t["start"] - 5, end=t["end"] + 7)
                 for t in first]
        for ts in (first, again):
            for k in range(0, n, flush):
                write(c, sha, ts[k:k + flush])
        out = []
        for key in sorted(c.call("KEYS", "*", decode="utf-8")):
            typ = c.call("TYPE", key, decode="utf-8")
            if typ == "hash":
                v = c.call("HGETALL", key, decode="utf-8")
                v = sorted(zip(v[::2], v[1::2]))
            elif typ == "list":
                v = c.call("LRANGE", key, 0, -1, decode="utf-8")
            else:
                v = c.call("ZRANGE", key, 0, -1, "WITHSCORES",
                           decode="utf-8")
            out.append((key, typ, v, c.call("TTL", key)))
        c.close()
        return out
    finally:
        r.stop()
        r.close()


def check(a):
    old = state(lua_of(a.script), True, a.traces, a.flush)
    new = state(BATCHED_LUA, False, a.traces, a.flush)
    same = [x[:3] for x in old] == [y[:3] for y in new]
    ttls = all(int(TTL) - 10 <= x[3] <= int(TTL) for x in old + new)
    print("%d keys each; values %s; TTLs %s" % (
        len(old), "identical" if same else "DIFFER",
        "within 10 s of %s" % TTL if ttls else "DIFFER"))
    return 0 if same and ttls and old else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=20000)
    ap.add_argument("--flush", type=int, default=800,
                    help="traces per flush (200 ms at 4,000 tasks/s)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--script", default=str(ROOT / "supervisor/trace.c"))
    ap.add_argument("--batched", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--max-traces", type=int, default=CALL_MAX_TRACES,
                    help="traces per call at most (batched)")
    ap.add_argument("--max-args", type=int, default=CALL_MAX_ARGS,
                    help="arguments per call at most (batched)")
    a = ap.parse_args()
    globals().update(CALL_MAX_TRACES=a.max_traces, CALL_MAX_ARGS=a.max_args)
    if a.check:
        return check(a)
    lua = BATCHED_LUA if a.batched else lua_of(a.script)
    runs = [one(a, lua) for _ in range(a.repeat)]
    for r in runs:
        print("Redis CPU %.1f us/trace, EVALSHA %.1f us/trace in %d calls, "
              "%d keys" % (r["us_per_trace"], r["evalsha_us_per_trace"],
                           r["evalsha_calls"], r["keys"]))
    print("median Redis CPU %.1f us/trace"
          % statistics.median(r["us_per_trace"] for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
