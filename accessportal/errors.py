"""The answer when the shared stores (database, cache) cannot be reached.

The proxy path and the portal's own pages both refuse with the same 503 page
or JSON, so a user sees one clear message whichever part noticed the outage.
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

UNAVAILABLE_TITLE = "Temporarily unavailable"
UNAVAILABLE_MESSAGE = (
    "The portal cannot check access right now, so it lets nobody through. "
    "It recovers by itself; try again in a moment."
)
RETRY_AFTER = "5"


def is_store_error(exc: BaseException) -> bool:
    """True for a failure to reach the database or the shared cache."""
    from django.db import DatabaseError, InterfaceError

    if isinstance(
        exc, (DatabaseError, InterfaceError, ConnectionError, TimeoutError, OSError)
    ):
        return True
    try:
        import redis
    except ImportError:  # redis is optional in the embedded set-up
        return False
    return isinstance(exc, redis.exceptions.RedisError)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler, turned into a 503 when a store is unreachable.

    Django calls this from inside its ``except`` block, so the exception is
    still in ``sys.exc_info()``. A lost database or cache is an outage the
    portal recovers from by itself, not a bug: it deserves the same clear
    503 as the proxy path rather than a bare "Server Error (500)".
    """
    exc = sys.exc_info()[1]
    if exc is None or not is_store_error(exc):
        return defaults.server_error(request)
    from apps.proxy.pages import wants_html

    if wants_html(request.META):
        body = render_to_string(
            "errors/error.html",
            {
                "title": UNAVAILABLE_TITLE,
                "message": UNAVAILABLE_MESSAGE,
                "status": 503,
            },
        )
        response: HttpResponse = HttpResponse(body, status=503)
    else:
        response = JsonResponse(
            {"error": "service_unavailable", "message": UNAVAILABLE_MESSAGE},
            status=503,
        )
    response.headers["Retry-After"] = RETRY_AFTER
    response.headers["Cache-Control"] = "no-store"
    return response
