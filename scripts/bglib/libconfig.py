"""Render Python values as libconfig text (the bygate.conf syntax) and merge
override dicts into a base configuration.

Mapping: dict -> group `{ ... }` (top level: plain settings), list/tuple of
dicts or of mixed values -> list `( ... )`, list of scalars of one type ->
array `[ ... ]`, str -> "escaped", bool -> true/false, int -> decimal (with L
outside the 32-bit range), float -> decimal with a point, Raw -> as written."""

import math
import re

__all__ = ["Raw", "render", "deep_merge"]

_NAME = re.compile(r"^[A-Za-z*][-A-Za-z0-9_*]*$")
_INT32 = range(-2**31, 2**31)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\f": "\\f"}


class Raw(str):
    """A value written verbatim (e.g. a hex literal 0x10)."""


def _string(s):
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _scalar(v):
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if v in _INT32 else "%dL" % v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("libconfig has no representation for %r" % v)
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(v, str):
        return _string(v)
    return None


def _is_array(items):
    kinds = {type(_kind(i)) for i in items}
    return len(kinds) == 1 and all(_scalar(i) is not None for i in items)


def _kind(v):
    if isinstance(v, bool):
        return True
    if isinstance(v, int):
        return 0
    return v


def _value(v, indent):
    text = _scalar(v)
    if text is not None:
        return text
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(v, dict):
        if not v:
            return "{ }"
        body = _settings(v, indent + 1)
        return "{\n" + body + pad + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "( )" if isinstance(v, tuple) else "[ ]"
        if isinstance(v, list) and _is_array(v):
            return "[ " + ", ".join(_scalar(i) for i in v) + " ]"
        items = [inner + _value(i, indent + 1) for i in v]
        return "(\n" + ",\n".join(items) + "\n" + pad + ")"
    if v is None:
        raise ValueError("None cannot be rendered (use deep_merge to drop keys)")
    raise TypeError("cannot render %s as libconfig" % type(v).__name__)


def _settings(d, indent):
    lines = []
    for key, v in d.items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise ValueError("invalid libconfig setting name %r" % (key,))
        if v is None:
            continue
        lines.append("%s%s = %s;\n" % ("  " * indent, key, _value(v, indent)))
    return "".join(lines)


def render(config, header=None):
    """libconfig text for a dict of top-level settings; keys whose value is
    None are left out. `header` becomes leading // comment lines."""
    if not isinstance(config, dict):
        raise TypeError("top level must be a dict of settings")
    text = _settings(config, 0)
    if header:
        text = "".join("// %s\n" % l for l in header.splitlines()) + text
    return text


def deep_merge(base, overrides):
    """A new dict: base with overrides applied recursively. Nested dicts
    merge; a None override removes the key; anything else replaces."""
    out = dict(base)
    for key, v in (overrides or {}).items():
        if v is None:
            out.pop(key, None)
        elif isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], v)
        else:
            out[key] = v
    return out
