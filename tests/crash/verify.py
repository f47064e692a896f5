"""The end-of-run checks of the crash test (tests/crash/chaos.py): one
snapshot of everything Redis holds about the test's tasks, then the
guarantees of DESIGN 6 checked message by message, each failure naming the
message ids and what was seen for them (record, timeline, events, pending
entry)."""

import collections
import json
import re

from bglib.resp import RespError

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
DETAIL_LINES = 12

# lane: the task's metadata.lane ("" for none, the default lane)
Task = collections.namedtuple("Task", "session mid eid content lane",
                              defaults=("",))


class Check:
    """One numbered guarantee: ok, or failed with problems (a reason and,
    when it is about one message, that message), or skipped with a
    reason."""

    def __init__(self, number, title):
        self.number, self.title = number, title
        self.problems = []  # (why, Task or None)
        self.skipped = None
        self.note = ""

    @property
    def ok(self):
        return not self.problems

    def fail(self, why, task=None):
        self.problems.append((why, task))

    def status(self):
        if self.skipped:
            return "skipped (%s)" % self.skipped
        if self.ok:
            return "ok"
        kinds = collections.Counter(why for why, t in self.problems if t)
        return "FAILED (%d problems%s)" % (len(self.problems), "".join(
            "; %d x %s" % (n, why) for why, n in kinds.most_common(4)))

    def report(self, describe):
        """Lines for the summary: the verdict, then the first problems,
        each message shown through describe(task)."""
        lines = ["(%d) %s: %s%s" % (self.number, self.title, self.status(),
                                    " - " + self.note if self.note else "")]
        for why, task in self.problems[:DETAIL_LINES]:
            lines.append("      %s%s" % (why, ": " + describe(task)
                                         if task else ""))
        if len(self.problems) > DETAIL_LINES:
            lines.append("      ... and %d more"
                         % (len(self.problems) - DETAIL_LINES))
        return lines


def _group_info(client, stream, group):
    for g in client.call("XINFO", "GROUPS", stream) or []:
        info = dict(zip(g[::2], g[1::2]))
        if info.get("name") == group:
            return info
    return None


def group_progress(client, stream, group):
    """(entries read by the group, pending) from XINFO GROUPS, or None while
    the group does not exist; entries-read may be None (Redis cannot tell)."""
    try:
        info = _group_info(client, stream, group)
    except Exception:  # stream not created yet
        return None
    if info is None:
        return None
    read = info.get("entries-read")
    if read is None:
        # Redis cannot tell (entries deleted, or a replica promoted under
        # Cluster): the stream's length less what follows the group's
        # last-delivered id
        try:
            after = client.call("XRANGE", stream,
                                "(" + str(info["last-delivered-id"]), "+")
            read = client.call("XLEN", stream) - len(after or [])
        except Exception:
            return None
    return read, info.get("pending", 0)


class Snapshot:
    """What Redis holds after the run, indexed by message id."""

    def __init__(self, client, keys, tasks, stream, group):
        self.tasks = tasks
        self.stream, self.group = stream, group
        self.records = collections.defaultdict(list)  # mid -> [(eid, rec)]
        self.msg_map = {}                              # mid -> eid
        self.stray = []                                # (session, eid, mid)
        self.events = collections.defaultdict(list)   # mid -> [event dict]
        self.entry_of = {}                             # mid -> stream entry id
        self.pending = {}                              # entry id -> details
        self._read(client, keys)

    def _read(self, client, keys):
        mids = {t.mid for t in self.tasks}
        for session in sorted({t.session for t in self.tasks}):
            self._read_registry(client.hgetall(keys.registry(session)),
                                session, mids)
            for ev in client.stream_data(keys.data_stream(session)):
                if isinstance(ev, dict):
                    self.events[ev.get("message_id")].append(ev)
        for entry_id, fields in client.xrange(self.stream):
            try:
                head = json.loads(fields.get("data", ""))["header"]
                mid = head["message_id"]
            except (ValueError, KeyError, TypeError):
                continue
            self.entry_of.setdefault(mid, entry_id)
        self.group_info = _or(lambda: _group_info(
            client, self.stream, self.group), None) or {}
        self.stream_info = dict(_pairs(_or(lambda: client.call(
            "XINFO", "STREAM", self.stream), [])))
        self.pending_summary = _or(lambda: client.call(
            "XPENDING", self.stream, self.group), [0])
        for eid, consumer, idle, count in _or(lambda: client.call(
                "XPENDING", self.stream, self.group, "-", "+", 100000), []):
            self.pending[eid] = (consumer, idle, count)
        self.deadletters = client.stream_data(keys.deadletter())
        # the fleet's ready set of the stream (supervisor/ready.c): its
        # keys share the prefix <stream>:bygate_ready: (schema v1)
        self.ready = {}                                # key -> members
        for key in _or(lambda: _scan(client, self.stream +
                                     ":bygate_ready:*"), []):
            kind = client.call("TYPE", key)
            n = {"zset": "ZCARD", "set": "SCARD", "hash": "HLEN"}.get(kind)
            self.ready[key] = (kind, client.call(n, key) if n else None)

    def _read_registry(self, reg, session, mids):
        for field, value in reg.items():
            if field.startswith("msg_map:"):
                self.msg_map[field[len("msg_map:"):]] = value
            elif field.startswith("exec:"):
                try:
                    rec = json.loads(value)
                except ValueError:
                    rec = {"status": "<invalid JSON: %r>" % value[:80]}
                mid = rec.get("message_id") if isinstance(rec, dict) else None
                if mid in mids:
                    self.records[mid].append((field[len("exec:"):], rec))
                else:
                    self.stray.append((session, field[len("exec:"):], mid))

    # -- derived views ---------------------------------------------------

    def record(self, mid):
        """The message's record if it has exactly one, else None."""
        recs = self.records.get(mid, [])
        return recs[0][1] if len(recs) == 1 else None

    def event_types(self, mid):
        return [e.get("event_type") for e in self.events.get(mid, [])]

    def describe(self, task, log_text=""):
        """One line with everything seen for a message, and the last lines
        of bygated's log (log_text) that name it."""
        parts = ["%s (session %s, sent exec %s, stream entry %s)" % (
            task.mid, task.session, task.eid,
            self.entry_of.get(task.mid, "missing"))]
        recs = self.records.get(task.mid, [])
        if not recs:
            parts.append("no record")
        for eid, rec in recs:
            parts.append("record %s: status %s, timeline %s" % (
                eid, rec.get("status"), timeline_text(rec)))
            if rec.get("error_message"):
                parts.append("error %r" % str(rec["error_message"])[:120])
        parts.append("msg_map -> %s" % self.msg_map.get(task.mid, "missing"))
        parts.append("events %s" % (self.event_types(task.mid) or "none"))
        entry = self.entry_of.get(task.mid)
        if entry in self.pending:
            consumer, idle, count = self.pending[entry]
            parts.append("PENDING: consumer %s, idle %d ms, delivered %d"
                         % (consumer, idle, count))
        logged = [l.strip() for l in log_text.splitlines() if task.mid in l]
        if logged:
            parts.append("%d log lines, last: %s" % (
                len(logged), " | ".join(l[:200] for l in logged[-2:])))
        return "; ".join(parts)


class Describer:
    """describe(task) for the report: everything about a message the first
    time it is named, its id alone after that."""

    def __init__(self, snap, log_text=""):
        self.snap, self.log_text = snap, log_text
        self.shown = set()

    def __call__(self, task):
        if task.mid in self.shown:
            return "%s (details above)" % task.mid
        self.shown.add(task.mid)
        return self.snap.describe(task, self.log_text)


def _or(fn, default):
    """fn(), or default when Redis answers an error (no such stream or
    group: bygated never started)."""
    try:
        return fn()
    except RespError:
        return default


def _scan(client, pattern):
    keys, cursor = [], "0"
    while True:
        cursor, batch = client.call("SCAN", cursor, "MATCH", pattern,
                                    "COUNT", 1000)
        keys += batch
        if str(cursor) == "0":
            return sorted(set(keys))


def _pairs(flat):
    return zip(flat[::2], flat[1::2])


def timeline_text(rec):
    tl = rec.get("timeline")
    if not isinstance(tl, list):
        return "<no timeline>"
    return ">".join(str(e.get("status")) if isinstance(e, dict) else "?"
                    for e in tl)


# ---- the checks ------------------------------------------------------------

def check_records(snap):
    """(1) every message has exactly one execution record, the one the
    sender created (msg_map agrees), in a terminal status."""
    c = Check(1, "one terminal execution record per message")
    for t in snap.tasks:
        recs = snap.records.get(t.mid, [])
        if len(recs) != 1:
            c.fail("%d execution records" % len(recs), t)
        elif recs[0][0] != t.eid or recs[0][1].get("execution_id") != t.eid:
            c.fail("record is not the sender's execution", t)
        elif snap.msg_map.get(t.mid) != t.eid:
            c.fail("msg_map does not point at the sender's execution", t)
        elif recs[0][1].get("status") not in TERMINAL:
            c.fail("not terminal", t)
    for session, eid, mid in snap.stray:
        c.fail("stray record exec %s in session %s for unknown message %r"
               % (eid, session, mid))
    return c


def check_end_markers(snap):
    """(2) exactly one appStreamResponse per root message, and it is the
    message's last event."""
    c = Check(2, "one appStreamResponse per message, last")
    for t in snap.tasks:
        types = snap.event_types(t.mid)
        n = types.count("appStreamResponse")
        if n != 1:
            c.fail("%d appStreamResponse" % n, t)
        elif types[-1] != "appStreamResponse":
            c.fail("events after appStreamResponse", t)
    return c


def check_final_answers(snap):
    """(3) no finalAnswer twice; a COMPLETED sleep answers its content once."""
    c = Check(3, "finalAnswer never duplicated")
    for t in snap.tasks:
        finals = [e for e in snap.events.get(t.mid, [])
                  if e.get("event_type") == "finalAnswer"]
        rec = snap.record(t.mid) or {}
        if len(finals) > 1:
            c.fail("%d finalAnswer" % len(finals), t)
        elif rec.get("status") == "COMPLETED":
            if not finals:
                c.fail("COMPLETED without finalAnswer", t)
            elif _content(finals[0]) != t.content:
                c.fail("finalAnswer %r, sent %r" % (_content(finals[0]),
                                                     t.content), t)
    return c


def _content(event):
    try:
        return event["data"]["choices"][0]["delta"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


def _id_key(entry_id):
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() else (0, 0)


def check_group(snap):
    """(4) nothing pending, the group has read every entry (lag 0)."""
    c = Check(4, "consumer group drained")
    g, s = snap.group_info, snap.stream_info
    summary = snap.pending_summary or [0]
    if summary[0] != 0:
        c.fail("XPENDING summary: %d pending, per consumer %s"
               % (summary[0], summary[3] if len(summary) > 3 else "?"))
    by_entry = {snap.entry_of[t.mid]: t for t in snap.tasks
                if t.mid in snap.entry_of}
    for entry in sorted(snap.pending, key=_id_key):
        if entry in by_entry:
            c.fail("still pending", by_entry[entry])
        else:
            c.fail("pending entry %s (consumer, idle ms, deliveries %s) is "
                   "not one of the test's messages"
                   % (entry, snap.pending[entry]))
    if g.get("lag") is None:
        c.fail("XINFO GROUPS lag is nil: Redis cannot tell what was read")
    elif g.get("lag") != 0:
        c.fail("XINFO GROUPS lag %s (expected 0)" % g.get("lag"))
    added = s.get("entries-added")
    if g.get("entries-read") != added or added != len(snap.tasks):
        c.fail("entries-read %s, entries-added %s, tasks sent %d" % (
            g.get("entries-read"), added, len(snap.tasks)))
    return c


def check_timelines(snap):
    """(6) no record's timeline holds two terminal entries; a terminal
    record's timeline ends with its status."""
    c = Check(6, "at most one terminal entry per timeline")
    for t in snap.tasks:
        for _, rec in snap.records.get(t.mid, []):
            tl = rec.get("timeline") if isinstance(rec, dict) else None
            if not isinstance(tl, list):
                c.fail("timeline missing", t)
                continue
            states = [e.get("status") for e in tl if isinstance(e, dict)]
            n = sum(1 for st in states if st in TERMINAL)
            if n > 1:
                c.fail("%d terminal entries" % n, t)
            elif rec.get("status") in TERMINAL and (
                    not states or states[-1] != rec.get("status")):
                c.fail("timeline does not end with the status", t)
    return c


def check_handler_ran(snap):
    """(7) the handler ran: a task may only fail because a child running it
    was killed (the injected faults), never because the handler could not
    run at all (a run where every task FAILED passed checks 1-6)."""
    c = Check(7, "no task failed but by a killed child")
    for t in snap.tasks:
        rec = snap.record(t.mid)
        if isinstance(rec, dict) and rec.get("status") == "FAILED":
            msg = str(rec.get("error_message", ""))
            if "signal 9" not in msg:
                c.fail("FAILED: %s" % _error_kind(msg), t)
    return c


def check_lanes(snap):
    """(8) every lane's tasks completed: each task of each lane (its
    metadata.lane) has its one record COMPLETED, or FAILED by a killed
    child (7); every lane completed tasks; the ready set holds nothing
    (no lane's sorted set, no index entry: every parked entry was picked)."""
    c = Check(8, "every lane's tasks completed, ready set drained")
    lanes = collections.defaultdict(list)
    for t in snap.tasks:
        lanes[t.lane].append(t)
    notes = []
    for lane in sorted(lanes):
        done = failed = 0
        for t in lanes[lane]:
            rec = snap.record(t.mid) or {}
            st = rec.get("status")
            if st == "COMPLETED":
                done += 1
            elif st == "FAILED" and "signal 9" in str(
                    rec.get("error_message", "")):
                failed += 1
            else:
                c.fail("lane %r: task %s" % (lane, st or "without a "
                                             "single record"), t)
        if done == 0:
            c.fail("lane %r: none of its %d tasks completed"
                   % (lane, len(lanes[lane])))
        notes.append("%s %d/%d%s" % (lane or '""', done, len(lanes[lane]),
                                     " (+%d killed)" % failed if failed
                                     else ""))
    for key, (kind, n) in sorted(snap.ready.items()):
        if key.endswith(":lanes") or ":lane:" in key:
            if n:
                c.fail("ready set key %s (%s) still holds %s members"
                       % (key, kind, n))
    c.note = "completed per lane: " + ", ".join(notes)
    return c


def run_checks(snap):
    """The Redis-side checks (1, 2, 3, 4, 6, 7, 8) in order."""
    return [check_records(snap), check_end_markers(snap),
            check_final_answers(snap), check_group(snap),
            check_timelines(snap), check_handler_ran(snap),
            check_lanes(snap)]


def outcome_counts(snap):
    """{status: n} over the messages' single records, plus 'reruns': how
    many executions ran more than once (RUNNING twice in the timeline), and
    the commonest FAILED error messages."""
    counts = collections.Counter()
    errors = collections.Counter()
    reruns = 0
    for t in snap.tasks:
        rec = snap.record(t.mid)
        if rec is None:
            counts["no single record"] += 1
            continue
        counts[rec.get("status")] += 1
        if rec.get("status") == "FAILED":
            errors[_error_kind(rec.get("error_message", ""))] += 1
        tl = rec.get("timeline") or []
        if sum(1 for e in tl if isinstance(e, dict)
               and e.get("status") == "RUNNING") > 1:
            reruns += 1
    return counts, reruns, errors


def _error_kind(msg):
    """An error message with its numbers blanked, to group similar ones."""
    return re.sub(r"\d+", "N", str(msg))[:100]
