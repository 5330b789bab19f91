"""Which address a request really came from.

Only hops appended by the ``TRUSTED_PROXY_COUNT`` proxies in front of the
portal are believed. Any client can put anything at the left of
``X-Forwarded-For``, so the left-most entry is never used: with N trusted
proxies the client is the N-th entry from the right. Missing or unparsable
values give no address, which matches no IP rule.
"""

from __future__ import annotations

from functools import lru_cache

from apps.policies.engine import IPAddress, parse_ip

# Peers repeat (load balancers, keep-alive clients); parsing is not free.
_parse_peer = lru_cache(maxsize=4096)(parse_ip)


def client_ip(environ: dict, trusted_proxies: int) -> IPAddress | None:
    peer = _parse_peer(environ.get("REMOTE_ADDR"))
    if trusted_proxies <= 0:
        return peer
    header = environ.get("HTTP_X_FORWARDED_FOR", "")
    hops = [h.strip() for h in header.split(",")] if header else []
    if len(hops) < trusted_proxies:
        return None
    return parse_ip(hops[-trusted_proxies])
