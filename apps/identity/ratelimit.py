"""Fixed-window counters in the shared cache, so limits hold across workers
and instances.

Limitations: a fixed window lets a client spend up to twice the limit around
a window boundary (the end of one window and the start of the next). The
counter's first write uses ``cache.add`` and later ones ``cache.incr``; two
first writes racing in the same instant may both count as the first, which
overshoots by at most the number of racing requests.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache


def _key(scope: str, subject: str, window: int) -> str:
    # Hash the subject so addresses never appear in cache keys verbatim.
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    bucket = int(time.time()) // window
    return f"ratelimit:{scope}:{digest}:{bucket}"


def consume(scope: str, subject: str, limit: int, window: int) -> bool:
    """Count one attempt; False once this window saw ``limit`` of them."""
    key = _key(scope, subject, window)
    if cache.add(key, 1, timeout=window + 5):
        return limit >= 1
    try:
        count = cache.incr(key)
    except ValueError:
        # The key expired between add() and incr(): start again.
        cache.add(key, 1, timeout=window + 5)
        count = 1
    return count <= limit
