#!/usr/bin/env python3
"""Where bygated's time goes per task at full load (issue 16, item 2).

Runs bench/run.py's full-load phase (noop plugin, --pool children,
--tasks tasks over --sessions sessions) three times, each on a fresh
redis-server and bygated:

  1. plain: bygated CPU per task (utime + stime from /proc) and Redis
     commands per task (INFO commandstats before/after);
  2. under `perf record -F 999 -g -p PID` (with --dwarf: -F 499
     --call-graph dwarf): bygated's samples by self time, each symbol put
     in one stage (FILE_STAGE, STAGES below) by the source file that
     defines it (nm -l on BUILD/bygated) or by its library; with --dwarf
     also charged to the stage of the calling bygated code (charged_rows);
  3. under `strace -c -f -p PID` (--strace-tasks tasks): system calls per
     task by kind.

Prints the tables as Markdown (the section "Where bygated's time goes" of
bench/README.md). A stage's us per task = plain run's bygated CPU per task
x the stage's share of the samples. Self time only: a function inlined
into its caller counts as the caller's file.

    python3 bench/stages.py --build build [--dwarf] [--tasks 20000]
    python3 bench/stages.py --build build --redis   # redis-server's split

Needs perf and strace, and BUILD/bench/loadgen. Uses bench/run.py's
phase code (bygate_phase), so the load is exactly `make bench`'s.
"""

import argparse
import bisect
import importlib.util
import json
import pathlib
import re
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("benchrun", HERE / "run.py")
br = importlib.util.module_from_spec(spec)
sys.modules["benchrun"] = br  # run.py registers itself by its name
spec.loader.exec_module(br)

# Stage of each source file of bygated (path under the repository).
FILE_STAGE = {
    "read": ["supervisor/consume.c", "supervisor/entry_read.c",
             "supervisor/schedule.c"],
    "scan": ["wire/json.c", "wire/command.c", "wire/record.c"],
    "pickup": ["supervisor/pickup.c", "supervisor/admit.c",
               "supervisor/gate.c", "supervisor/idem.c", "supervisor/lanes.c",
               "supervisor/ready.c", "supervisor/keyset.c"],
    "dispatch": ["supervisor/attempt.c", "supervisor/job.c",
                 "supervisor/pool.c", "supervisor/pool_slot.c",
                 "supervisor/pool_config.c", "supervisor/outbox.c",
                 "supervisor/calls.c", "supervisor/pool_lifecycle.c"],
    "ring": ["ipc/ring.c", "ipc/record.c", "ipc/segment.c",
             "supervisor/pool_read.c"],
    "events": ["supervisor/events.c", "wire/event.c",
               "supervisor/eventlog.c", "supervisor/trace.c", "wire/span.c"],
    "finish build": ["supervisor/finish.c", "supervisor/finish_build.c",
                     "supervisor/end.c", "wire/result.c"],
    "stats/metrics": ["supervisor/stats.c", "supervisor/metrics.c",
                      "supervisor/history.c"],
    "workspace": ["workspace/*"],
    "journal": ["state/*", "supervisor/lmdb_check.c", "common/cmdlist.c"],
    "hiredis": ["supervisor/redis.c", "wire/keys.c", "supervisor/keys.c"],
}
ALLOC = re.compile(r"^(malloc|free|calloc|realloc|cfree|_int_malloc|"
                   r"_int_free|_int_realloc|malloc_consolidate|unlink_chunk|"
                   r"tcache_\w+|__libc_(malloc|free|calloc|realloc)|"
                   r"__GI___libc_(malloc|free))$")
SYSCALL_WRAP = re.compile(r"^(__GI_)?(__)?(libc_)?(read|write|writev|readv|"
                          r"epoll_wait|epoll_ctl|eventfd_write|"
                          r"eventfd_read|sendmsg|recvmsg|send|recv|"
                          r"futex|clock_gettime|syscall)(64)?$")
STAGES = ["read", "scan", "pickup", "dispatch", "ring", "events",
          "finish build", "stats/metrics", "workspace", "journal", "hiredis",
          "libevent", "syscalls (kernel)", "allocator", "libc other",
          "other"]


# Stage of redis-server's symbols (Debian's binary is stripped, its
# dynamic symbols name most functions): first match wins; the kernel,
# libc's syscall wrappers, Lua (liblua, or lua_/luaL_/luaV_... names and
# Redis's script glue) and jemalloc by their library or prefix.
REDIS_STAGE = [
    ("Lua: script glue (EVALSHA setup, argv, reply conversion)",
     r"^(eval\w*|evalGeneric\w*|luaCreate\w*|luaRedis\w*|luaReply\w*|"
     r"luaPush\w*|luaSet\w*|luaCall\w*|luaProtected\w*|luaMaskCount\w*|"
     r"luaLdb\w*|luaRegister\w*|luaSort\w*|redisProtocolToLuaType\w*|"
     r"scriptCall\w*|scriptPrepare\w*|scriptReset\w*|scriptSet\w*|"
     r"scriptInterrupt\w*|luaCallFunction|luaRedisGenericCommand|"
     r"scriptIsTimedout|scriptIsRunning|luaRedisPcall\w*|"
     r"resp\w*Parser\w*|callReplyParse\w*|callReply\w*|"
     r"redisProtocolToLua\w*|luaArgsToRedisArgv|"
     r"luaEngine\w*|scriptRun\w*|scriptCall)$"),
    ("Lua: interpreter", r"^(lua[A-Z_]\w*|luaV_\w*|luaH_\w*|luaS_\w*|"
     r"luaD_\w*|luaC_\w*|luaM_\w*|luaF_\w*|luaK_\w*|luaY_\w*|luaX_\w*|"
     r"luaO_\w*|luaT_\w*|luaL_\w*|luaG_\w*|luaU_\w*|luaZ_\w*|lua_\w*|"
     r"index2adr|f_call|resume|sweeplist|propagatemark|reallymarkobject|"
     r"singlestep|luaopen_\w*)$"),
    ("MULTI/EXEC", r"^(exec\w*|multi\w*|queueMulti\w*|discard\w*|"
     r"watch\w*|touchWatched\w*|isWatched\w*|unwatch\w*)$"),
    ("protocol parsing", r"^(processInputBuffer|processMultibulkBuffer|"
     r"processInlineBuffer|readQueryFromClient|createStringObject\w*|"
     r"createRawStringObject|createEmbeddedStringObject|string2ll|"
     r"resetClient|freeClientArgv|sdsMakeRoomFor\w*|sdsnewlen|sdsrange|"
     r"_sdsnewlen|sdsIncrLen|trimStringObjectIfNeeded)$"),
    ("replies", r"^(addReply\w*|_addReply\w*|prepareClientToWrite|"
     r"writeToClient|_writeToClient|handleClientsWithPendingWrites\w*|"
     r"clientInstallWriteHandler|sendReplyToClient|setDeferred\w*|"
     r"clientHasPendingReplies|_addReplyProtoToList)$"),
    ("call / command dispatch", r"^(call|processCommand|lookupCommand\w*|"
     r"commandProcessed|afterCommand|propagate\w*|alsoPropagate|"
     r"updateCommandLatencyHistogram|hdr_\w*|ustime|mstime|"
     r"monotonicGetRealTime\w*|getMonotonicUs\w*|"
     r"blockedBeforeSleep|postExecutionUnitOperations|"
     r"incrCommandStatsOnError|lookupSubcommand|isInsideYieldingLongCommand"
     r"|ACL\w*|moduleCallCommandFilters|"
     r"server\w*Cron|clientsCron\w*|beforeSleep|afterSleep)$"),
    ("event loop", r"^(ae\w*|connSocket\w*|connRead|connWrite|"
     r"callHandler|connGetState)$"),
    ("streams", r"^(x\w+Command|stream\w*|lp\w*|raxFind|rax\w*|"
     r"streamID\w*|lookupStream\w*)$"),
    ("hashes / keyspace", r"^(h\w+Command|hash\w*|lookupKey\w*|dict\w*|"
     r"siphash\w*|expire\w*|setExpire|getExpire|ttl\w*|"
     r"keyIsExpired|checkAlreadyExpired|dbAdd|dbOverwrite|setKey|"
     r"signalModifiedKey|notifyKeyspaceEvent|z\w+Command|zset\w*|"
     r"zsl\w*|listpack\w*|ziplist\w*|getLongLongFromObject\w*|"
     r"getLongDoubleFromObject\w*|getLongFromObject\w*|"
     r"string\w*Command|sds\w*|dbSyncDelete|dbGenericDelete|"
     r"activeExpire\w*|exists\w*|del\w*|incr\w*|"
     r"decrRefCount|incrRefCount|freeStringObject|compareStringObjects\w*|"
     r"equalStringObjects|getDecodedObject|tryObjectEncoding)$"),
]
REDIS_STAGES = [s for s, _ in REDIS_STAGE] + [
    "kernel: system calls, TCP, scheduling", "allocator (jemalloc)",
    "libc other", "other (redis-server)"]


def redis_dynsyms():
    """[(address, name)] of redis-server's exported functions, sorted: a
    sample perf leaves unnamed (a hidden static function of the stripped
    binary, e.g. Lua's luaV_execute) is named after the closest exported
    one below it; after lua_* (lapi.c .. lvm.c come after lua_close and
    lua_yield in the link) it is Lua's interpreter."""
    path = shutil.which("redis-server")
    if path is None:
        return []
    r = subprocess.run(["nm", "-D", "--defined-only",
                        pathlib.Path(path).resolve()],
                       capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TtWw":
            out.append((int(f[0], 16), f[2]))
    return sorted(out)


REDIS_SYMS = []


def redis_stage(dso, sym):
    m = re.match(r"^0x([0-9a-f]+)$", sym)
    if m and dso.startswith("redis"):
        addr = int(m.group(1), 16)
        i = bisect.bisect_right(REDIS_SYMS, (addr, "\xff")) - 1
        if i >= 0:
            near = REDIS_SYMS[i][1]
            if re.match(r"^(lua_|luaL_|luaopen_)", near):
                return "Lua: interpreter"
            sym = near
    if dso.startswith("[kernel") or dso == "[vdso]":
        return "kernel: system calls, TCP, scheduling"
    if dso.startswith("libc"):
        if SYSCALL_WRAP.match(sym):
            return "kernel: system calls, TCP, scheduling"
        return ("allocator (jemalloc)" if ALLOC.match(sym) else
                "libc other")
    if "jemalloc" in dso or re.match(r"^(je_|_rjem_|zmalloc|zfree|zcalloc|"
                                     r"zrealloc|ztrymalloc\w*|ztryrealloc"
                                     r"\w*|zmalloc_\w*|extent\w*|arena\w*|"
                                     r"tcache\w*|sz_\w*|emap\w*)", sym):
        return "allocator (jemalloc)"
    if "lua" in dso:
        return "Lua: interpreter"
    for stage, rx in REDIS_STAGE:
        if re.match(rx, sym):
            return stage
    return "other (redis-server)"


def symbol_files(build):
    """{symbol: source file relative to the repository} of every text
    symbol of BUILD/bygated, from its debug information (nm -l). A static
    name defined in two files (rare) keeps the first."""
    out = {}
    root = str(HERE.parent.resolve()) + "/"
    r = subprocess.run(["nm", "-l", "--defined-only", str(build / "bygated")],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 4 and f[1] in "tT":
            src = f[3].rsplit(":", 1)[0]
            out.setdefault(f[2], src[len(root):] if src.startswith(root)
                           else src)
    return out


def file_stage(src):
    for stage, files in FILE_STAGE.items():
        for f in files:
            if src == f or (f.endswith("/*") and src.startswith(f[:-1])):
                return stage
    return None


def stage_of(dso, sym, files):
    sym = re.sub(r"\.(constprop|isra|part|cold)\.\d+$", "", sym)
    sym = re.sub(r"\.(constprop|isra|part|cold)(\.\d+)?", "", sym)
    if dso.startswith("[kernel") or dso == "[vdso]":
        return "syscalls (kernel)"
    if "hiredis" in dso:
        return "hiredis"
    if "libevent" in dso:
        return "libevent"
    if "lmdb" in dso:
        return "journal"
    if dso.startswith("libc"):
        if ALLOC.match(sym):
            return "allocator"
        if SYSCALL_WRAP.match(sym):
            return "syscalls (kernel)"
        return "libc other"
    if dso == "bygated":
        return file_stage(files.get(sym, "")) or "other"
    return "other"


def perf_rows(data):
    r = subprocess.run(["perf", "report", "-i", str(data), "--stdio",
                        "--no-children", "--sort", "dso,symbol", "-g", "none",
                        "--percent-limit", "0"],
                       capture_output=True, text=True, timeout=300)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.kH]\]\s+(.*?)"
                     r"(\s+-\s+-)?\s*$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3)))
    return rows


def strace_rows(path):
    """[(calls, syscall)] from strace -c's summary table."""
    rows = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and re.match(r"^[\d.]+$", f[0]) and f[-1] != "total":
            calls = int(f[3])
            rows.append((calls, f[-1]))
    return sorted(rows, reverse=True)


# Files passed through when a sample is charged to its caller: helpers
# every stage calls.
PASS_THROUGH = ("common/buf.c", "common/clock.c", "wire/json.c",
                "supervisor/redis.c", "supervisor/keys.c", "wire/keys.c",
                "wire/send.c", "wire/record.c")


def charged_rows(data, files):
    """Samples of a DWARF call-graph recording charged to the stage of the
    innermost bygated function on their stack whose file is not in
    PASS_THROUGH (so that libc, allocator, hiredis, kernel and JSON-scan
    time counts for the stage that asked for it; supervisor/main.c is the
    loop itself): [(percent, stage)]."""
    r = subprocess.run(["perf", "script", "-i", str(data),
                        "-F", "ip,sym,dso"],
                       capture_output=True, text=True, timeout=600)
    counts, n, stage = {}, 0, None
    for line in r.stdout.splitlines() + [""]:
        if not line.strip():
            if stage is not None:
                counts[stage] = counts.get(stage, 0) + 1
                n += 1
            stage = None
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(\S+?)(\+0x[0-9a-f]+)?\s+\((.*)\)",
                     line)
        if not m:
            continue
        if stage is None:
            stage = "unattributed"
        if stage == "unattributed" and m.group(3).endswith("/bygated"):
            sym = re.sub(r"\.(constprop|isra|part|cold)(\.\d+)?", "",
                         m.group(1))
            src = files.get(sym)
            if src == "supervisor/main.c":
                stage = "event loop (main.c, libevent, epoll)"
            elif src in PASS_THROUGH:
                pass
            elif src and file_stage(src):
                stage = file_stage(src)
            elif src:
                stage = "other (" + src + ")"
    return sorted(((100.0 * c / max(n, 1), s) for s, c in counts.items()),
                  reverse=True)


def print_tables(a, plain, sys_rows, order, syscall_title):
    """The Redis command table of the plain run (largest `order` first:
    "calls" or "usec") and the system-call table of the strace run."""
    print("\n| Redis command | calls per task | Redis us per task |")
    print("|---|---:|---:|")
    for k, v in sorted(plain["commands"].items(),
                       key=lambda kv: -kv[1][order]):
        if v["calls"] / a.tasks >= 0.01:
            print("| %s | %.2f | %.1f |" % (k.upper(), v["calls"] / a.tasks,
                                          v["usec"] / a.tasks))
    print("\n| %s | calls per task |" % syscall_title)
    print("|---|---:|")
    for calls, name in sys_rows:
        if calls / a.strace_tasks >= 0.01:
            print("| %s | %.2f |" % (name, calls / a.strace_tasks))
    print("| total | %.2f |" % (sum(c for c, _ in sys_rows) / a.strace_tasks))


def redis_report(a, plain, prof, st, rows, sys_rows):
    """The --redis tables: redis-server's samples by REDIS_STAGE (us per
    task = the plain run's Redis CPU per task x the share), its commands
    and its system calls per task."""
    REDIS_SYMS[:] = redis_dynsyms()
    cpu = plain["redis_cpu_us_per_task"]
    print("plain run: %.0f tasks/s, Redis %.1f us/task (%.1f without the "
          "load generator's XREADs), %.1f Redis commands/task (%.1f of them "
          "bygated's), bygated %.1f us/task" % (
              plain["tasks_per_s"], cpu,
              plain["redis_cpu_us_per_task_without_reader"],
              plain["redis_commands_per_task"],
              plain["bygated_commands_per_task"],
              plain["bygated_cpu_us_per_task"]))
    print("perf run: %.0f tasks/s; strace run: %.0f tasks/s\n" % (
        prof["tasks_per_s"], st["tasks_per_s"]))
    total = sum(p for p, _, _ in rows) or 1.0
    by_stage = {s: 0.0 for s in REDIS_STAGES}
    top = {s: [] for s in REDIS_STAGES}
    for p, dso, sym in rows:
        s = redis_stage(dso, sym)
        by_stage[s] += p
        top[s].append((p, sym))
    print("| redis-server stage | % of samples | us per task | top symbols |")
    print("|---|---:|---:|---|")
    for s in REDIS_STAGES:
        share = by_stage[s] / total
        syms = ", ".join("%s %.1f" % (n, p) for p, n in
                         sorted(top[s], reverse=True)[:5])
        print("| %s | %.1f | %.1f | %s |" % (s, 100 * share, share * cpu,
                                            syms))
    print_tables(a, plain, sys_rows, "usec", "redis-server system call")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=pathlib.Path,
                    default=HERE.parent / "build")
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--strace-tasks", type=int, default=5000)
    ap.add_argument("--pool", type=int, default=8)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--dwarf", action="store_true",
                    help="record run 2 with --call-graph dwarf and also "
                    "charge library and kernel time to the calling stage")
    ap.add_argument("--redis", action="store_true",
                    help="profile and strace the redis-server of runs 2 "
                    "and 3 instead of bygated")
    ap.add_argument("--extra", type=json.loads, default=None,
                    help="bygated config overrides for every run, as JSON "
                    "(e.g. '{\"trace\": {\"enabled\": false}}')")
    ap.add_argument("--keep-perf", type=pathlib.Path,
                    help="copy the perf.data of run 2 there")
    a = ap.parse_args()
    args = br.parse_args(["--build", str(a.build), "--tasks", str(a.tasks),
                          "--pool", str(a.pool), "--sessions",
                          str(a.sessions)])
    run = br.Run(args)
    files = symbol_files(args.build)

    def target(pid):
        """bygated's pid, or with --redis the phase's redis-server's (the
        last one the run started)."""
        if not a.redis:
            return pid
        rs = [o for o in run.owned if type(o).__name__ == "RedisServer"]
        return rs[-1].pid
    br.start_perf = lambda run_, pid: br.proc.spawn(
        ["perf", "record", "-F", "999", "-g", "-o", run.tmp / "perf.data",
         "-p", target(pid)], label="perf", stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        plain = br.bygate_phase(run, "plain", "full", a.tasks,
                                extra=a.extra)[0]
        run.close_phase()
        data = run.tmp / "perf.data"
        br.stop_perf = lambda run_, t: (t.stop(br.signal.SIGINT, timeout=30.0)
                                        if t else None) or []
        if a.dwarf:
            br.start_perf = lambda run_, pid: br.proc.spawn(
                ["perf", "record", "-F", "499", "--call-graph",
                 "dwarf,8192", "-o", data, "-p", target(pid)], label="perf",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        prof = br.bygate_phase(run, "perf", "full", a.tasks,
                                profile=True, extra=a.extra)[0]
        run.close_phase()
        rows = perf_rows(data)
        charged = charged_rows(data, files) if a.dwarf else []
        if a.keep_perf:
            shutil.copy(data, a.keep_perf)
        st_out = run.tmp / "strace.txt"
        br.start_perf = lambda run_, pid: br.proc.spawn(
            ["strace", "-c", "-f", "-o", st_out, "-p", target(pid)],
            label="strace",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st = br.bygate_phase(run, "strace", "full", a.strace_tasks,
                             profile=True, extra=a.extra)[0]
        run.close_phase()
        sys_rows = strace_rows(st_out)
    finally:
        run.close(keep=False)

    if a.redis:
        return redis_report(a, plain, prof, st, rows, sys_rows)
    cpu = plain["bygated_cpu_us_per_task"]
    print("plain run: %.0f tasks/s, bygated %.1f us/task, children %.1f "
          "us/task, Redis %.1f us/task, %.1f Redis commands/task "
          "(%.1f of them bygated's)" % (
              plain["tasks_per_s"], cpu, plain["children_cpu_us_per_task"],
              plain["redis_cpu_us_per_task"],
              plain["redis_commands_per_task"],
              plain["bygated_commands_per_task"]))
    print("perf run: %.0f tasks/s; strace run: %.0f tasks/s\n" % (
        prof["tasks_per_s"], st["tasks_per_s"]))
    total = sum(p for p, _, _ in rows) or 1.0
    by_stage = {s: 0.0 for s in STAGES}
    top = {s: [] for s in STAGES}
    for p, dso, sym in rows:
        s = stage_of(dso, sym, files)
        by_stage[s] += p
        top[s].append((p, sym, files.get(sym, dso)))
    print("| stage | % of samples | us per task | top symbols |")
    print("|---|---:|---:|---|")
    for s in STAGES:
        share = by_stage[s] / total
        syms = ", ".join("%s %.1f" % (n, p) for p, n, _ in
                         sorted(top[s], reverse=True)[:4])
        print("| %s | %.1f | %.1f | %s |" % (s, 100 * share, share * cpu,
                                            syms))
    if charged:
        print("\n| charged to the calling stage | % of samples "
              "| us per task |")
        print("|---|---:|---:|")
        for p, s in charged:
            if p >= 0.3:
                print("| %s | %.1f | %.1f |" % (s, p, p / 100 * cpu))
    unmapped = {}
    for p, sym, src in top["other"]:
        unmapped[src] = unmapped.get(src, 0.0) + p
    print("\nother, by file: " + ", ".join(
        "%s %.1f" % (f, p) for f, p in
        sorted(unmapped.items(), key=lambda kv: -kv[1])[:12]))
    print_tables(a, plain, sys_rows, "calls", "system call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
