"""The documentation names what the programs do (issue 15, item 10): every
command `bygate --help` prints is in the README's tour and has a section of
docs/client.md; the public header and the pkg-config file agree on what a
libbygate program links."""

import re
import subprocess

from harness import REPO, build_dir

README = REPO / "README.md"
CLIENT_MD = REPO / "docs" / "client.md"
CLIENT_H = REPO / "include" / "bygate" / "client.h"
PC_IN = REPO / "etc" / "bygate.pc.in"
COMMAND = re.compile(r"[a-z][a-z0-9-]*")


def help_commands(text):
    """The commands of `bygate --help`: the first word of each line indented
    by exactly two spaces, and of each further column of such a line
    (`suspend WORKER_ID ...     resume WORKER_ID`), in order, once each."""
    found = []
    for line in text.splitlines():
        if not re.match(r"  \S", line):
            continue
        for column in re.split(r"\s{3,}", line.strip()):
            word = column.split(" ", 1)[0]
            if COMMAND.fullmatch(word) and word not in found:
                found.append(word)
    return found


def bygate_help():
    r = subprocess.run([str(build_dir() / "bygate"), "--help"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def readme_tour():
    text = README.read_text()
    start = text.index("\n## A short tour\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def named_in_tour(tour, cmd):
    return re.search(r"`bygate %s[` ]" % re.escape(cmd), tour) is not None


def client_md_headings():
    return [ln.lstrip("#").strip() for ln in CLIENT_MD.read_text().splitlines()
            if ln.startswith("#")]


def has_section(headings, cmd):
    word = re.compile(r"(?<![\w-])%s(?![\w-])" % re.escape(cmd))
    return any(word.search(h) for h in headings)


# ---- tests ---------------------------------------------------------------

def test_the_help_parser_finds_commands_and_second_columns():
    text = ("usage: bygate [-c FILE] COMMAND\n\n"
            "  send   --agent-type T\n"
            "         [--wait]\n"
            "  suspend WORKER_ID [--reason R]     resume WORKER_ID\n"
            "  dag run FILE\n"
            "  Every command takes --json (machine output).\n"
            "  -c FILE  configuration\n")
    assert help_commands(text) == ["send", "suspend", "resume", "dag"]


def test_bygate_help_prints_the_known_commands():
    cmds = help_commands(bygate_help())
    for known in ("send", "reply", "tail", "status", "cancel", "workers",
                  "allow-rejoin", "resume", "allow", "triggers"):
        assert known in cmds


def test_every_command_is_in_the_readme_tour():
    tour = readme_tour()
    missing = [c for c in help_commands(bygate_help())
               if not named_in_tour(tour, c)]
    assert missing == [], "README.md's tour does not name: %s" % missing


def test_every_command_has_a_section_in_docs_client_md():
    headings = client_md_headings()
    missing = [c for c in help_commands(bygate_help())
               if not has_section(headings, c)]
    assert missing == [], "docs/client.md has no heading for: %s" % missing


def test_the_header_links_what_the_pkg_config_file_requires():
    pc = PC_IN.read_text()
    requires = re.search(r"^Requires: (.*)$", pc, re.M).group(1).split()
    libs = re.search(r"^Libs: (.*)$", pc, re.M).group(1)
    assert libs == "-L${libdir} -lbygate"
    header = CLIENT_H.read_text()
    assert "pkg-config --cflags --libs bygate" in header
    for req in requires:
        assert req in header, "client.h does not name %s" % req
    # nothing named that the installed archive does not need
    assert "libbgwire" not in header and "libbgconf" not in header


def test_the_conf_man_page_holds_every_key_of_the_table():
    """docs/man/bygate.conf.5's KEYS are generated from the key table
    (scripts/regen_conf.py runs docs/man/regen_keys.py): a key added
    without regenerating fails here."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "regen_keys", REPO / "docs" / "man" / "regen_keys.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.PAGE.read_text() == mod.regenerated(build_dir()), \
        "docs/man/bygate.conf.5 is stale: python3 scripts/regen_conf.py"
