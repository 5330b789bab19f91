"""Slow upstream calls to one application must not starve another.

Keeps 200 requests waiting on a 5-second upstream (application ``slow``)
while wrk sends small token-authenticated GETs to application ``fast``
through the same portal (gunicorn, 2 workers of the production model), and
reports the fast requests' latency. Target: p99 under 250 ms.

Run from the project folder: ``.venv/bin/python -m bench.isolation``
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOW_CLIENTS = 200
SLOW_SECONDS = 5
TARGET_P99_MS = 250.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from apps.tokens.service import issue_token
    from bench.run import wrk
    from tests.conftest import portal_env
    from tests.support.apps import make_app
    from tests.support.portal import Portal, free_port
    from tests.support.upstream import UpstreamServer

    call_command("migrate", verbosity=0)
    upstream = UpstreamServer().start()
    everyone = [("open", "bypass", 1, [("include", "everyone", "")])]
    tokens = [("ci", "service_auth", 1, [("include", "any_service_token", "")])]
    make_app("slow", "slow.localhost", upstream.url, everyone)
    make_app("fast", "fast.localhost", upstream.url, tokens)
    token = issue_token("isolation")
    port = free_port()
    log = Path(os.environ["ACCESSPORTAL_TEST_DIR"]) / "isolation-gunicorn.log"
    env = portal_env(
        PORTAL_URL=f"http://localhost:{port}", ACCESSPORTAL_CONFIG_POLL_SECONDS="2"
    )
    portal = Portal(port=port, bind="127.0.0.1", env=env, log_path=log).start()

    stop = threading.Event()
    in_flight = 0
    lock = threading.Lock()
    slow_ok = 0

    def slow_client() -> None:
        nonlocal in_flight, slow_ok
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                with lock:
                    in_flight += 1
                conn.request(
                    "GET",
                    f"/__sleep?s={SLOW_SECONDS}",
                    headers={"Host": f"slow.localhost:{port}"},
                )
                if conn.getresponse().status == 200:
                    with lock:
                        slow_ok += 1
            except (OSError, http.client.HTTPException):
                pass
            finally:
                with lock:
                    in_flight -= 1
                conn.close()

    threads = [
        threading.Thread(target=slow_client, daemon=True) for _ in range(SLOW_CLIENTS)
    ]
    try:
        auth = {
            "Access-Client-Id": token.client_id,
            "Access-Client-Secret": token.secret,
        }
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        waiting = in_flight
        fast = wrk(port, f"fast.localhost:{port}", auth, 8, args.seconds)
        still_waiting = in_flight
    finally:
        stop.set()
        for thread in threads:
            thread.join(SLOW_SECONDS + 10)
        portal.stop()
        upstream.stop()

    print(
        f"slow requests in flight: {waiting} at start, {still_waiting} at end; "
        f"completed: {slow_ok}"
    )
    print(
        f"fast app: {fast['rps']:.0f} req/s, p50 {fast['p50']:.2f} ms, "
        f"p99 {fast['p99']:.2f} ms, non-2xx {fast['non2xx']}, "
        f"socket errors {fast['socket_errors'] or 'none'}"
    )
    ok = (
        fast["p99"] < TARGET_P99_MS
        and fast["non2xx"] == 0
        and waiting >= SLOW_CLIENTS * 0.9
    )
    print(f"{'PASS' if ok else 'FAIL'}: p99 target {TARGET_P99_MS:.0f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
