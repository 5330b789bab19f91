"""Sign-in end to end: Debian's chromium (Playwright), the portal under
gunicorn, a real upstream, mail read from the file backend, and the fake
GitHub server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_executable
from tests.identity.conftest import create_app
from tests.support.browser import launch_context, wait_for_pin
from tests.support.fake_github import FakeGitHub, FakeUser
from tests.support.portal import Portal
from tests.support.upstream import UpstreamServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TIMEOUT_MS = 15_000


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    executable = require_executable("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = launch_context(
            pw, tmp_path / "chromium-profile", executable, TIMEOUT_MS
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


@pytest.fixture
def corp_echo(live_db, upstream: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    # Database work happens before the browser starts: Playwright's sync API
    # runs an event loop in this thread, where Django refuses ORM calls.
    create_app(
        "echo",
        "echo.localhost",
        upstream=upstream.url,
        include=[("email_domain", "corp.example")],
    )


@pytest.fixture
def acme_echo(live_db, upstream: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    create_app(
        "echo",
        "echo.localhost",
        upstream=upstream.url,
        include=[("github_org", "acme")],
    )


@pytest.fixture
def vault(live_db, upstream: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    create_app(
        "vault",
        "vault.localhost",
        upstream=upstream.url,
        include=[("email", "boss@corp.example")],
    )


def _seen_by_upstream(upstream: UpstreamServer, path: str):  # type: ignore[no-untyped-def]
    matches = [r for r in upstream.requests if r.path == path]
    assert matches, f"{path} never reached the upstream"
    return matches[-1]


def test_pin_signin_lands_on_original_path_then_logout_requires_login(  # type: ignore[no-untyped-def]
    corp_echo, portal: Portal, upstream: UpstreamServer, browser_page
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@corp.example"
    app_url = f"{portal.app_url('echo.localhost')}/some/path?x=1"
    page = browser_page

    page.goto(app_url)
    assert page.url.startswith(f"{portal.url}/login/?next=")
    page.fill("#id_email", email.upper())
    page.click("text=E-mail me a code")
    page.wait_for_selector("#id_pin")
    page.fill("#id_pin", wait_for_pin(email))
    page.click("button:has-text('Sign in')")
    page.wait_for_url(app_url)

    seen = _seen_by_upstream(upstream, "/some/path?x=1")
    assert seen.header("X-Auth-Request-Email") == email
    assert seen.header("X-Auth-Request-User") == email
    assert seen.header("X-Access-Jwt-Assertion")
    assert "accessportal_app" not in (seen.header("Cookie") or "")

    page.goto(f"{portal.app_url('echo.localhost')}/.accessportal/logout")
    page.wait_for_url(f"{portal.url}/logout/?done=1")
    assert "Signed out" in page.content()
    page.goto(app_url)
    assert page.url.startswith(f"{portal.url}/login/?next=")


def test_pin_signin_wrong_code_then_denied_app_offers_switch(  # type: ignore[no-untyped-def]
    corp_echo, vault, portal: Portal, upstream: UpstreamServer, browser_page
) -> None:
    email = f"bob-{uuid.uuid4().hex[:8]}@corp.example"
    page = browser_page

    page.goto(f"{portal.url}/login/")
    page.fill("#id_email", email)
    page.click("text=E-mail me a code")
    code = wait_for_pin(email)
    page.fill("#id_pin", f"{(int(code) + 1) % 1_000_000:06d}")
    page.click("button:has-text('Sign in')")

    assert page.locator("#pin-error").inner_text().startswith("That code is not right")
    page.fill("#id_pin", code)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{portal.url}/")
    assert "http://echo.localhost:" in page.content()
    assert "vault.localhost" not in page.content()

    # An application this member may not use: the 403 page names the account
    # and "use another account" ends the login and shows the sign-in form.
    page.goto(f"{portal.app_url('vault.localhost')}/")
    assert "Access denied" in page.content()
    assert email in page.content()
    page.click("text=Use another account")
    page.wait_for_url(re.compile(re.escape(f"{portal.url}/login/?next=") + ".+"))
    page.goto(f"{portal.app_url('echo.localhost')}/")
    assert page.url.startswith(f"{portal.url}/login/?next=")


def test_github_signin_allowed_org_reaches_upstream(  # type: ignore[no-untyped-def]
    acme_echo,
    github_portal: Portal,
    fake_github: FakeGitHub,
    upstream: UpstreamServer,
    browser_page,
) -> None:
    login = f"gh-{uuid.uuid4().hex[:6]}"
    fake_github.configure(
        FakeUser(
            login=login,
            email=f"{login}@users.example",
            orgs=[f"org{i}" for i in range(35)] + ["acme"],
            teams=[("acme", "ops")],
        )
    )
    app_url = f"{github_portal.app_url('echo.localhost')}/gh/page?y=2"
    page = browser_page

    page.goto(app_url)
    assert page.url.startswith(f"{github_portal.url}/login/?next=")
    page.click("text=Sign in with GitHub")
    page.wait_for_url(app_url)

    seen = _seen_by_upstream(upstream, "/gh/page?y=2")
    assert seen.header("X-Auth-Request-User") == login
    assert seen.header("X-Auth-Request-Email") == f"{login}@users.example"
    assert "acme/ops" in (seen.header("X-Auth-Request-Groups") or "").split(",")

    page.goto(f"{github_portal.app_url('echo.localhost')}/.accessportal/logout")
    page.wait_for_url(f"{github_portal.url}/logout/?done=1")
    page.goto(app_url)
    assert page.url.startswith(f"{github_portal.url}/login/?next=")


def test_github_signin_refused_org_shows_refusal(  # type: ignore[no-untyped-def]
    acme_echo,
    github_portal: Portal,
    fake_github: FakeGitHub,
    upstream: UpstreamServer,
    browser_page,
) -> None:
    login = f"gh-{uuid.uuid4().hex[:6]}"
    fake_github.configure(
        FakeUser(login=login, email=f"{login}@users.example", orgs=["evilcorp"])
    )
    app_url = f"{github_portal.app_url('echo.localhost')}/secret"
    page = browser_page
    before = len(upstream.requests)

    page.goto(app_url)
    page.click("text=Sign in with GitHub")
    page.wait_for_selector("text=Sign-in refused")

    assert page.url.startswith(f"{github_portal.url}/accounts/github/login/callback/")
    assert "No application admits" in page.content()
    assert not [r for r in upstream.requests[before:] if r.path == "/secret"]
    page.goto(app_url)
    assert page.url.startswith(f"{github_portal.url}/login/?next=")
