"""A Grafana-style auth-proxy header: set by the portal, never by a client.

Grafana's ``[auth.proxy]`` trusts whatever arrives in ``X-WEBAUTH-USER``, so
the portal must be the only source of that header. A client's own copy,
under any spelling a server might fold into the same name (``_`` for ``-``,
any case), is dropped for every kind of request: anonymous, signed in,
bypassed and service token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.tokens.service import issue_token
from tests.conftest import portal_env
from tests.support.portal import Portal, free_port
from tests.tools.members import sign_in_cookie
from tests.tools.publish import ANY_TOKEN, EVERYONE_BYPASS, STAFF, publish_app

pytestmark = [pytest.mark.e2e]

HOST = "grafana.localhost"
EMAIL = "ada@example.com"


@pytest.fixture(scope="module")
def lenient_portal(django_db_setup, tmp_path_factory) -> Iterator[Portal]:  # type: ignore[no-untyped-def]
    """A portal whose gunicorn maps ``X_WEBAUTH_USER`` onto the same name.

    gunicorn drops header names with ``_`` by default; an operator may turn
    that off (``--header-map dangerous``), and then only the portal's own
    rules stand between a forged header and the upstream.
    """
    port = free_port()
    server = Portal(
        port=port,
        bind="127.0.0.1",
        env=portal_env(PORTAL_URL=f"http://localhost:{port}"),
        log_path=Path(tmp_path_factory.mktemp("lenient")) / "gunicorn.log",
        extra_args=["--header-map", "dangerous"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["default", "lenient"])
def any_portal(request, portal, lenient_portal):  # type: ignore[no-untyped-def]
    return portal if request.param == "default" else lenient_portal


@pytest.fixture(params=["X-WEBAUTH-USER", "X-Remote-Login"])
def grafana(request, live_db, upstream):  # type: ignore[no-untyped-def]
    """Grafana's header, and a custom one the portal knows nothing else of."""
    header = request.param
    app = publish_app(
        "grafana", HOST, upstream.url, [STAFF, ANY_TOKEN], identity_header=header
    )
    publish_app(
        "grafana-public",
        HOST,
        upstream.url,
        [EVERYONE_BYPASS],
        path="/public",
        identity_header=header,
    )
    return app, header


def forged(header: str) -> list[tuple[str, str]]:
    return [
        (header, "admin"),
        (header.replace("-", "_"), "admin"),
        (header.lower(), "admin"),
    ]


def seen_values(upstream, since: int, header: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The header's values (any spelling) in each request that arrived."""
    wanted = header.lower().replace("_", "-")
    return [
        [v for k, v in record.headers if k.lower().replace("_", "-") == wanted]
        for record in upstream.requests[since:]
    ]


def test_identity_header_signed_in_carries_email_not_forged_value(  # type: ignore[no-untyped-def]
    any_portal, upstream, grafana
):
    app, header = grafana
    cookie = sign_in_cookie(any_portal, app.pk, HOST, EMAIL)
    since = len(upstream.requests)

    resp = any_portal.request(
        "GET", "/api/user", host=HOST, headers=[("Cookie", cookie), *forged(header)]
    )

    assert resp.status == 200
    assert seen_values(upstream, since, header) == [[EMAIL]]


@pytest.mark.parametrize("kind", ["anonymous-bypass", "signed-in-bypass", "token"])
def test_identity_header_without_user_identity_never_passes(  # type: ignore[no-untyped-def]
    any_portal, upstream, grafana, kind
):
    app, header = grafana
    credentials: list[tuple[str, str]] = []
    target = "/public/dashboards/abc"
    if kind == "signed-in-bypass":
        credentials = [("Cookie", sign_in_cookie(any_portal, app.pk, HOST, EMAIL))]
    elif kind == "token":
        token = issue_token("grafana-bot")
        credentials = [
            ("Access-Client-Id", token.client_id),
            ("Access-Client-Secret", token.secret),
        ]
        target = "/api/health"
    since = len(upstream.requests)

    resp = any_portal.request(
        "GET", target, host=HOST, headers=[*credentials, *forged(header)]
    )

    assert resp.status == 200
    assert seen_values(upstream, since, header) == [[]]


def test_identity_header_anonymous_protected_path_reaches_nothing(  # type: ignore[no-untyped-def]
    any_portal, upstream, grafana
):
    _, header = grafana
    since = len(upstream.requests)

    resp = any_portal.request(
        "GET", "/", host=HOST, headers=[("Accept", "text/html"), *forged(header)]
    )

    assert resp.status == 302
    assert upstream.requests[since:] == []


def test_identity_header_lenient_portal_does_forward_underscore_names(  # type: ignore[no-untyped-def]
    lenient_portal, upstream, grafana
):
    """Proves the lenient set-up is real, so the cases above test the portal.

    gunicorn's default would drop the underscore names before the portal.
    """
    since = len(upstream.requests)

    resp = lenient_portal.request(
        "GET", "/public/x", host=HOST, headers=[("X_Team_Note", "hello")]
    )

    assert resp.status == 200
    assert seen_values(upstream, since, "X-Team-Note") == [["hello"]]
