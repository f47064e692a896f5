#!/usr/bin/env python3
"""Regenerate etc/bygate.conf (the commented template from the key table,
with the development values `make run` needs) and the key table of
docs/configuration.md, and the KEYS of docs/man/bygate.conf.5, after a key
was added or changed in conf/table.c.

    make build/tests/test_conf && python3 scripts/regen_conf.py
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"
TEST = BUILD / "tests" / "test_conf"

HEADER = """# etc/bygate.conf - the development configuration `make run` uses from a
# checkout (generated from the key table, then given the dev values below;
# regenerate with `python3 scripts/regen_conf.py`).
#
"""
DEV = [
    ('\tport = 6379;\n',
     '\tport = 6379; # make run sets REDIS_PORT to its own redis-server\n'),
    ('\tid = "";\n', '\tid = "bygate-dev";\n'),
    ('\tstate_dir = "/var/lib/bygate";\n', '\tstate_dir = "../run/state";\n'),
    ('\tworkspace_dir = "/var/lib/bygate/workspaces";\n',
     '\tworkspace_dir = "../run/workspaces";\n'),
    ('\tevents_file = "";\n', '\tevents_file = "../run/events.jsonl";\n'),
    ('\t\tplugin = "/usr/local/lib/bygate/plugins/echo.so";\n',
     '\t\tplugin = "../build/plugins/echo.so";\n'),
]
SLEEP = """\t},
\t{
\t\tname = "sleep";
\t\thandler = "plugin";
\t\tplugin = "../build/plugins/sleep.so";
\t\toptions = { default_ms = 20; };
\t},
"""
# The Python example agents of examples/python/ (docs/handler-protocol.md):
# an exec command runs in this file's directory, hence the "../".
PYTHON_AGENTS = ("planner", "researcher", "writer", "summariser", "approver",
                 "reviewer", "translator")
PYTHON_AGENT = """\t{
\t\tname = "%s";
\t\thandler = "exec";
\t\tcommand = "python3 ../examples/python/%s.py";
\t\ttimeout_ms = 60000;
\t}"""
# The workflow agent types (docs/workflows.md), one plugin.
WORKFLOWS = """,
\t{
\t\t# The workflow agent types (docs/workflows.md).
\t\tname = "bygate.dag";
\t\tplugin = "../build/plugins/workflows.so";
\t},
\t{
\t\tname = "bygate.group";
\t\tplugin = "../build/plugins/workflows.so";
\t},
\t{
\t\tname = "bygate.fanout";
\t\tplugin = "../build/plugins/workflows.so";
\t}"""


def run(flag):
    return subprocess.run([str(TEST), flag], check=True, capture_output=True,
                          text=True).stdout


def main():
    conf = HEADER + run("--template")
    for old, new in DEV:
        if old not in conf:
            sys.exit("template changed: %r not found" % old)
        conf = conf.replace(old, new, 1)
    i = conf.rindex("\t}\n);")
    conf = conf[:i] + SLEEP + ",\n".join(
        PYTHON_AGENT % (n, n) for n in PYTHON_AGENTS) + WORKFLOWS + "\n);\n"
    (ROOT / "etc" / "bygate.conf").write_text(conf)
    md = run("--markdown")
    doc_path = ROOT / "docs" / "configuration.md"
    doc = doc_path.read_text()
    i = doc.index("\n| Key |") + 1  # not the "| Variable | Key |" table
    j = doc.find("\n\n", i)
    tail = doc[j:] if j >= 0 else "\n"  # the table may end the file
    doc = doc[:i] + md[md.index("| Key"):].strip("\n") + tail
    doc_path.write_text(doc)
    print("etc/bygate.conf and docs/configuration.md regenerated")
    subprocess.run([sys.executable, str(ROOT / "docs" / "man" / "regen_keys.py"),
                    str(BUILD)], check=True)


if __name__ == "__main__":
    main()
