"""How bygated's trace writer (supervisor/trace.h) batches and bounds its
writes, beside what it writes (test_trace.py): every trace of a flush and
the flush's index ZADDs and EXPIREs go in one script call (a few when a
flush is large), not a call per trace and commands per index key; and the
spans kept between two flushes are capped by trace.max_kept_spans, the
rest dropped and counted on /metrics, so that a slow Redis cannot grow
bygated's memory."""

import json
import re
import threading
import time
import uuid

from bglib import proc
from harness import wait_until
import pyclient as pc
from test_http import request

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300}


def start(h, **trace):
    port = proc.free_port()
    d = h.start_bygated({"pool": {"size": 3}, "worker": dict(FAST),
                         "http": {"port": port},
                         "trace": trace,
                         "agent_types": [h.agent_type("echo")]})
    d.http_port = port
    return d


def counter(d, name):
    body = request(d, "/metrics")[2]
    m = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
    assert m, name
    return float(m.group(1))


def finish_all(c, keys, session, mids):
    for mid in mids:
        wait_until(lambda: (pc.record(c, keys, session, mid) or {})
                   .get("status") == "COMPLETED", 20,
                   what="%s completed" % mid)


def spans(c, keys, trace_id):
    return [json.loads(x) for x in
            c.call("LRANGE", keys.trace_spans(trace_id), 0, -1)]


def monitor(h):
    """MONITOR lines collected by a thread: (lines, stop event)."""
    m = h.client()
    assert m.call("MONITOR") == "OK"
    lines, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                lines.append(m._reader.read(True))
            except Exception:
                return
    threading.Thread(target=read, daemon=True).start()
    return lines, stop


def send_traces(c, keys, session, n):
    out = []
    for _ in range(n):
        tid = uuid.uuid4().hex
        mid, _ = pc.send(c, keys, session, "echo", "x", trace_id=tid)
        out.append((mid, tid))
    return out


def test_the_traces_and_indexes_of_a_flush_go_in_one_script_call(h):
    """30 traces finished within one flush period: their spans, meta
    hashes and index entries are written by a few script calls (one per
    flush), the index ZADDs and EXPIREs inside them, never a call per
    trace nor a top-level command per index key."""
    start(h, flush_ms=1000)
    c = h.client()
    lines, stop = monitor(h)
    sent = send_traces(c, h.keys, "s-batch", 30)
    finish_all(c, h.keys, "s-batch", [m for m, _ in sent])
    for _, tid in sent:
        wait_until(lambda: len(spans(c, h.keys, tid)) == 1, 15,
                   what="the span of trace " + tid)
    index = h.keys.trace_index("session", "s-batch")
    wait_until(lambda: c.call("ZCARD", index) == 30, 10, what="30 indexed")
    wait_until(lambda: any('"EXPIRE"' in x and index in x for x in lines),
               10, what="MONITOR line of the index EXPIRE")
    time.sleep(0.3)
    stop.set()
    calls = [x for x in lines if ('"EVAL"' in x or '"EVALSHA"' in x) and
             any(h.keys.trace_meta(t) in x for _, t in sent)]
    assert 1 <= len(calls) <= 4, len(calls)
    index_cmds = [x for x in lines if index in x and
                  ('"ZADD"' in x or '"EXPIRE"' in x)]
    assert index_cmds and all("lua]" in x for x in index_cmds)
    # one ZADD and one EXPIRE of the index key per call that held traces
    assert len(index_cmds) <= 2 * len(calls)


def test_spans_over_the_kept_cap_are_dropped_and_counted(h):
    """trace.max_kept_spans = 5 and flushes 4 s apart: of 12 traces that
    end between two flushes at most 5 items are kept and written, the
    other spans are counted on bygate_trace_spans_dropped_total, and
    every span is either written or counted dropped."""
    d = start(h, flush_ms=4000, max_kept_spans=5)
    c = h.client()
    # one trace first: when its span lands a flush has just run, so the
    # next 12 end well before the next one
    (mid, tid), = send_traces(c, h.keys, "s-cap", 1)
    finish_all(c, h.keys, "s-cap", [mid])
    wait_until(lambda: spans(c, h.keys, tid), 15, what="the first flush")
    written0 = counter(d, "bygate_trace_spans_written_total")
    dropped0 = counter(d, "bygate_trace_spans_dropped_total")
    sent = send_traces(c, h.keys, "s-cap", 12)
    finish_all(c, h.keys, "s-cap", [m for m, _ in sent])
    dropped = counter(d, "bygate_trace_spans_dropped_total") - dropped0
    assert dropped >= 12 - 5
    wait_until(lambda: counter(d, "bygate_trace_spans_written_total") >
               written0, 15, what="the next flush")
    written = counter(d, "bygate_trace_spans_written_total") - written0
    assert written + dropped == 12
    landed = sum(1 for _, t in sent if spans(c, h.keys, t))
    assert landed == written <= 5
