"""The one-time handoff that sets an application's cookie.

The portal (which holds the global session) cannot set a cookie on another
host, so it mints a code that lives under a minute, is bound to one
application, one public host and one login session, and can be redeemed
once at ``<app>/.accessportal/authorized``.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from django.core.cache import cache
from django.http import HttpResponse, HttpResponseRedirect

from apps.policies.snapshot import get_snapshot
from apps.proxy.returnto import ReturnTo, safe_path

CODE_LIFETIME = 45


def _key(code: str) -> str:
    return f"handoff:{code}"


def start_handoff(ret: ReturnTo, facts: dict[str, Any]) -> HttpResponse | None:
    """Redirect to the app's handoff endpoint, or None if the app is gone."""
    snap = get_snapshot()
    app = snap.apps.get(ret.app_id)
    if app is None or ret.host not in app.hosts:
        return None
    code = secrets.token_urlsafe(32)
    cache.set(
        _key(code),
        {
            "app": app.id,
            "host": ret.host,
            "path": safe_path(ret.path, app.home_path),
            **facts,
            # After the facts, so nothing in them can replace the binding.
            "nonce": ret.nonce,
        },
        timeout=CODE_LIFETIME,
    )
    return HttpResponseRedirect(
        f"{app.public_origin(ret.host)}/.accessportal/authorized?code={quote(code)}"
    )


def redeem_code(code: str) -> dict[str, Any] | None:
    """Return the code's data once; a second redemption gets nothing."""
    if not code or len(code) > 100:
        return None
    key = _key(code)
    data = cache.get(key)
    if data is None:
        return None
    # delete() reports whether this caller removed the key, so of two
    # racing redemptions only one wins.
    if not cache.delete(key):
        return None
    return data
