"""Send each request to the portal (Django) or to the proxy, by host.

The portal host gets Django, except for paths that a path-mode application
owns. An application host gets the proxy, except for ``/.accessportal/``,
which Django serves (handoff, logout, identity, static files). Any other host
gets a plain 404 without touching Django, so a stray ``Host`` never shows a
``DisallowedHost`` error or reaches the admin.
"""

from __future__ import annotations

import gc
import logging
from functools import lru_cache
from typing import Any

from django.conf import settings

from apps.policies.patterns import PatternError, normalise_host
from apps.policies.snapshot import ConfigUnavailable, get_snapshot
from apps.proxy.app import proxy
from apps.proxy.pages import error, respond

logger = logging.getLogger(__name__)

RESERVED = "/.accessportal/"


def request_host(environ: dict) -> str | None:
    return _normalise_host_header(environ.get("HTTP_HOST") or "")


@lru_cache(maxsize=8192)
def _normalise_host_header(raw: str) -> str | None:
    # Cached: the same few Host values arrive on every request, and
    # normalising one (an IP parse that usually fails, a regex per label)
    # costs more than the rest of the routing.
    if not raw or len(raw) > 300:
        return None
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            return None
        name, rest = raw[1:end], raw[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
    else:
        name, sep, port = raw.partition(":")
        if sep and not port.isdigit():
            return None
    try:
        return normalise_host(name)
    except PatternError:
        return None


class Dispatcher:
    def __init__(self, django_app: Any) -> None:
        self.django_app = django_app
        self.settled: object = None

    def settle(self, snap: object) -> None:
        """Take a new configuration copy out of the garbage collector's way.

        A copy of 10,000 applications is millions of long-lived objects;
        left tracked, every full collection walks all of them in the middle
        of some request. Frozen once per configuration change (a collection
        first, so no garbage is frozen with them), they cost nothing after.
        """
        if snap is self.settled:
            return
        self.settled = snap
        gc.collect()
        gc.freeze()

    def __call__(self, environ: dict, start_response):  # type: ignore[no-untyped-def]
        host = request_host(environ)
        if host is None:
            return respond(
                start_response,
                400,
                b"Bad Request: invalid Host header\n",
                "text/plain; charset=utf-8",
            )
        path = environ.get("PATH_INFO", "")
        reserved = path.startswith(RESERVED)
        if host == settings.PORTAL_HOST:
            if reserved or not self._may_be_path_app(path):
                return self.django_app(environ, start_response)
        try:
            snap = get_snapshot()
        except ConfigUnavailable:
            logger.error(
                "configuration store unavailable; refusing request", exc_info=True
            )
            return self.unavailable(environ, start_response)
        self.settle(snap)
        if host == settings.PORTAL_HOST:
            if not snap.has_host(host):
                return self.django_app(environ, start_response)
            return self._proxy(environ, start_response, host, snap, portal=True)
        if not snap.has_host(host):
            return respond(
                start_response, 404, b"Not Found\n", "text/plain; charset=utf-8"
            )
        if reserved:
            return self.django_app(environ, start_response)
        return self._proxy(environ, start_response, host, snap)

    def _may_be_path_app(self, path: str) -> bool:
        first = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        return first not in {
            "",
            "login",
            "logout",
            "admin",
            "accounts",
            ".well-known",
            "healthz",
            "metrics",
            ".accessportal",
        }

    def _proxy(self, environ, start_response, host, snap, portal=False):  # type: ignore[no-untyped-def]
        try:
            if portal:
                from apps.proxy.paths import (
                    BadPath,
                    parse_target,
                    raw_target_from_environ,
                )

                try:
                    target = parse_target(raw_target_from_environ(environ))
                except BadPath:
                    return self.django_app(environ, start_response)
                if (
                    snap.route(host, target.literal) is None
                    and snap.route(host, target.liberal) is None
                ):
                    return self.django_app(environ, start_response)
            return proxy(environ, start_response, host, snap)
        except ConfigUnavailable:
            logger.error("shared store unavailable; refusing request", exc_info=True)
            return self.unavailable(environ, start_response)
        except Exception as exc:  # fail closed: deciding failed, so nobody passes
            if _is_store_error(exc):
                logger.error(
                    "shared store unavailable; refusing request", exc_info=True
                )
                return self.unavailable(environ, start_response)
            raise

    def unavailable(self, environ, start_response):  # type: ignore[no-untyped-def]
        return error(
            environ,
            start_response,
            503,
            "service_unavailable",
            "Temporarily unavailable",
            "The portal cannot check access right now, so it lets nobody through. "
            "It recovers by itself; try again in a moment.",
            extra=[("Retry-After", "5")],
        )


def _is_store_error(exc: Exception) -> bool:
    from django.db import DatabaseError, InterfaceError

    if isinstance(
        exc, (DatabaseError, InterfaceError, ConnectionError, TimeoutError, OSError)
    ):
        return True
    try:
        import redis

        return isinstance(exc, redis.exceptions.RedisError)
    except ImportError:  # redis is optional in the embedded set-up
        return False
