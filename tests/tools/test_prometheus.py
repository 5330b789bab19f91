"""Prometheus (Debian's package) behind the portal: browser and curl."""

from __future__ import annotations

import json
import subprocess

import pytest

from apps.tokens.service import issue_token
from tests.conftest import require_executable
from tests.tools.members import sign_in_browser
from tests.tools.publish import STAFF, publish_app, token_policy

pytestmark = [pytest.mark.e2e]

HOST = "prometheus.localhost"


@pytest.fixture
def prometheus_app(live_db, prometheus):  # type: ignore[no-untyped-def]
    return publish_app(
        "prometheus", HOST, prometheus.url, [STAFF, token_policy("ci-prometheus")]
    )


def curl(url: str, headers: list[str]) -> tuple[int, str]:
    """Run the real curl; headers go in on stdin so no secret is in argv."""
    binary = require_executable("curl", "curl")
    done = subprocess.run(
        [binary, "-sS", "--max-time", "10", "-H", "@-", "-w", "\n%{http_code}", url],
        input="".join(f"{h}\n" for h in headers),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


@pytest.mark.browser
def test_prometheus_ui_after_sign_in_renders_query_and_api_calls_pass(  # type: ignore[no-untyped-def]
    portal, prometheus, prometheus_app, browser
):
    page = browser.page
    sign_in_browser(page, portal, prometheus_app.pk, HOST, "ada@example.com", "/")

    # Prometheus itself redirects / to its classic UI, which then loads its
    # template and metric names with XHR before the user types anything.
    page.wait_for_url(f"{portal.app_url(HOST)}/classic/graph")
    page.locator("textarea[name=expr]").fill("up")
    page.locator("input.execute_btn").click()
    row = page.locator(".console_table tbody tr", has_text='job="prometheus"')
    row.wait_for()

    assert f'instance="127.0.0.1:{prometheus.port}"' in row.inner_text()
    assert browser.statuses("/api/v1/query?query=up&") == [200]
    assert browser.statuses("/api/v1/label/__name__/values") == [200]
    assert set(browser.statuses("/api/v1/")) == {200}
    assert 200 in browser.statuses("graph_template.handlebar")
    assert all(status < 400 for _, status, _ in browser.responses)
    # Apart from the sign-in pages on the portal, every request the UI made
    # went to Prometheus' public host, never around the portal.
    assert all(
        url.startswith((portal.app_url(HOST), portal.url + "/"))
        for url, _, _ in browser.responses
    )
    assert any(
        url.startswith(portal.url + "/login/") for url, _, _ in browser.responses
    )


def test_prometheus_curl_with_service_token_reads_query_api(portal, prometheus_app):  # type: ignore[no-untyped-def]
    token = issue_token("ci-prometheus")
    url = f"{portal.app_url(HOST)}/api/v1/query?query=up"

    status, body = curl(
        url,
        [
            f"Access-Client-Id: {token.client_id}",
            f"Access-Client-Secret: {token.secret}",
        ],
    )

    assert status == 200, body
    data = json.loads(body)
    assert data["status"] == "success"
    assert [r["metric"]["job"] for r in data["data"]["result"]] == ["prometheus"]


def test_prometheus_curl_with_token_of_another_name_is_denied(portal, prometheus_app):  # type: ignore[no-untyped-def]
    token = issue_token("someone-else")

    status, body = curl(
        f"{portal.app_url(HOST)}/api/v1/query?query=up",
        [
            f"Access-Client-Id: {token.client_id}",
            f"Access-Client-Secret: {token.secret}",
        ],
    )

    assert status == 403
    assert json.loads(body)["error"] == "access_denied"


def test_prometheus_curl_without_credentials_gets_401_json(portal, prometheus_app):  # type: ignore[no-untyped-def]
    status, body = curl(f"{portal.app_url(HOST)}/api/v1/query?query=up", [])

    assert status == 401
    assert json.loads(body)["error"] == "authentication_required"


def test_prometheus_browser_navigation_without_sign_in_goes_to_login(  # type: ignore[no-untyped-def]
    portal, prometheus_app
):
    resp = portal.request(
        "GET", "/classic/graph", host=HOST, headers={"Accept": "text/html"}
    )

    assert resp.status == 302
    assert (resp.header("Location") or "").startswith(f"{portal.url}/login/?next=")
