"""A real HTTP upstream on 127.0.0.1 that records what reaches it.

Besides echoing, it serves the cases the relay must carry: large generated
bodies, uploads of any size (with or without chunked framing), slow answers,
redirects, several Set-Cookie headers, gzip bodies, 204/304 and odd statuses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Recorded:
    def __init__(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body_len: int,
        body_sha: str,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body_len = body_len
        self.body_sha = body_sha

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: UpstreamServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle holds
        # the body until the client's delayed ACK (~40 ms per request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_body(self) -> tuple[int, str]:
        digest = hashlib.sha256()
        total = 0
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 65536))
                    digest.update(chunk)
                    total += len(chunk)
                    left -= len(chunk)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
                left -= len(chunk)
        return total, digest.hexdigest()

    def _send(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in headers or []:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def handle_any(self) -> None:
        body_len, body_sha = self._read_body()
        record = Recorded(
            self.command, self.path, list(self.headers.items()), body_len, body_sha
        )
        self.server.requests.append(record)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        echo = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_len": body_len,
            "body_sha256": body_sha,
        }
        if path.startswith("/__status/"):
            code = int(path.rsplit("/", 1)[1])
            return self._send(
                code, b"" if code in (204, 304) else json.dumps(echo).encode()
            )
        if path == "/__bytes":
            size = int(query.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if "chunked" in query:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(range(256)) * 256
            left = size
            while left:
                piece = block[: min(left, len(block))]
                if "chunked" in query:
                    self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                else:
                    self.wfile.write(piece)
                left -= len(piece)
            if "chunked" in query:
                self.wfile.write(b"0\r\n\r\n")
            return None
        if path == "/__sleep":
            time.sleep(float(query.get("s", ["1"])[0]))
            return self._send(200, json.dumps(echo).encode())
        if path == "/__redirect":
            target = query.get("to", ["/"])[0]
            return self._send(302, b"", [("Location", target)])
        if path == "/__cookies":
            return self._send(
                200,
                b"{}",
                [
                    ("Set-Cookie", "a=1; Path=/"),
                    ("Set-Cookie", "b=2; Path=/; HttpOnly"),
                    ("Set-Cookie", "c=3, with comma; Path=/"),
                ],
            )
        if path == "/__gzip":
            raw = gzip.compress(b"hello gzip " * 100)
            return self._send(
                200,
                raw,
                [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")],
                "text/plain",
            )
        if path == "/__hop":
            return self._send(
                200,
                b"{}",
                [
                    ("Connection", "X-Secret-Hop"),
                    ("X-Secret-Hop", "1"),
                    ("Keep-Alive", "timeout=5"),
                ],
            )
        if path == "/__reset":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.close_connection = True
            self.connection.close()
            return None
        if path == "/__garbage":
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
            return None
        return self._send(200, json.dumps(echo).encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True
    # Load tests open hundreds of connections at once; the default backlog
    # of 5 would turn them into SYN retries and spurious 502s.
    request_queue_size = 1024

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.requests: list[Recorded] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> UpstreamServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
