"""Answers the proxy gives by itself: error pages and JSON errors.

A browser navigation gets a page from ``templates/errors/``; anything else
gets JSON. Neither ever names an upstream's address, a stack trace or a
credential.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus

from django.template.loader import render_to_string

from apps.identity.middleware import CSP

_PAGE_HEADERS = [
    ("Content-Security-Policy", CSP.format(forms="").replace("  ", " ")),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
]


def wants_html(environ: dict) -> bool:
    """True for a top-level browser navigation, false for XHR and API calls."""
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        return False
    if environ.get("HTTP_X_REQUESTED_WITH", "").lower() == "xmlhttprequest":
        return False
    mode = environ.get("HTTP_SEC_FETCH_MODE")
    if mode and mode != "navigate":
        return False
    return "text/html" in environ.get("HTTP_ACCEPT", "")


def status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def respond(
    start_response,
    code: int,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers += _PAGE_HEADERS
    headers += list(extra)
    start_response(status_line(code), headers)
    return [body]


def json_answer(
    start_response,
    code: int,
    payload: dict,
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = json.dumps(payload).encode()
    return respond(start_response, code, body, "application/json", extra)


def page(
    start_response,
    code: int,
    template: str,
    context: dict,
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    from django.conf import settings

    context = {
        "demo_mode": settings.DEMO,
        "status": code,
        "portal_url": settings.PORTAL_URL,
        **context,
    }
    body = render_to_string(template, context).encode()
    return respond(start_response, code, body, "text/html; charset=utf-8", extra)


def error(
    environ: dict,
    start_response,
    code: int,
    error_code: str,
    title: str,
    message: str,
    app_name: str = "",
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    if wants_html(environ):
        return page(
            start_response,
            code,
            "errors/error.html",
            {"title": title, "message": message, "app_name": app_name},
            extra,
        )
    payload = {"error": error_code, "message": message}
    return json_answer(start_response, code, payload, extra)
