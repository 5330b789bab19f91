"""Bind a sign-in to the browser that started it.

A handoff code on its own is a bearer credential: someone who signs in and
stops before following the last redirect could send the link to a victim,
who would then use the application as the sender without noticing (login
CSRF). So when the proxy sends a browser to sign in, it also sets a random
value in a cookie on the application's host, scoped to the handoff endpoint,
and signs the same value into the return address. The handoff endpoint
accepts a code only from the browser holding that cookie.

Limitations: two sign-ins started at once for the same application in one
browser share the cookie, so the one started first fails and has to be
started again.
"""

from __future__ import annotations

import hmac
import secrets

from django.conf import settings

from apps.policies.snapshot import AppSpec

STATE_PATH = "/.accessportal/authorized"
LIFETIME = 3600


def state_cookie_name(app: AppSpec) -> str:
    # A dot cannot appear in an application's cookie name, so this never
    # collides with one; the prefix keeps it out of upstream Cookie headers.
    return f"accessportal_app.state.{app.slug}"


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def set_cookie_header(app: AppSpec, nonce: str) -> tuple[str, str]:
    flags = f"Path={STATE_PATH}; Max-Age={LIFETIME}; HttpOnly; SameSite=Lax"
    if settings.IS_HTTPS:
        flags += "; Secure"
    return ("Set-Cookie", f"{state_cookie_name(app)}={nonce}; {flags}")


def matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected, presented or "")
