"""bygate triggers (docs/client.md "Triggers"): the table and --json of the
fleet's trigger state, pause and resume as durable hash fields, refusals
of names no bygated published, and manual fires answered by a fake
bygated (a thread doing what bygated's poll does with fire_requests) or by
nobody (the timeout). The Redis layout is seeded directly: it is the
contract between bygated and the CLI (include/bygate/client.h)."""

import json
import re
import threading
import time

from harness import wait_until
from bglib.keys import Keys
from test_client import bygate_json, ok


def trigger_keys(schema):
    """wire/keys.h BG_KEY_TRIGGERS, BG_KEY_TRIGGER, BG_KEY_TRIGGER_ACTIVE."""
    k = Keys(schema)
    return k.triggers(), k.trigger, k.trigger_active


NAMES, TRIGGER, ACTIVE = trigger_keys("v1")


def now_ms():
    return int(time.time() * 1000)


def seed(c, keys=(NAMES, TRIGGER, ACTIVE)):
    """nightly (every 30s, one run active), report (cron), github
    (webhook), bare (a name only); returns the time the seed used."""
    names, trigger, active = keys
    t = now_ms()
    c.call("SADD", names, "nightly", "report", "github", "bare")
    c.call("HSET", trigger("nightly"), "def", json.dumps({
        "name": "nightly", "kind": "timer", "agent_type": "reports",
        "every_ms": 30000, "max_running": 1, "missed": "skip",
        "session": ""}), "def_by", "w1", "def_at_ms", t - 5000,
        "next_ms", t + 12000, "claimed_ms", t - 18000,
        "last_fire_ms", t - 3725000, "last_message_id", "msg-11112222",
        "last_execution_id", "exec-1", "last_session_id",
        "trigger-nightly-1", "last_outcome", "fired", "fires", 12,
        "skipped_running", 2, "skipped_paused", 0, "missed", 1,
        "duplicates", 4)
    c.call("ZADD", active("nightly"), t - 18000, "trigger-nightly-1\texec-1")
    c.call("HSET", trigger("report"), "def", json.dumps({
        "name": "report", "kind": "timer", "agent_type": "reports",
        "cron": "0 6 * * mon-fri", "max_running": 0, "missed": "run_once",
        "session": "reports"}))
    c.call("HSET", trigger("github"), "def", json.dumps({
        "name": "github", "kind": "webhook", "agent_type": "triage",
        "max_running": 4, "path": "/hooks/github"}),
        "last_outcome", "skipped_running", "skipped_running", 7)
    return t


class FakeBygated:
    """What bygated's poll does with manual fires: every request above
    fire_done gets manual:<n> = answer(n), then fire_done = n."""

    def __init__(self, h, name, answer, delay=0.0):
        self.c = h.client()
        self.key = TRIGGER(name)
        self.answer = answer
        self.delay = delay
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.02):
            asked, done = self.c.call("HMGET", self.key, "fire_requests",
                                      "fire_done")
            for n in range(int(done or 0) + 1, int(asked or 0) + 1):
                time.sleep(self.delay)
                self.c.call("HSET", self.key, "manual:%d" % n,
                            self.answer(n), "fire_done", n)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def rows(text):
    """The table as [header, row...], each a list of its cells (cells are
    two spaces apart; a cell never holds two spaces)."""
    return [[cell.strip() for cell in line.split("  ") if cell.strip()]
            for line in text.splitlines()]


# ---- list ------------------------------------------------------------------

def test_list_shows_every_published_trigger_sorted_with_its_state(h):
    seed(h.client())
    out = ok(h.bygate("triggers"))
    table = rows(out.stdout)
    assert table[0] == ["NAME", "KIND", "AGENT_TYPE", "SCHEDULE", "NEXT",
                        "LAST_FIRE", "LAST_OUTCOME", "ACTIVE", "PAUSED",
                        "FIRES", "SKIPPED"]
    assert [r[0] for r in table[1:]] == ["bare", "github", "nightly", "report"]
    by_name = {r[0]: r for r in table[1:]}
    assert by_name["bare"] == ["bare", "-", "-", "-", "-", "-", "-", "0",
                               "no", "0", "0"]
    assert by_name["github"] == ["github", "webhook", "triage",
                                 "POST /hooks/github", "-", "-",
                                 "skipped_running", "0/4", "no", "0", "7"]
    nightly = by_name["nightly"]
    assert nightly[:4] == ["nightly", "timer", "reports", "every 30s"]
    assert re.fullmatch(r"in \d+s", nightly[4]), nightly  # 12 s ahead
    assert re.fullmatch(r"1h[23]m ago", nightly[5]), nightly  # 1h2m5s ago
    # skipped: 2 while running + 0 paused + 1 missed
    assert nightly[6:] == ["fired", "1/1", "no", "12", "3"]
    assert by_name["report"][3] == "0 6 * * mon-fri"
    assert by_name["report"][7] == "0"  # no cap: the count alone


def test_list_as_json_carries_the_definition_and_the_state(h):
    t = seed(h.client())
    doc = bygate_json(h, "triggers", "list")
    assert [d["name"] for d in doc] == ["bare", "github", "nightly", "report"]
    n = doc[2]
    assert n == {
        "name": "nightly", "kind": "timer", "agent_type": "reports",
        "schedule": "every 30s", "every_ms": 30000, "cron": None,
        "path": None, "max_running": 1, "missed": "skip", "session": "",
        "def_by": "w1", "def_at_ms": t - 5000, "paused": False,
        "paused_at_ms": None, "paused_by": "", "next_ms": t + 12000,
        "claimed_ms": t - 18000, "last_fire_ms": t - 3725000,
        "last_message_id": "msg-11112222", "last_execution_id": "exec-1",
        "last_session_id": "trigger-nightly-1", "last_outcome": "fired",
        "counts": {"fires": 12, "skipped_running": 2, "skipped_paused": 0,
                   "missed": 1, "duplicates": 4},
        "fire_requests": 0, "fire_done": 0, "active": 1}
    assert doc[3]["cron"] == "0 6 * * mon-fri" and doc[3]["every_ms"] is None
    assert doc[3]["missed"] == "run_once" and doc[3]["session"] == "reports"
    assert doc[1]["path"] == "/hooks/github" and doc[1]["kind"] == "webhook"
    assert doc[0]["kind"] == "" and doc[0]["next_ms"] is None


def test_list_reads_a_malformed_definition_as_absent(h):
    c = h.client()
    c.call("SADD", NAMES, "odd", "")  # "" names no trigger
    c.call("HSET", TRIGGER("odd"), "def", "not json", "fires", "many",
           "paused", "1", "last_outcome", "fired\x1b[2J")
    doc = bygate_json(h, "triggers")
    assert [d["name"] for d in doc] == ["odd"]
    assert (doc[0]["kind"], doc[0]["counts"]["fires"], doc[0]["paused"]) == (
        "", 0, True)
    out = ok(h.bygate("triggers"))
    assert "\x1b" not in out.stdout and "fired?[2J" in out.stdout


def test_list_with_no_trigger_says_so(h):
    out = ok(h.bygate("triggers"))
    assert out.stdout.splitlines()[1].startswith("(no trigger published")
    assert bygate_json(h, "triggers") == []


def test_list_under_the_v2_key_schema(h):
    seed(h.client(), trigger_keys("v2"))
    doc = bygate_json(h, "triggers",
                      env=h.env(REDIS_KEY_SCHEMA_VERSION="v2"))
    assert [d["name"] for d in doc] == ["bare", "github", "nightly", "report"]
    assert doc[2]["active"] == 1 and doc[2]["counts"]["fires"] == 12


# ---- pause, resume ---------------------------------------------------------

def test_pause_and_resume_are_durable_fields_of_the_trigger(h):
    c = h.client()
    seed(c)
    before = now_ms()
    out = ok(h.bygate("triggers", "pause", "nightly"))
    assert out.stdout == "nightly: paused for the fleet\n"
    state = c.hgetall(TRIGGER("nightly"))
    assert state["paused"] == "1"
    assert before <= int(state["paused_at_ms"]) <= now_ms()
    assert state["paused_by"].startswith("bygate:")
    assert state["fires"] == "12" and state["last_outcome"] == "fired"
    table = {r[0]: r for r in rows(ok(h.bygate("triggers")).stdout)}
    assert table["nightly"][8] == "yes" and table["github"][8] == "no"

    doc = bygate_json(h, "triggers", "resume", "nightly")
    assert doc["trigger"] == "nightly" and doc["paused"] is False
    state = c.hgetall(TRIGGER("nightly"))
    assert state["paused"] == "0"
    assert "paused_at_ms" not in state and "paused_by" not in state
    assert state["fires"] == "12"
    assert bygate_json(h, "triggers")[2]["paused"] is False


def test_pausing_twice_keeps_the_trigger_paused(h):
    c = h.client()
    seed(c)
    ok(h.bygate("triggers", "pause", "github"))
    doc = bygate_json(h, "triggers", "pause", "github")
    assert doc["paused"] is True
    assert c.call("HGET", TRIGGER("github"), "paused") == "1"


def test_pause_under_the_v2_key_schema(h):
    keys = trigger_keys("v2")
    c = h.client()
    seed(c, keys)
    ok(h.bygate("triggers", "pause", "report",
                env=h.env(REDIS_KEY_SCHEMA_VERSION="v2")))
    assert c.call("HGET", keys[1]("report"), "paused") == "1"
    assert c.call("EXISTS", TRIGGER("report")) == 0


# ---- unknown names ---------------------------------------------------------

def test_an_unknown_name_is_refused_and_nothing_is_written(h):
    c = h.client()
    seed(c)
    for args in (("pause", "nope"), ("resume", "nope"), ("fire", "nope")):
        out = h.bygate("triggers", *args)
        assert out.returncode == 1, out
        assert 'no trigger named "nope"' in out.stderr
        assert "bygate triggers" in out.stderr
        assert out.stdout == ""
    assert c.call("EXISTS", TRIGGER("nope")) == 0
    assert c.call("HGET", TRIGGER("nightly"), "fire_requests") is None


def test_a_hash_without_its_name_in_the_set_is_unknown(h):
    c = h.client()
    c.call("HSET", TRIGGER("stale"), "def", "{}")
    out = h.bygate("triggers", "pause", "stale")
    assert out.returncode == 1 and 'no trigger named "stale"' in out.stderr
    assert c.call("HGET", TRIGGER("stale"), "paused") is None


# ---- fire ------------------------------------------------------------------

def test_fire_prints_the_message_id_a_bygated_answered(h):
    c = h.client()
    seed(c)
    with FakeBygated(h, "nightly", lambda n: "fired msg-%08d" % n):
        out = ok(h.bygate("triggers", "fire", "nightly"))
    assert out.stdout == "msg-00000001\n" and out.stderr == ""
    state = c.hgetall(TRIGGER("nightly"))
    assert (state["fire_requests"], state["fire_done"]) == ("1", "1")


def test_each_fire_is_its_own_request(h):
    seed(h.client())
    with FakeBygated(h, "nightly", lambda n: "fired msg-%08d" % n):
        first = bygate_json(h, "triggers", "fire", "nightly")
        second = bygate_json(h, "triggers", "fire", "nightly")
    assert first == {"trigger": "nightly", "request": 1, "outcome": "fired",
                     "message_id": "msg-00000001", "error": ""}
    assert (second["request"], second["message_id"]) == (2, "msg-00000002")


def test_fire_waits_for_a_slow_answer_within_its_timeout(h):
    seed(h.client())
    with FakeBygated(h, "nightly", lambda n: "fired msg-slow", delay=0.5):
        out = ok(h.bygate("triggers", "fire", "nightly",
                          "--timeout-ms", "5000"))
    assert out.stdout == "msg-slow\n"


def test_a_skipped_fire_says_why_and_exits_1(h):
    seed(h.client())
    with FakeBygated(h, "nightly", lambda n: "skipped_running"):
        out = h.bygate("triggers", "fire", "nightly")
        doc = bygate_json(h, "triggers", "fire", "nightly", code=1)
    assert out.returncode == 1 and out.stdout == ""
    assert "nightly: not fired: skipped_running" in out.stderr
    assert "max_running" in out.stderr
    assert (doc["outcome"], doc["message_id"], doc["request"]) == (
        "skipped_running", "", 2)
    with FakeBygated(h, "github", lambda n: "skipped_paused"):
        out = h.bygate("triggers", "fire", "github")
    assert out.returncode == 1
    assert "github: not fired: skipped_paused" in out.stderr
    assert "triggers resume" in out.stderr


def test_an_error_answer_is_shown_and_exits_1(h):
    seed(h.client())
    with FakeBygated(h, "report", lambda n: "error Redis refused: OOM"):
        out = h.bygate("triggers", "fire", "report")
        doc = bygate_json(h, "triggers", "fire", "report", code=1)
    assert out.returncode == 1
    assert "report: not fired: error: Redis refused: OOM" in out.stderr
    assert (doc["outcome"], doc["error"]) == ("error", "Redis refused: OOM")


def test_a_fire_nobody_answers_times_out_and_stays_queued(h):
    c = h.client()
    seed(c)
    start = time.monotonic()
    out = h.bygate("triggers", "fire", "nightly", "--timeout-ms", "400")
    took = time.monotonic() - start
    assert out.returncode == 1 and out.stdout == ""
    assert ("no bygated with trigger nightly answered fire request #1 "
            "within 400 ms") in out.stderr
    assert "stays queued" in out.stderr and "still fire it, once" in out.stderr
    assert 0.4 <= took < 5
    state = c.hgetall(TRIGGER("nightly"))
    assert state["fire_requests"] == "1" and "fire_done" not in state
    doc = bygate_json(h, "triggers", "fire", "nightly", "--timeout-ms", "100",
                      code=1)
    assert (doc["outcome"], doc["request"]) == ("timeout", 2)
    assert "stays queued" in doc["error"]
    # the queued requests are answered by the next bygated to poll
    with FakeBygated(h, "nightly", lambda n: "fired msg-%08d" % n):
        wait_until(lambda: c.call("HGET", TRIGGER("nightly"),
                                  "fire_done") == "2", timeout=5)
    assert c.call("HGET", TRIGGER("nightly"), "manual:1") == "fired msg-00000001"


# ---- usage -----------------------------------------------------------------

def test_usage_errors_exit_2(h):
    for args in (("fire",), ("pause",), ("resume", "a", "b"),
                 ("fire", "nightly", "--timeout-ms", "0"),
                 ("fire", "nightly", "--timeout-ms", "soon"),
                 ("pause", "nightly", "--timeout-ms", "5"),
                 ("list", "extra"), ("bogus",)):
        out = h.bygate("triggers", *args)
        assert out.returncode == 2, (args, out)
