"""What a by-framework Python GatewayClient.send_message writes (WIRE 2.5,
6.1, 6.2), with json.dumps' default separators, so bygated is tested
against the reference layout rather than only against its own CLI."""

import json
import time
import uuid


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:8]


def header(session, target, message_id=None, **kw):
    h = {"message_id": message_id or new_id("msg-"), "session_id": session,
         "trace_id": uuid.uuid4().hex, "source_agent_type": "",
         "target_agent_type": target, "parent_message_id": "",
         "task_group_id": "", "user_code": "u-001", "user_name": "alice",
         "metadata": {}, "trace_parent_span_id": "70cb4086a837a8bb",
         "langfuse_parent_observation_id": "70cb4086a837a8bb"}
    h.update(kw)
    return h


def ask_command(session, target, content, message_id=None, **kw):
    return {"action_type": "ASK_AGENT",
            "header": header(session, target, message_id, **kw),
            "body": {"content": content, "wait_for_reply": False}}


def queued_record(keys, cmd, execution_id):
    h = cmd["header"]
    now = int(time.time() * 1000)
    return {"execution_id": execution_id, "message_id": h["message_id"],
            "session_id": h["session_id"], "trace_id": h["trace_id"],
            "parent_message_id": h["parent_message_id"],
            "source_agent_type": "client",
            "target_agent_type": h["target_agent_type"],
            "stream_name": keys.ctrl_agent_type(h["target_agent_type"]),
            "status": "QUEUED", "route_policy": "FAIL_FAST",
            "route_status": "DELIVER_NOW", "selected_agent_type": "",
            "availability_error_code": "", "availability_error": "",
            "created_at": now, "updated_at": now, "started_at": 0,
            "finished_at": 0, "worker_id": "",
            "timeline": [{"status": "QUEUED", "timestamp": now}]}


def send_commands(keys, cmd, execution_id=None):
    """The Redis commands of one send: record + msg_map, EXPIRE, XADD."""
    h = cmd["header"]
    eid = execution_id or new_id("exec-")
    reg = keys.registry(h["session_id"])
    rec = queued_record(keys, cmd, eid)
    return eid, [
        ("HSET", reg, "exec:" + eid, json.dumps(rec),
         "msg_map:" + h["message_id"], eid),
        ("EXPIRE", reg, 604800),
        ("XADD", keys.ctrl_agent_type(h["target_agent_type"]), "*", "data",
         json.dumps(cmd)),
    ]


def send(client, keys, session, target, content, **kw):
    """Send one ASK_AGENT; returns (message_id, execution_id)."""
    cmd = ask_command(session, target, content, **kw)
    eid, cmds = send_commands(keys, cmd)
    client.pipeline(cmds)
    return cmd["header"]["message_id"], eid


def send_many(client, keys, session, target, content, n, **kw):
    """n ASK_AGENTs (kw as ask_command's) in one pipeline; returns their
    message ids."""
    mids, cmds = [], []
    for _ in range(n):
        cmd = ask_command(session, target, content, **kw)
        cmds += send_commands(keys, cmd)[1]
        mids.append(cmd["header"]["message_id"])
    client.pipeline(cmds)
    return mids


def record(client, keys, session, message_id):
    reg = keys.registry(session)
    eid = client.call("HGET", reg, "msg_map:" + message_id)
    if eid is None:
        return None
    raw = client.call("HGET", reg, "exec:" + eid)
    return json.loads(raw) if raw else None


def terminal(client, keys, session, message_id):
    """The execution record once COMPLETED or FAILED, else None."""
    r = record(client, keys, session, message_id)
    return r if r and r["status"] in ("COMPLETED", "FAILED") else None


def wait_terminal(client, keys, session, message_id, t=30):
    from bglib.proc import wait_until  # on the path the harness set
    return wait_until(lambda: terminal(client, keys, session, message_id), t,
                      what="execution of %s to finish" % message_id)


def events(client, keys, session):
    return client.stream_data(keys.data_stream(session))


def pending_count(client, stream, group="agent_engines"):
    try:
        return client.call("XPENDING", stream, group)[0]
    except Exception:
        return 0
