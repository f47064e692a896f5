"""bygate-state against a known state (written by `test_state
--make-fixture`, see tests/unit/test_state.c) and a real redis-server:
dump/get/stats in text and JSON, check's verdicts on pending and acked
entries, the lease and unknown pending entries, exit codes, and that the
tool never modifies the environment."""

import fcntl
import hashlib
import json
import subprocess

from bglib import proc
from bglib.keys import Keys
from bglib.libconfig import render
from harness import wait_until

STREAM = "byai_gateway:ctrl:agent_type:echo"
WORKER = "fixture-w"
TOKEN = "tok-fixture-1"
KEYS = Keys("v1")  # the fixture's stream is a v1 key


def eid(n):
    return "1700000000000-%d" % n


def make_state(h, corrupt=False):
    """A state directory holding the fixture; returns its path."""
    d = h.tmp / ("state-corrupt" if corrupt else "state")
    d.mkdir()
    argv = [str(h.build / "tests" / "test_state"), "--make-fixture", str(d)]
    if corrupt:
        argv.append("--corrupt")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return d


def tool(h, *args, env=None):
    exe = h.bin("bygate-state")
    assert exe.exists(), "%s is not built (make build/bygate-state)" % exe
    return subprocess.run(
        [str(exe), *[str(a) for a in args]], capture_output=True, text=True,
        timeout=60, env=env if env is not None else h.env(
            REDIS_KEY_SCHEMA_VERSION="v1"),
        stdin=subprocess.DEVNULL)


def tool_json(h, *args):
    out = tool(h, *args, "--json")
    return out, json.loads(out.stdout) if out.stdout.strip() else None


def prepare_redis(h, acked=(0, 2, 4), pending_extra=(5,), token=TOKEN):
    """Entries 0..4 of STREAM (plus pending_extra) delivered to WORKER in
    group agent_engines, `acked` acked, and WORKER's lease holding token."""
    c = h.client()
    ids = sorted(set(range(5)) | set(pending_extra))
    for n in ids:
        c.call("XADD", STREAM, eid(n), "f", "v")
    c.call("XGROUP", "CREATE", STREAM, "agent_engines", "0")
    c.call("XREADGROUP", "GROUP", "agent_engines", WORKER, "STREAMS", STREAM,
           ">")
    if acked:
        c.call("XACK", STREAM, "agent_engines", *[eid(n) for n in acked])
    if token is not None:
        c.call("SET", KEYS.worker_online(WORKER),
               json.dumps({"version": 1, "token": token, "last_seen": 1}))
    return c


def redis_addr(h):
    return "%s:%d" % (h.redis.host, h.redis.port)


def verdicts(doc):
    """{(check, entry id or None): verdict}"""
    return {(f["check"], f.get("entry_id")): f["verdict"]
            for f in doc["findings"]}


def digest(state):
    return hashlib.sha256((state / "lmdb" / "data.mdb").read_bytes()).digest()


# ---- dump / get / stats ---------------------------------------------------

def test_dump_shows_every_database_decoded(h):
    state = make_state(h)
    out = tool(h, "-d", state, "dump")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for section in ("== meta (5)", "== journal (2)", "== inflight (3)",
                    "== history (1)", "== sessions (1)"):
        assert section in text, text
    assert "lease_token = %s" % TOKEN in text
    assert "schema = 1" in text
    assert "%s %s  4 commands" % (STREAM, eid(1)) in text
    assert "      XACK %s agent_engines %s\n" % (STREAM, eid(1)) in text
    assert "x" * 200 + "...(300 bytes)" in text
    assert "x" * 201 not in text
    assert "      SET k %s\n" % r"a\x01\xffb\\" in text  # bytes escaped
    assert "execution=exec-3" in text and "session=sess-b" in text
    assert "COMPLETED %s %s" % (STREAM, eid(0)) in text
    assert "echo u1 sess-a path=/ws/echo/u1/sessions/sess-a" in text


def test_dump_json_of_one_database(h):
    state = make_state(h)
    out, doc = tool_json(h, "-d", state, "dump", "--db", "journal")
    assert out.returncode == 0, out.stderr
    assert set(doc) == {"journal", "corrupt"}
    first = doc["journal"][0]
    assert (first["stream"], first["entry_id"]) == (STREAM, eid(1))
    assert first["commands"][0] == ["MULTI"]
    assert first["commands"][2] == ["XACK", STREAM, "agent_engines", eid(1)]
    assert first["commands"][1][3].endswith("...(300 bytes)")
    out, doc = tool_json(h, "-d", state, "dump")
    assert {m["key"]: m["value"] for m in doc["meta"]}["schema"] == 1
    assert doc["inflight"][1]["attempt"] == 2
    assert doc["sessions"][0]["bytes"] == 4096


def test_dump_reports_corrupt_records_and_shows_the_rest(h):
    state = make_state(h, corrupt=True)
    out, doc = tool_json(h, "-d", state, "dump")
    assert out.returncode == 1
    assert "do not decode" in out.stderr
    assert doc["corrupt"] == {"inflight": 1}
    assert len(doc["inflight"]) == 3


def test_get_entry_shows_the_records_that_mention_it(h):
    state = make_state(h)
    out, doc = tool_json(h, "-d", state, "get", "--entry",
                         "%s/%s" % (STREAM, eid(1)))
    assert out.returncode == 0, out.stderr
    assert len(doc["journal"]) == 1 and len(doc["inflight"]) == 1
    assert doc["history"] == []
    out = tool(h, "-d", state, "get", "--entry", "%s/%s" % (STREAM, eid(0)))
    assert "== history (1)" in out.stdout
    out = tool(h, "-d", state, "get", "--entry", "%s/9-9" % STREAM)
    assert out.returncode == 1


def test_get_session_shows_its_records_and_journal(h):
    state = make_state(h)
    out, doc = tool_json(h, "-d", state, "get", "--session", "sess-a")
    assert out.returncode == 0, out.stderr
    assert [j["entry_id"] for j in doc["journal"]] == [eid(1)]
    assert [e["execution_id"] for e in doc["inflight"]] == ["exec-1",
                                                             "exec-4"]
    assert len(doc["history"]) == 1 and len(doc["sessions"]) == 1
    out, doc = tool_json(h, "-d", state, "get", "--session", "sess-b")
    assert [e["execution_id"] for e in doc["inflight"]] == ["exec-3"]
    assert doc["journal"] == [] and doc["sessions"] == []


def test_stats_counts_entries_and_readers(h):
    state = make_state(h)
    out, doc = tool_json(h, "-d", state, "stats")
    assert out.returncode == 0, out.stderr
    assert doc["entries"] == {"meta": 5, "journal": 2, "inflight": 3,
                              "history": 1, "sessions": 1}
    assert doc["journal_depth"] == 2
    assert 0 < doc["map_used"] <= doc["map_size"]
    assert doc["readers_max"] > 0 and doc["stale_readers"] == 0
    out = tool(h, "-d", state, "stats")
    assert "journal depth  2" in out.stdout


def test_the_tool_never_modifies_the_state(h):
    state = make_state(h)
    before = digest(state)
    prepare_redis(h)
    for args in (("dump",), ("stats",), ("get", "--session", "sess-a"),
                 ("check", "--redis", redis_addr(h))):
        tool(h, "-d", state, *args)
    assert digest(state) == before


# ---- check ----------------------------------------------------------------

def test_check_reports_acked_journal_and_unknown_pending_entries(h):
    state = make_state(h)
    prepare_redis(h)
    out, doc = tool_json(h, "-d", state, "check", "--redis", redis_addr(h))
    assert out.returncode == 1, out.stderr
    v = verdicts(doc)
    assert v[("journal", eid(1))] == "ok"
    assert v[("journal", eid(2))] == "discrepancy"
    assert v[("inflight", eid(1))] == "ok"
    assert v[("inflight", eid(3))] == "ok"
    assert v[("inflight", eid(4))] == "discrepancy"
    assert v[("pel", eid(5))] == "discrepancy"
    assert v[("lease", None)] == "ok"
    reasons = {f.get("entry_id"): f["reason"] for f in doc["findings"]
               if f["check"] in ("journal", "pel")}
    assert reasons[eid(2)] == ("stale journal entry (finish applied, "
                               "delete pending)")
    assert reasons[eid(5)] == ("pending in Redis, unknown here (will be "
                               "reconciled or reclaimed)")
    assert doc["worker"] == WORKER and doc["group"] == "agent_engines"
    text = tool(h, "-d", state, "check", "--redis", redis_addr(h)).stdout
    assert "DIFF  journal  %s %s: stale journal entry" % (STREAM, eid(2)) \
        in text
    assert "DISAGREE: 4 agree, 3 discrepancies" in text


def test_check_agrees_when_redis_matches_the_state(h):
    state = make_state(h)
    prepare_redis(h, acked=(0,), pending_extra=())
    out, doc = tool_json(h, "-d", state, "check", "--redis", redis_addr(h))
    assert out.returncode == 0, out.stdout + out.stderr
    assert doc["agree"] is True and doc["discrepancies"] == 0
    assert doc["bygated_running"] is False


def test_check_while_bygated_runs_marks_transients_informational(h):
    state = make_state(h)
    prepare_redis(h)
    with open(state / "bygated.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a running bygated holds
        out, doc = tool_json(h, "-d", state, "check", "--redis",
                             redis_addr(h))
    assert out.returncode == 0, out.stdout + out.stderr
    assert doc["bygated_running"] is True
    v = verdicts(doc)
    assert v[("journal", eid(2))] == "info"
    assert v[("pel", eid(5))] == "info"


def test_check_lease_with_another_token_is_a_discrepancy(h):
    state = make_state(h)
    prepare_redis(h, acked=(0,), pending_extra=(), token="someone-else")
    out, doc = tool_json(h, "-d", state, "check", "--redis", redis_addr(h))
    assert out.returncode == 1
    lease = [f for f in doc["findings"] if f["check"] == "lease"][0]
    assert lease["verdict"] == "discrepancy"
    assert "someone-else" in lease["reason"]


def test_check_with_config_reads_state_dir_redis_and_worker_stream(h):
    state = make_state(h)
    prepare_redis(h, acked=(0,), pending_extra=())
    c = h.client()
    worker_stream = KEYS.ctrl_worker(WORKER)
    c.call("XADD", worker_stream, "5-0", "f", "v")
    c.call("XGROUP", "CREATE", worker_stream, "agent_engines", "0")
    c.call("XREADGROUP", "GROUP", "agent_engines", WORKER, "STREAMS",
           worker_stream, ">")
    cfg = h.config({"paths": {"state_dir": str(state)},
                    "worker": {"id": WORKER},
                    "redis": {"key_schema": "v1"}})
    path = h.tmp / "bygate.conf"
    path.write_text(render(cfg))
    out, doc = tool_json(h, "-c", path, "check")
    assert out.returncode == 1, out.stdout + out.stderr
    pel = [f for f in doc["findings"] if f["check"] == "pel"]
    assert [(f["stream"], f["entry_id"]) for f in pel] == [(worker_stream,
                                                             "5-0")]


def test_reads_and_checks_the_state_of_a_running_bygated(h):
    d = h.start_bygated()
    out = h.bygate("send", "--agent-type", "echo", "--session", "s-live",
                   "--content", "hi", "--wait")
    assert out.returncode == 0, out.stderr
    env = proc.clean_env()  # the tool reads what bygated reads: the file

    def check():
        c = tool(h, "-c", d.config_path, "check", "--json", env=env)
        return c if c.returncode == 0 else None
    c = wait_until(check, 10, 0.2, "bygate-state check to agree")
    doc = json.loads(c.stdout)
    assert doc["bygated_running"] is True
    assert [f["verdict"] for f in doc["findings"]
            if f["check"] == "lease"] == ["ok"]
    g = wait_until(lambda: json.loads(tool(
        h, "-c", d.config_path, "get", "--session", "s-live", "--json",
        env=env).stdout)["history"], 10, 0.2, "the finish in the history")
    assert g[0]["status"] == "COMPLETED"
    stats = tool(h, "-c", d.config_path, "stats", env=env)
    assert stats.returncode == 0, stats.stderr


def test_exit_codes_for_usage_unreachable_redis_and_missing_state(h):
    state = make_state(h)
    assert tool(h, "-d", state).returncode == 2
    assert tool(h, "-d", state, "frobnicate").returncode == 2
    assert tool(h, "-d", state, "dump", "--entry", "x/y").returncode == 2
    assert tool(h, "-d", state, "get").returncode == 2
    assert tool(h, "-d", state, "dump", "--db", "nope").returncode == 2
    out = tool(h, "-d", state, "check", "--redis", "127.0.0.1:1")
    assert out.returncode == 3 and "cannot connect" in out.stderr
    out = tool(h, "-d", h.tmp / "nowhere", "stats")
    assert out.returncode == 3 and "cannot open the state" in out.stderr
