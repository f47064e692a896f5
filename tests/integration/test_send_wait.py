"""Send and wait (issue 15 items 4 and 7): libbygate's bg_client_send_wait
and event iterator (driven through tests/integration/wait_probe.c, compiled
here against the build's archives, as is examples/client/send_wait.c), and
`bygate send --wait` when the agent asks the user (WIRE 6.8): on a
terminal it asks and replies, without one it exits 4 with the exact
`bygate reply` command."""

import json
import os
import pathlib
import pty
import re
import select
import shlex
import subprocess
import time

from harness import timeout, wait_until
from test_install import sanitizer_flags

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"
EXIT_WAITING = 4
LIBS = ("libbygate.a", "libbgcluster.a", "libbgwire.a", "libbgconf.a",
        "libbgcommon.a")

# An agent that streams CHUNKS pieces, then answers with the whole text
# (or, for the content "nofinal", with no final answer at all).
STREAMER = '''
import sys
sys.path.insert(0, %r)
import bygate_agent

def handle(ctx):
    parts = ["c%%03d " %% i for i in range(%d)]
    for p in parts:
        ctx.chunk(p)
    if ctx.content == "nofinal":
        return {"status": "COMPLETED"}
    return {"status": "COMPLETED", "content": "".join(parts)}

bygate_agent.run(handle)
'''
CHUNKS = 250
WHOLE = "".join("c%03d " % i for i in range(CHUNKS))


def start(h):
    """bygated serving the example approver and a 250-chunk streamer."""
    streamer = h.tmp / "streamer.py"
    streamer.write_text(STREAMER % (str(EXAMPLES), CHUNKS))
    types = [{"name": "approver", "handler": "exec", "timeout_ms": 30000,
              "mode": "persistent",
              "command": "python3 %s" % (EXAMPLES / "approver.py")},
             {"name": "streamer", "handler": "exec", "timeout_ms": 30000,
              "mode": "persistent", "command": "python3 %s" % streamer,
              "sandbox": {"read_paths": [str(EXAMPLES), str(h.tmp)]}}]
    return h.start_bygated({"agent_types": types})


def compile_c(h, source, name):
    """source compiled against the build's libbygate archives."""
    lib = h.bin("lib")
    exe = h.tmp / name
    subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                    *sanitizer_flags(),
                    "-I", str(REPO / "include"), "-o", str(exe),
                    str(REPO / source), *[str(lib / l) for l in LIBS],
                    "-lhiredis", "-ljansson", "-lconfig", "-lcrypto"],
                   check=True, capture_output=True, text=True)
    return exe


def probe(h, *args, timeout=60):
    exe = h.tmp / "wait_probe"
    if not exe.exists():
        compile_c(h, "tests/integration/wait_probe.c", "wait_probe")
    out = subprocess.run([str(exe), *[str(a) for a in args]], env=h.env(),
                         capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return [json.loads(l) for l in out.stdout.splitlines()]


def record(h, session, mid):
    c = h.client()
    eid = c.call("HGET", h.keys.registry(session), "msg_map:" + mid)
    raw = eid and c.call("HGET", h.keys.registry(session), "exec:" + eid)
    return json.loads(raw) if raw else {}


def run_pty(argv, env, answer, deadline=60):
    """argv under a pseudo-terminal: answer the first "answer> " prompt
    with `answer`; returns (exit status, everything it printed)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                         env=env, close_fds=True)
    os.close(slave)
    out, answered, end = b"", False, time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the program closed the terminal
                    break
                if not data:
                    break
                out += data
            if not answered and b"answer> " in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if p.poll() is not None and not r:
                break
        return p.wait(max(1, end - time.monotonic())), out.decode(
            "utf-8", "replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


# ---- bygate send --wait and ask_user ------------------------------------

def run_printed(h, cmd):
    """The printed `bygate reply ...` command run by a shell as printed,
    its '...' answer replaced by ok; it must exit 0."""
    line = "%s %s" % (shlex.quote(str(h.bin("bygate"))),
                      cmd[len("bygate "):].replace("'...'", "ok"))
    done = subprocess.run(["sh", "-c", line], env=h.env(), text=True,
                          capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done


@timeout(90)
def test_send_wait_on_a_terminal_asks_the_question_and_completes(h):
    start(h)
    argv = [str(h.bin("bygate")), "send", "--agent-type", "approver",
            "--session", "s-tty", "--content", "deploy v2", "--wait"]
    rc, out = run_pty(argv, h.env(), "yes")
    assert rc == 0, out
    assert "Approve deploy v2?" in out, out
    assert "formStatus" not in out, out  # the question in words, not JSON
    mid = out.split()[0]
    assert re.search(r"%s: COMPLETED" % mid, out), out
    assert record(h, "s-tty", mid)["status"] == "COMPLETED"


@timeout(90)
def test_send_wait_without_a_terminal_exits_4_with_the_reply_command(h):
    start(h)
    out = h.bygate("send", "--agent-type", "approver", "--session", "s-pipe",
                   "--content", "deploy v3", "--wait")
    assert out.returncode == EXIT_WAITING, (out.stdout, out.stderr)
    mid = out.stdout.splitlines()[0]
    assert "Approve deploy v3?" in out.stdout and "formStatus" not in \
        out.stdout, out.stdout
    cmd = [l.strip() for l in out.stderr.splitlines()
           if l.strip().startswith("bygate reply")]
    assert cmd == ["bygate reply %s --session s-pipe --wait "
                   "--content '...'" % mid], out.stderr
    assert record(h, "s-pipe", mid)["status"] == "WAITING_USER"
    # the exact command, the answer in place of '...', completes the task
    argv = shlex.split(cmd[0].replace("'...'", "'ship it'"))
    done = h.bygate(*argv[1:])
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.splitlines()[-1] == "%s: COMPLETED" % mid
    assert "[finalAnswer] approver %s: approved: ship it" % mid in \
        done.stdout.splitlines()


@timeout(90)
def test_the_reply_command_quotes_what_a_shell_would_split(h):
    start(h)
    session = "s odd's $HOME"
    out = h.bygate("send", "--agent-type", "approver", "--session", session,
                   "--content", "deploy v7", "--wait")
    assert out.returncode == EXIT_WAITING, (out.stdout, out.stderr)
    cmd, = [l.strip() for l in out.stderr.splitlines()
            if l.strip().startswith("bygate reply")]
    assert "--session 's odd'\\''s $HOME'" in cmd, cmd
    done = run_printed(h, cmd)
    assert done.stdout.splitlines()[-1].endswith(": COMPLETED")


@timeout(90)
def test_the_reply_command_answers_a_message_id_that_starts_with_a_dash(h):
    """An id that getopt would take for an option follows "--"."""
    start(h)
    out = h.bygate("send", "--agent-type", "approver", "--session", "s-dash",
                   "--message-id", "-m dash", "--content", "deploy v8",
                   "--wait")
    assert out.returncode == EXIT_WAITING, (out.stdout, out.stderr)
    cmd, = [l.strip() for l in out.stderr.splitlines()
            if l.strip().startswith("bygate reply")]
    done = run_printed(h, cmd)
    assert done.stdout.splitlines()[-1] == "-m dash: COMPLETED"


@timeout(90)
def test_send_wait_json_without_a_terminal_gives_question_and_command(h):
    start(h)
    out = h.bygate("--json", "send", "--agent-type", "approver",
                   "--session", "s-json", "--content", "deploy v4", "--wait")
    assert out.returncode == EXIT_WAITING, (out.stdout, out.stderr)
    last = json.loads(out.stdout.splitlines()[-1])
    assert last["status"] == "WAITING_USER"
    assert last["question"] == "Approve deploy v4?\n"
    assert last["form"]["pluginMachineFields"][0]["description"] == \
        "Approve deploy v4?"
    assert last["reply_command"].startswith(
        "bygate reply %s --session s-json " % last["message_id"])


# ---- libbygate ------------------------------------------------------------

@timeout(90)
def test_send_wait_returns_a_streamed_answer_of_many_chunks_whole(h):
    start(h)
    out, = probe(h, "send", "streamer", "s-big", "go", 30000)
    assert out["rc"] == 0 and out["status"] == "COMPLETED", out
    assert out["answer"] == WHOLE
    assert out["record_status"] == "COMPLETED"
    assert record(h, "s-big", out["message_id"])["execution_id"] == \
        out["execution_id"]


@timeout(90)
def test_send_wait_without_a_final_answer_returns_the_chunks_joined(h):
    start(h)
    out, = probe(h, "send", "streamer", "s-nofinal", "nofinal", 30000)
    assert out["status"] == "COMPLETED", out
    assert out["answer"] == WHOLE


@timeout(90)
def test_send_wait_stops_at_ask_user_and_reply_wait_completes_it(h):
    start(h)
    asked, = probe(h, "send", "approver", "s-lib", "deploy v5", 30000)
    assert asked["status"] == "WAITING_USER", asked
    assert asked["question"] == "Approve deploy v5?\n"
    assert json.loads(asked["form"])["formStatus"] == 0
    assert asked["question_message_id"] == asked["message_id"]
    done, = probe(h, "reply", "s-lib", asked["message_id"], "yes", 30000)
    assert done["status"] == "COMPLETED", done
    assert done["answer"] == "approved: yes"
    assert done["execution_id"] == asked["execution_id"]


def test_send_wait_times_out_with_the_timeout_status(h):
    out, = probe(h, "send", "nobody", "s-to", "anyone?", 300, "SEND_ANYWAY")
    assert out["rc"] == 0 and out["status"] == "TIMEOUT", out
    assert out["record_status"] == "QUEUED"
    assert out["error_code"] == "timeout" and "timed out" in out["error"]


@timeout(90)
def test_event_iterator_ends_after_the_end_marker_of_its_message(h):
    start(h)
    sent, = probe(h, "send", "streamer", "s-it", "go", 30000)
    lines = probe(h, "events", "s-it", "0-0", sent["message_id"], 5000)
    *events, end = lines
    assert end["end"] == "end" and end["rc"] == 0, end
    assert len(events) == CHUNKS + 2  # chunks, finalAnswer, end marker
    assert events[-1]["event_type"] == "appStreamResponse"
    assert "".join(e["content"] for e in events
                   if e["event_type"] == "answerDelta") == WHOLE
    assert end["last_id"] == events[-1]["entry_id"]


def test_event_iterator_times_out_with_etimedout_and_no_end(h):
    lines = probe(h, "events", "s-empty", "0-0", "msg-none", 200)
    assert lines == [{"end": "error", "rc": -110, "last_id": "0-0"}]


def test_error_details_do_not_repeat_the_error_text(h):
    for case in probe(h, "errors", "echo", "s-err"):
        assert not case["repeated"], case
        assert case["errmsg"], case


@timeout(90)
def test_the_send_wait_example_builds_and_answers_from_stdin(h):
    start(h)
    exe = compile_c(h, "examples/client/send_wait.c", "send_wait")
    out = subprocess.run([str(exe), "approver", "s-ex", "deploy v6"],
                         env=h.env(), input="fine\n", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "Approve deploy v6?" in out.stdout
    assert out.stdout.splitlines()[-1] == "approved: fine"
