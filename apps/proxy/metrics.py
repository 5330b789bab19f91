"""Request, decision and upstream-latency counters for ``/metrics``.

Each process counts in memory (a lock and a few dict updates per request) and
publishes its totals to the shared cache at most every ``PUBLISH_SECONDS``;
``/metrics`` adds up what every live process published, so a scrape that
lands on any worker of any instance sees the whole deployment.

Limitations: the figures lag by up to ``PUBLISH_SECONDS``; a process that
dies loses what it counted since its last publish, and its last totals drop
out of the sum once they expire (``STALE_SECONDS``), so counters can step
down after a worker restart. Prometheus' ``rate()`` treats that as a reset.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict

from django.core.cache import cache

logger = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PUBLISH_SECONDS = 5.0
STALE_SECONDS = 120
_INDEX_KEY = "metrics:index"

_lock = threading.Lock()
_requests: dict[tuple[str, str], int] = defaultdict(int)
_decisions: dict[tuple[str, str], int] = defaultdict(int)
_latency_buckets: dict[str, list[int]] = {}
_latency_sum: dict[str, float] = defaultdict(float)
_latency_count: dict[str, int] = defaultdict(int)
_process_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
_dirty = False
_publisher: threading.Thread | None = None


def observe(
    app: str, status: int, decision: str, upstream_seconds: float | None
) -> None:
    global _dirty
    with _lock:
        _requests[(app, str(status))] += 1
        _decisions[(app, decision)] += 1
        if upstream_seconds is not None:
            buckets = _latency_buckets.setdefault(app, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if upstream_seconds <= bound:
                    buckets[i] += 1
            _latency_sum[app] += upstream_seconds
            _latency_count[app] += 1
        _dirty = True
    if _publisher is None or not _publisher.is_alive():
        _start_publisher()


def _start_publisher() -> None:
    global _publisher
    with _lock:
        if _publisher is not None and _publisher.is_alive():
            return
        _publisher = threading.Thread(
            target=_publish_forever, name="metrics-publisher", daemon=True
        )
        _publisher.start()


def _publish_forever() -> None:
    """Publish on a timer, off the request path, even when traffic stops.

    Publishing only when a request arrives would leave an idle worker's last
    counts unpublished for as long as it stays idle.
    """
    global _dirty
    last = time.monotonic()
    while True:
        time.sleep(PUBLISH_SECONDS)
        with _lock:
            changed, _dirty = _dirty, False
        # Unchanged totals are refreshed too, before they expire from the
        # cache, or an idle worker's counts would drop out of the sum.
        if changed or time.monotonic() - last > STALE_SECONDS / 2:
            publish()
            last = time.monotonic()


def _snapshot() -> dict:
    with _lock:
        return {
            "requests": [[k[0], k[1], v] for k, v in _requests.items()],
            "decisions": [[k[0], k[1], v] for k, v in _decisions.items()],
            "latency": [
                [app, list(b), _latency_sum[app], _latency_count[app]]
                for app, b in _latency_buckets.items()
            ],
        }


def publish() -> None:
    """Copy this process's totals to the shared cache; never raises."""
    try:
        key = f"metrics:proc:{_process_id}"
        cache.set(key, _snapshot(), timeout=STALE_SECONDS)
        index = set(cache.get(_INDEX_KEY) or [])
        if key not in index:
            index.add(key)
            cache.set(_INDEX_KEY, sorted(index), timeout=None)
    except Exception:  # noqa: BLE001 - metrics must never break a request
        logger.debug("metrics publish failed", exc_info=True)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render() -> str:
    publish()
    index = cache.get(_INDEX_KEY) or []
    found = cache.get_many(index)
    if len(found) != len(index):
        cache.set(_INDEX_KEY, sorted(found), timeout=None)
    requests: dict[tuple[str, str], int] = defaultdict(int)
    decisions: dict[tuple[str, str], int] = defaultdict(int)
    buckets: dict[str, list[int]] = {}
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for data in found.values():
        for app, status, n in data["requests"]:
            requests[(app, status)] += n
        for app, decision, n in data["decisions"]:
            decisions[(app, decision)] += n
        for app, b, total, count in data["latency"]:
            acc = buckets.setdefault(app, [0] * len(BUCKETS))
            for i, n in enumerate(b):
                acc[i] += n
            sums[app] += total
            counts[app] += count
    lines = [
        "# HELP accessportal_requests_total Requests to applications by status.",
        "# TYPE accessportal_requests_total counter",
    ]
    for (app, status), n in sorted(requests.items()):
        lines.append(
            f'accessportal_requests_total{{app="{_escape(app)}",status="{status}"}} {n}'
        )
    lines += [
        "# HELP accessportal_decisions_total Access decisions by outcome.",
        "# TYPE accessportal_decisions_total counter",
    ]
    for (app, decision), n in sorted(decisions.items()):
        labels = f'app="{_escape(app)}",decision="{decision}"'
        lines.append(f"accessportal_decisions_total{{{labels}}} {n}")
    lines += [
        "# HELP accessportal_upstream_seconds "
        "Time until the upstream's response headers.",
        "# TYPE accessportal_upstream_seconds histogram",
    ]
    for app, acc in sorted(buckets.items()):
        label = _escape(app)
        for bound, n in zip(BUCKETS, acc, strict=True):
            bucket = f'app="{label}",le="{bound}"'
            lines.append(f"accessportal_upstream_seconds_bucket{{{bucket}}} {n}")
        bucket = f'app="{label}",le="+Inf"'
        lines.append(f"accessportal_upstream_seconds_bucket{{{bucket}}} {counts[app]}")
        lines.append(
            f'accessportal_upstream_seconds_sum{{app="{label}"}} {sums[app]:.6f}'
        )
        lines.append(
            f'accessportal_upstream_seconds_count{{app="{label}"}} {counts[app]}'
        )
    return "\n".join(lines) + "\n"
