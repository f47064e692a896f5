"""The structure docs/architecture.md promises, checked on the build's
object files: no circle of calls among the files of supervisor/, child/
and state/ (scripts/callgraph.py reads who calls whom with nm), and every
change of a job's state made by bg_job_move (supervisor/job.c)."""

import pathlib
import re
import subprocess
import sys
import tempfile

from harness import REPO, build_dir

FOLDERS = ("supervisor", "child", "state")


def test_no_circle_of_calls_in_any_folder():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "callgraph.py"),
         "--build", str(build_dir()), "--quiet"] + list(FOLDERS),
        capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for folder in FOLDERS:
        assert "%s: " % folder in out.stdout and "no circle" in out.stdout


def test_the_callgraph_script_finds_a_circle():
    """The check can fail: two objects that call each other are a circle."""
    with tempfile.TemporaryDirectory() as tmp:
        check_circle_found(pathlib.Path(tmp))


def check_circle_found(tmp_path):
    src = tmp_path / "src"
    obj = tmp_path / "b" / "obj" / "loop"
    src.mkdir()
    obj.mkdir(parents=True)
    (src / "a.c").write_text("void b(void); void a(void) { b(); }\n")
    (src / "b.c").write_text("void a(void); void b(void) { a(); }\n")
    for n in ("a", "b"):
        subprocess.run(["cc", "-c", str(src / (n + ".c")), "-o",
                        str(obj / (n + ".o"))], check=True)
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "callgraph.py"),
         "--build", str(tmp_path / "b"), "loop"],
        capture_output=True, text=True)
    assert out.returncode == 1
    assert "circle of calls: a b" in out.stdout


def test_job_states_change_only_through_bg_job_move():
    moves = []
    for f in sorted((REPO / "supervisor").glob("*.c")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"\bt->state\s*=[^=]|\bjob->state\s*=[^=]", line):
                moves.append("%s:%d: %s" % (f.name, n, line.strip()))
    # job.c: bg_job_move itself and the first state of a new job
    assert [m for m in moves if not m.startswith("job.c:")] == [], moves
    assert len(moves) == 2, moves
