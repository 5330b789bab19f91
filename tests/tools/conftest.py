"""Fixtures for the real-tools suite: the tools, a browser and the portal.

Each tool is started once per session on a free loopback port and stopped by
its own PID. A machine without a tool skips only the tests that need it
(``require`` in ``tests/conftest.py``); under ``CI=true`` nothing skips.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import portal_env, require, require_executable
from tests.support.browser import launch_context
from tests.support.portal import Portal, free_port
from tests.tools.servers import Datasette, IngestServer, Prometheus, make_tools_database

# The Sentry-style applications use loopback IP literals as hosts, because the
# SDK resolves its DSN's host itself and these need no DNS; the portal listens
# on each of them as well as on 127.0.0.1.
EXTRA_ADDRESSES = ("127.0.0.2", "127.0.0.3")

CHROMIUM = "/usr/bin/chromium"


def _port_free_everywhere() -> int:
    for _ in range(20):
        port = free_port()
        try:
            for address in EXTRA_ADDRESSES:
                with socket.socket() as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port is free on every loopback address")


@pytest.fixture(scope="session")
def portal(django_db_setup, tmp_path_factory) -> Iterator[Portal]:  # type: ignore[no-untyped-def]
    """The portal under gunicorn on 127.0.0.1, 127.0.0.2 and 127.0.0.3."""
    port = _port_free_everywhere()
    logs = tmp_path_factory.mktemp("tools-portal")
    extra = []
    for address in EXTRA_ADDRESSES:
        extra += ["--bind", f"{address}:{port}"]
    server = Portal(
        port=port,
        bind="127.0.0.1",
        env=portal_env(PORTAL_URL=f"http://localhost:{port}"),
        log_path=Path(logs) / "gunicorn.log",
        extra_args=extra,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory) -> Iterator[Prometheus]:  # type: ignore[no-untyped-def]
    binary = require_executable("prometheus", "prometheus")
    server = Prometheus(binary, tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def datasette(tmp_path_factory) -> Iterator[Datasette]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("datasette")
    database = workdir / "tools.db"
    make_tools_database(database)
    server = Datasette(database, workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ingest() -> Iterator[IngestServer]:
    server = IngestServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    """Playwright for one test module; the guard below is lifted only so long."""
    require(
        Path(CHROMIUM).exists(),
        "chromium",
        "install it with: apt-get install -y --no-install-recommends chromium",
    )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread, which
    # Django's guard mistakes for async code calling the ORM. The tests stay
    # plain synchronous code, so the guard is lifted while the driver runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class Browser:
    """A page in a fresh chromium profile, and every response it received."""

    page: Any
    responses: list[tuple[str, int, str]] = field(default_factory=list)

    def statuses(self, fragment: str) -> list[int]:
        return [status for url, status, _ in self.responses if fragment in url]


@pytest.fixture
def browser(playwright_driver, tmp_path) -> Iterator[Browser]:  # type: ignore[no-untyped-def]
    context = launch_context(playwright_driver, tmp_path / "chromium-profile", CHROMIUM)
    try:
        page = context.new_page()
        seen = Browser(page)
        page.on(
            "response",
            lambda r: seen.responses.append((r.url, r.status, r.request.resource_type)),
        )
        yield seen
    finally:
        context.close()
