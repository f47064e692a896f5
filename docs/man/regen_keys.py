#!/usr/bin/env python3
"""Regenerate the KEYS section of docs/man/bygate.conf.5 from the key table
(`test_conf --markdown`, the same source as docs/configuration.md), between
the lines `.\\" keys: begin` and `.\\" keys: end`.

    make build/tests/test_conf && python3 docs/man/regen_keys.py [BUILD]
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"
PAGE = ROOT / "docs" / "man" / "bygate.conf.5"
BEGIN, END = '.\\" keys: begin\n', '.\\" keys: end\n'


def text(cell):
    """A Markdown cell as troff text: no backticks, entities decoded,
    backslashes escaped, hyphens of options and names kept literal."""
    s = cell.strip().replace("`", "")
    s = s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + s if s[:1] in (".", "'") else s


def rows(markdown):
    for line in markdown.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 6:
            yield cells


def render(markdown):
    out, group = [], None
    for key, default, allowed, env, hup, meaning in rows(markdown):
        g, name = key.strip().strip("`").split(".", 1)
        if g != group:
            group = g
            out.append(".SS %s\n" % ("agent_types ( { ... }, ... )"
                                      if g == "agent_types" else g))
        facts = ["required" if default.strip() == "required"
                 else "default %s" % text(default)]
        if allowed.strip() not in ("any", ""):
            facts.append("allowed %s" % text(allowed))
        if env.strip():
            facts.append("environment %s" % text(env))
        facts.append("reload: %s" % ("SIGHUP" if hup.strip() == "yes"
                                     else "restart"))
        out.append(".TP\n.B %s\n%s\n.br\n%s.\n" % (
            text(name), text(meaning), "; ".join(facts)))
    return "".join(out)


def regenerated(build=BUILD):
    """The page as the key table of `build`'s test_conf makes it."""
    md = subprocess.run([str(build / "tests" / "test_conf"), "--markdown"],
                        check=True, capture_output=True, text=True).stdout
    page = PAGE.read_text()
    i, j = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:i] + render(md) + page[j:]


def main():
    PAGE.write_text(regenerated())
    print("docs/man/bygate.conf.5 keys regenerated")


if __name__ == "__main__":
    main()
