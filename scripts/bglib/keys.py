"""by-framework Redis key names (WIRE.md 1.2) for tests and scripts, under
the v1 (legacy) or v2 (Cluster hash-tag) schema. Only the keys a test or a
readiness check reads; bygated builds its own keys in wire/."""

__all__ = ["Keys", "online_lease_patterns"]

_V1 = "byai_gateway:"
_V2 = "byai_gateway:v2:"


class Keys:
    def __init__(self, schema="v1"):
        if schema not in ("v1", "v2"):
            raise ValueError("key schema must be v1 or v2, not %r" % (schema,))
        self.schema = schema

    def _pick(self, v1, v2):
        return _V1 + v1 if self.schema == "v1" else _V2 + v2

    def ctrl_agent_type(self, t):
        return self._pick("ctrl:agent_type:" + t, "ctrl:agent_type:" + t)

    def ctrl_worker(self, w):
        return self._pick("ctrl:worker:" + w, "ctrl:worker:{%s}" % w)

    def data_stream(self, s):
        return self._pick("session:%s:data_stream" % s,
                          "session:{%s}:data_stream" % s)

    def registry(self, s):
        return self._pick("session:%s:registry" % s, "session:{%s}:registry" % s)

    def session_kv(self, s):
        return self._pick("session:%s:bygate_kv" % s,
                          "session:{%s}:bygate_kv" % s)

    def session_history(self, s):
        return self._pick("session:%s:bygate_history" % s,
                          "session:{%s}:bygate_history" % s)

    def task_group(self, g):
        return self._pick("task_group:" + g, "task_group:{%s}" % g)

    def task_group_results(self, g):
        return self._pick("task_group:%s:results" % g,
                          "task_group:{%s}:results" % g)

    def known_workers(self):
        return self._pick("registry:workers", "registry:workers")

    def worker_agent_types(self, w):
        return self._pick("registry:worker:agent_types:" + w,
                          "registry:worker:{%s}:agent_types" % w)

    def agent_type_members(self, t):
        return self._pick("registry:agent_type:workers:" + t,
                          "registry:agent_type:{%s}:workers" % t)

    def agent_type_denied(self, t):
        return self._pick("registry:agent_type:denied:" + t,
                          "registry:agent_type:{%s}:denied" % t)

    def worker_online(self, w):
        return self._pick("registry:worker:online:" + w,
                          "registry:worker:{%s}:online" % w)

    def worker_admin(self, w):
        return self._pick("registry:worker:admin:" + w,
                          "registry:worker:{%s}:admin" % w)

    def worker_status(self, w):
        return self._pick("registry:worker:status:" + w,
                          "registry:worker:{%s}:status" % w)

    def idempotency(self, t, key):
        """bygate's claim of an idempotency key (wire/keys.h)."""
        return self._pick("ctrl:agent_type:%s:bygate_idem:%s" % (t, key),
                          "{byai_gateway:v2:ctrl:agent_type:%s}:bygate_idem:%s"
                          % (t, key))

    def triggers(self):
        return self._pick("bygate_triggers", "{bygate_triggers}:names")

    def trigger(self, name):
        return self._pick("bygate_trigger:" + name,
                          "{bygate_triggers}:trigger:" + name)

    def trigger_active(self, name):
        return self._pick("bygate_trigger:%s:active" % name,
                          "{bygate_triggers}:trigger:%s:active" % name)

    # WIRE 1.2: the v1 trace keys are Python's by_framework:trace:* keys
    def trace_meta(self, trace_id):
        return ("by_framework:trace:" + trace_id if self.schema == "v1"
                else _V2 + "trace:{%s}" % trace_id)

    def trace_spans(self, trace_id):
        return ("by_framework:trace:spans:" + trace_id if self.schema == "v1"
                else _V2 + "trace:spans:{%s}" % trace_id)

    def trace_index(self, kind, ident):
        """kind is session, worker or agent."""
        return ("by_framework:trace:idx:%s:%s" % (kind, ident)
                if self.schema == "v1"
                else _V2 + "trace:idx:%s:%s" % (kind, ident))

    def obs_collector_lock(self):
        return "by_framework:obs:collector_lock"

    def obs_history(self):
        return "by_framework:obs:history"

    def deadletter(self):
        return self._pick("control_plane:mgmt:deadletter",
                          "control_plane:mgmt:deadletter")


def online_lease_patterns():
    """SCAN MATCH patterns of every worker online lease, v1 and v2 (WIRE 1.2:
    braces are literal in Redis globs)."""
    return [_V1 + "registry:worker:online:*",
            _V2 + "registry:worker:{*}:online"]
