"""bygate_agent - write a bygate agent in Python (standard library only).

bygate runs the program (agent type with handler = "exec") and talks to it
in JSON lines on stdin/stdout: bygate-handler-protocol 1, specified in
docs/handler-protocol.md. This module speaks it for you:

    import bygate_agent

    def handle(ctx):
        ctx.chunk("thinking...")
        return "done: " + ctx.content

    if __name__ == "__main__":
        bygate_agent.run(handle)

`handle(ctx)` runs once per task; what it returns becomes the result
(WIRE 6.5): None = no content; a str = the answer text (a known state
such as "WAITING_USER" = that status); a dict with any of status, content,
reply_data, metadata (or finalAnswer / final_answer) = a structured
result; any other dict or value = reply_data. An exception fails the task
with its message; the record's error_type is the exception's class name
and its retryable the exception's `retryable` attribute (default False). Without an explicit status a task finishes COMPLETED,
or WAITING_USER / WAITING_AGENT when it called ask_user / call_agent /
dispatch_group (waiting for the reply) or resume_later to itself (a
timer), and is resumed later with a new task whose ctx.resumed is True.

Works in both modes (per_task: one task, then stdin closes; persistent:
many tasks). With max_inflight > 1 each task runs in its own thread, so
several run at once (ctx is per task); otherwise one after the other. While run() is in
charge, print() and anything else written to stdout go to stderr, which
bygate copies to its log (with the execution id).
"""

import json
import os
import queue
import sys
import threading
import traceback

PROTOCOL = 1
AGENT_STATES = ("STARTING", "COMPLETED", "FAILED", "CANCELLING", "CANCELLED",
                "RESUMED", "WAITING_AGENT", "WAITING_USER", "QUEUED",
                "CALLING_AGENT")
_STRUCTURED = {"status", "content", "reply_data", "metadata",
               "extra_payload", "finalAnswer", "final_answer"}


class BygateError(Exception):
    """A request bygate answered with an error (e.g. an invalid argument):
    .error is its message, .code its error_code."""

    def __init__(self, reply):
        super().__init__(reply.get("error", "request failed"))
        self.error = reply.get("error", "")
        self.code = reply.get("error_code", "")
        self.reply = reply


class _Channel:
    """The protocol streams: lines out under one lock; lines in read by
    run() (and, one task at a time, by the waiting request itself)."""

    def __init__(self, out, inp, threaded):
        self._out = out
        self._in = inp
        self._lock = threading.Lock()
        self.threaded = threaded
        self.replies = {}  # task -> queue.Queue of reply lines (threaded)
        self.contexts = {}  # task -> Context

    def send(self, obj):
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._out.write(data.encode("utf-8") + b"\n")
            self._out.flush()

    def next_message(self):
        """The next line from bygate as a dict; None at the end of input."""
        for raw in self._in:
            if raw.strip():
                return json.loads(raw)
        return None

    def route(self, msg):
        """A reply or cancel line for a running task."""
        task = msg.get("task")
        if msg.get("type") == "reply" and task in self.replies:
            self.replies[task].put(msg)
        elif msg.get("type") == "cancel" and task in self.contexts:
            self.contexts[task]._cancel.set()

    def wait_reply(self, task):
        if self.threaded:
            msg = self.replies[task].get()
        else:
            msg = self.next_message()
            while msg is not None and not (msg.get("type") == "reply" and
                                           msg.get("task") == task):
                self.route(msg)
                msg = self.next_message()
        if msg is None:
            raise EOFError("bygate closed the input before replying")
        return msg

    def end(self):
        """End of input: wake every task still waiting for a reply."""
        for q in list(self.replies.values()):
            q.put(None)


class Context:
    """One task. Attributes: task (its number), action_type ("ASK_AGENT" or
    "RESUME"), header (the 12 by-framework header keys), body, content
    (body.content: text, or a list of messages), execution_id, message_id,
    session_id, agent_type, workspace, private_dir, resumed (a RESUME: the
    user's answer or a called agent's result is in content / body),
    attempt, group_results (after dispatch_group: {message id: result} of
    every child, else None). Every string is whole: a content or user_name
    holding U+0000 keeps its "\x00" (JSON "\u0000") and what follows, and
    so do the texts this agent sends back."""

    def __init__(self, channel, msg):
        self._ch = channel
        self._ids = 0
        self._cancel = threading.Event()
        self.task = msg["task"]
        self.action_type = msg.get("action_type", "ASK_AGENT")
        self.header = msg.get("header") or {}
        self.body = msg.get("body") or {}
        self.content = self.body.get("content", "")
        self.execution_id = msg.get("execution_id", "")
        self.message_id = self.header.get("message_id", "")
        self.session_id = self.header.get("session_id", "")
        self.agent_type = self.header.get("target_agent_type", "")
        self.workspace = msg.get("workspace", "")
        self.private_dir = msg.get("private_dir", "")
        self.resumed = bool(msg.get("resumed", False))
        self.attempt = msg.get("attempt", 1)
        self.group_results = msg.get("group_results")

    # -- streamed events (published at once) ---------------------------

    def _event(self, kind, content, **extra):
        line = {"type": kind, "task": self.task, "content": content}
        line.update({k: v for k, v in extra.items() if v is not None})
        self._ch.send(line)

    def chunk(self, text, event_type=None, content_type=None, metadata=None):
        """A piece of the answer (answerDelta; reasoningLogDelta for an
        agent called by another)."""
        self._event("chunk", text, event_type=event_type,
                    content_type=content_type, metadata=metadata)

    def state(self, text):
        """A state change, e.g. "PLANNER_CALLING_RESEARCHER"."""
        self._event("state", text)

    def artifact(self, url):
        """A produced file (its URL)."""
        self._event("artifact", url)

    def sub_step(self, title):
        """A sub-step title, under a fresh message id."""
        self._event("sub_step", title)

    def log(self, text):
        """A line in bygate's log (stderr)."""
        sys.stderr.write("%s\n" % text)
        sys.stderr.flush()

    # -- requests answered by bygate -----------------------------------

    def _request(self, kind, **args):
        self._ids += 1
        line = {"type": kind, "task": self.task, "id": self._ids}
        line.update({k: v for k, v in args.items() if v is not None})
        self._ch.send(line)
        return self._ch.wait_reply(self.task).get("result") or {}

    def _checked(self, kind, **args):
        result = self._request(kind, **args)
        if "error" in result and result.get("status") != "FAILED":
            raise BygateError(result)
        return result

    def ask_user(self, prompt):
        """Ask the user (text, or a {"questions": ...} object); the task
        then ends WAITING_USER and the answer arrives in a new task
        (resumed, content = the answer). Returns {"status": "WAITING_USER"}."""
        return self._checked("ask_user", prompt=prompt)

    def call_agent(self, target_agent_type, content, wait_for_reply=True,
                   extra_payload=None, metadata=None, route_policy=None,
                   *, timeout_ms=None, region=None, priority=None,
                   idempotency_key=None):
        """Ask another agent type. With wait_for_reply this task ends
        WAITING_AGENT and the callee's result resumes it (a new task,
        resumed, content / body["reply_data"] = the callee's). Returns
        {"status": "QUEUED", "message_id", ...}, or {"status": "FAILED",
        "error", "error_code"} when it cannot be routed. route_policy:
        FAIL_FAST (default), SEND_ANYWAY, WAKE_AND_WAIT (blocks up to
        timeout_ms, default 30000), WAKE_AND_QUEUE, QUEUE_ONLY; region and
        priority go to the wakeup controller and the delivery queue.
        idempotency_key (a string, put in the metadata): of the calls
        carrying one key to one agent type within worker.idempotency_ttl_s,
        only the first runs (docs/client.md, "Idempotency keys"); a copy
        gets no callback."""
        if idempotency_key is not None:
            metadata = dict(metadata or {}, idempotency_key=idempotency_key)
        return self._checked("call_agent",
                             target_agent_type=target_agent_type,
                             content=content, wait_for_reply=wait_for_reply,
                             extra_payload=extra_payload, metadata=metadata,
                             route_policy=route_policy, timeout_ms=timeout_ms,
                             region=region, priority=priority)

    def dispatch_group(self, tasks, wait_for_reply=True):
        """Fan out: tasks = [{"target_agent_type", "content", ...}]. With
        wait_for_reply this task is resumed once, after the last child,
        with ctx.group_results holding every child's result."""
        return self._checked("dispatch_group", tasks=list(tasks),
                             wait_for_reply=wait_for_reply)

    def kv_get(self, key, default=None):
        """Session state (seen by every task of the session)."""
        result = self._checked("kv_get", key=key)
        return result.get("value") if result.get("found") else default

    def history(self, limit=20):
        """The session's conversation (docs/history.md): its last `limit`
        (1-1000) messages, oldest first, each a dict {"role": "user" or
        "assistant", "content", "metadata", "session_id", "created_at"};
        the turns finished before this task."""
        return self._checked("history", limit=limit)["messages"]

    def kv_set(self, key, value):
        """Store a JSON value (at most 64 KiB) when this task finishes."""
        self._checked("kv_set", key=key, value=value)

    def resume_later(self, content, delay_ms=0, message_id=None):
        """Post a RESUME with `content` (any JSON: a non-blank string, a
        non-empty list or an object) to an execution of this session,
        delay_ms (at most 7 days) from now: message_id None = this
        execution (a timer: this task then ends WAITING_AGENT, and the
        RESUME arrives as a new task, resumed, its body["extra_payload"]
        ["bygate_post"] = {"from_message_id", "due_ms", "post_id"}), else
        the message id of another execution of the session. Sent when
        this task finishes (never twice), then when due, exactly once.
        A delayed post whose target has ended by then is dropped.
        Returns {"status": "POSTED", "due_ms", "message_id", "post_id"},
        or {"status": "FAILED", "error", "error_code"}: NOT_FOUND when the
        session has no such execution, ALREADY_FINISHED when it ended."""
        return self._checked("resume_later", content=content,
                             delay_ms=delay_ms, message_id=message_id)

    def cancel_call(self, message_id, force=False, reason=""):
        """Cancel an execution of this session (e.g. an agent this one
        called) and its sub-tree now, as a client's cancel_task: force
        kills a running one at once. Returns {"status":
        "CANCEL_REQUESTED", "cancelled_count", ...}, {"status":
        "ALREADY_FINISHED", ...} or {"status": "FAILED", "error",
        "error_code": "NOT_FOUND"}."""
        return self._checked("cancel_call", message_id=message_id,
                             force=bool(force), reason=reason or "")

    def agent_types_served(self, types):
        """The names among `types` (at most 1000) that no online worker
        serves now (what a FAIL_FAST call_agent would refuse), as a
        list in the order given."""
        result = self._request("agent_types_served", agent_types=list(types))
        if "error" in result:
            raise BygateError(result)
        return result.get("unserved", [])

    def cancelled(self):
        """True once the task was cancelled: stop soon."""
        if not self._cancel.is_set():
            if self._request("check_cancelled").get("cancelled"):
                self._cancel.set()
        return self._cancel.is_set()

    def call_workflow(self, kind, spec, agent_type=None):
        """Start a workflow (kind "dag", "group" or "fanout"; spec a dict,
        or the JSON text of an object, as in docs/workflows.md) as a call
        to agent_type or "bygate.<kind>" that waits for its result: this
        task then ends WAITING_AGENT and the workflow's end resumes it (a
        new task, resumed, body["reply_data"] = the result; a refused spec
        comes back FAILED with reply_data {"error": reason}). Returns
        call_agent's reply."""
        if kind not in ("dag", "group", "fanout"):
            raise ValueError("unknown workflow kind %r" % (kind,))
        if isinstance(spec, str):
            spec = json.loads(spec)
        if not isinstance(spec, dict):
            raise ValueError("a workflow spec is a JSON object")
        return self.call_agent(agent_type or "bygate." + kind,
                               json.dumps(spec, ensure_ascii=False),
                               wait_for_reply=True)


def result_line(task, value):
    """The result line for a handler's return value (WIRE 6.5)."""
    line = {"type": "result", "task": task}
    if value is None:
        return line
    if isinstance(value, str):
        line["status" if value in AGENT_STATES else "content"] = value
        return line
    if isinstance(value, dict):
        keys = set(value)
        if keys & {"reply_data", "content", "finalAnswer", "final_answer"} \
                or (keys and keys <= _STRUCTURED):
            content = value.get("content")
            if content is None:
                content = value.get("finalAnswer", value.get("final_answer"))
            for k, v in (("status", value.get("status")),
                         ("content", content),
                         ("reply_data", value.get("reply_data")),
                         ("metadata", value.get("metadata")),
                         ("extra_payload", value.get("extra_payload"))):
                if v is not None:
                    line[k] = v
            return line
        if value.get("status") is not None:
            line["status"] = value["status"]
        if value.get("metadata") is not None:
            line["metadata"] = value["metadata"]
        line["reply_data"] = value
        return line
    if isinstance(value, list) and value and \
            all(isinstance(v, dict) for v in value):
        line["content"] = value
        return line
    line["reply_data"] = value
    return line


def _run_task(channel, handler, ctx):
    try:
        line = result_line(ctx.task, handler(ctx))
    except Exception as e:  # the task fails, the program goes on
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        line = {"type": "result", "task": ctx.task,
                "error": "%s: %s" % (type(e).__name__, e),
                "error_type": type(e).__name__,
                "retryable": bool(getattr(e, "retryable", False))}
    try:
        channel.send(line)
    except (TypeError, ValueError) as e:  # not JSON-serialisable
        channel.send({"type": "result", "task": ctx.task,
                      "error": "result is not JSON: %s" % e})
    finally:
        channel.replies.pop(ctx.task, None)
        channel.contexts.pop(ctx.task, None)


def _protocol_out():
    """The real stdout for protocol lines; fd 1 and sys.stdout are pointed
    at stderr so that stray prints cannot break the protocol."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb", buffering=0)


def run(handler):
    """Serve tasks until stdin closes, then wait for running ones. With
    BYGATE_MAX_INFLIGHT (set by bygate) above 1, each task runs in its own
    thread; else one at a time in this one."""
    threaded = int(os.environ.get("BYGATE_MAX_INFLIGHT", "1") or 1) > 1
    channel = _Channel(_protocol_out(), sys.stdin.buffer, threaded)
    threads = []
    while True:
        msg = channel.next_message()
        if msg is None:
            break
        if msg.get("type") != "task":
            channel.route(msg)
            continue
        if msg.get("protocol") != PROTOCOL:
            sys.stderr.write("bygate_agent: protocol %r, expected %d\n"
                             % (msg.get("protocol"), PROTOCOL))
        ctx = Context(channel, msg)
        channel.contexts[ctx.task] = ctx
        if not threaded:
            _run_task(channel, handler, ctx)
            continue
        channel.replies[ctx.task] = queue.Queue()
        t = threading.Thread(target=_run_task, args=(channel, handler, ctx),
                             daemon=True)
        t.start()
        threads = [x for x in threads if x.is_alive()] + [t]
    channel.end()
    for t in threads:
        t.join()
