"""The proxy's hot path, driven in-process through the real dispatcher.

After warm-up, an allowed request by cookie, by token or through a bypass
must make no database query (the shared cache is a database table in the
embedded set-up, so this also proves no cache round trip), sign nothing, and
never enter Django's request handling (no middleware at all).
"""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accessportal.dispatch import Dispatcher
from apps.policies.snapshot import get_snapshot
from apps.proxy import keys, revocation
from apps.tokens.service import issue_token
from tests.proxy.conftest import STANDARD_POLICIES, make_app, mint_cookie, token_headers


def _django_must_not_run(environ, start_response):  # type: ignore[no-untyped-def]
    raise AssertionError(f"Django handled {environ['PATH_INFO']}")


def _call(app, host: str, path: str, headers: dict[str, str]) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "RAW_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: list[str] = []
    body = app(environ, lambda status, headers, exc=None: seen.append(status))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return seen[0], data


@pytest.fixture
def hot(django_db_setup, live_db, upstream, settings):  # type: ignore[no-untyped-def]
    echo = make_app("echo", "echo.localhost", upstream.url, STANDARD_POLICIES)
    make_app(
        "open",
        "open.localhost",
        upstream.url,
        [("open", "bypass", 1, [("include", "everyone", "")])],
    )
    token = issue_token("hot")
    get_snapshot()  # load the new configuration once, as a poll would
    settings.CONFIG_POLL_SECONDS = 3600  # no poll may land inside the window
    requests = {
        "cookie": ("echo.localhost", {"Cookie": mint_cookie(echo)}),
        "token": ("echo.localhost", token_headers(token)),
        "bypass": ("open.localhost", {}),
    }
    return Dispatcher(_django_must_not_run), requests


@pytest.mark.parametrize("kind", ["cookie", "token", "bypass"])
def test_hotpath_allowed_request_makes_no_query(hot, kind, monkeypatch):  # type: ignore[no-untyped-def]
    dispatcher, requests = hot
    host, headers = requests[kind]
    for _ in range(3):  # warm-up: key load, first revocation read, pool
        assert _call(dispatcher, host, "/warm", headers)[0].startswith("200")
    signed = []
    real_encode = keys.jwt.encode
    monkeypatch.setattr(
        keys.jwt, "encode", lambda *a, **k: signed.append(1) or real_encode(*a, **k)
    )
    with CaptureQueriesContext(connection) as queries:
        for i in range(50):
            status, _ = _call(dispatcher, host, f"/hot/{i}", headers)
            assert status.startswith("200"), status
    assert [q["sql"] for q in queries.captured_queries] == []
    assert signed == []


def test_hotpath_revocation_seen_without_waiting(hot):  # type: ignore[no-untyped-def]
    dispatcher, requests = hot
    host, headers = requests["cookie"]
    assert _call(dispatcher, host, "/a", headers)[0].startswith("200")
    from apps.proxy.cookies import decode_cookie

    value = headers["Cookie"].split("=", 1)[1]
    claims = decode_cookie(value, get_snapshot().routes["echo.localhost"][0].id)
    assert claims is not None
    revocation.revoke_session(claims.sid)
    assert _call(dispatcher, host, "/a", headers)[0].startswith("401")


def test_hotpath_stamp_changes_on_every_revocation(django_db_setup, live_db):  # type: ignore[no-untyped-def]
    path = revocation.stamp_path()
    assert path is not None
    before = revocation._generation(path)
    revocation.revoke_app(999)
    middle = revocation._generation(path)
    revocation.revoke_app(999)
    assert before != middle != revocation._generation(path)
