"""Class 9: slow upstream calls to one application never starve another.

The benchmark in ``bench/`` measures the p99 of the fast requests; this short
version proves the property: while 200 requests wait on a 5-second upstream,
every request to a second application succeeds, and all of them finish long
before the slow ones can.
"""

import threading
import time

import pytest

from apps.tokens.service import issue_token
from tests.support.apps import make_app

pytestmark = pytest.mark.e2e

SLOW_COUNT = 200
SLOW_SECONDS = 5
FAST_COUNT = 40


def _app(slug, upstream, policy_action, selector):  # type: ignore[no-untyped-def]
    rules = [("include", selector, "")]
    return make_app(
        slug, f"{slug}.localhost", upstream.url, [("p", policy_action, 1, rules)]
    )


def test_isolation_slow_app_does_not_starve_fast_app(portal, upstream, live_db):  # type: ignore[no-untyped-def]
    _app("slow", upstream, "bypass", "everyone")
    _app("fast", upstream, "service_auth", "any_service_token")
    token = issue_token("iso")
    auth = {"Access-Client-Id": token.client_id, "Access-Client-Secret": token.secret}
    # Warm both routes so the first measured request pays no start-up cost.
    assert portal.request("GET", "/", host="fast.localhost", headers=auth).status == 200

    slow_results: list[int] = []
    lock = threading.Lock()

    def slow_call() -> None:
        try:
            status = portal.request(
                "GET", f"/__sleep?s={SLOW_SECONDS}", host="slow.localhost", timeout=30
            ).status
        except OSError:
            status = -1
        with lock:
            slow_results.append(status)

    started = time.monotonic()
    threads = [
        threading.Thread(target=slow_call, daemon=True) for _ in range(SLOW_COUNT)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let the slow requests reach the upstream first

    fast_statuses = []
    for _ in range(FAST_COUNT):
        fast_statuses.append(
            portal.request(
                "GET", "/", host="fast.localhost", headers=auth, timeout=10
            ).status
        )
    fast_done = time.monotonic() - started

    for thread in threads:
        thread.join(30)
    slow_done = time.monotonic() - started

    assert fast_statuses == [200] * FAST_COUNT
    assert fast_done < SLOW_SECONDS - 1.5, f"fast requests took {fast_done:.2f}s"
    assert len(slow_results) == SLOW_COUNT
    assert slow_results.count(200) == SLOW_COUNT, sorted(set(slow_results))
    assert slow_done >= SLOW_SECONDS
