#!/usr/bin/env python3
"""The test runner behind `make test`: runs every unit-test binary in
<build>/tests/ (cmocka), then every test_* function of tests/integration/
test_*.py with a fixture `h` and a watchdog timeout, and ends with one line
`N passed, N failed`. Exit status 1 if anything failed or nothing ran.

    python3 tests/run.py --build build [-k PATTERN] [-q] [--unit-only]
                         [--integration-only] [--timeout SECONDS]
"""

import argparse
import fnmatch
import importlib.util
import inspect
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (REPO / "scripts", HERE / "integration"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bglib import proc  # noqa: E402

INDENT = "    "


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def add(self, passed, failed=0, failures=()):
        self.passed += passed
        self.failed += failed
        self.failures.extend(failures)

    def summary_line(self):
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += " (%d skipped: standalone only)" % self.skipped
        return line


def selected(name, pattern):
    if not pattern:
        return True
    if isinstance(pattern, list):  # -k given several times: any of them
        return any(selected(name, p) for p in pattern)
    if any(c in pattern for c in "*?["):
        return (fnmatch.fnmatch(name, pattern)
                or fnmatch.fnmatch(name, "*%s*" % pattern))
    return pattern in name


def indented(text):
    return "\n".join(INDENT + line for line in text.rstrip("\n").splitlines())


# ---- unit tests ----------------------------------------------------------

class CmockaCounts:
    """Counts from cmocka's output (summaries of every group, or the per-test
    lines when a binary dies before its summary) or a plain final
    `N passed, N failed` line."""

    SUMMARY_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)\.")
    SUMMARY_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test\(s\)")
    TEST_OK = re.compile(r"^\[       OK \] ")
    TEST_FAILED = re.compile(r"^\[  (?:FAILED|ERROR)   ?\] (\S+)\s*$")
    PLAIN = re.compile(r"^(\d+) passed, (\d+) failed\s*$")

    def __init__(self):
        self.summary = None  # [passed, failed] once a summary line is seen
        self.plain = None
        self.ok_lines = 0
        self.failed_names = []

    def feed(self, line):
        m = self.SUMMARY_PASSED.match(line)
        if m:
            self._summary()[0] += int(m.group(1))
            return
        m = self.SUMMARY_FAILED.match(line)
        if m:
            self._summary()[1] += int(m.group(1))
            return
        m = self.PLAIN.match(line)
        if m:
            self.plain = (int(m.group(1)), int(m.group(2)))
        elif self.TEST_OK.match(line):
            self.ok_lines += 1
        else:
            m = self.TEST_FAILED.match(line)
            if m and m.group(1) not in self.failed_names:
                self.failed_names.append(m.group(1))

    def _summary(self):
        if self.summary is None:
            self.summary = [0, 0]
        return self.summary

    def counts(self):
        if self.summary is not None:
            return tuple(self.summary)
        if self.plain is not None:
            return self.plain
        return self.ok_lines, len(self.failed_names)


def describe_status(rc):
    if rc is None:
        return "timed out"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


def run_unit_binary(path, build, timeout, results, quiet=False):
    """Run one unit-test binary, streaming its output (with quiet: only if it
    fails), and add its counts to results."""
    name = path.name
    if not quiet:
        print("-- %s" % name)
    start = time.monotonic()
    counts = CmockaCounts()
    held = []
    env = dict(os.environ, BYGATE_BUILD=str(build))
    p = subprocess.Popen([str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, cwd=str(REPO), start_new_session=True)

    def pump():
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            counts.feed(line)
            if quiet:
                held.append(line)
            else:
                print(INDENT + line)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        reader.join(5)
    warn_leftovers(name)
    passed, failed = counts.counts()
    took = time.monotonic() - start
    if failed == 0 and rc != 0:
        failed = 1
    if failed:
        if held:
            print(indented("\n".join(held)))
        names = counts.failed_names or [describe_status(rc)]
        results.add(passed, failed, ["unit %s: %s" % (name, n) for n in names])
        print("FAIL %s (%d passed, %d failed, %s, %.1fs)"
              % (name, passed, failed, describe_status(rc), took))
    else:
        results.add(max(passed, 1), 0)
        print("ok   %s (%d passed, %.1fs)" % (name, max(passed, 1), took))


def run_unit_tests(build, args, results):
    tests_dir = build / "tests"
    print("== unit tests (%s) ==" % tests_dir)
    binaries = sorted(p for p in tests_dir.glob("*")
                      if p.is_file() and os.access(p, os.X_OK)) \
        if tests_dir.is_dir() else []
    binaries = [b for b in binaries if selected(b.name, args.k)]
    if not binaries:
        print("(no unit-test binaries)")
    for b in binaries:
        run_unit_binary(b, build, args.unit_timeout, results, args.quiet)


# ---- integration tests ---------------------------------------------------

class TestTimeout(BaseException):
    """Raised in the main thread by the watchdog; a BaseException so that a
    test's `except Exception` cannot swallow it."""


class Watchdog:
    """Fires once after `timeout` s unless disarmed: interrupts the main
    thread (SIGALRM -> TestTimeout) and SIGKILLs the test's processes. If the
    test still does not return, the whole run is aborted after `grace` s."""

    current = None

    def __init__(self, timeout, position, name, results, grace=60.0):
        self.timeout, self.position, self.name = timeout, position, name
        self.results, self.grace = results, grace
        self.armed = False
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        Watchdog.current = self
        self.armed = True
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.armed = False
        self._done.set()
        Watchdog.current = None

    def _run(self):
        if self._done.wait(self.timeout):
            return
        self.fired = True
        signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
        proc.kill_since(self.position)
        if self._done.wait(self.grace):
            return
        print("FAIL %s: still running %.0fs after its timeout; aborting the run"
              % (self.name, self.grace), flush=True)
        self.results.add(0, 1, ["integration %s: hung after timeout" % self.name])
        print(self.results.summary_line(), flush=True)
        os._exit(1)

    @staticmethod
    def on_alarm(signum, frame):
        w = Watchdog.current
        if w is not None and w.armed and w.fired:
            w.armed = False
            raise TestTimeout("test timed out after %.0fs (watchdog killed its "
                              "processes)" % w.timeout)


def load_module(path):
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def discover(directory, pattern, results):
    """[(module.func, fn)] in file order, then definition order."""
    found = []
    for path in sorted(directory.glob("test_*.py")):
        try:
            module = load_module(path)
        except Exception:
            results.add(0, 1, ["integration %s: import error" % path.stem])
            print("FAIL %s (import error)\n%s" % (path.stem,
                                                   indented(traceback.format_exc())))
            continue
        for name, fn in vars(module).items():
            full = "%s.%s" % (path.stem, name)
            if (name.startswith("test_") and inspect.isfunction(fn)
                    and fn.__module__ == module.__name__
                    and selected(full, pattern)):
                found.append((full, fn))
    return found


def process_logs_since(position, lines=40):
    """Log tails of tracked processes marked show_log (for no-arg tests)."""
    parts = []
    for t in proc.tracked_since(position):
        if t.show_log and t.log_path:
            parts.append("--- %s log tail (%s) ---\n%s" % (
                t.label, t.log_path, proc.tail_text(t.log_path, lines) or "(empty)"))
    return "\n".join(parts)


def call_test(fn, name, make_harness):
    params = list(inspect.signature(fn).parameters)
    if params == []:
        fn()
    elif params == ["h"]:
        fn(make_harness(name))
    else:
        raise TypeError("test functions take no arguments or one named `h`, "
                        "not (%s)" % ", ".join(params))


def run_integration_test(full, fn, args, results):
    from harness import Harness
    why = getattr(fn, "standalone_only", None)
    if why and os.environ.get("BYGATE_TEST_REDIS") == "cluster":
        results.skipped += 1
        print("skip %s (standalone only: %s)" % (full, why))
        return
    timeout = getattr(fn, "timeout", args.timeout)
    position = proc.mark()
    start = time.monotonic()
    harnesses = []

    def make_harness(name):
        h = Harness(name=name.replace(".", "-"))
        harnesses.append(h)
        return h

    failure = None
    watchdog = Watchdog(timeout, position, full, results)
    try:
        with watchdog:
            call_test(fn, full, make_harness)
    except TestTimeout:
        failure = "timed out after %.0fs\n%s" % (timeout, traceback.format_exc())
    except (Exception, SystemExit):
        failure = ("timed out after %.0fs; " % timeout if watchdog.fired else "") \
            + traceback.format_exc()
    finally:
        report = cleanup_test(harnesses, position, failure is not None)
    failure = failure or report.get("error")
    took = time.monotonic() - start
    if failure is None:
        results.add(1)
        print("ok   %s (%.1fs)" % (full, took))
    else:
        results.add(0, 1, ["integration %s" % full])
        print("FAIL %s (%.1fs)\n%s" % (full, took, indented(failure)))
        if report.get("logs"):
            print(indented(report["logs"]))
        for h in harnesses:
            print(INDENT + "(test files kept in %s)" % h.tmp)
    warn_leftovers(full, report["orphans"])


def warn_leftovers(name, orphans=None):
    """Kill and report processes a test left behind (adopted by us as their
    subreaper) -- a sign that something does not clean up after itself."""
    for pid, comm in proc.reap_orphans() if orphans is None else orphans:
        print(INDENT + "warning: killed leftover process %d (%s) after %s"
              % (pid, comm, name))


def cleanup_test(harnesses, position, failed):
    """Stop everything the test started; returns {logs, error, orphans}."""
    report = {}
    logs = [h.failure_report() for h in harnesses] + [
        "" if harnesses else process_logs_since(position)]
    report["logs"] = "\n".join(l for l in logs if l)
    for h in harnesses:
        try:
            h.close(failed=failed)
        except Exception:
            report["error"] = "cleanup failed:\n" + traceback.format_exc()
    proc.kill_since(position)
    report["orphans"] = proc.reap_orphans()
    if not failed and "error" not in report:
        report["logs"] = ""
    return report


def run_integration_tests(directory, args, results):
    print("== integration tests (%s) ==" % directory)
    tests = discover(directory, args.k, results)
    if not tests:
        print("(no integration tests)")
    for full, fn in tests:
        run_integration_test(full, fn, args, results)


# ---- main ----------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="build directory")
    ap.add_argument("-k", metavar="PATTERN", action="append",
                    help="only tests whose name (binary, or module.function) "
                         "contains PATTERN or matches it as a glob (given "
                         "several times: any of them)")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="show a unit-test binary's output only if it fails")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="per integration test watchdog, seconds (120)")
    ap.add_argument("--unit-timeout", type=float, default=300.0,
                    help="per unit-test binary, seconds (300)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--unit-only", action="store_true")
    only.add_argument("--integration-only", action="store_true")
    ap.add_argument("--integration-dir", default=str(HERE / "integration"),
                    help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    build = pathlib.Path(args.build).resolve()
    os.environ["BYGATE_BUILD"] = str(build)
    opened = proc.make_reachable_by_others(REPO, build)
    if opened:
        print("run.py: the pool user could not reach the checkout; opened "
              "%d path(s), e.g. %s" % (len(opened), opened[0]))
    proc.become_subreaper()
    signal.signal(signal.SIGALRM, Watchdog.on_alarm)
    results = Results()
    interrupted = False
    try:
        if not args.integration_only:
            run_unit_tests(build, args, results)
        if not args.unit_only:
            run_integration_tests(pathlib.Path(args.integration_dir).resolve(),
                                  args, results)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted")
    finally:
        proc.kill_since(0)
    if results.failures:
        print("== failures ==")
        for f in results.failures:
            print("  " + f)
    if results.passed + results.failed == 0:
        print("no tests ran")
    print(results.summary_line())
    return 1 if (results.failed or interrupted
                 or results.passed + results.failed == 0) else 0


if __name__ == "__main__":
    sys.exit(main())
