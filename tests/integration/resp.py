"""The RESP2 client for integration tests: a re-export of scripts/bglib/resp.py
(the one implementation, shared with scripts/run.py), so tests can write
`from resp import RespClient, RespError`."""

import pathlib
import sys

_SCRIPTS = str(pathlib.Path(__file__).resolve().parents[2] / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)

from bglib.resp import *  # noqa: E402,F401,F403
from bglib.resp import __all__  # noqa: E402,F401
