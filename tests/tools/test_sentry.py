"""Sentry-style error ingestion through the portal with the real sentry-sdk.

Two set-ups a team uses: a bypass on the envelope path only (the rest of the
host still needs sign-in), and a service token that the SDK's transport
sends as headers. The SDK resolves its DSN's host itself, so both use
loopback IP literals as hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from apps.tokens.service import issue_token
from tests.tools.publish import EVERYONE_BYPASS, STAFF, publish_app, token_policy

pytestmark = [pytest.mark.e2e]

BYPASS_HOST = "127.0.0.2"
TOKEN_HOST = "127.0.0.3"
CLIENT = Path(__file__).with_name("sentry_client.py")


@pytest.fixture
def sentry_apps(live_db, ingest):  # type: ignore[no-untyped-def]
    ingest.clear()
    envelope = publish_app(
        "sentry-envelope",
        BYPASS_HOST,
        ingest.url,
        [EVERYONE_BYPASS],
        path="/api/*/envelope/",
    )
    ui = publish_app("sentry", BYPASS_HOST, ingest.url, [STAFF])
    token = publish_app(
        "sentry-token", TOKEN_HOST, ingest.url, [token_policy("sentry-sdk")]
    )
    return envelope, ui, token


def report_exception(dsn: str, token: tuple[str, str] | None = None) -> dict:
    """Run the SDK in its own process; return its event id and statuses."""
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESS_CLIENT")}
    env["SENTRY_DSN"] = dsn
    if token is not None:
        env["ACCESS_CLIENT_ID"], env["ACCESS_CLIENT_SECRET"] = token
    done = subprocess.run(
        [sys.executable, str(CLIENT), marker],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["marker"] = marker
    return result


def assert_event_arrived_whole(ingest, sent: dict, project: str) -> dict:  # type: ignore[no-untyped-def]
    assert len(ingest.envelopes) == 1
    envelope = ingest.envelopes[0]
    assert envelope.path == f"/api/{project}/envelope/"
    assert envelope.header["event_id"] == sent["event_id"]
    assert envelope.headers["content-type"] == "application/x-sentry-envelope"
    assert "sentry_key=publickey" in envelope.headers["x-sentry-auth"]
    # The SDK compresses; the body must reach Sentry byte for byte.
    assert envelope.headers["content-encoding"] in {"gzip", "br"}
    (event,) = envelope.events()
    assert event["event_id"] == sent["event_id"]
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert exception["value"] == f"checkout failed for order 1234: {sent['marker']}"
    frames = [f["function"] for f in exception["stacktrace"]["frames"]]
    assert frames[-1] == "fail_checkout"
    assert event["release"] == "tools-suite@1.0"
    return envelope.headers


def test_sentry_sdk_event_through_envelope_bypass_arrives_whole(  # type: ignore[no-untyped-def]
    portal, ingest, sentry_apps
):
    sent = report_exception(f"http://publickey@{BYPASS_HOST}:{portal.port}/42")

    assert sent["statuses"] == [200]
    headers = assert_event_arrived_whole(ingest, sent, "42")
    # A bypassed request carries no identity at all.
    assert "x-auth-request-email" not in headers
    assert "x-access-jwt-assertion" not in headers


@pytest.mark.parametrize(
    ("method", "target", "accept", "expected"),
    [
        ("GET", "/", "text/html", 302),
        ("GET", "/organizations/acme/issues/", "text/html", 302),
        ("GET", "/api/0/projects/", "application/json", 401),
        ("POST", "/api/42/store/", "*/*", 401),
        ("POST", "/api/42/events/envelope/", "*/*", 401),
        ("POST", "/api/42/envelopes/", "*/*", 401),
    ],
)
def test_sentry_paths_beside_envelope_bypass_need_sign_in(  # type: ignore[no-untyped-def]
    portal, ingest, sentry_apps, method, target, accept, expected
):
    resp = portal.request(
        method,
        target,
        host=BYPASS_HOST,
        headers={"Accept": accept, "Content-Type": "application/json"},
        body=b"{}" if method == "POST" else None,
    )

    assert resp.status == expected
    assert ingest.others == [] and ingest.envelopes == []


def test_sentry_sdk_with_token_transport_arrives_as_service(  # type: ignore[no-untyped-def]
    portal, ingest, sentry_apps
):
    token = issue_token("sentry-sdk")

    sent = report_exception(
        f"http://publickey@{TOKEN_HOST}:{portal.port}/7",
        (token.client_id, token.secret),
    )

    assert sent["statuses"] == [200]
    headers = assert_event_arrived_whole(ingest, sent, "7")
    assert headers["x-auth-request-user"] == "token:sentry-sdk"
    assert "access-client-secret" not in headers
    assert "access-client-id" not in headers


def test_sentry_sdk_without_token_on_token_host_is_refused(  # type: ignore[no-untyped-def]
    portal, ingest, sentry_apps
):
    sent = report_exception(f"http://publickey@{TOKEN_HOST}:{portal.port}/7")

    assert sent["statuses"] == [401]
    assert ingest.envelopes == []


def test_sentry_sdk_with_revoked_token_is_refused(portal, ingest, sentry_apps):  # type: ignore[no-untyped-def]
    from apps.tokens.service import revoke_token

    token = issue_token("sentry-sdk")
    revoke_token(token.token)

    sent = report_exception(
        f"http://publickey@{TOKEN_HOST}:{portal.port}/7",
        (token.client_id, token.secret),
    )

    assert sent["statuses"] == [401]
    assert ingest.envelopes == []


def test_sentry_token_host_other_paths_refuse_anonymous(portal, ingest, sentry_apps):  # type: ignore[no-untyped-def]
    page = portal.request("GET", "/", host=TOKEN_HOST, headers={"Accept": "text/html"})
    api = portal.request("POST", "/api/7/store/", host=TOKEN_HOST, body=b"{}")

    assert (page.status, api.status) == (302, 401)
    assert ingest.others == []
