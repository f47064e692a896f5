"""bglib - Python standard-library helpers shared by scripts/run.py (`make run`),
scripts/redis.py and the integration-test harness (tests/integration/):
a RESP2 client, private redis-server and bygated process fixtures, libconfig
rendering, by-framework key names and process utilities."""

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
