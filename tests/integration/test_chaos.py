"""The crash test of tests/crash/chaos.py at a small size inside `make test`
(the full one is `make crashtest`): 300 tasks in three weighted lanes with
priorities 0-9 and the ready set on (sched.window 32), while bygated is
SIGKILLed and restarted 3 times (the ready set full) and a random child is
SIGKILLed 3 times; nothing may be lost or finished twice, every lane's tasks
complete."""

import sys

from harness import REPO, timeout

if str(REPO / "tests" / "crash") not in sys.path:
    sys.path.insert(0, str(REPO / "tests" / "crash"))

import chaos  # noqa: E402


@timeout(180)
def test_chaos_small(h):
    progress = []
    res = chaos.run(h.build, tasks=300, kills=3, child_kills=3, wait_s=90.0,
                    workdir=h.tmp / "chaos", keep=True, out=progress.append)
    assert res.ok, "\n".join(progress + [res.summary])


@timeout(180)
def test_chaos_small_with_shared_children(h):
    """The same with several tasks per child (a Python exec agent with
    max_inflight 4): kills of children running several tasks re-run them
    uncounted; still nothing lost or finished twice."""
    progress = []
    res = chaos.run(h.build, tasks=300, kills=3, child_kills=3, wait_s=90.0,
                    workdir=h.tmp / "chaos", keep=True, out=progress.append,
                    shared=4)
    assert res.ok, "\n".join(progress + [res.summary])
