#!/usr/bin/env python3
"""Start a private redis-server on a free loopback port for manual work with
bygated and the bygate CLI (never port 6379 or the system service), print the
environment that points by-framework processes at it, and keep it running
until Ctrl-C or SIGTERM. Extra arguments after -- go to redis-server."""

import argparse
import pathlib
import signal
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bglib.redisserver import RedisServer, RedisStartError  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="data and log directory (default: a new "
                    "temporary directory, removed on exit)")
    ap.add_argument("--port", type=int, help="port (default: a free one)")
    ap.add_argument("redis_args", nargs="*", help="extra redis-server options")
    args = ap.parse_args(argv)

    stop = []
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda signum, frame: stop.append(signum))
    server = RedisServer(args.dir, args=args.redis_args)
    try:
        server.start(port=args.port)
    except RedisStartError as e:
        print("redis.py: %s" % e, file=sys.stderr)
        server.close()
        return 1
    print("redis-server pid %d on 127.0.0.1:%d (dir %s)"
          % (server.pid, server.port, server.dir))
    print("export REDIS_HOST=127.0.0.1 REDIS_PORT=%d" % server.port, flush=True)
    try:
        while not stop and server.alive():
            time.sleep(0.2)
    finally:
        server.close()
    return 0 if stop else 1


if __name__ == "__main__":
    sys.exit(main())
