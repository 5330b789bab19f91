"""Datasette behind the portal: pages, static assets, JSON and a big CSV."""

from __future__ import annotations

import hashlib
import http.client

import pytest

from apps.tokens.service import issue_token
from tests.tools.members import sign_in_browser, sign_in_cookie
from tests.tools.publish import STAFF, publish_app, token_policy
from tests.tools.servers import CSV_ROWS, stream_sha256

pytestmark = [pytest.mark.e2e]

HOST = "datasette.localhost"
CSV_TARGET = "/tools/events.csv?_stream=on&_size=max"


@pytest.fixture
def datasette_app(live_db, datasette):  # type: ignore[no-untyped-def]
    # Datasette writes absolute URLs (next_url) from the Host it receives, so
    # it gets the public one.
    return publish_app(
        "datasette",
        HOST,
        datasette.url,
        [STAFF, token_policy("ci-datasette")],
        preserve_host=True,
    )


@pytest.fixture
def token_headers(datasette_app):  # type: ignore[no-untyped-def]
    token = issue_token("ci-datasette")
    return {
        "Access-Client-Id": token.client_id,
        "Access-Client-Secret": token.secret,
    }


@pytest.mark.browser
def test_datasette_table_page_after_sign_in_renders_with_its_assets(  # type: ignore[no-untyped-def]
    portal, datasette_app, browser
):
    page = browser.page
    sign_in_browser(
        page, portal, datasette_app.pk, HOST, "ada@example.com", "/tools/teams"
    )

    page.locator("table.rows-and-columns").wait_for()
    cells = page.locator("table.rows-and-columns tbody td.col-name").all_inner_texts()
    assert cells == ["Platform", "Payments", "Search"]
    assert page.locator("h1").inner_text().strip() == "teams"
    assert 200 in browser.statuses("/-/static/app.css")
    assert any(
        "/-/static/" in url and kind == "script" and status == 200
        for url, status, kind in browser.responses
    )
    # The stylesheet really applied: Datasette's CSS styles its table.
    border = page.locator("table.rows-and-columns td").first.evaluate(
        "cell => getComputedStyle(cell).borderTopStyle"
    )
    assert border != "none"
    assert all(status < 400 for _, status, _ in browser.responses)


def test_datasette_static_asset_through_portal_equals_direct(  # type: ignore[no-untyped-def]
    portal, datasette, datasette_app
):
    cookie = sign_in_cookie(portal, datasette_app.pk, HOST, "ada@example.com")
    direct = stream_sha256(datasette.port, "/-/static/app.css", "127.0.0.1")

    through = stream_sha256(
        portal.port, "/-/static/app.css", f"{HOST}:{portal.port}", {"Cookie": cookie}
    )

    assert direct[0] == through[0] == 200
    assert through[1]["content-type"] == direct[1]["content-type"]
    assert (through[2], through[3]) == (direct[2], direct[3])


def test_datasette_json_api_with_token_returns_rows_and_public_urls(  # type: ignore[no-untyped-def]
    portal, datasette_app, token_headers
):
    resp = portal.request(
        "GET",
        "/tools/events.json?level=error&_size=5&_shape=objects",
        host=HOST,
        headers=token_headers,
    )

    assert resp.status == 200, resp.body[:300]
    data = resp.json()
    assert [row["id"] for row in data["rows"]] == [2, 5, 8, 11, 14]
    assert all(row["level"] == "error" for row in data["rows"])
    assert data["next_url"].startswith(f"{portal.app_url(HOST)}/tools/events.json?")


@pytest.fixture(scope="module")
def direct_csv(datasette):  # type: ignore[no-untyped-def]
    """The CSV straight from Datasette: the reference the portal must match."""
    conn = http.client.HTTPConnection("127.0.0.1", datasette.port, timeout=60)
    try:
        conn.request("GET", CSV_TARGET)
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read()
    finally:
        conn.close()


def test_datasette_direct_csv_holds_every_row_once(direct_csv):  # type: ignore[no-untyped-def]
    lines = direct_csv.decode().splitlines()

    assert lines[0] == "id,service,level,message,value"
    assert len(lines) == CSV_ROWS + 1
    assert lines[-1].startswith(f"{CSV_ROWS},")


def test_datasette_csv_export_of_200k_rows_streams_through_intact(  # type: ignore[no-untyped-def]
    portal, datasette_app, direct_csv
):
    cookie = sign_in_cookie(portal, datasette_app.pk, HOST, "ada@example.com")

    status, headers, digest, size = stream_sha256(
        portal.port, CSV_TARGET, f"{HOST}:{portal.port}", {"Cookie": cookie}
    )

    assert status == 200
    assert headers.get("Transfer-Encoding") == "chunked"
    assert size == len(direct_csv)
    assert digest == hashlib.sha256(direct_csv).hexdigest()


def test_datasette_without_credentials_is_refused(portal, datasette_app):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", CSV_TARGET, host=HOST)

    assert resp.status == 401
    assert resp.json()["error"] == "authentication_required"
