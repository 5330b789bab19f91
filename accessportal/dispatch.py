"""Send each request to the portal (Django) or to the proxy, by host.

The portal host gets Django, except for paths that a path-mode application
owns. An application host gets the proxy, except for ``/.accessportal/``,
which Django serves (handoff, logout, identity, static files). Any other host
gets a plain 404 without touching Django, so a stray ``Host`` never shows a
``DisallowedHost`` error or reaches the admin.

While the database cannot be reached, every request except ``/healthz`` and
``/metrics`` on the portal host gets a 503 (see ``StoreCheck``); a lost cache
shows up as an error while deciding, which gets the same 503.

Limitations: a working database is trusted for one poll interval per
process, so for up to that long after it goes away a request may still be
decided from the in-memory configuration (which is then still current: a
change would have needed the database).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from functools import lru_cache
from typing import Any

from django.conf import settings

from accessportal.errors import (
    RETRY_AFTER,
    UNAVAILABLE_MESSAGE,
    UNAVAILABLE_TITLE,
    is_store_error,
)
from apps.policies.patterns import PatternError, normalise_host
from apps.policies.snapshot import ConfigUnavailable, get_snapshot
from apps.proxy.app import proxy
from apps.proxy.pages import error, respond

logger = logging.getLogger(__name__)

RESERVED = "/.accessportal/"
# Operators must be able to see an outage, so these never get the 503.
OPERATOR_PATHS = frozenset({"/healthz", "/metrics"})


class StoreCheck:
    """Whether this process could reach the database lately.

    Proxied requests are decided from memory and the cache, so nothing on
    that path would notice the database going away; yet an instance that
    cannot reach it cannot sign anyone in, load a policy change or record an
    audit event, and must not look healthy to its users. A success is
    trusted for one poll interval (at least a second), so a healthy instance
    pays one ``SELECT 1`` per interval; while the database is down, the next
    request checks again, so service resumes as soon as it is back. Only one
    request at a time runs the check; the others use its last result.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.is_up = True
        self.checked_at = float("-inf")

    def database_is_up(self) -> bool:
        interval = max(1, settings.CONFIG_POLL_SECONDS)
        if self.is_up and time.monotonic() - self.checked_at < interval:
            return True
        if not self.lock.acquire(blocking=False):
            return self.is_up
        try:
            problem = _ping_database()
            self.checked_at = time.monotonic()
            was_up, self.is_up = self.is_up, problem is None
        finally:
            self.lock.release()
        # Logged on the change only: while down, every request checks again.
        if was_up and problem is not None:
            logger.error("database unavailable; refusing requests: %s", problem)
        elif not was_up and problem is None:
            logger.warning("database reachable again; serving requests")
        return problem is None


def _ping_database() -> str | None:
    """Run ``SELECT 1``; return why it failed, or None."""
    from django.db import connection

    # A connection opened here belongs to this request's greenlet and would
    # linger until garbage-collected; one that already existed (a test's
    # transaction, say) is not ours to close.
    is_ours = connection.connection is None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any failure to reach it counts as down
        if not is_store_error(exc):
            raise
        return str(exc) or type(exc).__name__
    finally:
        if is_ours:
            connection.close()


store_check = StoreCheck()


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

    def __call__(self, environ: dict, start_response):
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
        is_operator_path = host == settings.PORTAL_HOST and path in OPERATOR_PATHS
        if not is_operator_path and not store_check.database_is_up():
            return self.unavailable(environ, start_response)
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

    def _proxy(self, environ, start_response, host, snap, portal=False):
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
            if is_store_error(exc):
                logger.error(
                    "shared store unavailable; refusing request", exc_info=True
                )
                return self.unavailable(environ, start_response)
            # Fail closed with a clear answer rather than the server's bare
            # 500; exc_info lets the server abort if headers already went out.
            logger.error("unexpected error in the proxy path", exc_info=True)
            exc_info = sys.exc_info()
            return error(
                environ,
                lambda status, headers: start_response(status, headers, exc_info),
                500,
                "internal_error",
                "Something went wrong",
                "The portal hit an unexpected error and let nothing through. "
                "Try again; if it keeps happening, tell your administrator.",
            )

    def unavailable(self, environ, start_response):
        return error(
            environ,
            start_response,
            503,
            "service_unavailable",
            UNAVAILABLE_TITLE,
            UNAVAILABLE_MESSAGE,
            extra=[("Retry-After", RETRY_AFTER)],
        )
