"""The integration-test fixture `h`: a per-test temporary directory, private
redis-server(s), bygated instances configured from dicts, the bygate CLI, and
cleanup of every process even when the test fails. tests/run.py passes an `h`
to every `def test_xxx(h)` in tests/integration/test_*.py.

    def test_echo_streams_chunks(h):
        d = h.start_bygated({"pool": {"size": 1}})
        out = h.bygate("send", "--agent-type", "echo", "--session", "s1",
                       "--content", "hi", "--wait")
        assert out.returncode == 0, out.stderr
        events = h.client().stream_data(h.keys.data_stream("s1"))
"""

import itertools
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from bglib import proc  # noqa: E402
# Re-exported for tests: `from harness import RespError, wait_until, ...`.
from bglib.bygated import (Bygated, BygatedError, READY_LINE,  # noqa: E402,F401
                           ready_log, ready_lease, ready_any_lease,
                           ready_either, lease_is_online)
from bglib.keys import Keys  # noqa: E402
from bglib.libconfig import Raw, deep_merge, render  # noqa: E402,F401
from bglib.redisserver import RedisServer, RedisStartError  # noqa: E402,F401
from bglib.rediscluster import RedisCluster, ClusterError  # noqa: E402,F401
from bglib.clusterclient import ClusterBackend  # noqa: E402
from bglib.resp import (RespClient, RespError, RespTimeout,  # noqa: E402,F401
                        decode_entries, entry_data, pairs_to_dict)
from bglib.proc import wait_until, pid_alive  # noqa: E402,F401


EXAMPLES_PY = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


# ---- positive signals before a negative assertion (docs/testing.md) ------
# "X did not happen" checked after a bare time.sleep passes whenever the
# sleep was too short. Wait first for something that proves bygated got
# past the point where X would have happened, then assert.

def info_count(client, section, name, field):
    """A counter of the Redis server behind `client` from INFO <section>:
    the `field` of the line `name` (e.g. "commandstats", "cmdstat_xread",
    "calls"; "errorstats", "errorstat_EXECABORT", "count"), 0 if absent."""
    text = client.call("INFO", section)
    m = re.search(r"^%s:(?:.*,)?%s=(\d+)" % (re.escape(name), re.escape(field)),
                  text, re.M)
    return int(m.group(1)) if m else 0


def command_calls(client, command):
    """How many times the Redis server has run `command` (INFO commandstats;
    a blocking command counts when it is issued, not when it returns)."""
    return info_count(client, "commandstats", "cmdstat_" + command.lower(),
                      "calls")


def wait_reads(client, n=3, timeout=10.0, command="xreadgroup"):
    """Wait until the Redis server has been sent `n` more XREADGROUPs than
    now. bygated has one read in flight at a time and issues the next only
    after the reply to the last, so with one bygated on this Redis its
    consumer loop has turned n - 1 times since the call: an entry it was
    able to read then is delivered (and picked up) by now. Only meaningful
    when nothing else on this Redis runs `command`."""
    start = command_calls(client, command)
    return wait_until(lambda: command_calls(client, command) >= start + n,
                      timeout, what="%d more %s calls" % (n, command.upper()))


def blocked_in(client, command):
    """The CLIENT LIST lines of the connections blocked (flag b) in
    `command` right now. A reader blocked after entries were added has read
    past them: a blocked read with entries after its id returns at once."""
    return [line for line in client.call("CLIENT", "LIST").splitlines()
            if " cmd=%s " % command.lower() in line
            and "b" in line.split(" flags=", 1)[1].split(" ", 1)[0]]


TASK_END = ("task finished: ", "slow task: ", "task FAILED after ",
            "dead-lettered (", "not finishing it here")


def task_end_pattern(message_id):
    """The log line in which bygated is done with a task of message_id:
    its finish applied and the task freed (`task finished: STATUS` is a
    debug line, the test configuration's level), a dead letter, or a
    finish dropped after a lapsed lease."""
    return re.compile(r"^.*(?:%s).*\bmsg=%s[ )].*$" % (
        "|".join(re.escape(p) for p in TASK_END), re.escape(message_id)),
        re.M)


def wait_task_end(d, message_id, timeout=10.0, since=None):
    """Wait until bygated `d` logs that it is done with a task of
    message_id (task_end_pattern; from `since`, a d.log_mark(), default its
    last start): whatever it was going to write for that execution is in
    Redis. Returns the line."""
    return d.wait_log(task_end_pattern(message_id), timeout=timeout,
                      since=since)


def standalone_only(why):
    """Mark a test that checks something only one redis-server has (a
    CONFIG SET on the server, its commandstats, its MULTI/EXEC): skipped,
    with `why` printed, when the suite runs on a Redis Cluster
    (BYGATE_TEST_REDIS=cluster, `make test-cluster`)."""
    def mark(fn):
        fn.standalone_only = why
        return fn
    return mark


def build_dir():
    """The build directory under test: $BYGATE_BUILD (set by tests/run.py),
    else <repo>/build; always absolute."""
    return pathlib.Path(os.environ.get("BYGATE_BUILD") or REPO / "build").resolve()


def timeout(seconds):
    """Decorator: this test's watchdog timeout instead of the runner's."""
    def mark(fn):
        fn.timeout = seconds
        return fn
    return mark


class Harness:
    """Owns everything a test starts; close() stops it all in reverse order.
    The temporary directory is removed after a passing test and kept (its
    path printed by the runner) after a failing one."""

    def __init__(self, name="test", build=None, keep_tmp=False):
        self.name = name
        self.build = pathlib.Path(build).resolve() if build else build_dir()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="bygate-%s-" % name))
        # mkdtemp makes it 0700: children running as the pool user (bygated
        # root, pool.user) must pass through it to their workspace and to
        # the exec programs' directory (the config file's).
        os.chmod(self.tmp, 0o711)
        self.keep_tmp = keep_tmp or bool(os.environ.get("BYGATE_KEEP_TMP"))
        # BYGATE_TEST_REDIS=cluster: h.redis is a 3-master Redis Cluster
        # (`make test-cluster`), whose keys are v2 by force
        self.cluster_mode = os.environ.get("BYGATE_TEST_REDIS") == "cluster"
        self.keys = Keys("v2" if self.cluster_mode else
                         os.environ.get("BYGATE_TEST_KEY_SCHEMA", "v1"))
        self._redis = None
        self._owned = []      # RedisServer, Bygated, RespClient: closed reversed
        self._bygateds = []
        self._ids = itertools.count(1)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)

    # -- paths -----------------------------------------------------------

    def bin(self, name):
        """Absolute path of a built program (bygated, bygate, bygate-child)."""
        return self.build / name

    def plugin(self, name):
        """build/plugins/<name>.so, else build/test-plugins/<name>.so."""
        for sub in ("plugins", "test-plugins"):
            p = self.build / sub / (name + ".so")
            if p.exists():
                return p
        return self.build / "plugins" / (name + ".so")

    def agent_type(self, name, plugin=None, options=None, **settings):
        """An agent_types entry: plugin handler, plugin <name>.so by default."""
        entry = {"name": name, "handler": "plugin",
                 "plugin": str(self.plugin(plugin or name))}
        if options is not None:
            entry["options"] = options
        entry.update(settings)
        return entry

    # -- redis -----------------------------------------------------------

    @property
    def redis(self):
        """The test's default redis-server, started on first use."""
        if self._redis is None:
            self._redis = (ClusterBackend(self.start_cluster())
                           if self.cluster_mode else self.start_redis())
        return self._redis

    def use_cluster(self):
        """From now on h.redis is a 3-master Redis Cluster with v2 keys, as
        for the whole suite under BYGATE_TEST_REDIS=cluster (call it before
        h.redis is first used)."""
        if self._redis is not None:
            raise RuntimeError("h.redis is already a standalone server")
        self.cluster_mode = True
        self.keys = Keys("v2")

    def start_redis(self, args=()):
        """Another private redis-server (its data under the test's tmp)."""
        r = RedisServer(self.tmp / ("redis%d" % next(self._ids)), args=args)
        self._owned.append(r)
        r.start()
        return r

    def start_postgres(self):
        """A private PostgreSQL (bglib.pgserver.PgServer): initdb under the
        test's tmp, a free loopback port; stopped by pid at cleanup."""
        from bglib.pgserver import PgServer
        pg = PgServer(self.tmp / ("pg%d" % next(self._ids)))
        self._owned.append(pg)
        pg.start()
        return pg

    def start_cluster(self, masters=3, replicas=0, node_timeout_ms=1000,
                      **kw):
        """A private Redis Cluster (bglib.rediscluster.RedisCluster), started
        and formed, its nodes' directories under the test's tmp (kept with
        it after a failure); stopped at cleanup even if the test fails."""
        c = RedisCluster(self.tmp / ("cluster%d" % next(self._ids)),
                         masters, replicas, node_timeout_ms, keep_dirs=True,
                         **kw)
        self._owned.append(c)
        c.start()
        return c

    def client(self, redis=None, **kw):
        """A RespClient to `redis` (default: h.redis), closed at cleanup."""
        c = (redis or self.redis).client(**kw)
        self._owned.append(c)
        return c

    def env(self, redis=None, **extra):
        """A clean environment (no inherited REDIS_*/BYAI_* variables) that
        points by-framework processes at `redis` (default h.redis)."""
        return proc.clean_env(dict((redis or self.redis).env(), **extra))

    # -- bygated ---------------------------------------------------------

    def config(self, overrides=None, redis=None, worker_id=None):
        """The default test configuration merged with overrides (a None value
        removes a key). Each call gets fresh state and workspace dirs."""
        n = next(self._ids)
        base = self.tmp / ("bygated%d" % n)
        (base / "state").mkdir(parents=True, exist_ok=True)
        (base / "workspace").mkdir(parents=True, exist_ok=True)
        r = redis or self.redis
        cfg = {
            "redis": dict({"host": r.host, "port": r.port},
                          **({"mode": "cluster", "key_schema": "v2",
                              "cluster_nodes": r.cluster.seeds()}
                             if isinstance(r, ClusterBackend) else {})),
            "worker": {"id": worker_id or "itest-w%d" % n},
            "pool": {"size": 2},
            "paths": {"state_dir": str(base / "state"),
                      "workspace_dir": str(base / "workspace")},
            "log": {"level": "debug"},
            "agent_types": [self.agent_type("echo")],
        }
        cfg = deep_merge(cfg, overrides)
        for at in cfg.get("agent_types") or []:
            # The test agents import examples/python/bygate_agent.py: an
            # agent type declares what it reads besides its own directory.
            if at.get("handler") == "exec":
                sb = at.setdefault("sandbox", {})
                sb.setdefault("read_paths", [str(EXAMPLES_PY)])
        return cfg

    def bygated(self, overrides=None, *, config=None, redis=None, env=None,
                args=(), ready=ready_log, start_timeout=30.0):
        """A Bygated (not started) for config (a dict or a file path; default
        h.config(overrides)), in its own directory under the test's tmp."""
        if config is None:
            config = self.config(overrides, redis=redis)
        workdir = self.tmp / ("bygated-run%d" % next(self._ids))
        d = Bygated(self.bin("bygated"), config, workdir,
                    env=env if env is not None else proc.clean_env(),
                    args=args, ready=ready, start_timeout=start_timeout,
                    label="bygated#%d" % (len(self._bygateds) + 1))
        self._owned.append(d)
        self._bygateds.append(d)
        return d

    def start_bygated(self, overrides=None, *, wait=True, timeout=None, **kw):
        """bygated(...) then start(wait): raises BygatedError with its log
        tail if it exits or is not ready in time."""
        return self.bygated(overrides, **kw).start(wait, timeout)

    @property
    def worker_id(self):
        """The worker id of the most recently created bygated config."""
        for d in reversed(self._bygateds):
            if isinstance(d.config, dict):
                return d.config.get("worker", {}).get("id")
        return None

    # -- CLI -------------------------------------------------------------

    def bygate(self, *args, redis=None, env=None, timeout=60.0, input=None):
        """Run the bygate CLI to completion with REDIS_HOST/REDIS_PORT of
        `redis`; returns CompletedProcess (text stdout/stderr, returncode)."""
        exe = self.bin("bygate")
        if not exe.exists():
            raise FileNotFoundError("%s is not built (run `make all`)" % exe)
        return subprocess.run(
            [str(exe), *[str(a) for a in args]],
            env=env if env is not None else self.env(redis),
            input=input, capture_output=True, text=True, timeout=timeout,
            cwd=str(self.tmp),
            stdin=None if input is not None else subprocess.DEVNULL)

    def spawn(self, argv, label=None, env=None, **kw):
        """Start any helper process, tracked and killed at cleanup."""
        return proc.spawn(argv, label=label or os.path.basename(str(argv[0])),
                          env=env if env is not None else self.env(), **kw)

    # -- cleanup and reports ---------------------------------------------

    def failure_report(self, lines=40):
        """Log tails of every bygated this test started (for the runner)."""
        parts = []
        for d in self._bygateds:
            parts.append("--- %s log tail (%s) ---\n%s" % (
                d.label, d.log_path, d.log_tail(lines) or "(empty)"))
        return "\n".join(parts)

    def close(self, failed=False):
        """Stop everything (bygated gracefully with a bound, then redis),
        close clients, then remove the tmp dir unless the test failed."""
        errors = []
        for obj in reversed(self._owned):
            try:
                if isinstance(obj, Bygated):
                    obj.stop(timeout=10.0)
                else:
                    obj.close()
            except Exception as e:  # cleanup must go on
                errors.append("%r: %s" % (obj, e))
        self._owned.clear()
        if not (failed or self.keep_tmp):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise RuntimeError("cleanup failed: " + "; ".join(errors))
