"""The admin in a real browser against the portal under gunicorn.

Signs in with password and TOTP (the portal runs outside demo mode), adds an
application with a policy through the inline form (Django's inline
JavaScript must work under the portal's Content-Security-Policy), sees a
model validation error on the page, and issues a token whose secret appears
once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.policies.models import Application
from apps.tokens.models import ServiceToken
from tests.conftest import require, require_executable
from tests.support.browser import launch_context

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    chromium = require_executable("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright", "pip install -r requirements-dev.txt")
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # made between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    profile = tempfile.mkdtemp(prefix="admin-browser-")
    with sync_playwright() as playwright:
        context = launch_context(playwright, profile, chromium, 10_000)
        page = context.new_page()
        page.csp_errors = []  # type: ignore[attr-defined]
        page.on(
            "console",
            lambda msg: (
                page.csp_errors.append(msg.text)  # type: ignore[attr-defined]
                if "Content Security Policy" in msg.text and "script" in msg.text
                else None
            ),
        )
        yield page
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def submit(page: Any, selector: str) -> None:
    """Click and wait for the next page to load fully."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def code_for(device: TOTPDevice) -> str:
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{value:0{device.digits}d}"


def test_admin_browser_add_app_with_policy_and_issue_token(
    live_db: None, portal: Any, browser_page: Any
) -> None:
    user = get_user_model().objects.create_superuser("root", "r@x.example")
    # The portal under test has production hashers, not the suite's MD5.
    user.password = PBKDF2PasswordHasher().encode("pw-" * 5, "somesalt12345678")
    user.save()
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page = browser_page

    page.goto(f"{portal.url}/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-" * 5)
    page.fill("#id_otp_token", code_for(device))
    submit(page, "input[type=submit]")
    page.wait_for_url(f"{portal.url}/admin/")
    page.wait_for_selector("#site-name")
    assert "Policy tester" in page.content()

    page.goto(f"{portal.url}/admin/policies/application/add/")
    page.locator("#id_name").press_sequentially("Metabase")
    assert page.input_value("#id_slug") == "metabase"  # prepopulate JS ran
    page.fill("#id_hosts", "metabase.corp.example")
    page.fill("#id_upstream", "ftp://10.0.0.8/")
    page.click("#policies-group .add-row a")  # inline JS adds a policy form
    page.fill("#id_policies-0-name", "staff")
    page.select_option("#id_policies-0-action", "allow")
    page.fill("#id_policies-0-rules_text", "include ip_range 10.0.0/8")
    submit(page, "input[name=_save]")
    body = page.content()
    assert "http:// or https://" in body
    assert "is not a CIDR range" in body
    assert not Application.objects.filter(slug="metabase").exists()

    page.fill("#id_upstream", "http://10.0.0.8:3000")
    page.fill(
        "#id_policies-0-rules_text",
        "include email_domain corp.example\nrequire ip_range 10.0.0.0/8",
    )
    submit(page, "input[name=_save]")
    page.wait_for_selector(".messagelist")
    app = Application.objects.get(slug="metabase")
    rules = set(app.policies.get(name="staff").rules.values_list("selector", "value"))
    assert rules == {("email_domain", "corp.example"), ("ip_range", "10.0.0.0/8")}

    page.goto(f"{portal.url}/admin/tokens/servicetoken/add/")
    page.fill("#id_name", "deploy-bot")
    submit(page, "input[type=submit]")
    secret = page.inner_text("#client-secret")
    assert len(secret) >= 40
    assert ServiceToken.objects.filter(name="deploy-bot").exists()
    page.goto(f"{portal.url}/admin/tokens/servicetoken/")
    assert secret not in page.content()
    assert page.csp_errors == []
