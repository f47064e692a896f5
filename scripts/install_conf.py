#!/usr/bin/env python3
"""`make install`: write the installed example configuration
($(SYSCONFDIR)/bygate/bygate.conf.example) from etc/bygate.conf, the
development configuration of a checkout, by giving it the installed paths:

    ../build/plugins/X.so            -> PREFIX/lib/bygate/plugins/X.so
    python3 ../examples/python/X.py  -> python3 PREFIX/share/bygate/python/X.py
    ../run/state, ../run/workspaces  -> LOCALSTATEDIR/lib/bygate[/workspaces]
    ../run/events.jsonl              -> LOCALSTATEDIR/lib/bygate/events.jsonl
    worker.id "bygate-dev"           -> "" (bygate-<hostname>)

Every path it names is absolute, so the file works wherever it is copied.
Fails (exit 1, nothing written) if etc/bygate.conf no longer has one of
the development values or still names a relative path afterwards.

    scripts/install_conf.py --prefix /usr/local --localstatedir /usr/local/var \\
        -o /usr/local/etc/bygate/bygate.conf.example etc/bygate.conf
"""
import argparse
import os
import re
import sys

HEADER = """# bygate.conf.example - the example configuration installed by `make
# install` (from etc/bygate.conf, scripts/install_conf.py): the example
# agent types with their installed plugins (%(plugins)s)
# and Python agents (%(python)s), state under
# %(state)s. It runs as installed:
#     bygated -c %(self)s
# (REDIS_HOST / REDIS_PORT override redis.host / redis.port). Copy it to
# bygate.conf and keep the agent types you serve.
#
"""


def fail(msg):
    sys.exit("install_conf.py: " + msg)


def convert(text, prefix, localstatedir, self_path):
    plugins = prefix + "/lib/bygate/plugins"
    python = prefix + "/share/bygate/python"
    state = localstatedir + "/lib/bygate"
    # Drop the checkout's own header (up to the generated template's).
    mark = "# bygate configuration (libconfig syntax)."
    if mark not in text:
        fail("etc/bygate.conf has no %r line" % mark)
    text = text[text.index(mark):]
    fixed = [
        ('\tport = 6379; # make run sets REDIS_PORT to its own redis-server\n',
         '\tport = 6379;\n'),
        ('\tid = "bygate-dev";\n', '\tid = "";\n'),
        ('\tstate_dir = "../run/state";\n', '\tstate_dir = "%s";\n' % state),
        ('\tworkspace_dir = "../run/workspaces";\n',
         '\tworkspace_dir = "%s/workspaces";\n' % state),
        # the task event log next to the state: the directory the unit's
        # ReadWritePaths opens (bygate events reads it from this file)
        ('\tevents_file = "../run/events.jsonl";\n',
         '\tevents_file = "%s/events.jsonl";\n' % state),
    ]
    for old, new in fixed:
        if old not in text:
            fail("etc/bygate.conf changed: %r not found" % old.strip())
        text = text.replace(old, new, 1)
    text, n_plugins = re.subn(r'"\.\./build/plugins/([^"/]+\.so)"',
                              lambda m: '"%s/%s"' % (plugins, m.group(1)),
                              text)
    text, n_agents = re.subn(r'"python3 \.\./examples/python/([^"/ ]+\.py)"',
                             lambda m: '"python3 %s/%s"' % (python,
                                                            m.group(1)),
                             text)
    if n_plugins == 0 or n_agents == 0:
        fail("etc/bygate.conf names no plugin or no Python agent")
    left = re.search(r'"[^"\n]*\.\./[^"\n]*"', text)
    if left:
        fail("a relative path is left: %s" % left.group(0))
    return HEADER % {"plugins": plugins, "python": python, "state": state,
                     "self": self_path} + text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--localstatedir", required=True)
    ap.add_argument("-o", "--output", required=True,
                    help="file to write (DESTDIR included)")
    ap.add_argument("--installed-as",
                    help="the file's path once installed (default: output)")
    ap.add_argument("source", help="etc/bygate.conf")
    a = ap.parse_args()
    for name, value in (("--prefix", a.prefix),
                        ("--localstatedir", a.localstatedir)):
        if not value.startswith("/"):
            fail("%s must be an absolute path, not %r" % (name, value))
    with open(a.source) as f:
        text = f.read()
    out = convert(text, a.prefix.rstrip("/") or "/",
                  a.localstatedir.rstrip("/") or "/",
                  a.installed_as or a.output)
    tmp = a.output + ".tmp"
    with open(tmp, "w") as f:
        f.write(out)
    os.chmod(tmp, 0o600)  # it may be given a Redis password
    os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
