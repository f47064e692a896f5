"""A small RESP2 client over TCP for tests and scripts (no redis-py).

Replies decode as: simple string -> str, error -> RespError (raised at the top
level, returned in place inside arrays and pipelines), integer -> int, bulk ->
str (UTF-8, lossless via surrogateescape) or bytes with decode=False, array ->
list, nil -> None. Helpers turn XRANGE/XREAD/HGETALL replies into Python
structures and parse the JSON `data` field of by-framework stream entries."""

import json
import socket

__all__ = [
    "RespClient", "RespError", "RespTimeout", "RespProtocolError",
    "encode_command", "pairs_to_dict", "decode_entries", "decode_xread",
    "entry_data",
]


class RespError(Exception):
    """An error reply from Redis; `code` is its first word (ERR, WRONGTYPE)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message
        self.code = message.split(" ", 1)[0] if message else ""


class RespTimeout(TimeoutError):
    """No complete reply within the timeout; the connection was closed."""


class RespProtocolError(ConnectionError):
    """The server sent bytes that are not RESP2."""


def _arg_bytes(arg):
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, bool):
        raise TypeError("RESP argument cannot be a bool; pass 0/1 or a string")
    if isinstance(arg, (int, float)):
        return repr(arg).encode() if isinstance(arg, float) else str(arg).encode()
    if isinstance(arg, str):
        return arg.encode("utf-8", "surrogateescape")
    raise TypeError("RESP argument of type %s" % type(arg).__name__)


def encode_command(args):
    """The RESP2 request (array of bulk strings) for one command."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg_bytes(a)
        parts.append(b"$%d\r\n" % len(b))
        parts.append(b)
        parts.append(b"\r\n")
    return b"".join(parts)


class _Reader:
    """Incremental RESP2 parser over a socket with a local buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self):
        if self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[:self.pos]
            self.pos = 0
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("redis closed the connection")
        self.buf += data

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + n])
        if self.buf[self.pos + n:self.pos + n + 2] != b"\r\n":
            raise RespProtocolError("bulk string not terminated by CRLF")
        self.pos += n + 2
        return data

    def _int(self, text):
        try:
            return int(text)
        except ValueError:
            raise RespProtocolError("bad RESP integer %r" % text) from None

    def read(self, decode):
        line = self._line()
        if not line:
            raise RespProtocolError("empty RESP line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "surrogateescape")
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return self._int(rest)
        if kind == b"$":
            n = self._int(rest)
            if n < 0:
                return None
            data = self._exact(n)
            return data.decode("utf-8", "surrogateescape") if decode else data
        if kind == b"*":
            n = self._int(rest)
            if n < 0:
                return None
            return [self.read(decode) for _ in range(n)]
        raise RespProtocolError("unknown RESP type byte %r" % kind)


class RespClient:
    """One connection to a Redis server; reconnects lazily after a failure.

    Not thread-safe. Every socket error or timeout closes the connection (the
    reply stream would be out of step) and is raised; the next call connects
    again, re-running AUTH and SELECT."""

    def __init__(self, host="127.0.0.1", port=6379, *, timeout=10.0,
                 decode=True, db=0, password=None, username=None):
        self.host, self.port = host, port
        self.timeout, self.decode = timeout, decode
        self.db, self.password, self.username = db, password, username
        self._sock = None
        self._reader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "RespClient(%s:%d)" % (self.host, self.port)

    def connect(self):
        if self._sock is not None:
            return
        sock = socket.create_connection((self.host, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._reader = sock, _Reader(sock)
        setup = []
        if self.password:
            setup.append(("AUTH", self.username, self.password)
                         if self.username else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        if setup:
            self.pipeline(setup)

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._reader = None, None

    @property
    def connected(self):
        return self._sock is not None

    def _exchange(self, commands, decode, timeout):
        self.connect()
        decode = self.decode if decode is None else decode
        try:
            self._sock.settimeout(self.timeout if timeout is None else timeout)
            self._sock.sendall(b"".join(encode_command(c) for c in commands))
            return [self._reader.read(decode) for _ in commands]
        except socket.timeout:
            self.close()
            raise RespTimeout("no reply from redis %s:%d within %.1fs" % (
                self.host, self.port,
                self.timeout if timeout is None else timeout)) from None
        except BaseException:
            self.close()
            raise

    def call(self, *args, decode=None, timeout=None):
        """Send one command and return its decoded reply; raise RespError on
        an error reply. `timeout` overrides the socket timeout for this call
        (use it for blocking commands such as XREAD BLOCK)."""
        if not args:
            raise ValueError("empty command")
        reply = self._exchange([args], decode, timeout)[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    def pipeline(self, commands, *, raise_on_error=True, decode=None,
                 timeout=None):
        """Send all commands at once, then read every reply in order. With
        raise_on_error the first error reply is raised after all replies were
        read; otherwise errors are returned in place as RespError objects."""
        commands = [tuple(c) for c in commands]
        if not commands:
            return []
        replies = self._exchange(commands, decode, timeout)
        if raise_on_error:
            for r in replies:
                if isinstance(r, RespError):
                    raise r
        return replies

    # -- helpers ---------------------------------------------------------

    def ping(self):
        return self.call("PING") == "PONG"

    def hgetall(self, key):
        return pairs_to_dict(self.call("HGETALL", key))

    def xrange(self, key, start="-", end="+", count=None):
        """[(id, {field: value})] in stream order."""
        args = ["XRANGE", key, start, end]
        if count is not None:
            args += ["COUNT", count]
        return decode_entries(self.call(*args))

    def xread(self, streams, count=None, block_ms=None):
        """XREAD over {key: last_id}; returns {key: [(id, fields)]}."""
        args = ["XREAD"]
        if count is not None:
            args += ["COUNT", count]
        timeout = None
        if block_ms is not None:
            args += ["BLOCK", block_ms]
            timeout = max(self.timeout, block_ms / 1000.0 + 5.0)
        args += ["STREAMS", *streams.keys(), *streams.values()]
        return decode_xread(self.call(*args, timeout=timeout))

    def stream_data(self, key, start="-", end="+"):
        """The parsed JSON `data` field of every entry of a stream (entries
        without one give None)."""
        return [entry_data(fields) for _, fields in self.xrange(key, start, end)]


def pairs_to_dict(flat):
    """[k1, v1, k2, v2, ...] -> {k1: v1, ...} (None -> {})."""
    if flat is None:
        return {}
    if not isinstance(flat, list) or len(flat) % 2:
        raise RespProtocolError("expected an even-length array, got %r" % (flat,))
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def decode_entries(reply):
    """XRANGE/XREVRANGE/XCLAIM reply -> [(id, {field: value})]; entries that
    XCLAIM reports as deleted (nil fields) get {}."""
    out = []
    for item in reply or []:
        if item is None:
            continue
        entry_id, fields = item
        out.append((entry_id, pairs_to_dict(fields)))
    return out


def decode_xread(reply):
    """XREAD/XREADGROUP reply -> {stream: [(id, fields)]} ({} on timeout)."""
    return {key: decode_entries(entries) for key, entries in (reply or [])}


def entry_data(fields, name="data"):
    """json.loads of one field of a stream entry, or None when absent."""
    raw = fields.get(name)
    if raw is None:
        raw = fields.get(name.encode())
    if raw is None:
        return None
    return json.loads(raw)
