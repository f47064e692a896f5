"""The wire-output comparison of issue 10 (scripts/wire_compare.py): the
same workload run twice on the build under test gives identical normalised
dumps of the keyspace (records, events, control streams, dead letters,
worker keys: byte-identical apart from ids and times), and the comparison
is not blind: its hidden --self-test perturbs one run's raw dump and must
report a changed byte and a changed JSON key order, but not a changed time
or a consistently renamed id. 200 tasks instead of 1,000 to stay short;
it asserts nothing about speed."""

import subprocess
import sys

from harness import REPO, timeout

SCRIPT = REPO / "scripts" / "wire_compare.py"


@timeout(420)
def test_the_same_build_twice_gives_identical_wire_output(h):
    dumps = h.tmp / "dumps"
    r = subprocess.run([sys.executable, str(SCRIPT), "--build", str(h.build),
                        "--tasks", "200", "--timeout", "150", "--self-test",
                        "--dump", str(dumps)],
                       cwd=str(REPO), capture_output=True, text=True,
                       timeout=400, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "wire output identical: " in r.stdout, out[-6000:]
    for check in ("one byte of an event field", "JSON key order of an event",
                  "a timestamp", "a renamed stream entry id",
                  "a renamed minted message id"):
        assert "self-test %-30s ok" % check in r.stdout, out[-6000:]
    assert "self-test passed" in r.stdout, out[-6000:]
    # every path of the plan left its trace in the dump
    text = (dumps / "run-1.txt").read_text(encoding="utf-8",
                                         errors="surrogateescape")
    for needle in ('"status": "CANCELLED"', '"error_code":"TIMEOUT"',
                   "WAITING_USER", "WAITING_AGENT", '"error_code":"stale"',
                   '"error_code":"invalid_json"', '"error_code":"no_data"',
                   '"error_code":"unknown_action"', "AGENT_TYPE_UNAVAILABLE",
                   "bygate_kv", "task_group:", '"contentType":"3010"',
                   "resumed: writer done: a", "echo: python"):
        assert needle in text, "%s missing from the dump" % needle
