"""Failed admin sign-ins, counted per username and per client address.

Counts live in the shared cache, so every worker and every instance sees the
same numbers. Each counter is a fixed window that starts at the first failure
and lasts ``WINDOW`` seconds; ``LIMIT`` failures in a window block further
attempts for that username or address until the window ends.

Limitations: a fixed window lets an attacker make up to ``2 * LIMIT`` guesses
across a window boundary. The username is taken as typed (lowercased), so
guesses against many different names are limited only by the address
counter, which an attacker with many addresses can spread out. When the
client address cannot be told (a wrong ``TRUSTED_PROXY_COUNT``), every such
request shares one address counter, so failures from anyone can lock out
everyone without a known address for the window.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache

LIMIT = 5
WINDOW = 15 * 60


def _keys(username: str, ip: str) -> list[str]:
    # Hash the name: cache keys must be short and free of odd characters.
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"admin-login-fail:user:{name}", f"admin-login-fail:ip:{ip}"]


def is_blocked(username: str, ip: str) -> bool:
    counts = cache.get_many(_keys(username, ip))
    return any(int(n) >= LIMIT for n in counts.values())


def register_failure(username: str, ip: str) -> None:
    for key in _keys(username, ip):
        if not cache.add(key, 1, timeout=WINDOW):
            try:
                cache.incr(key)
            except ValueError:
                # The key expired between add() and incr(): start again.
                cache.add(key, 1, timeout=WINDOW)


def clear_user(username: str, ip: str) -> None:
    """After a good sign-in the name's counter restarts; the address's not."""
    cache.delete(_keys(username, ip)[0])
