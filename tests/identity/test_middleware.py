"""Security headers and the CSRF origin check on portal pages."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.proxy.returnto import sign_return

pytestmark = pytest.mark.django_db


def _post_logout(**headers: str):  # type: ignore[no-untyped-def]
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")
    token = client.cookies["accessportal_csrf"].value
    return client.post("/logout/", {"csrfmiddlewaretoken": token}, **headers)


def test_csrf_null_origin_same_origin_fetch_accepted() -> None:
    resp = _post_logout(HTTP_ORIGIN="null", HTTP_SEC_FETCH_SITE="same-origin")

    assert resp.status_code == 200


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none", ""])
def test_csrf_null_origin_other_fetch_site_refused(site: str) -> None:
    resp = _post_logout(HTTP_ORIGIN="null", HTTP_SEC_FETCH_SITE=site)

    assert resp.status_code == 403


def test_csrf_foreign_origin_refused_even_same_origin_fetch() -> None:
    resp = _post_logout(
        HTTP_ORIGIN="https://evil.example", HTTP_SEC_FETCH_SITE="same-origin"
    )

    assert resp.status_code == 403


def test_csrf_null_origin_without_token_refused() -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")

    resp = client.post(
        "/logout/", HTTP_ORIGIN="null", HTTP_SEC_FETCH_SITE="same-origin"
    )

    assert resp.status_code == 403


def test_login_page_security_headers_present(client: Client) -> None:
    resp = client.get("/login/")

    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_login_page_with_next_lets_forms_reach_that_app_only(
    client: Client, corp_app
) -> None:  # type: ignore[no-untyped-def]
    signed = sign_return(corp_app.pk, "echo.localhost", "/x")

    csp = client.get(f"/login/?next={signed}").headers["Content-Security-Policy"]

    assert "form-action 'self' http://echo.localhost:8000;" in csp
