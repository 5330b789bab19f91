"""The proxy path end to end: routing, answers, identity, hostile headers."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote

import jwt
import pytest
from django.core.management import call_command

from apps.proxy.returnto import read_return
from tests.proxy.conftest import (
    API,
    HTML,
    STANDARD_POLICIES,
    make_app,
    mint_cookie,
    token_headers,
)

pytestmark = pytest.mark.e2e

EVERYONE = [("include", "everyone", "")]


# Routing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["echo.localhost", "ECHO.LocalHost", "echo.localhost:1", "Echo.localhost."]
)
def test_route_host_case_and_port_ignored(portal, echo, token, upstream, host):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/r", host=host, headers=token_headers(token))
    assert resp.status == 200, resp.body
    assert upstream.last.path == "/r"


@pytest.fixture
def layered(live_db, upstream):  # type: ignore[no-untyped-def]
    """Four applications on one host, told apart by the upstream base path."""
    tokens = [("tokens", "service_auth", 1, [("include", "any_service_token", "")])]
    make_app("root", "multi.localhost", upstream.url + "/root", tokens)
    make_app("api", "multi.localhost", upstream.url + "/api", tokens, path="/api")
    make_app(
        "envelope",
        "multi.localhost",
        upstream.url + "/env",
        [("open", "bypass", 1, EVERYONE)],
        path="/api/*/envelope",
    )
    make_app(
        "ops", "ops.localhost", upstream.url + "/ops", tokens, path="/ops"
    )  # a host with no catch-all application


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/api/7/envelope/", "/env/api/7/envelope/"),
        ("/api/7/envelope", "/env/api/7/envelope"),
        ("/api/7/envelope/x?y=1", "/env/api/7/envelope/x?y=1"),
        ("/api/7/other", "/api/api/7/other"),
        ("/api/envelope", "/api/api/envelope"),
        ("/api", "/api/api"),
        ("/apix", "/root/apix"),
        ("/", "/root/"),
    ],
)
def test_route_most_specific_pattern_wins(portal, layered, upstream, path, seen):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    token = issue_token("router")
    resp = portal.request(
        "GET", path, host="multi.localhost", headers=token_headers(token)
    )
    assert resp.status == 200, resp.body
    assert upstream.last.path == seen


def test_route_bypass_pattern_needs_no_credentials(portal, layered, upstream):  # type: ignore[no-untyped-def]
    resp = portal.request(
        "POST", "/api/9/envelope/", host="multi.localhost", body=b"{}"
    )
    assert resp.status == 200
    assert upstream.last.method == "POST"
    assert (
        portal.request("GET", "/api/9/x", host="multi.localhost", headers=API).status
        == 401
    )


def test_route_unknown_path_on_known_host_gets_404(portal, layered):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/other", host="ops.localhost", headers=API)
    assert resp.status == 404
    assert resp.json()["error"] == "not_found"
    page = portal.request("GET", "/opsx", host="ops.localhost", headers=HTML)
    assert page.status == 404
    assert b"<html" in page.body.lower()


@pytest.mark.parametrize("host", ["nowhere.localhost", "127.0.0.9", "evil.example"])
def test_route_unknown_host_gets_plain_404(portal, echo, host):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/admin/", host=host)
    assert resp.status == 404
    assert b"DisallowedHost" not in resp.body and b"Django" not in resp.body


def test_route_invalid_host_gets_400(portal):  # type: ignore[no-untyped-def]
    assert portal.request("GET", "/", host="bad_host!:x").status == 400


@pytest.mark.parametrize(
    "path",
    ["/static/app.css", "/admin/", "/admin", "/login/", "/accounts/login/", "/healthz"],
)
def test_route_upstream_paths_not_shadowed(portal, echo, token, upstream, path):  # type: ignore[no-untyped-def]
    resp = portal.request(
        "GET", path, host="echo.localhost", headers=token_headers(token)
    )
    assert resp.status == 200
    assert upstream.last.path == path  # no APPEND_SLASH, no portal page


def test_route_post_without_csrf_reaches_upstream(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    headers = {
        **token_headers(token),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    resp = portal.request(
        "POST", "/admin/login/", host="echo.localhost", headers=headers, body=b"a=1"
    )
    assert resp.status == 200
    assert upstream.last.method == "POST"
    assert upstream.last.body_len == 3


def test_route_reserved_prefix_served_by_portal(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    resp = portal.request(
        "GET",
        "/.accessportal/identity",
        host="echo.localhost",
        headers=token_headers(token),
    )
    assert resp.status == 200
    assert resp.json()["type"] == "service"
    assert len(upstream.requests) == before


@pytest.fixture
def path_app(live_db, upstream):  # type: ignore[no-untyped-def]
    return make_app(
        "grafana",
        "localhost",
        upstream.url,
        STANDARD_POLICIES,
        path="/grafana",
        strip_prefix=True,
    )


def test_route_path_mode_on_portal_host_strips_prefix(portal, path_app, upstream):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    token = issue_token("grafana-ci")
    resp = portal.request(
        "GET", "/grafana/d/x?from=1", host="localhost", headers=token_headers(token)
    )
    assert resp.status == 200, resp.body
    assert upstream.last.path == "/d/x?from=1"
    # The portal's own pages stay the portal's.
    assert portal.request("GET", "/healthz", host="localhost").json()["status"] == "ok"
    resp = portal.request(
        "GET", "/grafanax", host="localhost", headers=token_headers(token)
    )
    assert resp.status == 404
    assert upstream.last.path == "/d/x?from=1"


def test_route_path_mode_redirect_rewritten_with_prefix(portal, path_app, upstream):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    token = issue_token("grafana-redirect")
    headers = token_headers(token)
    resp = portal.request(
        "GET", "/grafana/__redirect?to=/login", host="localhost", headers=headers
    )
    assert resp.status == 302
    assert resp.header("Location") == "/grafana/login"
    absolute = f"{upstream.url}/home"
    resp = portal.request(
        "GET", f"/grafana/__redirect?to={absolute}", host="localhost", headers=headers
    )
    assert resp.header("Location") == f"{portal.url}/grafana/home"


# Answers ---------------------------------------------------------------------


def test_answer_browser_navigation_redirects_to_login(portal, echo):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/page?x=1", host="echo.localhost", headers=HTML)
    assert resp.status == 302
    assert resp.header("Location").startswith(f"{portal.url}/login/?next=")


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", API),
        ("GET", {}),
        ("GET", {**HTML, "X-Requested-With": "XMLHttpRequest"}),
        ("GET", {**HTML, "Sec-Fetch-Mode": "cors"}),
        ("POST", HTML),
        ("DELETE", HTML),
    ],
)
def test_answer_non_navigation_gets_401_json(portal, echo, upstream, method, headers):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    resp = portal.request(method, "/api", host="echo.localhost", headers=headers)
    assert resp.status == 401
    body = resp.json()
    assert body["error"] == "authentication_required"
    assert body["login_url"].startswith(f"{portal.url}/login/?next=")
    assert len(upstream.requests) == before


def test_answer_member_without_policy_gets_403_page(portal, echo, upstream):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    cookie = mint_cookie(echo, email="eve@other.example")
    resp = portal.request(
        "GET",
        "/deep/page?x=1",
        host="echo.localhost",
        headers={**HTML, "Cookie": cookie},
    )
    assert resp.status == 403
    assert b"eve@other.example" in resp.body
    found = re.search(rb'href="([^"]*/logout/\?switch=1&amp;next=([^"&]+))"', resp.body)
    assert found, resp.body
    ret = read_return(unquote(found.group(2).decode()))
    assert ret is not None
    assert (ret.app_id, ret.host, ret.path) == (
        echo.pk,
        "echo.localhost",
        "/deep/page?x=1",
    )
    resp = portal.request(
        "GET", "/", host="echo.localhost", headers={**API, "Cookie": cookie}
    )
    assert resp.status == 403
    assert resp.json()["error"] == "access_denied"
    assert len(upstream.requests) == before


def test_answer_block_policy_beats_allow(portal, echo):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo, email="mallory@corp.example")
    resp = portal.request(
        "GET", "/", host="echo.localhost", headers={**API, "Cookie": cookie}
    )
    assert resp.status == 403


def test_answer_websocket_upgrade_gets_501(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    headers = {
        **token_headers(token),
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    resp = portal.request("GET", "/ws", host="echo.localhost", headers=headers)
    assert resp.status == 501
    assert len(upstream.requests) == before
    anon = portal.request(
        "GET",
        "/ws",
        host="echo.localhost",
        headers=headers | {"Access-Client-Secret": "x"},
    )
    assert anon.status in (400, 501)
    assert len(upstream.requests) == before


# Identity to the upstream ----------------------------------------------------


def _jwks(portal):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/.well-known/jwks.json", host="localhost")
    assert resp.status == 200
    return jwt.PyJWKSet.from_dict(resp.json())


def _verify(portal, assertion: str, audience: str) -> dict:  # type: ignore[no-untyped-def]
    kid = jwt.get_unverified_header(assertion)["kid"]
    key = next(k for k in _jwks(portal).keys if k.key_id == kid)
    return jwt.decode(
        assertion,
        key.key,
        algorithms=["ES256"],
        audience=audience,
        issuer=portal.url,
        options={"require": ["iss", "aud", "sub", "iat", "nbf", "exp"]},
    )


def test_identity_member_headers_and_assertion(portal, echo, upstream):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(
        echo,
        email="alice@corp.example",
        user_id=7,
        username="alice-gh",
        orgs=("acme",),
        teams=("acme/ops",),
        method="github",
    )
    resp = portal.request(
        "GET", "/me", host="echo.localhost", headers={"Cookie": cookie}
    )
    assert resp.status == 200
    seen = upstream.last
    assert seen.header("X-Auth-Request-Email") == "alice@corp.example"
    assert seen.header("X-Auth-Request-User") == "alice-gh"
    assert seen.header("X-Auth-Request-Groups") == "acme,acme/ops"
    assert seen.header("X-WEBAUTH-USER") == "alice-gh"
    claims = _verify(portal, seen.header("X-Access-Jwt-Assertion"), "echo")
    assert claims["sub"] == "user:7"
    assert claims["email"] == "alice@corp.example"
    assert claims["groups"] == ["acme", "acme/ops"]
    assert claims["type"] == "user"
    assert claims["nbf"] <= claims["iat"] < claims["exp"] <= claims["iat"] + 3600


def test_identity_token_headers_and_assertion(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    portal.request("GET", "/t", host="echo.localhost", headers=token_headers(token))
    seen = upstream.last
    assert seen.header("X-Auth-Request-User") == f"token:{token.token.name}"
    assert seen.header("X-Auth-Request-Email") is None
    assert seen.header("X-WEBAUTH-USER") is None
    claims = _verify(portal, seen.header("X-Access-Jwt-Assertion"), "echo")
    assert claims["sub"] == f"token:{token.client_id}"
    assert claims["type"] == "service"
    assert "email" not in claims


def test_identity_rotated_key_keeps_previous_published(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    portal.request("GET", "/k1", host="echo.localhost", headers=token_headers(token))
    old = upstream.last.header("X-Access-Jwt-Assertion")
    call_command("rotate_signing_key", stdout=io.StringIO())
    portal.request("GET", "/k2", host="echo.localhost", headers=token_headers(token))
    new = upstream.last.header("X-Access-Jwt-Assertion")
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = jwt.get_unverified_header(new)["kid"]
    assert old_kid != new_kid
    assert {k.key_id for k in _jwks(portal).keys} >= {old_kid, new_kid}
    assert _verify(portal, old, "echo")["type"] == "service"
    assert _verify(portal, new, "echo")["type"] == "service"


def test_identity_assertion_is_not_a_credential(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    portal.request("GET", "/a", host="echo.localhost", headers=token_headers(token))
    assertion = upstream.last.header("X-Access-Jwt-Assertion")
    for name in ("X-Access-Jwt-Assertion", "Cf-Access-Jwt-Assertion"):
        resp = portal.request(
            "GET", "/a", host="echo.localhost", headers={**API, name: assertion}
        )
        assert resp.status == 401
    resp = portal.request(
        "GET",
        "/a",
        host="echo.localhost",
        headers={**API, "Authorization": f"Bearer {assertion}"},
    )
    assert resp.status == 401


# Hostile headers on every decision path --------------------------------------

SPOOFED = [
    ("X-Auth-Request-Email", "ceo@corp.example"),
    ("X-Auth-Request-User", "ceo"),
    ("X-Auth-Request-Groups", "admins"),
    ("X-Auth-Request-Preferred-Username", "ceo"),
    ("X-Auth-Request-Anything", "ceo"),
    ("X-Access-Jwt-Assertion", "forged.jwt.value"),
    ("Cf-Access-Jwt-Assertion", "forged.jwt.value"),
    ("X-WEBAUTH-USER", "ceo"),
    ("X-Webauth-User", "ceo"),
    ("X-Forwarded-For", "10.9.9.9"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "gopher"),
    ("X-Forwarded-Uri", "/admin"),
    ("X-Forwarded-Method", "DELETE"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X-Original-URL", "/admin"),
    ("X-Original-Uri", "/admin"),
    ("X-Rewrite-Url", "/admin"),
    ("X-Real-Ip", "10.9.9.9"),
    ("Forwarded", "for=10.9.9.9;host=evil.example"),
    ("X-Remote-User", "ceo"),
]
PORTAL_VALUES = {v for _, v in SPOOFED}


def _assert_no_spoofed(seen) -> None:  # type: ignore[no-untyped-def]
    for name, value in SPOOFED:
        assert value not in seen.header_all(name), name
    for name in ("x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"):
        assert len(seen.header_all(name)) <= 1
    assert seen.header("X-Original-URL") is None
    assert seen.header("X-Forwarded-Uri") is None
    assert seen.header("X-Forwarded-Method") is None
    assert seen.header("Forwarded") is None


def _spoof(extra: dict[str, str]) -> list[tuple[str, str]]:
    # Each spoofed header twice: duplicates must not slip through either.
    return list(extra.items()) + SPOOFED + SPOOFED


def test_hostile_headers_on_allow_path(portal, echo, upstream):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo, email="alice@corp.example")
    resp = portal.request(
        "GET", "/h", host="echo.localhost", headers=_spoof({"Cookie": cookie})
    )
    assert resp.status == 200
    seen = upstream.last
    _assert_no_spoofed(seen)
    assert seen.header_all("X-Auth-Request-Email") == ["alice@corp.example"]
    assert seen.header_all("X-WEBAUTH-USER") == ["alice@corp.example"]
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.header("X-Forwarded-Host") == f"echo.localhost:{portal.port}"
    assert seen.header("X-Forwarded-Proto") == "http"


def test_hostile_headers_on_token_path(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    resp = portal.request(
        "GET", "/h", host="echo.localhost", headers=_spoof(token_headers(token))
    )
    assert resp.status == 200
    _assert_no_spoofed(upstream.last)
    assert upstream.last.header_all("X-Auth-Request-User") == [
        f"token:{token.token.name}"
    ]


def test_hostile_headers_on_bypass_path(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    make_app(
        "open",
        "open.localhost",
        upstream.url,
        [("open", "bypass", 1, EVERYONE)],
        identity_header="X-WEBAUTH-USER",
    )
    resp = portal.request("GET", "/h", host="open.localhost", headers=_spoof({}))
    assert resp.status == 200
    seen = upstream.last
    _assert_no_spoofed(seen)
    assert not {n for n in seen.header_names() if n.startswith("x-auth-request")}
    assert seen.header("X-Access-Jwt-Assertion") is None
    assert seen.header("X-WEBAUTH-USER") is None


def test_hostile_headers_on_deny_path_reach_nothing(portal, echo, upstream):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    cookie = mint_cookie(echo, email="eve@other.example")
    resp = portal.request(
        "GET", "/h", host="echo.localhost", headers=_spoof({**API, "Cookie": cookie})
    )
    assert resp.status == 403
    anon = portal.request("GET", "/h", host="echo.localhost", headers=_spoof(API))
    assert anon.status == 401
    assert len(upstream.requests) == before


def test_hostile_underscore_header_does_not_reach_upstream(
    portal, echo, token, upstream
):  # type: ignore[no-untyped-def]
    headers = [
        *token_headers(token).items(),
        ("X_Auth_Request_Email", "ceo@corp.example"),
        ("X-Webauth_User", "ceo"),
    ]
    resp = portal.request("GET", "/u", host="echo.localhost", headers=headers)
    assert resp.status == 200
    for _, value in upstream.last.headers:
        assert "ceo" not in value


def test_hostile_connection_named_headers_dropped(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    headers = [
        *token_headers(token).items(),
        ("Connection", "keep-alive, X-Drop-Me, Authorization"),
        ("X-Drop-Me", "1"),
        ("Authorization", "Bearer named-in-connection"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Keep-Me", "1"),
    ]
    resp = portal.request("GET", "/c", host="echo.localhost", headers=headers)
    assert resp.status == 200
    names = upstream.last.header_names()
    assert {
        "x-drop-me",
        "authorization",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    }.isdisjoint(names)
    assert "x-keep-me" in names


def test_hostile_portal_cookies_stripped_upstream_cookies_kept(portal, echo, upstream):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo)
    jar = f"sessionid=abc; {cookie}; accessportal_session=s1; csrftoken=t0k; accessportal_csrf=c1; accessportal_app_other=x"
    resp = portal.request("GET", "/c", host="echo.localhost", headers={"Cookie": jar})
    assert resp.status == 200
    assert upstream.last.header("Cookie") == "sessionid=abc; csrftoken=t0k"
    # Token requests strip them too.


def test_hostile_token_headers_not_forwarded(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    portal.request(
        "GET", "/t", host="echo.localhost", headers=token_headers(token, "cf")
    )
    names = upstream.last.header_names()
    assert not names & {
        "access-client-id",
        "access-client-secret",
        "cf-access-client-id",
        "cf-access-client-secret",
    }
    assert token.secret not in str(upstream.last.headers)
