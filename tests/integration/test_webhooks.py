"""Webhook triggers (issue 14 item 3, docs/triggers.md "Webhook triggers"): POST
/hooks/<name> on bygated's HTTP port, signed with HMAC-SHA256 over
"<timestamp>.<body>". A signed request creates exactly one task; a bad
signature, an old timestamp, a replayed idempotency header and an oversized
body each get their status and create nothing."""

import hashlib
import hmac
import http.client
import json
import re
import signal
import socket
import time

from harness import timeout, wait_task_end, wait_until
from bglib import proc
import pyclient as pc

SECRET = "s3cret-for-tests"
FAST = {"block_ms": 300, "heartbeat_interval_ms": 300, "lease_ttl_s": 2,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000}


def hook(agent_type="echo", **kw):
    conf = {"agent_type": agent_type}
    if "secret_env" not in kw:
        conf["secret"] = SECRET
    conf.update(kw)
    return conf


def start(h, webhooks=None, env=None, **kw):
    port = proc.free_port()
    d = h.start_bygated({"http": {"port": port},
                         "worker": dict(FAST),
                         "triggers": {"webhooks": webhooks or
                                      {"gh": hook()}},
                         "agent_types": [h.agent_type("echo"),
                                         h.agent_type("sleep")]},
                        env=env, **kw)
    d.http_port = port
    return d


def sign(secret, ts, body):
    return "sha256=" + hmac.new(secret.encode(), str(ts).encode() + b"." +
                                body, hashlib.sha256).hexdigest()


def post(d, name, body, secret=SECRET, ts=None, headers=None,
         method="POST", signed=True):
    """(status, headers with lower-case names, parsed JSON body)."""
    if isinstance(body, str):
        body = body.encode()
    ts = int(time.time()) if ts is None else ts
    hdrs = {"Content-Type": "application/json"}
    if signed:
        hdrs["X-Bygate-Timestamp"] = str(ts)
        hdrs["X-Bygate-Signature"] = sign(secret, ts, body)
    hdrs.update(headers or {})
    status, rhdrs, raw = call(d, method, "/hooks/" + name, body, hdrs)
    return status, rhdrs, json.loads(raw) if raw else None


def call(d, method, path, body=None, headers=None):
    """(status, headers with lower-case names, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return (r.status, {k.lower(): v for k, v in r.getheaders()},
                r.read().decode())
    finally:
        c.close()


def entries(h, agent_type="echo"):
    """The ASK_AGENTs in agent_type's stream (each entry's command)."""
    return h.client().stream_data(h.keys.ctrl_agent_type(agent_type))


def xlen(h, agent_type="echo"):
    return h.client().call("XLEN", h.keys.ctrl_agent_type(agent_type))


def runs(d, message_id):
    """How many times bygated d started the task of message_id."""
    return len(re.findall(r"task started .*\bmsg=%s[ )]" %
                          re.escape(message_id), d.log_text()))


def rejected(d, name):
    """bygate_trigger_fires_total{trigger=name, outcome="rejected"}."""
    for line in call(d, "GET", "/metrics")[2].splitlines():
        if line.startswith("bygate_trigger_fires_total{") and \
                'trigger="%s"' % name in line and \
                'outcome="rejected"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def still_serving(h, d):
    assert d.alive()
    status, _, body = post(d, "gh", b'{"still": "serving"}')
    fired(h, status, body)


def fired(h, status, body, d=None):
    """The task of a 202: it runs to COMPLETED (and, with d, bygated is
    done writing its events)."""
    assert status == 202, body
    if d is not None:
        wait_task_end(d, body["message_id"])
    rec = pc.wait_terminal(h.client(), h.keys, body["session_id"],
                           body["message_id"])
    assert rec["status"] == "COMPLETED", rec
    assert rec["execution_id"] == body["execution_id"]
    return rec


# ---- a signed request ----------------------------------------------------

@timeout(60)
def test_signed_post_creates_one_task_that_runs_once(h):
    d = start(h)
    status, _, body = post(d, "gh", b'{"event": "push", "ref": "main"}')
    fired(h, status, body, d)
    assert body["trigger"] == "gh"
    assert xlen(h) == 1
    [cmd] = entries(h)
    assert cmd["action_type"] == "ASK_AGENT"
    assert cmd["header"]["message_id"] == body["message_id"]
    assert cmd["body"]["content"] == {"event": "push", "ref": "main"}
    extra = cmd["body"]["extra_payload"]
    assert extra["bygate_trigger"] == "gh"
    assert extra["webhook"] == {"content_type": "application/json",
                                "delivery": None}
    assert runs(d, body["message_id"]) == 1


@timeout(60)
def test_text_body_becomes_text_content(h):
    d = start(h)
    status, _, body = post(d, "gh", "disk almost full on db-3",
                           headers={"Content-Type": "text/plain"})
    fired(h, status, body)
    [cmd] = entries(h)
    assert cmd["body"]["content"] == "disk almost full on db-3"


@timeout(60)
def test_secret_from_environment_variable(h):
    env = proc.clean_env({"BYGATE_TEST_HOOK_SECRET": "from-the-environment"})
    d = start(h, {"envhook": hook(secret_env="BYGATE_TEST_HOOK_SECRET")},
              env=env)
    status, _, body = post(d, "envhook", b'{"n": 1}', secret=SECRET)
    assert status == 401, body
    status, _, body = post(d, "envhook", b'{"n": 1}', secret="from-the-environment")
    fired(h, status, body)
    assert xlen(h) == 1


# ---- refusals create nothing ---------------------------------------------

@timeout(60)
def test_bad_signature_is_401_and_creates_nothing(h):
    d = start(h)
    status, _, body = post(d, "gh", b'{"a": 1}', secret="not-the-secret")
    assert status == 401
    assert body["error"] == "unauthorized"
    assert "does not match" in body["reason"]
    assert SECRET not in json.dumps(body)
    # tampered body under a good signature of another body
    ts = int(time.time())
    status, _, body = post(d, "gh", b'{"a": 2}', signed=False, headers={
        "X-Bygate-Timestamp": str(ts),
        "X-Bygate-Signature": sign(SECRET, ts, b'{"a": 1}')})
    assert status == 401, body
    # no signature at all
    status, _, body = post(d, "gh", b'{"a": 1}', signed=False)
    assert status == 401 and "missing" in body["reason"], body
    assert xlen(h) == 0
    assert rejected(d, "gh") == 3
    assert "webhook gh: refused with 401" in d.log_text()
    assert SECRET not in d.log_text()


@timeout(60)
def test_old_timestamp_is_401_and_creates_nothing(h):
    d = start(h, {"gh": hook(tolerance_s=60)})
    old = int(time.time()) - 600
    status, _, body = post(d, "gh", b'{"a": 1}', ts=old)
    assert status == 401
    assert "tolerance" in body["reason"]
    future = int(time.time()) + 600
    status, _, body = post(d, "gh", b'{"a": 1}', ts=future)
    assert status == 401 and "tolerance" in body["reason"], body
    assert xlen(h) == 0


@timeout(60)
def test_replayed_idempotency_header_is_a_duplicate_and_creates_nothing(h):
    d = start(h)
    hdr = {"Idempotency-Key": "delivery-7f3a"}
    status, _, first = post(d, "gh", b'{"a": 1}', headers=hdr)
    fired(h, status, first, d)
    # the same delivery again, signed anew a second later (a retry)
    time.sleep(1)
    status, _, again = post(d, "gh", b'{"a": 1}', headers=hdr)
    assert status == 200, again
    assert again["duplicate"] is True
    assert again["message_id"] == first["message_id"]
    assert xlen(h) == 1
    [cmd] = entries(h)
    assert cmd["body"]["extra_payload"]["webhook"]["delivery"] == \
        "delivery-7f3a"
    assert runs(d, first["message_id"]) == 1
    # another delivery is another task
    status, _, other = post(d, "gh", b'{"a": 1}',
                            headers={"Idempotency-Key": "delivery-8000"})
    fired(h, status, other)
    assert other["message_id"] != first["message_id"]
    assert xlen(h) == 2


@timeout(60)
def test_oversized_body_is_413_and_creates_nothing(h):
    d = start(h, {"gh": hook(max_body_bytes=1000)})
    status, _, body = post(d, "gh", b'"' + b"x" * 1500 + b'"')
    assert status == 413, body
    assert body["error"] == "too_large"
    assert xlen(h) == 0
    status, _, body = post(d, "gh", b'"' + b"x" * 900 + b'"')
    fired(h, status, body)


@timeout(60)
def test_body_over_every_webhook_limit_is_refused_unread(h):
    """Past the largest webhook's limit evhttp refuses the body as it
    arrives (its own 413, or a reset while the client still sends)."""
    d = start(h, {"gh": hook(max_body_bytes=1000)})
    try:
        status, _, _ = post(d, "gh", b"x" * (4 * 1024 * 1024))
        assert status == 413
    except (ConnectionError, json.JSONDecodeError):
        pass
    assert xlen(h) == 0
    still_serving(h, d)


@timeout(60)
def test_unknown_hook_is_404_and_other_methods_are_405(h):
    d = start(h)
    status, _, body = post(d, "nope", b'{"a": 1}')
    assert status == 404, body
    status, _, body = post(d, "gh/extra", b'{"a": 1}')
    assert status == 404, body
    status, hdrs, body = post(d, "gh", b"", method="GET", signed=False)
    assert status == 405, body
    assert hdrs["allow"] == "POST"
    assert xlen(h) == 0


@timeout(60)
def test_bad_idempotency_header_or_body_is_400_and_creates_nothing(h):
    d = start(h)
    status, _, body = post(d, "gh", b'{"a": 1}',
                           headers={"Idempotency-Key": "has a space"})
    assert status == 400 and "idempotency" in body["reason"], body
    status, _, body = post(d, "gh", b'{"a": 1}',
                           headers={"Idempotency-Key": "k" * 201})
    assert status == 400, body
    status, _, body = post(d, "gh", b"")
    assert status == 400 and "empty" in body["reason"], body
    status, _, body = post(d, "gh", b"\xff\xfe not text")
    assert status == 400 and "UTF-8" in body["reason"], body
    status, _, body = post(d, "gh", b" \n\t ")
    assert status == 400, body
    status, _, body = post(d, "gh", b"[ ]")
    assert status == 400, body
    assert xlen(h) == 0


@timeout(60)
def test_max_running_reached_is_429_with_retry_after(h):
    d = start(h, {"slow": hook("sleep", max_running=1)})
    status, _, first = post(d, "slow", b"3000")
    assert status == 202, first
    status, hdrs, body = post(d, "slow", b"3000")
    assert status == 429, body
    assert int(hdrs["retry-after"]) > 0
    assert xlen(h, "sleep") == 1
    rec = pc.wait_terminal(h.client(), h.keys, first["session_id"],
                           first["message_id"])
    assert rec["status"] == "COMPLETED"


# ---- the connection and the configuration --------------------------------

@timeout(60)
def test_caller_leaving_before_the_answer_still_fires_once(h):
    d = start(h)
    body = b'{"left": true}'
    ts = int(time.time())
    req = ("POST /hooks/gh HTTP/1.1\r\nHost: x\r\n"
           "Content-Type: application/json\r\n"
           "X-Bygate-Timestamp: %d\r\nX-Bygate-Signature: %s\r\n"
           "Content-Length: %d\r\n\r\n" % (ts, sign(SECRET, ts, body),
                                           len(body))).encode() + body
    with socket.create_connection(("127.0.0.1", d.http_port)) as s:
        s.sendall(req)
    wait_until(lambda: xlen(h) == 1, 10, what="the fire")
    [cmd] = entries(h)
    hdr = cmd["header"]
    pc.wait_terminal(h.client(), h.keys, hdr["session_id"],
                     hdr["message_id"])
    still_serving(h, d)


@timeout(60)
def test_webhook_added_by_sighup_is_served(h):
    d = start(h)
    status, _, _ = post(d, "added", b'{"a": 1}')
    assert status == 404
    d.config["triggers"]["webhooks"]["added"] = hook(max_body_bytes=20000)
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", timeout=10)
    # larger than the connection limit before the reload (4096 bytes)
    status, _, body = post(d, "added", '"%s"' % ("y" * 10000))
    fired(h, status, body)


@timeout(60)
def test_webhooks_without_an_http_port_are_reported(h):
    d = h.start_bygated({"triggers": {"webhooks": {"gh": hook()}}})
    d.wait_log("triggers.webhooks are configured but http.port is 0",
               timeout=5)
