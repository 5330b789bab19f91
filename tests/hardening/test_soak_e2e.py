"""The short soak: mixed traffic for a minute, zero 5xx, every denial
audited (the 10-minute version is ``python -m bench.soak``)."""

import os

import pytest

from bench.soak import run_soak, setup_apps

pytestmark = pytest.mark.e2e

SECONDS = float(os.environ.get("ACCESSPORTAL_SOAK_SECONDS", "60"))


def test_soak_mixed_traffic_no_5xx_and_every_denial_audited(portal, upstream, live_db):  # type: ignore[no-untyped-def]
    creds = setup_apps(upstream.url)
    result = run_soak(portal.port, portal.process.pid, creds, SECONDS, clients=50)
    print(result.summary())
    assert result.requests > 1000
    assert result.server_errors == 0, result.summary()
    assert result.errors == 0, result.summary()
    kinds = {kind for kind, _ in result.by_kind}
    assert {
        "cookie",
        "token",
        "bypass",
        "denied-user",
        "denied-token",
        "anonymous",
    } <= kinds
    assert result.by_kind.get(("denied-user", 403), 0) > 0
    assert result.by_kind.get(("denied-token", 403), 0) > 0
    assert result.denied_seen > 0
    assert result.denied_audited == result.denied_seen, result.summary()
