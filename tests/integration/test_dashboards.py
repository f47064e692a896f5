"""The shipped Grafana dashboard (etc/grafana/bygate.json) and Prometheus
alert rules (etc/prometheus/bygate-alerts.yml) (issue 15, item 8): every
metric their PromQL names is one a running bygated exports on /metrics
(histogram series by their _bucket/_sum/_count names), with the labels it
selects on; the alerts cover queue lag, the oldest pending entry, the
crash-storm breaker, lease lapses and the failure ratio; both files parse
(the YAML with a small parser of the subset the rules use, checked
against PyYAML where it is installed)."""

import json
import re

from harness import REPO, wait_until
from test_http import family_of, parse_prometheus, request, start

DASHBOARD = REPO / "etc" / "grafana" / "bygate.json"
ALERTS = REPO / "etc" / "prometheus" / "bygate-alerts.yml"

# Series a rule may use that bygated does not export: Prometheus' own.
PROMETHEUS_SERIES = {"up"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "and", "or", "unless",
                "inf", "nan"}
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


# ---- a parser of the YAML subset of the rules file -----------------------

def _scalar(text):
    text = text.strip()
    if text.startswith('"'):
        assert text.endswith('"') and len(text) > 1, "bad string %r" % text
        return json.loads(text)
    assert not text.startswith(("'", "{", "[", "&", "*", "!")), \
        "outside the supported subset: %r" % text
    return text


def parse_yaml_subset(text):
    """Block mappings, block sequences of mappings, plain and double-quoted
    scalars, `|` literal blocks and full-line comments: what
    bygate-alerts.yml uses. Raises AssertionError on anything else."""
    lines = [(len(ln) - len(ln.lstrip(" ")), ln.strip(), ln)
             for ln in text.split("\n")]
    pos = 0

    def skip():
        nonlocal pos
        while pos < len(lines) and (not lines[pos][1]
                                    or lines[pos][1].startswith("#")):
            pos += 1

    def literal(indent):
        nonlocal pos
        out = []
        while pos < len(lines) and (not lines[pos][1]
                                    or lines[pos][0] > indent):
            out.append(lines[pos][2])
            pos += 1
        while out and not out[-1].strip():
            out.pop()
        width = min(len(ln) - len(ln.lstrip(" ")) for ln in out if ln.strip())
        return "\n".join(ln[width:] for ln in out) + "\n"

    def value(rest, indent):
        nonlocal pos
        if rest == "|":
            return literal(indent)
        if rest:
            return _scalar(rest)
        skip()
        assert pos < len(lines) and lines[pos][0] >= indent, "empty value"
        return node(lines[pos][0])

    def mapping(indent, first=None):
        nonlocal pos
        out = {}
        while True:
            if first is None:
                skip()
                if pos >= len(lines) or lines[pos][0] != indent \
                        or lines[pos][1].startswith("- "):
                    return out
                item = lines[pos][1]
                pos += 1
            else:
                item, first = first, None
            key, sep, rest = item.partition(":")
            assert sep and IDENT.fullmatch(key), "bad mapping line %r" % item
            assert key not in out, "duplicate key %r" % key
            out[key] = value(rest.strip(), indent + 1)

    def sequence(indent):
        nonlocal pos
        out = []
        while True:
            skip()
            if pos >= len(lines) or lines[pos][0] != indent \
                    or not lines[pos][1].startswith("- "):
                return out
            item = lines[pos][1][2:]
            pos += 1
            out.append(mapping(indent + 2, first=item))

    def node(indent):
        return sequence(indent) if lines[pos][1].startswith("- ") \
            else mapping(indent)

    skip()
    doc = node(lines[pos][0])
    skip()
    assert pos == len(lines), "unparsed line %r" % lines[pos][2]
    return doc


# ---- PromQL names --------------------------------------------------------

def promql_selectors(expr):
    """[(metric name, {label names})] of the series an expression selects:
    strings, range/offset durations, grouping clauses, Grafana variables
    and function names left out."""
    expr = re.sub(r"\$\{?\w+\}?", "", expr)               # $__rate_interval
    found, labels_of = [], {}

    def selector(m):
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)",
                                re.sub(r'"(?:[^"\\]|\\.)*"', '""',
                                       m.group(2))))
        labels_of.setdefault(m.group(1), set()).update(labels)
        return m.group(1)
    expr = re.sub(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", selector, expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)"
                  r"\s*\([^)]*\)", "", expr)
    for m in IDENT.finditer(expr):
        name = m.group(0)
        after = expr[m.end():].lstrip()
        if after.startswith("(") or name.lower() in PROMQL_WORDS:
            continue
        if re.match(r"[0-9.]", expr[m.start() - 1:m.start()] or " "):
            continue                                          # 1e3, 10m
        found.append((name, labels_of.get(name, set())))
    return found


def dashboard_exprs():
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))
    walk(dash["panels"])
    for var in dash["templating"]["list"]:
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q or "")
        if m:
            exprs.append("%s{%s=\"x\"}" % m.groups())
    return exprs


def alert_rules():
    doc = parse_yaml_subset(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def exported(h):
    """({family: type}, {family: label names seen}) of a bygated that ran
    a task, once the every-5-s Redis figures are in."""
    d = start(h)
    r = h.bygate("send", "--agent-type", "echo", "--session", "dash",
                 "--content", "hi", "--wait")
    assert r.returncode == 0, r.stderr
    body = wait_until(lambda: (lambda b: b if "# TYPE bygate_consumer_"
                               "group_lag " in b else None)(
        request(d, "/metrics")[2]), 20, what="the Redis figures")
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    labels = {}
    for (name, lab), _ in parse_prometheus(body).items():
        labels.setdefault(family_of(name, types), set()).update(
            k for k, _ in lab if k != "le")
    return types, labels


def unknown_names(exprs, types, labels):
    bad = []
    for expr in exprs:
        for name, used in promql_selectors(expr):
            fam = family_of(name, types)
            if name in PROMETHEUS_SERIES:
                continue
            if fam not in types:
                bad.append("%s (in %s)" % (name, expr))
                continue
            if name != fam and types[fam] != "histogram":
                bad.append("%s: %s is not a histogram" % (name, fam))
            extra = used - labels.get(fam, set()) - TARGET_LABELS
            if extra and labels.get(fam):
                bad.append("%s has no label %s" % (fam, sorted(extra)))
    return bad


# ---- tests ---------------------------------------------------------------

def test_the_rules_parser_reads_what_pyyaml_reads():
    try:
        import yaml
    except ImportError:
        return  # the subset parser is then the only reader
    assert parse_yaml_subset(ALERTS.read_text()) == \
        yaml.safe_load(ALERTS.read_text())


def test_the_name_extractor_finds_metrics_not_functions_or_labels():
    got = promql_selectors(
        'histogram_quantile(0.99, sum by (le, agent_type) (rate('
        'bygate_task_duration_seconds_bucket{instance=~"$instance"}'
        '[$__rate_interval]))) / bygate_x > 1e3 and on (instance) up')
    assert got == [("bygate_task_duration_seconds_bucket", {"instance"}),
                   ("bygate_x", set()), ("up", set())]


def test_every_metric_of_the_dashboard_and_alerts_is_exported(h):
    types, labels = exported(h)
    exprs = dashboard_exprs() + [r["expr"] for r in alert_rules()]
    assert len(exprs) > 20
    assert unknown_names(exprs, types, labels) == []


def test_a_misspelt_metric_would_be_caught(h):
    types, labels = exported(h)
    assert unknown_names(['rate(bygate_task_total[5m])',
                          'bygate_tasks_total{reason="x"}',
                          'bygate_up_bucket'], types, labels) == [
        "bygate_task_total (in rate(bygate_task_total[5m]))",
        "bygate_tasks_total has no label ['reason']",
        "bygate_up_bucket (in bygate_up_bucket)"]


def test_the_alerts_cover_lag_pending_breaker_lapses_and_failures():
    rules = alert_rules()
    by_metric = {}
    for r in rules:
        assert set(r) >= {"alert", "expr", "labels", "annotations"}, r
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"]
        for name, _ in promql_selectors(r["expr"]):
            by_metric.setdefault(name, []).append(r["alert"])
    for name in ("bygate_consumer_group_lag",
                 "bygate_oldest_pending_age_seconds",
                 "bygate_crash_storm_breaker_open",
                 "bygate_lease_lapses_total", "bygate_tasks_total"):
        assert name in by_metric, "no alert on %s" % name
    failure = [r for r in rules if r["alert"] == "BygateFailureRatio"][0]
    assert 'outcome=~"failed|deadlettered"' in failure["expr"]
    assert len({r["alert"] for r in rules}) == len(rules)


def test_the_dashboard_has_unique_panel_ids_and_the_key_panels():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dash["panels"]}
    for t in ("Consumer-group lag", "Oldest pending entry",
              "Crash-storm breaker open", "Lease lapses (1h)",
              "Failure ratio", "Throughput by outcome",
              "Task duration p50 / p90 / p99", "Pool children",
              "Redis connections"):
        assert t in titles, t
    for p in dash["panels"]:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}"
