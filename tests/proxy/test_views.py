"""The portal's endpoints for the proxy: handoff, logout, identity, health."""

from __future__ import annotations

import re
import secrets
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.proxy import handoff
from apps.proxy.handoff import start_handoff
from apps.proxy.returnto import ReturnTo
from tests.proxy.conftest import API, STANDARD_POLICIES, make_app

pytestmark = pytest.mark.e2e


def _facts(**extra):  # type: ignore[no-untyped-def]
    facts = {
        "uid": 55,
        "email": "alice@corp.example",
        "username": "",
        "orgs": [],
        "teams": [],
        "method": "pin",
        "sid": secrets.token_urlsafe(12),
    }
    facts.update(extra)
    return facts


def _code(app, path="/after?x=1", host="echo.localhost", **facts):  # type: ignore[no-untyped-def]
    redirect = start_handoff(ReturnTo(app.pk, host, path), _facts(**facts))
    assert redirect is not None
    location = redirect["Location"]
    assert urlsplit(location).path == "/.accessportal/authorized"
    return parse_qs(urlsplit(location).query)["code"][0]


def _redeem(portal, code, host="echo.localhost"):  # type: ignore[no-untyped-def]
    return portal.request("GET", f"/.accessportal/authorized?code={code}", host=host)


def _set_cookie(resp) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    header = resp.header("Set-Cookie")
    assert header, resp.headers
    return header.split(";", 1)[0], header


def test_handoff_sets_cookie_and_redirects_on_app(portal, echo, upstream):  # type: ignore[no-untyped-def]
    resp = _redeem(portal, _code(echo))
    assert resp.status == 302
    assert resp.header("Location") == "/after?x=1"
    pair, header = _set_cookie(resp)
    assert pair.startswith("accessportal_app=")
    flags = header.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # PORTAL_URL is http in the suite
    assert "max-age=86400" in flags
    ok = portal.request(
        "GET", "/after", host="echo.localhost", headers={"Cookie": pair}
    )
    assert ok.status == 200
    assert upstream.last.header("X-Auth-Request-Email") == "alice@corp.example"


def test_handoff_code_single_use(portal, echo):  # type: ignore[no-untyped-def]
    code = _code(echo)
    assert _redeem(portal, code).status == 302
    again = _redeem(portal, code)
    assert again.status == 400
    assert again.header("Set-Cookie") is None


def test_handoff_code_bound_to_app_and_host(portal, echo, upstream):  # type: ignore[no-untyped-def]
    make_app("second", "second.localhost", upstream.url, STANDARD_POLICIES)
    resp = _redeem(portal, _code(echo), host="second.localhost")
    assert resp.status == 400
    assert resp.header("Set-Cookie") is None


def test_handoff_code_expires_within_a_minute(portal, echo, monkeypatch):  # type: ignore[no-untyped-def]
    assert handoff.CODE_LIFETIME < 60
    monkeypatch.setattr(handoff, "CODE_LIFETIME", 1)
    code = _code(echo)
    time.sleep(2.1)
    assert _redeem(portal, code).status == 400


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "/%2f%2fevil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "/../../x",
    ],
)
def test_handoff_redirect_stays_on_app(portal, echo, path):  # type: ignore[no-untyped-def]
    resp = _redeem(portal, _code(echo, path=path))
    assert resp.status == 302
    location = resp.header("Location")
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location


def test_handoff_redirect_to_other_app_on_host_falls_back(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    api = make_app(
        "api", "shared.localhost", upstream.url, STANDARD_POLICIES, path="/api"
    )
    make_app("web", "shared.localhost", upstream.url, STANDARD_POLICIES, path="/web")
    resp = _redeem(
        portal,
        _code(api, path="/web/secret", host="shared.localhost"),
        host="shared.localhost",
    )
    assert resp.status == 302
    assert resp.header("Location") == "/api/"
    pair, header = _set_cookie(resp)
    assert pair.startswith("accessportal_app_api=")
    assert "Path=/api" in header


def test_handoff_policy_duration_shortens_cookie(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    app = make_app(
        "brief",
        "brief.localhost",
        upstream.url,
        STANDARD_POLICIES,
        session_durations={"staff": timedelta(minutes=10)},
        session_duration=timedelta(hours=8),
    )
    resp = _redeem(portal, _code(app, host="brief.localhost"), host="brief.localhost")
    _, header = _set_cookie(resp)
    assert "Max-Age=600" in header


def test_handoff_app_duration_used_without_policy_duration(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    app = make_app(
        "eight",
        "eight.localhost",
        upstream.url,
        STANDARD_POLICIES,
        session_duration=timedelta(hours=8),
    )
    resp = _redeem(portal, _code(app, host="eight.localhost"), host="eight.localhost")
    _, header = _set_cookie(resp)
    assert "Max-Age=28800" in header


def test_handoff_revoked_session_gets_no_cookie(portal, echo):  # type: ignore[no-untyped-def]
    from apps.proxy.revocation import revoke_session

    code = _code(echo, sid="sid-ended")
    revoke_session("sid-ended")
    resp = _redeem(portal, code)
    assert resp.status == 400
    assert resp.header("Set-Cookie") is None


def test_app_logout_ends_cookie_on_next_request(portal, echo):  # type: ignore[no-untyped-def]
    pair, _ = _set_cookie(_redeem(portal, _code(echo)))
    headers = {**API, "Cookie": pair}
    assert (
        portal.request("GET", "/", host="echo.localhost", headers=headers).status == 200
    )
    out = portal.request(
        "GET", "/.accessportal/logout", host="echo.localhost", headers=headers
    )
    assert out.status == 302
    assert out.header("Location") == f"{portal.url}/logout/?done=1"
    assert re.search(r"accessportal_app=\"?\"?;", out.header("Set-Cookie"))
    for _ in range(4):  # both workers
        resp = portal.request("GET", "/", host="echo.localhost", headers=headers)
        assert resp.status == 401


def test_identity_endpoint_reports_cookie_identity(portal, echo):  # type: ignore[no-untyped-def]
    pair, _ = _set_cookie(_redeem(portal, _code(echo)))
    resp = portal.request(
        "GET",
        "/.accessportal/identity",
        host="echo.localhost",
        headers={"Cookie": pair},
    )
    assert resp.json()["email"] == "alice@corp.example"
    anon = portal.request("GET", "/.accessportal/identity", host="echo.localhost")
    assert anon.json() == {"authenticated": False}


def test_healthz_checks_database(portal):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/healthz", host="localhost")
    assert resp.status == 200
    assert resp.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok"}}


def _login_flow_code(portal, echo):  # type: ignore[no-untyped-def]
    """Start signing in like a browser: the proxy's 302 and its state cookie."""
    from urllib.parse import unquote

    from apps.proxy.returnto import read_return

    resp = portal.request(
        "GET", "/start?x=1", host="echo.localhost", headers={"Accept": "text/html"}
    )
    assert resp.status == 302
    state_pair = next(
        c.split(";", 1)[0]
        for c in resp.header_all("Set-Cookie")
        if c.startswith("accessportal_app.state.")
    )
    assert "path=/.accessportal/authorized" in next(
        c.lower() for c in resp.header_all("Set-Cookie") if c.startswith(state_pair)
    )
    value = unquote(resp.header("Location").split("next=", 1)[1])
    ret = read_return(value)
    assert ret is not None and ret.nonce and ret.nonce == state_pair.split("=", 1)[1]
    redirect = start_handoff(ret, _facts())
    assert redirect is not None
    code = parse_qs(urlsplit(redirect["Location"]).query)["code"][0]
    return code, state_pair


def test_handoff_started_in_this_browser_succeeds(portal, echo):  # type: ignore[no-untyped-def]
    code, state_pair = _login_flow_code(portal, echo)
    resp = portal.request(
        "GET",
        f"/.accessportal/authorized?code={code}",
        host="echo.localhost",
        headers={"Cookie": state_pair},
    )
    assert resp.status == 302
    assert resp.header("Location") == "/start?x=1"
    cookies = resp.header_all("Set-Cookie")
    assert any(c.startswith("accessportal_app=") for c in cookies)
    assert any(
        c.startswith("accessportal_app.state.") and "Max-Age=0" in c for c in cookies
    )


@pytest.mark.parametrize("cookie", [None, "accessportal_app.state.echo=someone-else"])
def test_handoff_link_opened_in_another_browser_is_refused(portal, echo, cookie):  # type: ignore[no-untyped-def]
    # Login CSRF: an attacker signs in, stops at the last redirect and sends
    # the link; the victim's browser lacks the attacker's state cookie.
    code, _ = _login_flow_code(portal, echo)
    headers = {"Cookie": cookie} if cookie else {}
    resp = portal.request(
        "GET",
        f"/.accessportal/authorized?code={code}",
        host="echo.localhost",
        headers=headers,
    )
    assert resp.status == 400
    assert b"different browser" in resp.body
    assert not any(
        c.startswith("accessportal_app=") for c in resp.header_all("Set-Cookie")
    )


def test_handoff_planted_duplicate_state_cookie_is_refused(portal, echo):  # type: ignore[no-untyped-def]
    code, state_pair = _login_flow_code(portal, echo)
    name = state_pair.split("=", 1)[0]
    resp = portal.request(
        "GET",
        f"/.accessportal/authorized?code={code}",
        host="echo.localhost",
        headers={"Cookie": f"{name}=victims-own; {state_pair}"},
    )
    assert resp.status == 400
