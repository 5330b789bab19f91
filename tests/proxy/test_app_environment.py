"""The proxy under a portal started with its own environment: proxy
variables that must be ignored, and the operators' access log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import portal_env
from tests.proxy.conftest import (
    API,
    STANDARD_POLICIES,
    make_app,
    mint_cookie,
    token_headers,
    wait_for,
)
from tests.support.portal import Portal, free_port
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trap():  # type: ignore[no-untyped-def]
    """A server posing as the environment's HTTP proxy; nothing may reach it."""
    server = UpstreamServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def logged_portal(django_db_setup, tmp_path_factory, trap):  # type: ignore[no-untyped-def]
    port = free_port()
    log = Path(tmp_path_factory.mktemp("logged")) / "gunicorn.log"
    env = portal_env(
        PORTAL_URL=f"http://localhost:{port}",
        LOG_LEVEL="INFO",
        HTTP_PROXY=trap.url,
        HTTPS_PROXY=trap.url,
        ALL_PROXY=trap.url,
        http_proxy=trap.url,
        https_proxy=trap.url,
        NO_PROXY="",
        TEST_WORKERS="1",
    )
    server = Portal(port=port, bind="127.0.0.1", env=env, log_path=log).start()
    yield server
    server.stop()


@pytest.fixture
def audited(live_db, upstream):  # type: ignore[no-untyped-def]
    return make_app("audited", "audited.localhost", upstream.url, STANDARD_POLICIES)


def test_relay_environment_proxy_ignored(logged_portal, audited, upstream, trap):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    token = issue_token("proxy-env")
    before = len(upstream.requests)
    resp = logged_portal.request(
        "GET", "/direct", host="audited.localhost", headers=token_headers(token)
    )
    assert resp.status == 200
    assert len(upstream.requests) == before + 1
    assert trap.requests == []


def test_relay_no_cookie_jar_between_requests(logged_portal, audited, upstream):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    token = issue_token("jar")
    logged_portal.request(
        "GET", "/__cookies", host="audited.localhost", headers=token_headers(token)
    )
    logged_portal.request(
        "GET", "/next", host="audited.localhost", headers=token_headers(token)
    )
    assert upstream.last.header("Cookie") is None


def _log_lines(portal: Portal, app: str) -> list[dict]:
    assert portal.log_path is not None
    found = []
    for line in portal.log_path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0 or f'"app":"{app}"' not in line:
            continue
        found.append(json.loads(line[start:]))
    return found


def test_log_one_structured_line_per_request(logged_portal, audited):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    token = issue_token("logged")
    cookie = mint_cookie(audited, email="eve@other.example", user_id=77)
    host = "audited.localhost"
    seen = len(_log_lines(logged_portal, "audited"))
    logged_portal.request(
        "GET", "/a?secret=querytext", host=host, headers=token_headers(token)
    )
    logged_portal.request("GET", "/b", host=host, headers=API)
    logged_portal.request("GET", "/c", host=host, headers={**API, "Cookie": cookie})
    lines = wait_for(
        lambda: (
            _log_lines(logged_portal, "audited")[seen:][2:]
            and _log_lines(logged_portal, "audited")[seen:]
        )
    )
    assert len(lines) == 3
    allow, login, deny = lines
    assert allow["decision"] == "allow" and allow["status"] == 200
    assert allow["identity"] == f"token:{token.client_id}"
    assert (
        allow["upstream_ms"] is not None and allow["total_ms"] >= allow["upstream_ms"]
    )
    assert login["decision"] == "login" and login["status"] == 401
    assert login["identity"] == "" and login["upstream_ms"] is None
    assert deny["decision"] == "deny" and deny["status"] == 403
    assert deny["identity"] == "user:77"
    text = logged_portal.log_path.read_text(errors="replace")
    assert token.secret not in text
    assert cookie.split("=", 1)[1] not in text
    assert "querytext" not in text
