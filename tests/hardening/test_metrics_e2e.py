"""Class 10: /metrics counts across workers and is closed to strangers."""

import re
import time
from pathlib import Path

import pytest

from tests.conftest import portal_env
from tests.support.apps import make_app
from tests.support.portal import Portal, free_port

pytestmark = pytest.mark.e2e

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def closed_portal(django_db_setup, tmp_path_factory):  # type: ignore[no-untyped-def]
    port = free_port()
    env = portal_env(
        PORTAL_URL=f"http://localhost:{port}",
        METRICS_ALLOWED_NETWORKS="10.0.0.0/8",
        METRICS_TOKEN=TOKEN,
    )
    log = Path(tmp_path_factory.mktemp("metrics")) / "gunicorn.log"
    server = Portal(port=port, bind="127.0.0.1", env=env, log_path=log).start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Authorization": f"Basic {TOKEN}"}, 403),
        ({"X-Forwarded-For": "10.1.1.1"}, 403),  # no trusted proxy configured
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
    ],
)
def test_metrics_outside_allowed_networks_needs_token(closed_portal, headers, status):  # type: ignore[no-untyped-def]
    resp = closed_portal.request("GET", "/metrics", host="localhost", headers=headers)
    assert resp.status == status
    if status == 403:
        assert b"accessportal_requests_total" not in resp.body


def _total(body: str, app: str, status: str) -> int:
    pattern = rf'accessportal_requests_total{{app="{app}",status="{status}"}} (\d+)'
    found = re.search(pattern, body)
    return int(found.group(1)) if found else 0


def test_metrics_counts_requests_of_every_worker(portal, upstream, live_db):  # type: ignore[no-untyped-def]
    open_policy = ("open", "bypass", 1, [("include", "everyone", "")])
    make_app("met", "met.localhost", upstream.url, [open_policy])
    for _ in range(30):
        assert (
            portal.request("GET", "/__status/200", host="met.localhost").status == 200
        )
    for _ in range(5):
        assert (
            portal.request("GET", "/__status/404", host="met.localhost").status == 404
        )
    deadline = time.time() + 12
    body = ""
    while time.time() < deadline:
        body = portal.request("GET", "/metrics", host="localhost").body.decode()
        if _total(body, "met", "200") >= 30 and _total(body, "met", "404") >= 5:
            break
        time.sleep(1)
    assert _total(body, "met", "200") == 30
    assert _total(body, "met", "404") == 5
    assert 'accessportal_decisions_total{app="met",decision="bypass"} 35' in body
    assert 'accessportal_upstream_seconds_count{app="met"} 35' in body
