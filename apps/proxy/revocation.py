"""Revocation marks in the shared cache, read on every request.

A mark outlives any credential it can cancel: app cookies and handoff codes
never live longer than ``MAX_LIFETIME``. Reading the marks is one round trip
(``get_many``); a cache that cannot be read makes the request fail with 503
rather than pass unchecked.
"""

from __future__ import annotations

import time

from django.core.cache import cache

MAX_LIFETIME = 400 * 86400


def _sid_key(sid: str) -> str:
    return f"revoked:sid:{sid}"


def _user_key(user_id: int) -> str:
    return f"revoked:user:{user_id}"


def _app_key(app_id: int) -> str:
    return f"revoked:app:{app_id}"


def _token_key(token_id: int) -> str:
    return f"revoked:token:{token_id}"


def revoke_session(sid: str) -> None:
    cache.set(_sid_key(sid), 1, timeout=MAX_LIFETIME)


def revoke_user(user_id: int) -> None:
    """Cancel every app cookie issued to the user up to now."""
    cache.set(_user_key(user_id), int(time.time()) + 1, timeout=MAX_LIFETIME)


def revoke_app(app_id: int) -> None:
    """Cancel every cookie of one application issued up to now."""
    cache.set(_app_key(app_id), int(time.time()) + 1, timeout=MAX_LIFETIME)


def revoke_token_now(token_id: int) -> None:
    cache.set(_token_key(token_id), 1, timeout=MAX_LIFETIME)


def is_cookie_revoked(sid: str, user_id: int, app_id: int, issued_at: int) -> bool:
    keys = [_sid_key(sid), _user_key(user_id), _app_key(app_id)]
    marks = cache.get_many(keys)
    if marks.get(keys[0]):
        return True
    for key in keys[1:]:
        cutoff = marks.get(key)
        if cutoff is not None and issued_at < int(cutoff):
            return True
    return False


def is_session_revoked(sid: str) -> bool:
    return bool(cache.get(_sid_key(sid)))


def is_token_revoked(token_id: int) -> bool:
    return bool(cache.get(_token_key(token_id)))
