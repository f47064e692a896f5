"""Self-tests of the test infrastructure: the RESP client against a real
redis-server, the redis and bygated fixtures (bygated replaced by a small fake
daemon so these tests do not depend on it), libconfig rendering, the runner
(tests/run.py) and `make run` (scripts/run.py) driven with fake binaries."""

import json
import re
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from harness import (REPO, Bygated, BygatedError, Harness, Keys, Raw,
                     RedisServer, RespError, RespTimeout,
                     deep_merge, lease_is_online, pid_alive, ready_any_lease,
                     ready_lease, render, wait_until)
from bglib import proc

PY = sys.executable

FAKE_BYGATED = """#!%s
# Fake bygated for harness self-tests: logs its config and REDIS_PORT, starts
# one child, says ready, stops the child on SIGTERM/SIGINT and exits 0.
import os, signal, subprocess, sys, time
conf = sys.argv[sys.argv.index("-c") + 1]
mode = os.environ.get("FAKE_BYGATED_MODE", "")
print("fake bygated: config %%s REDIS_PORT %%s"
      %% (conf, os.environ.get("REDIS_PORT")), flush=True)
if mode == "exit3":
    print("fatal: bad config", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append("TERM"))
signal.signal(signal.SIGINT, lambda *a: stop.append("INT"))
if mode != "never-ready":
    print("bygated ready", flush=True)
while not stop:
    time.sleep(0.02)
if mode != "orphan-child":
    child.terminate()
    child.wait()
print("stopping on", stop[0], flush=True)
"""

FAKE_BYGATE = """#!%s
# Fake bygate CLI: prints its arguments and three streamed events.
import os, sys
print("fake bygate:", " ".join(sys.argv[1:]), "port", os.environ.get("REDIS_PORT"))
for i in range(3):
    print("chunk %%d" %% i)
sys.exit(int(os.environ.get("FAKE_BYGATE_EXIT", "0")))
"""


def write_exe(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_build(root):
    """A build dir whose bygated and bygate are the fakes above."""
    build = pathlib.Path(root) / "fakebuild"
    write_exe(build / "bygated", FAKE_BYGATED % PY)
    write_exe(build / "bygate", FAKE_BYGATE % PY)
    return build


# ---- RESP client -----------------------------------------------------------

def test_resp_set_get_roundtrip(h):
    c = h.client()
    assert c.call("SET", "k", "välue") == "OK"
    assert c.call("GET", "k") == "välue"
    assert c.call("GET", "missing") is None
    assert c.call("INCRBY", "n", 5) == 5


def test_resp_decode_false_returns_bytes(h):
    c = h.client(decode=False)
    c.call("SET", b"bin", b"\x00\xff\r\n")
    assert c.call("GET", b"bin") == b"\x00\xff\r\n"


def test_resp_large_value_roundtrip(h):
    value = "x" * (3 * 1024 * 1024 + 7)
    c = h.client()
    c.call("SET", "big", value)
    assert c.call("GET", "big") == value


def test_resp_error_reply_raises_resperror(h):
    c = h.client()
    c.call("SET", "s", "v")
    try:
        c.call("LPUSH", "s", "x")
    except RespError as e:
        assert e.code == "WRONGTYPE", e.message
    else:
        raise AssertionError("no RespError")
    assert c.call("PING") == "PONG"


def test_resp_pipeline_returns_replies_in_order(h):
    c = h.client()
    replies = c.pipeline([("SET", "a", 1), ("INCR", "a"), ("GET", "a"),
                          ("RPUSH", "l", "x", "y"), ("LRANGE", "l", 0, -1)])
    assert replies == ["OK", 2, "2", 2, ["x", "y"]]


def test_resp_pipeline_error_raised_after_all_replies_read(h):
    c = h.client()
    c.call("SET", "s", "v")
    cmds = [("INCR", "n"), ("LPUSH", "s", "x"), ("INCR", "n")]
    try:
        c.pipeline(cmds)
    except RespError as e:
        assert e.code == "WRONGTYPE"
    else:
        raise AssertionError("no RespError")
    assert c.call("GET", "n") == "2"
    replies = c.pipeline(cmds, raise_on_error=False)
    assert replies[0] == 3 and isinstance(replies[1], RespError) and replies[2] == 4


def test_resp_exec_reply_keeps_errors_in_place(h):
    c = h.client()
    c.call("SET", "s", "v")
    replies = c.pipeline([("MULTI",), ("SET", "t", "1"), ("LPUSH", "s", "x"),
                          ("EXEC",)])
    assert replies[:3] == ["OK", "QUEUED", "QUEUED"]
    assert replies[3][0] == "OK" and isinstance(replies[3][1], RespError)


def test_resp_xadd_xrange_decodes_entries_and_data(h):
    c = h.client()
    stream = h.keys.data_stream("s-1")
    payload = {"event_type": "chunk", "content": "héllo"}
    first = c.call("XADD", stream, "*", "data", json.dumps(payload), "k", "v")
    c.call("XADD", stream, "*", "other", "x")
    entries = c.xrange(stream)
    assert entries[0] == (first, {"data": json.dumps(payload), "k": "v"})
    assert c.stream_data(stream) == [payload, None]
    assert c.xrange(stream, count=1) == entries[:1]
    assert c.xread({stream: first}) == {stream: entries[1:]}


def test_resp_hgetall_returns_dict(h):
    c = h.client()
    c.call("HSET", "hh", "a", "1", "b", "2")
    assert c.hgetall("hh") == {"a": "1", "b": "2"}
    assert c.hgetall("nope") == {}


def test_resp_xread_block_times_out_to_empty(h):
    c = h.client(timeout=2.0)
    assert c.xread({"empty-stream": "$"}, block_ms=100) == {}


def test_resp_timeout_raises_and_next_call_reconnects(h):
    c = h.client()
    try:
        c.call("BLPOP", "never", 5, timeout=0.3)
    except RespTimeout:
        pass
    else:
        raise AssertionError("no RespTimeout")
    assert not c.connected
    assert c.call("PING") == "PONG"


def test_resp_client_reconnects_after_redis_restart(h):
    r = h.redis
    c = h.client()
    c.call("SET", "k", "v")
    pid, port = r.pid, r.port
    r.stop()
    assert not pid_alive(pid)
    try:
        c.call("PING")
    except (OSError, ConnectionError):
        pass
    r.start()
    assert r.port == port
    assert c.call("PING") == "PONG"
    assert c.call("GET", "k") is None  # --save '': a restart starts empty


def test_resp_auth_and_select_run_on_connect(h):
    r = h.start_redis(args=["--requirepass", "s3cret"])
    c = h.client(r, password="s3cret", db=3)
    c.call("SET", "k", "in-db-3")
    assert c.call("CLIENT", "INFO").find("db=3") >= 0
    try:
        h.client(r).call("PING")
    except RespError as e:
        assert e.code == "NOAUTH"
    else:
        raise AssertionError("no NOAUTH error")


# ---- redis fixture and processes ------------------------------------------

def test_free_port_gives_distinct_loopback_ports():
    ports = {proc.free_port() for _ in range(20)}
    assert len(ports) >= 18 and 6379 not in ports
    assert all(1024 < p < 65536 for p in ports)


def test_two_redis_servers_get_distinct_ports(h):
    a, b = h.redis, h.start_redis()
    assert a.port != b.port and a.port != 6379 and b.port != 6379
    h.client(a).call("SET", "where", "a")
    assert h.client(b).call("GET", "where") is None


def test_redis_fixture_leaves_no_process_after_close():
    with RedisServer() as r:
        pid, directory = r.pid, r.dir
        assert pid_alive(pid)
        with r.client() as c:
            assert c.ping()
    assert not pid_alive(pid)
    assert not os.path.exists(directory)


def test_redis_start_on_a_taken_port_fails_clearly():
    with RedisServer() as a:
        b = RedisServer()
        try:
            b.start(port=a.port)
        except Exception as e:
            assert "did not become ready" in str(e), e
            assert "Address already in use" in str(e), e
        else:
            raise AssertionError("second server on the same port started")
        finally:
            b.close()


def test_redis_start_moves_to_another_port_on_collision():
    with RedisServer() as a:
        taken = iter([a.port])
        real = proc.free_port
        proc.free_port = lambda exclude=(): next(taken, None) or real(exclude)
        b = RedisServer()
        try:
            b.start()
            assert b.port != a.port
            with b.client() as c:
                assert c.ping()
        finally:
            proc.free_port = real
            b.close()


def test_harness_close_stops_processes_and_removes_tmp():
    h = Harness(name="selftest-close")
    r = h.redis
    pid, tmp = r.pid, h.tmp
    h.client().call("PING")
    h.close()
    assert not pid_alive(pid)
    assert not tmp.exists()


def test_harness_keeps_tmp_of_failed_test():
    h = Harness(name="selftest-keep")
    tmp = h.tmp
    h.close(failed=True)
    try:
        assert tmp.is_dir()
    finally:
        subprocess.run(["rm", "-rf", str(tmp)])


def test_clean_env_drops_by_framework_variables():
    os.environ["REDIS_PORT"] = "6379"
    os.environ["BYAI_WORKER_CONCURRENCY"] = "9"
    try:
        env = proc.clean_env({"REDIS_HOST": "127.0.0.1"})
    finally:
        del os.environ["REDIS_PORT"], os.environ["BYAI_WORKER_CONCURRENCY"]
    assert "REDIS_PORT" not in env and "BYAI_WORKER_CONCURRENCY" not in env
    assert env["REDIS_HOST"] == "127.0.0.1" and env["PATH"] == os.environ["PATH"]


# ---- libconfig rendering, keys -------------------------------------------

def test_render_groups_lists_arrays_and_scalars():
    text = render({
        "redis": {"host": "127.0.0.1", "port": 7000},
        "worker": {"id": "w1", "on": True, "ratio": 1.0, "big": 2**40},
        "ids": [1, 2], "names": ["a", "b"],
        "agent_types": [{"name": "echo", "options": {"chunk": 4}}],
        "hex": Raw("0x10"), "dropped": None,
    })
    assert text == (
        'redis = {\n  host = "127.0.0.1";\n  port = 7000;\n};\n'
        'worker = {\n  id = "w1";\n  on = true;\n  ratio = 1.0;\n'
        '  big = 1099511627776L;\n};\n'
        'ids = [ 1, 2 ];\nnames = [ "a", "b" ];\n'
        'agent_types = (\n  {\n    name = "echo";\n    options = {\n'
        '      chunk = 4;\n    };\n  }\n);\n'
        'hex = 0x10;\n')


def test_render_escapes_strings():
    assert render({"s": 'a"b\\c\nd\te\x01'}) == 's = "a\\"b\\\\c\\nd\\te\\x01";\n'


def test_render_rejects_bad_names_and_values():
    for bad in ({"1x": 1}, {"a b": 1}, {"f": float("nan")}, {"o": object()}):
        try:
            render(bad)
        except (ValueError, TypeError):
            continue
        raise AssertionError("rendered %r" % (bad,))


def test_deep_merge_merges_groups_and_drops_none():
    base = {"redis": {"host": "h", "port": 1}, "pool": {"size": 2}, "x": [1]}
    out = deep_merge(base, {"redis": {"port": 2}, "pool": None, "x": [3]})
    assert out == {"redis": {"host": "h", "port": 2}, "x": [3]}
    assert base["redis"]["port"] == 1


def test_keys_follow_v1_and_v2_schema():
    v1, v2 = Keys("v1"), Keys("v2")
    assert v1.data_stream("S") == "byai_gateway:session:S:data_stream"
    assert v2.data_stream("S") == "byai_gateway:v2:session:{S}:data_stream"
    assert v1.worker_online("W") == "byai_gateway:registry:worker:online:W"
    assert v2.worker_online("W") == "byai_gateway:v2:registry:worker:{W}:online"
    assert v2.ctrl_agent_type("T") == "byai_gateway:v2:ctrl:agent_type:T"


# ---- bygated fixture (with a fake daemon) ---------------------------------

def test_lease_online_test_follows_wire_rule():
    assert not lease_is_online(None)
    assert not lease_is_online('{"version":1,"token":"t","last_seen":0}')
    assert lease_is_online('{"version":1,"token":"t","last_seen":17}')
    assert lease_is_online("1")


def test_lease_readiness_predicates(h):
    c = h.client()
    key = Keys("v2").worker_online("w9")
    by_key, any_lease = ready_lease(c, key), ready_any_lease(c)
    assert not by_key(None) and not any_lease(None)
    c.call("SET", key, '{"token":"t","last_seen":0}')
    assert not by_key(None) and not any_lease(None)
    c.call("SET", key, '{"token":"t","last_seen":5}')
    assert by_key(None) and any_lease(None)


def test_bygated_fixture_starts_finds_children_and_stops(h):
    with Harness(name="selftest-fake", build=fake_build(h.tmp)) as fh:
        d = fh.start_bygated({"pool": {"size": 1}})
        assert "bygated ready" in d.log_text()
        assert "REDIS_PORT None" in d.log_text()  # env is scrubbed
        conf = pathlib.Path(d.config_path).read_text()
        assert "port = %d;" % fh.redis.port in conf and "size = 1;" in conf
        kids = d.child_pids()
        assert len(kids) == 1 and pid_alive(kids[0])
        assert d.stop() == 0
        assert "stopping on TERM" in d.log_text()
        assert not pid_alive(d.pid) and not pid_alive(kids[0])
        assert d.leftovers == []


def test_bygated_fixture_restart_waits_for_a_new_ready_line(h):
    with Harness(name="selftest-restart", build=fake_build(h.tmp)) as fh:
        d = fh.start_bygated()
        first = d.pid
        d.restart(signal.SIGINT)
        assert d.pid != first and d.alive()
        assert d.log_text().count("bygated ready") == 2
        assert "stopping on INT" in d.log_text()


def test_bygated_fixture_kills_children_left_behind(h):
    build = fake_build(h.tmp)
    with Harness(name="selftest-orphan", build=build) as fh:
        env = proc.clean_env({"FAKE_BYGATED_MODE": "orphan-child"})
        d = fh.start_bygated(env=env)
        kid = d.child_pids()[0]
        d.stop(leftover_grace=0.2)
        assert not pid_alive(kid)
        assert [p for p, _ in d.leftovers] == [kid]


def test_bygated_fixture_reports_early_exit_with_log(h):
    with Harness(name="selftest-exit", build=fake_build(h.tmp)) as fh:
        env = proc.clean_env({"FAKE_BYGATED_MODE": "exit3"})
        try:
            fh.start_bygated(env=env)
        except BygatedError as e:
            assert "status 3" in str(e) and "fatal: bad config" in str(e)
        else:
            raise AssertionError("no BygatedError")


def test_bygated_fixture_times_out_when_never_ready(h):
    with Harness(name="selftest-never", build=fake_build(h.tmp)) as fh:
        env = proc.clean_env({"FAKE_BYGATED_MODE": "never-ready"})
        d = fh.bygated(env=env, start_timeout=0.5)
        try:
            d.start()
        except BygatedError as e:
            assert "not ready" in str(e)
        else:
            raise AssertionError("no BygatedError")
        pid = d.pid
    assert not pid_alive(pid)


def test_bygated_missing_binary_is_a_clear_error(h):
    d = Bygated(h.tmp / "nope" / "bygated", {}, h.tmp / "w")
    try:
        d.start()
    except BygatedError as e:
        assert "not built" in str(e)
    else:
        raise AssertionError("no BygatedError")


# ---- the runner ------------------------------------------------------------

CMOCKA_PASS = """#!/bin/sh
echo '[==========] Running 3 test(s).'
for t in a b c; do echo "[ RUN      ] test_$t"; echo "[       OK ] test_$t"; done
echo '[==========] 3 test(s) run.'
echo '[  PASSED  ] 3 test(s).'
"""

CMOCKA_FAIL = """#!/bin/sh
echo '[==========] Running 2 test(s).'
echo '[ RUN      ] test_a'; echo '[       OK ] test_a'
echo '[ RUN      ] test_b'; echo 'boom' >&2; echo '[  FAILED  ] test_b'
echo '[==========] 2 test(s) run.'
echo '[  PASSED  ] 1 test(s).'
echo '[  FAILED  ] 1 test(s), listed below:'
echo '[  FAILED  ] test_b'
echo; echo ' 1 FAILED TEST(S)'
exit 1
"""

CMOCKA_CRASH = """#!/bin/sh
echo '[ RUN      ] test_x'
kill -SEGV $$
"""


def run_runner(*args, timeout=60):
    p = subprocess.run([PY, str(REPO / "tests" / "run.py"), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def test_runner_counts_cmocka_results_and_crashes(h):
    tests = h.tmp / "b" / "tests"
    write_exe(tests / "t_pass", CMOCKA_PASS)
    write_exe(tests / "t_fail", CMOCKA_FAIL)
    write_exe(tests / "t_crash", CMOCKA_CRASH)
    (tests / "README").write_text("not a test")
    rc, out = run_runner("--build", h.tmp / "b", "--unit-only", "-q")
    assert rc == 1, out
    assert "boom" in out and "test_c" not in out, out  # -q: failures only
    assert out.rstrip().splitlines()[-1] == "4 passed, 2 failed", out
    assert "unit t_fail: test_b" in out and "killed by SIGSEGV" in out, out
    rc, out = run_runner("--build", h.tmp / "b", "--unit-only", "-k", "t_pass")
    assert rc == 0 and out.rstrip().endswith("3 passed, 0 failed"), out


def test_runner_fails_when_no_test_ran(h):
    rc, out = run_runner("--build", h.tmp / "empty", "--unit-only")
    assert rc == 1 and out.rstrip().endswith("0 passed, 0 failed"), out


RUNNER_CASES = """
import os, time
from harness import RedisServer

def test_passes():
    pass

def test_gets_harness(h):
    assert h.tmp.is_dir() and h.build.is_absolute()

def test_fails():
    assert 1 == 2, "boom"

def test_hangs_holding_redis():
    r = RedisServer().start()
    with open(os.environ["PIDFILE"], "w") as f:
        f.write(str(r.pid))
    time.sleep(60)
"""


def test_runner_runs_integration_functions_with_watchdog(h):
    cases = h.tmp / "cases"
    cases.mkdir()
    (cases / "test_cases.py").write_text(RUNNER_CASES)
    pidfile = h.tmp / "redis.pid"
    os.environ["PIDFILE"] = str(pidfile)
    try:
        rc, out = run_runner("--build", h.tmp / "nobuild", "--integration-only",
                             "--integration-dir", cases, "--timeout", 2)
    finally:
        del os.environ["PIDFILE"]
    assert rc == 1, out
    assert out.rstrip().splitlines()[-1] == "2 passed, 2 failed", out
    assert "ok   test_cases.test_passes" in out
    assert "FAIL test_cases.test_fails" in out and "boom" in out
    assert "timed out after 2s" in out, out
    assert not pid_alive(int(pidfile.read_text()))


# ---- make run (scripts/run.py) --------------------------------------------

def run_script(h, *extra, env=None):
    build = fake_build(h.tmp)
    conf = h.tmp / "bygate.conf"
    conf.write_text("// fake\n")
    argv = [PY, str(REPO / "scripts" / "run.py"), "--build", build, "--config",
            conf, "--run-dir", h.tmp / "run", *extra]
    return [str(a) for a in argv], proc.clean_env(env)


def pids_in(out):
    return [int(m) for m in re.findall(r"(?:redis-server|bygated) pid (\d+)", out)]


def test_make_run_demo_only_sends_the_demo_and_stops(h):
    argv, env = run_script(h, "--demo-only")
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    port = int(out.split("listening on 127.0.0.1:")[1].split()[0])
    assert "fake bygate: send --agent-type echo --session demo-1" in out, out
    assert "chunk 2" in out
    log = (h.tmp / "run" / "bygated.log").read_text()
    assert "REDIS_PORT %d" % port in log
    pids = pids_in(out)
    assert len(pids) >= 2 and not any(pid_alive(p) for p in pids), out
    assert not (h.tmp / "run" / "bygated.pid").exists()


def test_make_run_fails_cleanly_when_the_demo_fails(h):
    argv, env = run_script(h, "--demo-only", env={"FAKE_BYGATE_EXIT": "2"})
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "exited with 2" in out and "bygated log tail" in out, out
    assert not any(pid_alive(p) for p in pids_in(out))


def test_make_run_reports_a_bygated_that_exits(h):
    argv, env = run_script(h, env={"FAKE_BYGATED_MODE": "exit3"})
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "fatal: bad config" in out, out
    assert not any(pid_alive(p) for p in pids_in(out))


def test_make_run_keeps_running_until_sigterm(h):
    argv, env = run_script(h)
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("Following" in l for l in lines), 30,
                   what="the make run banner")
        # it got to copying the log: a line added to it shows up
        log = h.tmp / "run" / "bygated.log"

        def copied():
            with open(log, "a") as f:
                f.write("selftest: still followed\n")
            return p.poll() is not None or any(
                "selftest: still followed" in l for l in lines)
        wait_until(copied, 10, interval=0.3, what="a log line copied")
        assert p.poll() is None, "".join(lines)
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, "".join(lines)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(5)
    out = "".join(lines)
    assert "REDIS_HOST=127.0.0.1 REDIS_PORT=" in out and "Ctrl-C" in out, out
    assert "stopping on TERM" in (h.tmp / "run" / "bygated.log").read_text()
    pids = pids_in(out)
    assert len(pids) >= 2 and not any(pid_alive(q) for q in pids), out
