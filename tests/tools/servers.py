"""The real tools the suite puts behind the portal, run on 127.0.0.1.

Prometheus (Debian's binary) and Datasette (from PyPI) run as child processes
on free ports with throw-away data; the Sentry ingest stand-in runs in the
test process and records every request that reaches it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.portal import free_port


class ChildProcess:
    """A server process that is stopped (by its own PID) when the test ends."""

    def __init__(self, name: str, cmd: list[str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, is_ready: Callable[[], bool], timeout: float = 30) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.process = subprocess.Popen(self.cmd, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                if is_ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def get_json(port: int, target: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"status {resp.status}")
        return json.loads(body)
    finally:
        conn.close()


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


@dataclass
class Prometheus:
    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        config = self.workdir / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.format(port=self.port))
        self.child = ChildProcess(
            "prometheus",
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            self.workdir / "prometheus.log",
        )
        # Ready once it has scraped itself, so that `up` has a sample.
        self.child.start(self._has_up_sample)
        return self

    def _has_up_sample(self) -> bool:
        data = get_json(self.port, "/api/v1/query?query=up")
        return bool(data["data"]["result"])

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


CSV_ROWS = 200_000


def make_tools_database(path: Path) -> None:
    """A small SQLite file: a teams table for pages, 200,000 events for CSV."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany(
            "INSERT INTO teams VALUES (?, ?)",
            [(1, "Platform"), (2, "Payments"), (3, "Search")],
        )
        conn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, service TEXT, "
            "level TEXT, message TEXT, value REAL)"
        )
        # Quotes, commas and non-ASCII text make any re-encoding on the way
        # through the portal change the checksum.
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            (
                (
                    i,
                    f"svc-{i % 17}",
                    ("info", "warn", "error")[i % 3],
                    f'event {i} with "quotes", commas and café',
                    i * 0.5,
                )
                for i in range(1, CSV_ROWS + 1)
            ),
        )
        conn.commit()
    finally:
        conn.close()


@dataclass
class Datasette:
    database: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Datasette:
        self.child = ChildProcess(
            "datasette",
            [
                sys.executable,
                "-m",
                "datasette",
                "serve",
                str(self.database),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            self.workdir / "datasette.log",
        )
        self.child.start(lambda: bool(get_json(self.port, "/-/versions.json")))
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def stream_sha256(
    port: int,
    target: str,
    host: str,
    headers: dict[str, str] | None = None,
    connect_to: str = "127.0.0.1",
) -> tuple[int, dict[str, str], str, int]:
    """Download without holding the body: status, headers, sha256, size."""
    conn = http.client.HTTPConnection(connect_to, port, timeout=60)
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        digest = hashlib.sha256()
        size = 0
        while chunk := resp.read(65536):
            digest.update(chunk)
            size += len(chunk)
        return resp.status, dict(resp.getheaders()), digest.hexdigest(), size
    finally:
        conn.close()


@dataclass
class Envelope:
    """One Sentry envelope as the ingest server received it."""

    path: str
    headers: dict[str, str]
    header: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]]

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(payload)
            for item_header, payload in self.items
            if item_header.get("type") == "event"
        ]


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict, bytes]]]:
    """Split an envelope into its header and (item header, payload) pairs."""
    first, _, rest = body.partition(b"\n")
    header = json.loads(first)
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        item_header = json.loads(line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            if len(payload) != length:
                raise ValueError("envelope item shorter than its length")
            rest = rest.removeprefix(b"\n")
        items.append((item_header, payload))
    return header, items


class _IngestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: IngestServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
        if encoding == "br":
            import brotli  # type: ignore[import-not-found]

            return brotli.decompress(raw)
        return raw

    def _answer(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "api" and parts[2] == "envelope":
            header, items = parse_envelope(body)
            self.server.envelopes.append(Envelope(self.path, headers, header, items))
            return self._answer(200, {"id": header.get("event_id")})
        self.server.others.append((self.command, self.path))
        return self._answer(200, {"ok": True})

    def do_GET(self) -> None:
        self.server.others.append((self.command, self.path))
        self._answer(200, {"ok": True})


class IngestServer(ThreadingHTTPServer):
    """Stands in for Sentry: accepts envelopes and remembers them."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _IngestHandler)
        self.envelopes: list[Envelope] = []
        self.others: list[tuple[str, str]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> IngestServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def clear(self) -> None:
        self.envelopes.clear()
        self.others.clear()
