"""The task event log (log.events_file, docs/operations.md "The event
log") and the commands that read it: `bygate events` (print, --follow
across rotation, --replay) and `bygate tail` of several sessions."""

import json
import signal
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
def test_event_log_records_each_retry_and_the_failed_end(h):
    """A child killed twice with max_attempts 2: queued, started, retry,
    started, ended FAILED, with the attempts numbered."""
    path = h.tmp / "events.jsonl"
    h.start_bygated({"log": {"events_file": str(path)},
                     "agent_types": [h.agent_type(
                         "crashy", plugin="crash", max_attempts=2,
                         retry_backoff_ms=10)]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-retry", "crashy", "kill")
    wait_until(lambda: any(e["event"] == "ended" for e in read_events(path)),
               30, what="the task to end")
    mine = [e for e in read_events(path) if e.get("message_id") == mid]
    assert [e["event"] for e in mine] == [
        "queued", "started", "retry", "started", "ended"]
    assert [e.get("attempt") for e in mine[1:]] == [1, 2, 2, 2]
    assert mine[2]["error"]
    assert mine[-1]["status"].startswith("FAILED")  # +DEADLETTER: poison
    assert mine[-1]["error_code"] == "CHILD_DIED"
    text = ok(h.bygate("events", "--file", path)).stdout
    assert " retry " in text and "FAILED" in text

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


# ---- bygate events -----------------------------------------------------

def lines_of(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


@timeout(60)
def test_events_prints_one_readable_line_per_event(h):
    path = h.tmp / "events.jsonl"
    _, mids = run_tasks(h, path, 2)
    out = ok(h.bygate("events", "--file", path)).stdout.splitlines()
    assert len(out) == len(lines_of(path))
    ended = [l for l in out if " ended " in l]
    assert len(ended) == 2
    for mid in mids:
        line = next(l for l in ended if mid in l)
        assert AGENT in line and "COMPLETED" in line and "s-ev" in line
        assert "queue " in line and "run " in line and "total " in line


@timeout(60)
def test_events_reads_the_file_the_configuration_names(h):
    path = h.tmp / "events.jsonl"
    d, _ = run_tasks(h, path, 1)
    out = ok(h.bygate("-c", d.config_path, "events", "--jsonl")).stdout
    assert out.splitlines() == lines_of(path)


@timeout(30)
def test_events_without_a_configured_log_says_to_give_a_file(h):
    out = h.bygate("events")
    assert out.returncode == 2
    assert "log.events_file" in out.stderr and "--file" in out.stderr


@timeout(60)
def test_events_replay_at_speed_0_reproduces_the_sequence(h):
    path = h.tmp / "events.jsonl"
    run_tasks(h, path, 5)
    out = ok(h.bygate("events", "--replay", path, "--speed", "0",
                      "--jsonl")).stdout
    assert out.splitlines() == lines_of(path)


@timeout(30)
def test_events_replay_keeps_the_spacing_divided_by_the_speed(h):
    """Two events 3 s apart replayed at speed 2 take at least 1.5 s; at
    speed 0 they come at once (only the lower bound is asserted). A last
    line without its newline is an event too."""
    path = h.tmp / "spaced.jsonl"
    path.write_text('{"event":"queued","ts_ms":1000}\n'
                    '{"event":"ended","ts_ms":4000}')
    t0 = time.monotonic()
    out = ok(h.bygate("events", "--replay", path, "--speed", "2"))
    assert time.monotonic() - t0 >= 1.5
    assert [l.split()[1] for l in out.stdout.splitlines()] == [
        "queued", "ended"]
    bad = h.bygate("events", "--replay", path, "--speed", "-1")
    assert bad.returncode == 2 and "--speed" in bad.stderr


def follower(h, *args):
    outp = h.tmp / ("follow%d.out" % len(list(h.tmp.glob("follow*.out"))))
    p = h.spawn([h.bin("bygate"), "events", "--follow", "--jsonl", *args],
                label="bygate events -f", stdout=open(outp, "wb"))
    return p, outp


def followed(outp):
    with open(outp) as f:
        return [json.loads(l) for l in f if l.strip()]


@timeout(60)
def test_events_follow_sees_new_events(h):
    path = h.tmp / "events.jsonl"
    d = h.start_bygated(events_conf(h, path))
    p, outp = follower(h, "--file", path)
    c = h.client()
    mids = pc.send_many(c, h.keys, "s-f", AGENT, "x", 3)
    wait_until(lambda: {e.get("message_id") for e in followed(outp)
                        if e["event"] == "ended"} >= set(mids),
               30, what="the follower to print the 3 ended events")


@timeout(60)
def test_events_follow_goes_on_across_a_rotation(h):
    """The file is at its size: the first events written rotate it (file ->
    file.1); the follower reads the end of the old file, then the new."""
    path = h.tmp / "ev.jsonl"
    path.write_text('{"event":"filler"}\n' * 60000)
    p, outp = follower(h, "--file", path)
    wait_until(lambda: len(followed(outp)) == 10, 10,
               what="the follower's backlog of 10 events")
    d = h.start_bygated(events_conf(h, path, events_max_mb=1,
                                    events_keep=1))
    c = h.client()
    mids = pc.send_many(c, h.keys, "s-r", AGENT, "x", 3)
    wait_until(lambda: os.path.exists(str(path) + ".1"), 20,
               what="the rotation")
    mids2 = pc.send_many(c, h.keys, "s-r", AGENT, "x", 3)
    wait_until(lambda: {e.get("message_id") for e in followed(outp)
                        if e["event"] == "ended"} >= set(mids + mids2),
               30, what="the follower to print every ended event")
    assert not os.path.exists(str(path) + ".2")


# ---- bygate tail of several sessions -----------------------------------

@timeout(60)
def test_tail_of_two_sessions_names_the_session_on_each_line(h):
    h.start_bygated({"agent_types": [h.agent_type("echo")]})
    c = h.client()
    m1, _ = pc.send(c, h.keys, "s-one", "echo", "hello one")
    m2, _ = pc.send(c, h.keys, "s-two", "echo", "hello two")
    for s, m in (("s-one", m1), ("s-two", m2)):
        wait_until(lambda: (pc.record(c, h.keys, s, m) or {}).get(
            "status") == "COMPLETED", 20, what="%s to complete" % m)
    out = ok(h.bygate("tail", "--session", "s-one", "--session", "s-two"))
    lines = out.stdout.splitlines()
    assert any(l.startswith("s-one | ") and m1 in l for l in lines)
    assert any(l.startswith("s-two | ") and m2 in l for l in lines)
    assert all(l.startswith(("s-one | ", "s-two | ")) for l in lines)
    js = ok(h.bygate("tail", "--session", "s-one", "--session", "s-two",
                     "--jsonl")).stdout
    docs = [json.loads(l) for l in js.splitlines()]
    assert {d["session"] for d in docs} == {"s-one", "s-two"}
    assert {d["message_id"] for d in docs} >= {m1, m2}


@timeout(60)
def test_tail_follow_of_two_sessions_sees_new_entries_of_both(h):
    h.start_bygated({"agent_types": [h.agent_type("echo")]})
    outp = h.tmp / "tail.out"
    h.spawn([h.bin("bygate"), "tail", "--session", "s-a", "--session",
             "s-b", "-f", "--jsonl"], label="bygate tail -f",
            stdout=open(outp, "wb"))
    c = h.client()
    m1, _ = pc.send(c, h.keys, "s-a", "echo", "a")
    m2, _ = pc.send(c, h.keys, "s-b", "echo", "b")

    def seen():
        with open(outp) as f:
            docs = [json.loads(l) for l in f if l.strip()]
        return {(d["session"], d["message_id"]) for d in docs}
    wait_until(lambda: {("s-a", m1), ("s-b", m2)} <= seen(), 30,
               what="the follower to print entries of both sessions")


# ---- reload, reopen, errors ---------------------------------------------

def ended_mids(path):
    return {e.get("message_id") for e in read_events(path)
            if e["event"] == "ended"}


def complete(h, c, session, n=1):
    mids = pc.send_many(c, h.keys, session, AGENT, "x", n)
    for m in mids:
        wait_until(lambda: (pc.record(c, h.keys, session, m) or {}).get(
            "status") == "COMPLETED", 20, what="%s to complete" % m)
    return mids


@timeout(60)
def test_sighup_moves_the_event_log_to_a_new_path(h):
    a, b = h.tmp / "a.jsonl", h.tmp / "b.jsonl"
    d = h.start_bygated(events_conf(h, a))
    c = h.client()
    first = complete(h, c, "s-hup")
    wait_until(lambda: set(first) <= ended_mids(a), 10, what="in a")
    conf = open(d.config_path).read()
    with open(d.config_path, "w") as f:
        f.write(conf.replace(str(a), str(b)))
    mark = d.log_mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", timeout=10, since=mark)
    second = complete(h, c, "s-hup")
    wait_until(lambda: set(second) <= ended_mids(b), 10, what="in b")
    assert not set(second) & ended_mids(a)


@timeout(60)
def test_sigusr1_reopens_the_event_log_after_it_was_moved(h):
    path = h.tmp / "ev.jsonl"
    d = h.start_bygated(events_conf(h, path))
    c = h.client()
    first = complete(h, c, "s-usr1")
    wait_until(lambda: set(first) <= ended_mids(path), 10, what="logged")
    os.rename(path, str(path) + ".old")
    mark = d.log_mark()
    d.signal(signal.SIGUSR1)
    d.wait_log("log reopened", timeout=10, since=mark)
    second = complete(h, c, "s-usr1")
    wait_until(lambda: set(second) <= ended_mids(path), 10,
               what="the new file")
    assert ended_mids(str(path) + ".old") == set(first)


@timeout(60)
def test_a_failing_event_log_is_logged_once_and_tasks_go_on(h):
    """/dev/full takes the open and refuses every write (ENOSPC)."""
    d = h.start_bygated(events_conf(h, "/dev/full"))
    c = h.client()
    for i in range(3):
        complete(h, c, "s-full", 2)
        time.sleep(0.05)  # separate loop turns, so separate writes
    text = d.log_text()
    assert text.count("event log /dev/full: write() failed") == 1, text
