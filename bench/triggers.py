"""bench/triggers.py - the trigger figures of `make bench` (issue 14,
docs/triggers.md; imported by bench/run.py, which owns the processes):

- timer lateness: a 1 s timer (and a 200 ms one) served by three bygated
  on one Redis for a while: for each fire, the delay from its fire time to
  the stream entry's id (both Redis-clock ms), with triggers.poll_ms at its
  default (250) and at 50; every fire time must be sent exactly once;
- webhooks: signed POSTs, one at a time over one keep-alive connection:
  requests/s and latency (client monotonic clock) of a 202, and of a
  replayed idempotency key (200, nothing created)."""

import hashlib
import hmac
import http.client
import json
import statistics
import time

from bglib import proc  # bench/run.py put scripts/ on the path

SECRET = "bench-secret-0123456789abcdef"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def fleet(run, name, n, triggers, http_port=None):
    r = run.redis(name)
    c = r.client(timeout=10.0)
    run.owned.append(c)
    ds = []
    for i in range(n):
        extra = {"triggers": triggers}
        if http_port and i == 0:
            extra["http"] = {"port": http_port}
        ds.append(run.bygated(r, "%s-%d" % (name, i),
                              worker={"id": "bench-w%d" % i}, extra=extra))
    return c, ds


def timer_lateness(run, poll_ms):
    seconds = 4 if run.args.quick else 15
    timers = {"tick": {"agent_type": "noop", "content": "x", "every": "1s"},
              "fast": {"agent_type": "noop", "content": "x",
                       "every": "200ms"}}
    c, ds = fleet(run, "timers-poll%d" % poll_ms, 3,
                  {"poll_ms": poll_ms, "timers": timers})
    time.sleep(seconds)
    for d in ds:
        d.stop()
    out = {"poll_ms": poll_ms, "seconds": seconds}
    entries = c.xrange(run.keys.ctrl_agent_type("noop"))
    for name in ("tick", "fast"):
        late, seen = [], set()
        for eid, fields in entries:
            cmd = json.loads(fields["data"])
            meta = cmd["header"].get("metadata") or {}
            if meta.get("bygate_trigger") != name:
                continue
            fire = meta["bygate_fire_ms"]
            if fire in seen:
                raise RuntimeError("fire time %d of %s sent twice"
                                   % (fire, name))
            seen.add(fire)
            late.append(int(eid.split("-")[0]) - fire)
        if not late:
            raise RuntimeError("timer %s never fired" % name)
        out[name] = {"fires": len(late), "late_ms_p50": pct(late, 0.5),
                     "late_ms_p99": pct(late, 0.99), "late_ms_max": max(late)}
    return out


def sign(body, ts):
    mac = hmac.new(SECRET.encode(), ("%d." % ts).encode() + body,
                   hashlib.sha256).hexdigest()
    return {"X-Bygate-Signature": "sha256=" + mac,
            "X-Bygate-Timestamp": str(ts),
            "Content-Type": "application/json"}


def webhook_rate(run):
    n = 100 if run.args.quick else 1000
    port = proc.free_port()
    hooks = {"bench": {"agent_type": "noop", "secret": SECRET}}
    fleet(run, "webhooks", 1, {"webhooks": hooks}, http_port=port)
    time.sleep(0.5)  # the definitions published, the listener up
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(body, key):
        h = sign(body, int(time.time()))
        h["Idempotency-Key"] = key
        t0 = time.monotonic()
        conn.request("POST", "/hooks/bench", body=body, headers=h)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - t0

    out = {}
    for what, keyf, want in (("new", lambda i: "k%d" % i, 202),
                             ("replay", lambda i: "k%d" % (i % 10), 200)):
        lat = []
        t0 = time.monotonic()
        for i in range(n):
            status, took = post(json.dumps({"i": i}).encode(), keyf(i))
            if status != want:
                raise RuntimeError("POST %s %d: status %d, expected %d"
                                   % (what, i, status, want))
            lat.append(took * 1000.0)
        total = time.monotonic() - t0
        out[what] = {"requests": n, "per_s": round(n / total),
                     "ms_p50": round(statistics.median(lat), 2),
                     "ms_p99": round(pct(lat, 0.99), 2)}
    conn.close()
    return out


def triggers(run, results, phase, say, rule):
    lat = [phase("timers_poll%d" % p, "Timer lateness, poll %d ms" % p,
                 timer_lateness, run, p) for p in (250, 50)]
    hooks = phase("webhooks", "Webhook requests", webhook_rate, run)
    results["triggers"] = {"timers": lat, "webhooks": hooks}
    say(rule)
    say("Triggers (docs/triggers.md; noop plugin)")
    for t in lat:
        if not t:
            continue
        for name, every in (("tick", "1 s"), ("fast", "200 ms")):
            x = t[name]
            say("  timer every %s, 3 bygated, poll %d ms, %d s: %d fires, "
                "none twice; fire time -> entry p50 %d ms, p99 %d ms, max "
                "%d ms" % (every, t["poll_ms"], t["seconds"], x["fires"],
                           x["late_ms_p50"], x["late_ms_p99"],
                           x["late_ms_max"]))
    if hooks:
        for what, label in (("new", "signed POST -> 202 (task created)"),
                            ("replay", "replayed idempotency key -> 200 "
                             "(nothing created)")):
            x = hooks[what]
            say("  webhook, %s: %d req/s one at a time, p50 %.2f ms, p99 "
                "%.2f ms" % (label, x["per_s"], x["ms_p50"], x["ms_p99"]))
