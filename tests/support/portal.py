"""Run the portal under real gunicorn for end-to-end tests, and talk to it
with raw HTTP so that paths and headers go out exactly as written."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.body)


@dataclass
class Portal:
    port: int
    bind: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def app_url(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30) -> Portal:
        cmd = [
            str(Path(sys.executable).parent / "gunicorn"),
            "accessportal.wsgi:application",
            "-c",
            "accessportal/gunicorn.conf.py",
            "--bind",
            f"{self.bind}:{self.port}",
            "--workers",
            self.env.get("TEST_WORKERS", "2"),
            *self.extra_args,
        ]
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {self.log_path}")
            try:
                if (
                    self.request(
                        "GET", "/healthz", host=f"localhost:{self.port}"
                    ).status
                    == 200
                ):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become healthy; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def request(
        self,
        method: str,
        target: str,
        host: str | None = None,
        headers: list[tuple[str, str]] | dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 30,
        connect_to: str | None = None,
    ) -> Response:
        """Send one request with the target and headers exactly as given."""
        conn = http.client.HTTPConnection(
            connect_to or self.bind, self.port, timeout=timeout
        )
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            pairs = (
                list(headers.items())
                if isinstance(headers, dict)
                else list(headers or [])
            )
            if host is not None:
                pairs.insert(
                    0, ("Host", host if ":" in host else f"{host}:{self.port}")
                )
            for name, value in pairs:
                conn.putheader(name, value)
            if body is not None and not any(
                k.lower() in ("content-length", "transfer-encoding") for k, _ in pairs
            ):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.getheaders(), data)
        finally:
            conn.close()
