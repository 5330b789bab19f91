"""Signed-in members for end-to-end tests, through the portal's real handoff.

``handoff_target`` does on the server side what the portal does right after a
member signs in with a PIN: a member ``User`` (username = email), a
``LoginSession`` row and a one-time handoff code for one application. The
browser or HTTP client then redeems the code at
``<app>/.accessportal/authorized``, which sets the real application cookie.

A browser signs in through the real PIN pages (``sign_in_browser``); HTTP
clients that only need a member's cookie take the handoff directly.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from tests.support.browser import sign_in_with_pin
from tests.support.portal import Portal


def handoff_target(
    app_id: int, host: str, email: str, path: str = "/", method: str = "pin"
) -> str:
    """Sign ``email`` in and return ``/.accessportal/authorized?code=...``."""
    from django.contrib.auth import get_user_model

    from apps.identity.models import LoginSession
    from apps.proxy.handoff import start_handoff
    from apps.proxy.returnto import ReturnTo

    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=email, defaults={"email": email}
    )
    if created:
        user.set_unusable_password()
        user.save()
    sid = secrets.token_urlsafe(24)
    LoginSession.objects.create(sid=sid, user=user, method=method)
    facts: dict[str, Any] = {
        "uid": user.pk,
        "email": email,
        "username": "",
        "orgs": [],
        "teams": [],
        "method": method,
        "sid": sid,
    }
    response = start_handoff(ReturnTo(app_id, host, path), facts)
    if response is None:
        raise LookupError(f"application {app_id} is not served at {host}")
    # The redirect's origin comes from this process's PORTAL_URL; only the
    # path and the code matter, the caller knows the portal's address.
    parts = urlsplit(response.url)
    return f"{parts.path}?{parts.query}"


def sign_in_browser(
    page: Any, portal: Portal, app_id: int, host: str, email: str, path: str = "/"
) -> None:
    """Open ``path`` on the application and sign in on the real PIN pages."""
    sign_in_with_pin(page, portal.app_url(host) + path, email)


def redeem(portal: Portal, host: str, target: str) -> str:
    """Redeem a handoff target over HTTP; return the ``Cookie`` value."""
    resp = portal.request("GET", target, host=host)
    if resp.status != 302:
        raise AssertionError(f"handoff answered {resp.status}: {resp.body[:200]!r}")
    cookies = [c.split(";", 1)[0] for c in resp.header_all("Set-Cookie")]
    if not cookies:
        raise AssertionError("handoff set no cookie")
    return "; ".join(cookies)


def sign_in_cookie(
    portal: Portal, app_id: int, host: str, email: str, path: str = "/"
) -> str:
    """Sign a member in for a raw HTTP client; return its ``Cookie`` value."""
    return redeem(portal, host, handoff_target(app_id, host, email, path))
