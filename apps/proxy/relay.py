"""Send an allowed request upstream and stream the answer back.

A small HTTP/1.1 client of our own over pooled sockets, one pool per upstream
(scheme, host, port, CA bundle). It writes the request target exactly as the
client sent it (general-purpose clients re-encode it, upper-casing ``%2f`` or
escaping a stray ``%``, and an upstream must see the bytes the policy engine
judged), keeps no cookie jar, reads no proxy from the environment, never
retries a request that carried a body, never decodes compressed bodies, and
parses only what relaying needs. Replacing urllib3 on top of ``http.client``
with it about halved the proxy's own CPU time per small request (see
``bench/profile_hotpath.py``).

Limitations: responses are read as HTTP/1.1 or 1.0 only; interim ``1xx``
answers other than ``101`` are skipped; a ``101 Switching Protocols`` is
refused with 502 because upgrades are not relayed (WebSocket requests are
answered 501 before they get here). An idle pooled connection that the
upstream closed is noticed before reuse, and a request without a body that
meets such a connection anyway is sent once more on a fresh one (GET, HEAD
and OPTIONS only). Connections are pooled per upstream and per caller, so
bytes an upstream sends out of turn, too late for any check before reuse to
see, can confuse only that same caller's later answers.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from urllib3.util.wait import wait_for_read

from apps.policies.snapshot import AppSpec

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
_HEX_RE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_LINE = 65536
MAX_HEADERS = 200
MAX_INTERIM = 10
IDLE_SECONDS = 30.0
MAX_POOLS = 2048


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ClientBodyError(Exception):
    """The client's request body broke off or was badly framed."""


class _BadResponse(Exception):
    """The upstream's answer is not HTTP we can relay."""


class _StaleConnection(Exception):
    """A reused connection was closed before any byte of an answer."""


@lru_cache(maxsize=64)
def _tls_context(ca_bundle: str) -> ssl.SSLContext:
    # Verified by default: the system store, or the application's bundle.
    context = ssl.create_default_context(cafile=ca_bundle or None)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile: Any = sock.makefile("rb", buffering=CHUNK)
        self.reused = False

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()

    def is_clean(self) -> bool:
        """True when no unread byte waits in our buffer or on the socket.

        Bytes an upstream sent beyond the answer it framed (a second answer
        in the same packet, a body after a 204) would otherwise be read as
        the answer to the next request on this connection, which may be
        another user's.
        """
        if wait_for_read(self.sock, timeout=0.0):
            return False
        try:
            self.sock.setblocking(False)
            try:
                return not self.rfile.peek(1)
            except (BlockingIOError, ssl.SSLWantReadError):
                return True
        except OSError:
            return False
        finally:
            try:
                self.sock.setblocking(True)
            except OSError:
                pass


@dataclass
class _Pool:
    scheme: str
    host: str
    port: int
    ca_bundle: str
    idle: deque = field(default_factory=deque)

    def connect(self, timeout: float) -> _Connection:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            try:
                sock = _tls_context(self.ca_bundle).wrap_socket(
                    sock, server_hostname=self.host
                )
            except BaseException:
                sock.close()
                raise
        return _Connection(sock)

    def get(self, timeout: float) -> _Connection:
        now = time.monotonic()
        while self.idle:
            conn, since = self.idle.pop()
            # Readable while idle means the upstream closed it (or sent
            # bytes nobody asked for); either way it cannot carry a request.
            # Long-idle connections are dropped too: most servers close them
            # soon, and a short life narrows what a stray byte could do.
            if now - since > IDLE_SECONDS or wait_for_read(conn.sock, timeout=0.0):
                conn.close()
                continue
            conn.reused = True
            return conn
        return self.connect(timeout)

    def put(self, conn: _Connection) -> None:
        if len(self.idle) >= settings.UPSTREAM_POOL_SIZE:
            conn.close()
            return
        self.idle.append((conn, time.monotonic()))

    def close_idle(self) -> None:
        while self.idle:
            conn, _ = self.idle.pop()
            conn.close()


# One pool per upstream *and caller*: an upstream that sends bytes after its
# framed answer, late enough that no check before reuse can see them, can
# then only confuse answers meant for the same caller, never hand one
# member's answer to another member or to anonymous traffic.
_pools: OrderedDict[tuple[str, str, int, str, str], _Pool] = OrderedDict()


def _pool_for(app: AppSpec, caller: str) -> _Pool:
    up = app.upstream
    key = (up.scheme, up.host, up.port, app.ca_bundle, caller)
    pool = _pools.get(key)
    if pool is not None:
        _pools.move_to_end(key)
        return pool
    pool = _pools.setdefault(key, _Pool(up.scheme, up.host, up.port, app.ca_bundle))
    while len(_pools) > MAX_POOLS:
        _, evicted = _pools.popitem(last=False)
        evicted.close_idle()
    return pool


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        # Values the portal writes itself (an e-mail address) may be UTF-8.
        return text.encode("utf-8")


class UpstreamResponse:
    """Status, headers and a body to stream; owns its connection until done."""

    def __init__(
        self,
        pool: _Pool,
        conn: _Connection,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        framing: str,
        length: int,
        keep_alive: bool,
    ) -> None:
        self.pool = pool
        self.conn: _Connection | None = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.framing = framing  # "none", "length", "chunked" or "close"
        self.length = length
        self.keep_alive = keep_alive

    def finish(self) -> None:
        """The body was read to its end: pool the connection or close it."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.keep_alive and self.framing != "close" and conn.is_clean():
            self.pool.put(conn)
        else:
            conn.close()

    def abandon(self) -> None:
        """Unread bytes would poison a pooled connection: close it."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def chunks(self) -> Iterator[bytes]:
        conn = self.conn
        if conn is None or self.framing == "none":
            return
        rfile = conn.rfile
        if self.framing == "length":
            left = self.length
            while left:
                data = rfile.read1(min(CHUNK, left))
                if not data:
                    raise _BadResponse("body shorter than Content-Length")
                left -= len(data)
                yield data
        elif self.framing == "chunked":
            while True:
                line = rfile.readline(MAX_LINE)
                if not line.endswith(b"\n"):
                    raise _BadResponse("broken chunk header")
                size_text = line.split(b";", 1)[0].strip()
                # int(..., 16) would also take "0x10", "-1" or "1_0"; two
                # readers must never disagree on where a chunk ends.
                if not _HEX_RE.fullmatch(size_text):
                    raise _BadResponse("broken chunk size")
                size = int(size_text, 16)
                if size == 0:
                    _read_headers(rfile)  # trailers are dropped
                    break
                left = size
                while left:
                    data = rfile.read1(min(CHUNK, left))
                    if not data:
                        raise _BadResponse("chunked body cut short")
                    left -= len(data)
                    yield data
                if rfile.readline(MAX_LINE) not in (b"\r\n", b"\n"):
                    raise _BadResponse("broken chunk end")
        else:
            while data := rfile.read1(CHUNK):
                yield data


def _readline_before(conn: _Connection, deadline: float) -> bytes:
    """Read one line, giving up at ``deadline`` however slowly bytes come.

    A per-read timeout alone lets an upstream that drips a byte now and then
    hold the request forever; the head of an answer has one deadline.
    """
    rfile = conn.rfile
    parts: list[bytes] = []
    size = 0
    while size < MAX_LINE:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("upstream answer head too slow")
        conn.sock.settimeout(remaining)
        data = rfile.peek(1)  # what is buffered, or one read from the socket
        if not data:
            break
        end = data.find(b"\n", 0, MAX_LINE - size)
        piece = rfile.read1(end + 1 if end >= 0 else min(len(data), MAX_LINE - size))
        parts.append(piece)
        size += len(piece)
        if end >= 0:
            break
    return b"".join(parts)


def _read_headers(rfile: Any, readline: Any = None) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = readline() if readline is not None else rfile.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise _BadResponse("header line too long or cut short")
        if line in (b"\r\n", b"\n"):
            return headers
        if len(headers) >= MAX_HEADERS:
            raise _BadResponse("too many headers")
        if line[:1] in (b" ", b"\t"):
            raise _BadResponse("obsolete header folding")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise _BadResponse("malformed header line")
        value = value.strip()
        if _CTL_RE.search(value):
            # A bare CR or other control byte would let an upstream inject
            # a header or split the answer the client reads.
            raise _BadResponse("control character in a header value")
        headers.append((name, value))


def _read_head(
    conn: _Connection, method: str, read_timeout: float
) -> tuple[int, str, list[tuple[str, str]], str, int, bool]:
    rfile = conn.rfile
    deadline = time.monotonic() + read_timeout
    interim = 0
    while True:
        line = _readline_before(conn, deadline)
        if not line:
            if conn.reused:
                raise _StaleConnection()
            raise _BadResponse("connection closed without an answer")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code_text, _, reason = rest.partition(" ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code_text) != 3:
            raise _BadResponse("not an HTTP/1.x status line")
        try:
            status = int(code_text)
        except ValueError:
            raise _BadResponse("bad status code") from None
        headers = _read_headers(rfile, lambda: _readline_before(conn, deadline))
        if status == 101 or status < 100:
            raise _BadResponse("protocol switch or bad status")
        if status >= 200:
            break
        interim += 1
        if interim > MAX_INTERIM:
            raise _BadResponse("too many interim answers")
        # An interim answer (100 Continue, 103 Early Hints); the real one
        # follows on the same connection.

    connection = ""
    encodings = ""
    lengths = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered == "connection":
            connection += "," + value.lower()
        elif lowered == "transfer-encoding":
            encodings += "," + value.lower()
        elif lowered == "content-length":
            lengths.add(value)
    keep_alive = "close" not in connection and (
        version == "HTTP/1.1" or "keep-alive" in connection
    )
    if method == "HEAD":
        # Some servers send a body to HEAD anyway; it would be read as the
        # next answer on this connection, so the connection is not reused.
        return status, reason, headers, "none", 0, False
    if status in (204, 304):
        return status, reason, headers, "none", 0, keep_alive
    if encodings:
        # The body is relayed de-chunked and re-framed by our server, so a
        # Content-Length beside Transfer-Encoding must not reach the client;
        # a message with both is also not trusted for reuse.
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        keep_alive = keep_alive and not lengths
        if encodings.rsplit(",", 1)[-1].strip() == "chunked":
            return status, reason, headers, "chunked", 0, keep_alive
        return status, reason, headers, "close", 0, False
    if lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise _BadResponse("conflicting or invalid Content-Length")
        return status, reason, headers, "length", int(lengths.pop()), keep_alive
    return status, reason, headers, "close", 0, False


def _send(
    conn: _Connection,
    method: str,
    target: str,
    headers: dict[str, str],
    body: Iterable[bytes] | None,
    chunked: bool,
) -> None:
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
    for name, value in headers.items():
        lines.append(_encode(name) + b": " + _encode(value) + b"\r\n")
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"\r\n")
    sock = conn.sock
    sock.sendall(b"".join(lines))
    if body is None:
        return
    for piece in body:
        if not piece:
            continue
        if chunked:
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            sock.sendall(piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def relay_request(
    app: AppSpec,
    method: str,
    target: str,
    headers: dict[str, str],
    body: Iterable[bytes] | None,
    chunked: bool,
    caller: str = "anonymous",
) -> UpstreamResponse:
    """Send the request; raise ``UpstreamError`` for a 502 or 504 answer.

    ``caller`` names whose pool of upstream connections to use (a member's
    or token's id, or "anonymous").
    """
    pool = _pool_for(app, caller)
    # Only a safe, bodiless request is sent again after a stale connection:
    # a POST or DELETE may have been acted on before the connection broke.
    attempts = 2 if body is None and method in ("GET", "HEAD", "OPTIONS") else 1
    for attempt in range(attempts):
        conn: _Connection | None = None
        try:
            conn = pool.get(app.connect_timeout) if attempt == 0 else None
            if conn is None:
                conn = pool.connect(app.connect_timeout)
            conn.sock.settimeout(app.read_timeout)
            _send(conn, method, target, headers, body, chunked)
            status, reason, out, framing, length, keep = _read_head(
                conn, method, app.read_timeout
            )
            conn.sock.settimeout(app.read_timeout)  # idle limit for the body
            if body is not None:
                # Whether the upstream read the whole body cannot be known;
                # bytes it left unread would be parsed as the next request
                # on this connection. A connection that carried a body is
                # therefore never reused (and the upstream was told so).
                keep = False
            return UpstreamResponse(
                pool, conn, status, reason, out, framing, length, keep
            )
        except _StaleConnection:
            conn.close()  # type: ignore[union-attr]
            continue
        except ClientBodyError:
            # Half a request went up; the connection cannot be reused.
            if conn is not None:
                conn.close()
            raise
        except (BrokenPipeError, ConnectionResetError) as exc:
            if conn is not None:
                conn.close()
            if conn is not None and conn.reused and attempt + 1 < attempts:
                continue
            raise UpstreamError(502, "reset") from exc
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise UpstreamError(504, "timeout") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            if conn is not None:
                conn.close()
            raise UpstreamError(502, "tls") from exc
        except ConnectionRefusedError as exc:
            raise UpstreamError(502, "refused") from exc
        except (_BadResponse, OSError, ValueError) as exc:
            if conn is not None:
                conn.close()
            raise UpstreamError(502, "protocol") from exc
    raise UpstreamError(502, "reset")


def stream_body(response: UpstreamResponse, app_slug: str = "") -> Iterator[bytes]:
    """Yield the upstream body as it arrives, then return the connection.

    When the upstream fails mid-body the status line is already out, so the
    only honest signal left is to cut the client's connection: a reset makes
    gunicorn close the socket without a 500 on top of a half-sent answer.
    """
    complete = False
    try:
        try:
            yield from response.chunks()
        except (_BadResponse, OSError, ValueError) as exc:
            logger.warning(
                "upstream of %s failed mid-body: %s", app_slug, type(exc).__name__
            )
            raise ConnectionResetError(
                errno.ECONNRESET, "upstream body cut short"
            ) from None
        complete = True
    finally:
        if complete:
            response.finish()
        else:
            response.abandon()
