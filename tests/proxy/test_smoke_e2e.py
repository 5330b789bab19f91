"""First end-to-end checks of the proxy path under gunicorn."""

import pytest

from apps.policies.models import Application, Policy, Rule
from apps.tokens.service import issue_token

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(live_db, upstream):  # type: ignore[no-untyped-def]
    application = Application(
        name="Echo", slug="echo", hosts="echo.localhost", upstream=upstream.url
    )
    application.full_clean()
    application.save()
    policy = Policy.objects.create(
        application=application, name="svc", action="service_auth", precedence=1
    )
    Rule.objects.create(policy=policy, kind="include", selector="any_service_token")
    return application


def test_proxy_anonymous_api_call_gets_401_json(portal, app):  # type: ignore[no-untyped-def]
    resp = portal.request(
        "GET", "/x", host="echo.localhost", headers={"Accept": "application/json"}
    )
    assert resp.status == 401
    assert resp.json()["error"] == "authentication_required"
    assert resp.json()["login_url"].startswith(portal.url + "/login/?next=")


def test_proxy_token_request_reaches_upstream_with_raw_path(portal, app, upstream):  # type: ignore[no-untyped-def]
    token = issue_token("ci")
    resp = portal.request(
        "GET",
        "/a%2fb/%C3%A9?q=1+2%20",
        host="echo.localhost",
        headers={
            "Access-Client-Id": token.client_id,
            "Access-Client-Secret": token.secret,
        },
    )
    assert resp.status == 200, resp.body
    seen = upstream.last
    assert seen.path == "/a%2fb/%C3%A9?q=1+2%20"
    assert seen.header("X-Auth-Request-User") == "token:ci"
    assert "access-client-secret" not in seen.header_names()


def test_proxy_unknown_host_gets_plain_404(portal):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/", host="nowhere.localhost")
    assert resp.status == 404
