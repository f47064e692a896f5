"""The task event log (log.events_file, docs/operations.md "The event
log") and the commands that read it: `bygate events` (print, --follow
across rotation, --replay) and `bygate tail` of several sessions."""

import json
import os
import subprocess
import time

from harness import wait_until, timeout
import pyclient as pc
from test_client import ok

AGENT = "noop"


def events_conf(h, path, **log):
    conf = {"log": dict({"events_file": str(path)}, **log),
            "agent_types": [h.agent_type(AGENT)]}
    return conf


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def run_tasks(h, path, n, session="s-ev", **log):
    d = h.start_bygated(events_conf(h, path, **log))
    c = h.client()
    mids = pc.send_many(c, h.keys, session, AGENT, "x", n)
    wait_until(lambda: sum(1 for e in read_events(path)
                           if e["event"] == "ended") >= n,
               30, what="%d ended events in %s" % (n, path))
    return d, mids


@timeout(60)
def test_event_log_records_queued_started_ended_per_task(h):
    path = h.tmp / "events.jsonl"
    _, mids = run_tasks(h, path, 3)
    evs = read_events(path)
    for mid in mids:
        mine = [e for e in evs if e.get("message_id") == mid]
        assert [e["event"] for e in mine] == ["queued", "started", "ended"]
        end = mine[-1]
        assert end["status"] == "COMPLETED"
        assert end["agent_type"] == AGENT and end["session_id"] == "s-ev"
        assert end["worker_id"] == h.worker_id
        assert end["execution_id"] == mine[0]["execution_id"]
        assert end["total_ms"] >= end["queue_ms"] + end["run_ms"] - 1
        assert mine[1]["pid"] > 0 and mine[1]["attempt"] == 1
        assert all(e["ts_ms"] > 0 and e["ts"].endswith("Z") for e in mine)


@timeout(60)
def test_event_log_rotates_at_its_size_and_keeps_n_files(h):
    """A file already at the limit rotates at the first flush: file ->
    file.1 -> file.2, the oldest beyond events_keep dropped."""
    path = h.tmp / "ev.jsonl"
    filler = ('{"event":"filler"}\n' * 60000)  # > 1 MiB
    path.write_text(filler)
    (h.tmp / "ev.jsonl.1").write_text('{"event":"one"}\n')
    (h.tmp / "ev.jsonl.2").write_text('{"event":"two"}\n')
    d = h.start_bygated(events_conf(h, path, events_max_mb=1, events_keep=2))
    c = h.client()
    pc.send_many(c, h.keys, "s-rot", AGENT, "x", 2)
    def ended():
        evs = read_events(path) + read_events(str(path) + ".1")
        return sum(1 for e in evs if e["event"] == "ended") >= 2
    wait_until(ended, 30, what="2 ended events")
    assert read_events(str(path) + ".2") == [{"event": "one"}]
    assert not os.path.exists(str(path) + ".3")
    one = read_events(str(path) + ".1")
    assert one[0] == {"event": "filler"} and len(one) > 60000


@timeout(60)
def test_event_log_is_off_by_default(h):
    d = h.start_bygated({"agent_types": [h.agent_type(AGENT)]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-off", AGENT, "x")
    wait_until(lambda: (pc.record(c, h.keys, "s-off", mid) or {}).get(
        "status") == "COMPLETED", 20, what="the task to complete")
    assert not list(h.tmp.rglob("*.jsonl"))
