"""The bygate CLI and libbygate (issue: client send/tail/status): what
`bygate send` writes is the Python GatewayClient.send_message layout (WIRE
2.5 first example, 6.1, 6.2), `tail` shows a session's events, `send
--wait` follows a live bygated to the end of the turn, and the exit status
tells unreachable Redis (3) and bad arguments (2) apart.

Also the helpers the other test_client_*.py / test_gate.py files share
(fake workers, control-plane keys)."""

import hashlib
import json
import os
import re
import select
import signal
import subprocess
import time

from harness import standalone_only, timeout
from bglib import proc
from bglib.keys import Keys
from bglib.libconfig import render

# WIRE 2.5, first example, decoded.
WIRE_2_5_ASK = {
    "action_type": "ASK_AGENT",
    "header": {"message_id": "msg-1a2b3c4d", "session_id": "sess-42",
               "trace_id": "9f1c2e3d4b5a69788796a5b4c3d2e1f0",
               "source_agent_type": "", "target_agent_type": "planner",
               "parent_message_id": "", "task_group_id": "",
               "user_code": "u-001", "user_name": "alice",
               "metadata": {"channel": "web"},
               "trace_parent_span_id": "70cb4086a837a8bb",
               "langfuse_parent_observation_id": "70cb4086a837a8bb"},
    "body": {"content": "Plan a trip to Kyoto", "wait_for_reply": False}}

# WIRE 6.2's example record minus what only a worker writes.
RECORD_KEYS = {
    "execution_id", "message_id", "session_id", "trace_id",
    "parent_message_id", "source_agent_type", "target_agent_type",
    "stream_name", "status", "route_policy", "route_status",
    "selected_agent_type", "availability_error_code", "availability_error",
    "created_at", "updated_at", "started_at", "finished_at", "timeline",
    "worker_id"}

KYOTO = ("send", "--agent-type", "planner", "--session", "sess-42",
         "--content", "Plan a trip to Kyoto", "--user", "u-001",
         "--user-name", "alice", "--metadata", '{"channel": "web"}')


# A send to a type with an online worker, as in the WIRE examples (the
# default FAIL_FAST policy rejects a send nobody can take).
KYOTO_ANYWAY = KYOTO + ("--route-policy", "SEND_ANYWAY")


def fake_worker(h, agent_type, worker="fake-w1", keys=None, client=None,
                online=True, declare=True):
    """A worker as routing sees it (WIRE 5.1, 5.2): an online lease (or a
    claimed one, last_seen 0, with online=False) and membership."""
    keys = keys or h.keys
    c = client or h.client()
    lease = {"version": 1, "token": "tok-" + worker,
             "last_seen": int(time.time() * 1000) if online else 0,
             "ip_address": "10.0.0.5"}
    c.call("SET", keys.worker_online(worker), json.dumps(lease), "EX", 60)
    c.call("SADD", keys.agent_type_members(agent_type), worker)
    if declare:
        c.call("SADD", keys.worker_agent_types(worker), agent_type)
    c.call("SADD", keys.known_workers(), worker)
    return worker


def _prefix(keys):
    return "byai_gateway:" if keys.schema == "v1" else "byai_gateway:v2:"


def cp_key(keys, suffix):
    """A control-plane key (WIRE 1.2: no hash tag under v2)."""
    return _prefix(keys) + "control_plane:" + suffix


def wakeup_stream(keys):
    return cp_key(keys, "mgmt:wakeup")


def result_stream(keys, exec_id):
    return cp_key(keys, "mgmt:wakeup:result:" + exec_id)


def pending_stream(keys):
    return cp_key(keys, "mgmt:delivery:pending")


def deadletter_stream(keys):
    return cp_key(keys, "mgmt:deadletter")


def worker_key(keys, worker, what):
    """registry:worker:<what>:<W> (v1) / registry:worker:{<W>}:<what>."""
    if keys.schema == "v1":
        return _prefix(keys) + "registry:worker:%s:%s" % (what, worker)
    return _prefix(keys) + "registry:worker:{%s}:%s" % (worker, what)


def admin_workers_key(keys):
    return _prefix(keys) + "registry:worker:admin_workers"


def reload_ack_stream(keys, reload_id):
    return _prefix(keys) + "plugin_reload:%s:ack" % reload_id


def bygate_json(h, *args, code=0, **kw):
    """Run `bygate ... --json`, check the exit status, return the JSON."""
    out = h.bygate(*args, "--json", **kw)
    assert out.returncode == code, "exit %d (want %d)\nstdout: %s\nstderr: %s" % (
        out.returncode, code, out.stdout, out.stderr)
    return json.loads(out.stdout.splitlines()[0]) if out.stdout.strip() else None


def span16(message_id):
    return hashlib.md5((message_id + ":client.dispatch").encode()).hexdigest()[:16]


def ok(out):
    assert out.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (
        out.returncode, out.stdout, out.stderr)
    return out


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def data_message(session, mid, event_type, content, agent="planner"):
    """A WIRE 3.7 data-stream event, as a Python worker writes it."""
    return json.dumps({
        "trace_id": "9f1c2e3d4b5a69788796a5b4c3d2e1f0", "session_id": session,
        "event_type": event_type, "source_agent_type": agent,
        "message_id": mid, "parent_message_id": "", "timestamp": 1718000000123,
        "data": {"id": "3F2A9C0D6E1B4A7C8D5E2F1A0B9C8D7E", "created": 1718000000,
                 "model": "", "object": "", "contentType": "1002",
                 "agentId": agent, "orderId": mid, "parentOrderId": "",
                 "objectType": None, "status": None,
                 "choices": [{"index": 0, "finish_reason": "",
                              "delta": {"role": "assistant", "content": content,
                                        "function_call": None,
                                        "function_response": None,
                                        "tool_calls": None,
                                        "tool_responses": None}}]},
        "state_msg": "", "artifact_url": "", "metadata": {}})


def xadd_event(c, keys, session, mid, event_type, content):
    return c.call("XADD", keys.data_stream(session), "*", "data",
                  data_message(session, mid, event_type, content))


# ---- send: what is written ----------------------------------------------

def test_send_writes_the_wire_2_5_ask_agent(h):
    fake_worker(h, "planner")
    out = ok(h.bygate(*KYOTO))
    mid = out.stdout.strip()
    assert re.fullmatch(r"msg-[0-9a-f]{8}", mid), out.stdout
    entries = h.client().xrange(h.keys.ctrl_agent_type("planner"))
    assert len(entries) == 1 and list(entries[0][1]) == ["data"]
    got = json.loads(entries[0][1]["data"])
    hdr = got["header"]
    assert re.fullmatch(r"[0-9a-f]{32}", hdr["trace_id"])
    assert hdr["message_id"] == mid
    assert hdr["trace_parent_span_id"] == span16(mid)
    assert hdr["langfuse_parent_observation_id"] == span16(mid)
    want = json.loads(json.dumps(WIRE_2_5_ASK))
    want["header"].update(message_id=mid, trace_id=hdr["trace_id"],
                          trace_parent_span_id=span16(mid),
                          langfuse_parent_observation_id=span16(mid))
    assert got == want


def test_send_writes_a_queued_record_like_wire_6_2(h):
    fake_worker(h, "planner")
    before = int(time.time() * 1000)
    out = ok(h.bygate("--json", *KYOTO))
    sent = json.loads(out.stdout)
    c = h.client()
    reg = h.keys.registry("sess-42")
    assert c.call("HGET", reg, "msg_map:" + sent["message_id"]) == sent["execution_id"]
    rec = json.loads(c.call("HGET", reg, "exec:" + sent["execution_id"]))
    assert set(rec) == RECORD_KEYS
    trace = json.loads(c.xrange(h.keys.ctrl_agent_type("planner"))[0][1]["data"])["header"]["trace_id"]
    assert rec == dict(rec, execution_id=sent["execution_id"],
                       message_id=sent["message_id"], session_id="sess-42",
                       trace_id=trace, parent_message_id="",
                       source_agent_type="client", target_agent_type="planner",
                       stream_name=h.keys.ctrl_agent_type("planner"),
                       status="QUEUED", route_policy="FAIL_FAST",
                       route_status="DELIVER_NOW", selected_agent_type="",
                       availability_error_code="", availability_error="",
                       started_at=0, finished_at=0, worker_id="")
    assert before <= rec["created_at"] == rec["updated_at"] <= time.time() * 1000
    assert rec["timeline"] == [{"status": "QUEUED",
                                "timestamp": rec["created_at"]}]
    assert 604000 < c.call("TTL", reg) <= 604800
    assert re.fullmatch(r"exec-[0-9a-f]{8}", sent["execution_id"])
    assert sent["entry_id"] == c.xrange(h.keys.ctrl_agent_type("planner"))[0][0]


@standalone_only("MONITOR of the one server: one transaction")
def test_send_initialises_the_record_before_the_entry_in_one_transaction(h):
    fake_worker(h, "planner")
    m = h.client()
    assert m.call("MONITOR") == "OK"
    ok(h.bygate(*KYOTO))
    names = []
    while "EXEC" not in names:
        line = m._reader.read(True)  # MONITOR: one status line per command
        names.append(line.split('"')[1].upper())
    # routing reads first (circuit, quota, members, lease), then the writes
    assert names[names.index("MULTI"):] == ["MULTI", "HSET", "EXPIRE",
                                             "XADD", "EXEC"]
    assert set(names[:names.index("MULTI")]) <= {"GET", "SMEMBERS"}


def test_send_moves_python_metadata_and_extra_keys_as_send_message_does(h):
    ok(h.bygate("send", "--agent-type", "planner", "--session", "s-meta",
                "--route-policy", "SEND_ANYWAY",
                "--content", "hi", "--message-id", "m-given",
                "--trace-id", "0123456789abcdef0123456789abcdef",
                "--metadata", '{"trace_parent_span_id": "aaaabbbbccccdddd", "k": 1}',
                "--extra", '{"wait_for_reply": true, "x": [1]}'))
    cmd = h.client().stream_data(h.keys.ctrl_agent_type("planner"))[0]
    assert cmd["header"]["message_id"] == "m-given"
    assert cmd["header"]["trace_id"] == "0123456789abcdef0123456789abcdef"
    assert cmd["header"]["metadata"] == {"k": 1}
    assert cmd["header"]["trace_parent_span_id"] == "aaaabbbbccccdddd"
    assert cmd["header"]["langfuse_parent_observation_id"] == "aaaabbbbccccdddd"
    assert cmd["body"] == {"content": "hi", "wait_for_reply": True,
                           "extra_payload": {"x": [1]}}


def test_send_uses_v2_keys_when_the_environment_says_so(h):
    env = h.env(REDIS_KEY_SCHEMA_VERSION="v2")
    v2 = Keys("v2")
    fake_worker(h, "planner", keys=v2)
    out = ok(h.bygate("--json", *KYOTO, env=env))
    sent = json.loads(out.stdout)
    c = h.client()
    assert len(c.xrange(v2.ctrl_agent_type("planner"))) == 1
    assert c.call("HGET", v2.registry("sess-42"),
                  "msg_map:" + sent["message_id"]) == sent["execution_id"]
    assert c.call("EXISTS", Keys("v1").registry("sess-42")) == 0


def test_send_reads_redis_address_from_the_config_file(h):
    cfg = h.tmp / "client.conf"
    cfg.write_text(render(h.config()))
    out = ok(h.bygate("-c", cfg, *KYOTO_ANYWAY, env=proc.clean_env()))
    mid = out.stdout.strip()
    assert h.client().stream_data(h.keys.ctrl_agent_type("planner"))[0][
        "header"]["message_id"] == mid


# ---- tail and status ------------------------------------------------------

def test_tail_prints_events_written_by_hand(h):
    c = h.client()
    first = xadd_event(c, h.keys, "s-tail", "msg-1", "answerDelta", "Hello")
    xadd_event(c, h.keys, "s-tail", "msg-1", "finalAnswer", "Hello world")
    c.call("XADD", h.keys.data_stream("s-tail"), "*", "data", "not json")
    out = ok(h.bygate("tail", "--session", "s-tail"))
    assert out.stdout.splitlines()[:2] == [
        "[answerDelta] planner msg-1: Hello",
        "[finalAnswer] planner msg-1: Hello world"]
    assert out.stdout.splitlines()[2].endswith(': "not json"')
    lines = json_lines(ok(h.bygate("tail", "--session", "s-tail", "--json")).stdout)
    assert [l["event_type"] for l in lines] == ["answerDelta", "finalAnswer", ""]
    assert lines[0]["entry_id"] == first and lines[0]["content"] == "Hello"
    assert lines[0]["event"]["data"]["orderId"] == "msg-1"
    assert lines[2]["event"] is None and lines[2]["raw"] == "not json"
    later = ok(h.bygate("tail", "--session", "s-tail", "--from", first))
    assert len(later.stdout.splitlines()) == 2


def test_tail_survives_malformed_entries(h):
    c = h.client()
    key = h.keys.data_stream("s-bad")
    c.call("XADD", key, "*", "other", "x")
    c.call("XADD", key, "*", "data", "[1]")
    c.call("XADD", key, "*", "data", b'{"event_type": "\xff\xfe"}')
    c.call("XADD", key, "*", "data", '{"event_type": 5, "data": {"choices": 3}}')
    c.call("XADD", key, "*", "data", '{"data": {"choices": [{"delta": {"content": 7}}]}}')
    c.call("XADD", key, "*", "data", "[" * 5000 + "]" * 5000)
    lines = json_lines(ok(h.bygate("tail", "--session", "s-bad", "--json")).stdout)
    assert len(lines) == 6
    assert all(l["event_type"] == "" and l["content"] is None for l in lines)
    assert [l["event"] is None for l in lines] == [True, True, True, False,
                                                   False, True]
    assert "raw" not in lines[0] and lines[1]["raw"] == "[1]"
    assert "\ufffd" in lines[2]["raw"]
    text = ok(h.bygate("tail", "--session", "s-bad")).stdout.splitlines()
    assert len(text) == 6 and text[0].endswith("(no data field)")


def test_tail_of_an_unknown_session_says_it_is_empty(h):
    out = ok(h.bygate("tail", "--session", "nobody"))
    assert out.stdout == ""
    assert "no events in session nobody" in out.stderr


def read_line(p, deadline):
    buf = b""
    fd = p.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, "no output line in time (got %r)" % buf
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 1)
            assert chunk, "bygate tail exited early"
            buf += chunk
    return json.loads(buf)


def test_tail_follow_prints_new_events_until_sigint(h):
    c = h.client()
    xadd_event(c, h.keys, "s-f", "msg-1", "answerDelta", "old")
    p = h.spawn([h.bin("bygate"), "tail", "--session", "s-f", "-f",
                 "--jsonl"], stdout=subprocess.PIPE).popen
    deadline = time.monotonic() + 10
    assert read_line(p, deadline)["content"] == "old"
    xadd_event(c, h.keys, "s-f", "msg-2", "answerDelta", "new")
    assert read_line(p, deadline)["content"] == "new"
    p.send_signal(signal.SIGINT)
    assert p.wait(10) == 0


def test_status_shows_the_session_records(h):
    a = json.loads(ok(h.bygate("--json", *KYOTO_ANYWAY)).stdout)
    b = json.loads(ok(h.bygate("--json", *KYOTO_ANYWAY)).stdout)
    recs = json.loads(ok(h.bygate("status", "--session", "sess-42",
                                  "--json")).stdout)
    assert {r["execution_id"] for r in recs} == {a["execution_id"],
                                                  b["execution_id"]}
    one = json.loads(ok(h.bygate("status", "--session", "sess-42", "--json",
                                 "--message-id", b["message_id"])).stdout)
    assert one["execution_id"] == b["execution_id"] and one["status"] == "QUEUED"
    table = ok(h.bygate("status", "--session", "sess-42")).stdout.splitlines()
    assert table[0].startswith("EXECUTION") and len(table) == 3
    assert all(l.rstrip().endswith("QUEUED") for l in table[1:])
    missing = h.bygate("status", "--session", "sess-42", "--message-id", "nope")
    assert missing.returncode == 1 and "no execution" in missing.stderr


# ---- send --wait against bygated -----------------------------------------

@timeout(60)
def test_send_wait_prints_the_events_of_a_live_bygated_and_exits_0(h):
    h.start_bygated()
    out = ok(h.bygate("send", "--agent-type", "echo", "--session", "s-w",
                      "--content", "hello wide world", "--wait"))
    lines = out.stdout.splitlines()
    mid = lines[0]
    deltas = [l for l in lines if l.startswith("[answerDelta] echo %s: " % mid)]
    assert "".join(l.split(": ", 1)[1] for l in deltas) == "hello wide world"
    assert "[finalAnswer] echo %s: hello wide world" % mid in lines
    assert "[appStreamResponse] echo %s: " % mid in lines
    assert lines[-1] == "%s: COMPLETED" % mid


@timeout(60)
def test_send_wait_json_gives_one_line_per_event_and_the_final_record(h):
    h.start_bygated()
    out = ok(h.bygate("send", "--agent-type", "echo", "--session", "s-j",
                      "--content", "one two three", "--wait", "--json"))
    lines = json_lines(out.stdout)
    sent, events, final = lines[0], lines[1:-1], lines[-1]
    assert set(sent) >= {"message_id", "execution_id", "entry_id"}
    assert [e["event_type"] for e in events][-2:] == ["finalAnswer",
                                                      "appStreamResponse"]
    assert all(e["message_id"] == sent["message_id"] for e in events)
    assert final["status"] == "COMPLETED"
    assert final["record"]["execution_id"] == sent["execution_id"]
    assert final["record"]["worker_id"] == h.worker_id


def test_send_wait_times_out_with_exit_1_when_no_worker_answers(h):
    out = h.bygate("send", "--agent-type", "nobody", "--session", "s-t",
                   "--content", "anyone?", "--route-policy", "SEND_ANYWAY",
                   "--wait", "--wait-timeout-ms", "300")
    assert out.returncode == 1
    assert "timed out" in out.stderr and "QUEUED" in out.stderr


# ---- exit codes ------------------------------------------------------------

def test_unreachable_redis_exits_3(h):
    env = proc.clean_env({"REDIS_HOST": "127.0.0.1",
                          "REDIS_PORT": proc.free_port()})
    for args in (KYOTO, ("tail", "--session", "s"), ("status", "--session", "s"),
                 ("reply", "m", "--session", "s", "--content", "x"),
                 ("cancel", "m", "--session", "s"), ("workers",),
                 ("suspend", "w"), ("reload", "t"),
                 ("gate", "--provider", "true", "--once")):
        out = h.bygate(*args, env=env)
        assert out.returncode == 3, (args, out.stderr)
        assert "cannot connect" in out.stderr


@standalone_only("a standalone server of its own, with a password and database 3")
def test_send_authenticates_and_selects_the_configured_database(h):
    r = h.start_redis(args=("--requirepass", "sekret"))
    env = h.env(r, REDIS_PASSWORD="sekret", REDIS_DATABASE="3")
    mid = ok(h.bygate(*KYOTO_ANYWAY, env=env)).stdout.strip()
    c = h.client(r, password="sekret", db=3)
    assert c.stream_data(h.keys.ctrl_agent_type("planner"))[0][
        "header"]["message_id"] == mid
    bad = h.bygate(*KYOTO_ANYWAY, env=h.env(r, REDIS_PASSWORD="wrong"))
    assert bad.returncode == 3 and "WRONGPASS" in bad.stderr, bad.stderr


def test_bad_arguments_exit_2(h):
    cases = [
        ("send", "--session", "s", "--content", "x"),  # no --agent-type
        ("send", "--agent-type", "t", "--session", "s"),  # no --content
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--bogus"),
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--timeout-ms", "soon"),
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--metadata", "[1, 2]"),
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--extra", "{not json"),
        ("send", "--agent-type", "t", "--session", "s", "--content", "  "),
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--route-policy", "SOMETIMES"),
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--priority", "high"),
        ("send", "--agent-type", "t", "--session", "s", "--content", "x",
         "--status", "COMPLETED"),  # a reply option
        ("reply", "--session", "s", "--content", "x"),  # no MESSAGE_ID
        ("reply", "msg-1", "--session", "s"),  # neither content nor status
        ("cancel", "msg-1"),  # no --session
        ("cancel", "msg-1", "--session", "s", "--mode", "brutal"),
        ("cancel-session",),
        ("workers", "info"),
        ("suspend",),
        ("resume", "w", "--reason", "x"),  # resume takes no reason
        ("suspend", "w"),  # an unknown worker, without --force
        ("allow-rejoin", "w", "--reason", "x"),  # takes no reason
        ("deny", "t"),
        ("reload",),
        ("reload", "t", "--timeout-ms", "never"),
        ("gate",),  # no --provider
        ("gate", "--provider", "true", "--max-attempts", "0"),
        ("dispatch",),
        ("tail",),
        ("status", "--session", "s", "extra-arg"),
        ("launch", "--now"),
        (),
    ]
    for args in cases:
        out = h.bygate(*args)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert out.stderr, args
    assert h.client().call("EXISTS", h.keys.ctrl_agent_type("t")) == 0


def test_every_command_has_help_and_a_bad_option_gets_a_short_usage(h):
    out = h.bygate("send", "--help")
    assert out.returncode == 0, out.stderr
    assert "--idempotency-key" in out.stdout and "tail " not in out.stdout
    out = h.bygate("triggers", "fire", "x", "--help")
    assert out.returncode == 0 and "triggers fire NAME" in out.stdout
    bad = h.bygate("send", "--agent-type", "echo", "--bogus")
    assert bad.returncode == 2
    assert "--bogus" in bad.stderr and len(bad.stderr.splitlines()) <= 4, \
        bad.stderr
    bad = h.bygate("reply", "msg-1", "--session", "s", "--bogus")
    assert bad.returncode == 2 and "reply: bad option" in bad.stderr, \
        bad.stderr
    d = subprocess.run([str(h.bin("bygated")), "--help"],
                       capture_output=True, text=True)
    assert d.returncode == 0 and "usage: bygated" in d.stdout
