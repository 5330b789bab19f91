"""Helpers for the proxy's end-to-end suite: applications, tokens, cookies.

Every test talks to the shared ``portal`` (gunicorn, gevent, 2 workers) with
raw HTTP and checks what the recording ``upstream`` received.
"""

from __future__ import annotations

import secrets
import time

import pytest

from apps.policies.models import Application
from apps.policies.snapshot import get_snapshot
from apps.proxy.cookies import CookieClaims, encode_cookie
from apps.tokens.service import IssuedToken, issue_token
from tests.support.apps import RuleSpec, make_app  # noqa: F401 - re-exported

HTML = {"Accept": "text/html,application/xhtml+xml"}
API = {"Accept": "application/json"}

STANDARD_POLICIES = [
    ("tokens", "service_auth", 1, [("include", "any_service_token", "")]),
    ("no-mallory", "block", 5, [("include", "email", "mallory@corp.example")]),
    ("staff", "allow", 10, [("include", "email_domain", "corp.example")]),
]


def token_headers(token: IssuedToken, kind: str = "access") -> dict[str, str]:
    prefix = "CF-Access-Client" if kind == "cf" else "Access-Client"
    return {f"{prefix}-Id": token.client_id, f"{prefix}-Secret": token.secret}


def cookie_name(app: Application) -> str:
    return get_snapshot().apps[app.pk].cookie_name


def mint_cookie(
    app: Application,
    email: str = "alice@corp.example",
    user_id: int = 101,
    sid: str | None = None,
    ttl: int = 3600,
    issued_at: int | None = None,
    username: str = "",
    orgs: tuple[str, ...] = (),
    teams: tuple[str, ...] = (),
    method: str = "pin",
    app_id: int | None = None,
) -> str:
    """A ``name=value`` pair for the Cookie header, signed like the portal."""
    now = int(time.time()) if issued_at is None else issued_at
    value = encode_cookie(
        CookieClaims(
            app_id=app.pk if app_id is None else app_id,
            sid=sid or secrets.token_urlsafe(16),
            user_id=user_id,
            email=email,
            username=username,
            orgs=orgs,
            teams=teams,
            method=method,
            issued_at=now,
            expires_at=now + ttl,
        )
    )
    return f"{cookie_name(app)}={value}"


@pytest.fixture
def echo(live_db, upstream) -> Application:  # type: ignore[no-untyped-def]
    """echo.localhost: tokens, members of corp.example, mallory blocked."""
    return make_app(
        "echo",
        "echo.localhost",
        upstream.url,
        STANDARD_POLICIES,
        identity_header="X-WEBAUTH-USER",
    )


@pytest.fixture
def token(echo) -> IssuedToken:  # type: ignore[no-untyped-def]
    return issue_token(f"ci-{secrets.token_hex(3)}")


def wait_for(check, timeout: float = 5.0, step: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(step)
