#!/usr/bin/env python3
"""`make run`: start a private redis-server (data under run/redis/) and
build/bygated with the given config, send one demo task through the bygate
CLI and print its streamed events, then follow bygated's log until Ctrl-C or
SIGTERM, and stop everything (bygated gracefully, then redis). --demo-only
stops right after the demo. Builds nothing: make did that."""

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bglib import REPO, proc  # noqa: E402
from bglib.bygated import (Bygated, BygatedError, ready_any_lease,  # noqa: E402
                           ready_either, ready_log)
from bglib.keys import Keys  # noqa: E402
from bglib.redisserver import RedisServer, RedisStartError  # noqa: E402

DEMO_TEXT = "Hello from bygate: this text streams back in chunks"
# The multi-agent demo (examples/python): planner calls researcher, then
# writer, and is resumed by each reply.
AGENTS_DEMO = ("planner", "demo-agents", "Plan a weekend in Kyoto")
# The task graph of docs/workflows.md, run by the bygate.dag agent type.
DAG_DEMO = ("bygate.dag", "demo-dag",
            pathlib.Path(__file__).resolve().parents[1] / "examples"
            / "workflows" / "agentos.json")
# A primer and its followers (docs/workflows.md, "Groups").
GROUP_DEMO = ("bygate.group", "demo-group",
              pathlib.Path(__file__).resolve().parents[1] / "examples"
              / "workflows" / "review-group.json")
RULE = "-" * 72


class Failure(Exception):
    """A step failed; the message says which."""


class Interrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP arrived while starting up."""


class ForceStop(Exception):
    """A second signal arrived while stopping: kill at once."""


class Signals:
    """Signal handlers only record the signal; the first one arriving during
    the shutdown raises ForceStop once, so a slow drain can be cut short."""

    def __init__(self):
        self.received = None
        self.stopping = False
        self.forced = False
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        self.received = self.received or signal.Signals(signum).name
        if self.stopping and not self.forced:
            self.forced = True
            raise ForceStop()

    def check(self):
        if self.received:
            raise Interrupted(self.received)


def say(msg=""):
    print(msg, flush=True)


def shown(path):
    """A path as the user should type it from the current directory."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(path)


def check_inputs(args):
    for name in ("bygated", "bygate"):
        exe = args.build / name
        if not os.access(exe, os.X_OK):
            raise Failure("%s is missing: build it first (`make all`)" % shown(exe))
    if not args.config.is_file():
        raise Failure("config file %s not found" % shown(args.config))
    pidfile = args.run_dir / "bygated.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:  # a recycled pid is not a bygated
        alive = b"bygated" in pathlib.Path(
            "/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        alive = False
    if pid != os.getpid() and alive and proc.pid_alive(pid):
        raise Failure("bygated from another `make run` is still running "
                      "(pid %d, %s); stop it first" % (pid, shown(pidfile)))


def start_redis(args, signals):
    redis = RedisServer(args.run_dir / "redis", label="redis-server (make run)")
    redis.start()
    (args.run_dir / "redis.pid").write_text("%d\n" % redis.pid)
    say("redis-server pid %d listening on 127.0.0.1:%d" % (redis.pid, redis.port))
    signals.check()
    return redis


def start_bygated(args, redis, env, signals):
    client = redis.client(timeout=2.0)
    base = ready_either(ready_log, ready_any_lease(client))

    def ready(d):
        signals.check()
        return base(d)
    log = args.run_dir / "bygated.log"
    if log.exists():
        log.unlink()
    d = Bygated(args.build / "bygated", args.config, args.run_dir, env=env,
                ready=ready, start_timeout=args.ready_timeout)
    d.start(wait=False)
    (args.run_dir / "bygated.pid").write_text("%d\n" % d.pid)
    say("bygated pid %d starting (config %s, log %s)"
        % (d.pid, shown(args.config), shown(d.log_path)))
    try:
        d.wait_ready()
    finally:
        client.close()
    say("bygated is ready")
    return d


def send_command(args, session, content, agent_type=None):
    return [shown(args.build / "bygate"), "send", "--agent-type",
            agent_type or args.agent_type, "--session", session,
            "--content", content, "--wait"]


def run_demo(args, env, signals):
    run_shown(args, env, signals, send_command(args, args.session, DEMO_TEXT))
    agent, session, text = AGENTS_DEMO
    if not agent_configured(args, agent):
        return
    say("A multi-agent flow: %s calls researcher, then writer (Python exec "
        "agents, examples/python); the session stream carries every "
        "agent's events:" % agent)
    run_shown(args, env, signals,
              send_command(args, session, text, agent_type=agent))
    agent, session, spec = DAG_DEMO
    if not agent_configured(args, agent):
        return
    say("A workflow: the task graph of %s (bygate.dag): research, then a "
        "draft, then review and translation in parallel, each a call to a "
        "Python agent; one state event per step:" % shown(spec))
    run_shown(args, env, signals,
              [shown(args.build / "bygate"), "dag", "run", shown(spec),
               "--session", session, "--wait"])
    agent, session, spec = GROUP_DEMO
    if not agent_configured(args, agent):
        return
    say("A group (bygate.group): the primer (researcher) runs first, then "
        "three reviewers in parallel, each with the primer's output and "
        "handle:")
    run_shown(args, env, signals,
              [shown(args.build / "bygate"), "group", "start", shown(spec),
               "--session", session, "--wait"])


def agent_configured(args, name):
    try:
        text = args.config.read_text()
    except OSError:
        return False
    return ('name = "%s"' % name) in text


def run_shown(args, env, signals, argv):
    say("\n$ %s" % " ".join(_quote(a) for a in argv))
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + args.demo_timeout
    try:
        while p.poll() is None:
            signals.check()
            if time.monotonic() > deadline:
                raise Failure("the demo task did not finish within %.0fs"
                              % args.demo_timeout)
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if p.returncode != 0:
        raise Failure("the demo failed (%s exited with %d)"
                      % (" ".join(argv[1:3]), p.returncode))
    say("")


def _quote(arg):
    safe = all(c.isalnum() or c in "-_./:=@" for c in arg)
    return arg if arg and safe else "'" + arg.replace("'", "'\\''") + "'"


def banner(args, redis, d, http_port):
    env = "REDIS_HOST=127.0.0.1 REDIS_PORT=%d" % redis.port
    top_env = "%s BYAI_WORKER_HEALTH_PORT=%s" % (env, http_port)
    send = " ".join(_quote(a) for a in send_command(
        args, "demo-2", "Another task for bygate"))
    kids = " ".join(str(p) for p in d.child_pids()) or "none yet"
    say(RULE)
    say("Running:")
    say("  redis-server  pid %-7d 127.0.0.1:%d  (data %s)"
        % (redis.pid, redis.port, shown(redis.dir)))
    say("  bygated       pid %-7d config %s  (pool children: %s)"
        % (d.pid, shown(args.config), kids))
    say("Send more tasks:")
    say("  %s %s" % (env, send))
    say("Watch every task (the event log) and the fleet:")
    say("  %s -c %s events --follow" % (shown(args.build / "bygate"),
                                        shown(args.config)))
    say("  %s %s -c %s top" % (top_env, shown(args.build / "bygate"),
                               shown(args.config)))
    say("bygated's HTTP endpoint: http://127.0.0.1:%s/status, /metrics, "
        "/readyz" % http_port)
    say("Watch a session's events in Redis:")
    say("  redis-cli -p %d XRANGE %s - +"
        % (redis.port, Keys("v1").data_stream(args.session)))
    say("Ctrl-C (or SIGTERM to pid %d) stops bygated and redis." % os.getpid())
    say("Following %s:" % shown(d.log_path))
    say(RULE)


def follow_log(d, signals, start_lines=10):
    """Copy the log to stdout until a signal arrives or bygated exits; returns
    False if bygated exited by itself."""
    say(proc.tail_text(d.log_path, start_lines))
    out = sys.stdout.buffer
    with open(d.log_path, "rb") as f:
        f.seek(0, os.SEEK_END)
        while not signals.received:
            chunk = f.read()
            if chunk:
                out.write(chunk)
                out.flush()
            elif not d.alive():
                return False
            else:
                time.sleep(0.2)
    return True


def shutdown(d, redis, signals, timeout):
    """Stop bygated (SIGTERM, bounded drain, SIGKILL), then redis; a signal
    arriving meanwhile kills whatever is still being waited for."""
    signals.stopping = True
    if d is not None and d.alive():
        say("\nstopping bygated (SIGTERM; drain up to %.0fs, signal again to "
            "kill it now)" % timeout)
        try:
            say("bygated exited (%s)" % _status(d.stop(signal.SIGTERM, timeout)))
        except ForceStop:
            d.proc.kill()
            say("bygated killed")
    if redis is not None and redis.alive():
        try:
            redis.stop()
        except ForceStop:
            redis.kill()
        say("redis-server stopped")


def _status(rc):
    if rc is None or rc >= 0:
        return "status %s" % rc
    return signal.Signals(-rc).name


def run(args, signals):
    d = redis = None
    status = 0
    try:
        check_inputs(args)
        for line in proc.make_reachable_by_others(
                pathlib.Path(__file__).resolve().parents[1], args.build)[:3]:
            print("run.py: opened for the pool user: %s" % line)
        args.run_dir.mkdir(parents=True, exist_ok=True)
        redis = start_redis(args, signals)
        env = proc.clean_env(redis.env(), prefixes=("REDIS_",))
        # bygated's GET /status on a free loopback port, so that `bygate
        # top` (which reads http.port through the same variable) shows the
        # pool's children too.
        env["BYAI_WORKER_HEALTH_PORT"] = str(proc.free_port(
            exclude=(redis.port,)))
        d = start_bygated(args, redis, env, signals)
        run_demo(args, env, signals)
        if not args.demo_only:
            banner(args, redis, d, env["BYAI_WORKER_HEALTH_PORT"])
            if not follow_log(d, signals):
                raise Failure("bygated exited by itself (%s)"
                              % _status(d.returncode))
    except Interrupted as e:
        say("\n%s received" % e)
    except (Failure, BygatedError, RedisStartError, OSError) as e:
        status = 1
        say("\nmake run: %s" % e)
        if d is not None and not isinstance(e, BygatedError):
            say("--- bygated log tail (%s) ---\n%s"
                % (shown(d.log_path), d.log_tail()))
    finally:
        try:
            shutdown(d, redis, signals, args.stop_timeout)
        finally:
            for name in ("bygated.pid", "redis.pid"):
                try:
                    (args.run_dir / name).unlink()
                except OSError:
                    pass
    return status


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", type=pathlib.Path)
    ap.add_argument("--config", default="etc/bygate.conf", type=pathlib.Path)
    ap.add_argument("--run-dir", default=REPO / "run", type=pathlib.Path,
                    help="runtime directory (default <repo>/run)")
    ap.add_argument("--demo-only", action="store_true",
                    help="stop everything after the demo task")
    ap.add_argument("--agent-type", default="echo")
    ap.add_argument("--session", default="demo-1")
    ap.add_argument("--ready-timeout", type=float, default=30.0)
    ap.add_argument("--demo-timeout", type=float, default=60.0)
    ap.add_argument("--stop-timeout", type=float, default=40.0,
                    help="graceful drain bound before SIGKILL (seconds)")
    args = ap.parse_args(argv)
    args.build = args.build.resolve()
    args.config = args.config.resolve()
    args.run_dir = args.run_dir.resolve()
    return args


def main(argv=None):
    args = parse_args(argv)
    signals = Signals()
    return run(args, signals)


if __name__ == "__main__":
    sys.exit(main())
