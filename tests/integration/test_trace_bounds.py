"""The trace writer's memory bound (supervisor/trace.h), beside what it
writes (test_trace.py): the spans kept between two flushes are capped by
trace.max_kept_spans, the rest dropped and counted on /metrics, so that a
slow Redis cannot grow bygated's memory, and no span is lost silently."""

import json
import re
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


def send_traces(c, keys, session, n):
    out = []
    for _ in range(n):
        tid = uuid.uuid4().hex
        mid, _ = pc.send(c, keys, session, "echo", "x", trace_id=tid)
        out.append((mid, tid))
    return out


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
