"""The per-application cookie: a compact HMAC-signed record of one login.

Verification is a single HMAC over a short string, cached per process, so a
cookie costs no database read; whether its session was revoked is checked in
the shared cache on every request (``apps.proxy.revocation``). The key is
derived from ``SECRET_KEY`` under its own label, so a value signed for any
other purpose (Django sessions, handoff codes) never verifies as a cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

from django.conf import settings

_LABEL = b"accessportal.app-cookie.v1"
_CACHE_SIZE = 20_000


def _key() -> bytes:
    return hashlib.sha256(_LABEL + settings.SECRET_KEY.encode()).digest()


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class CookieClaims:
    app_id: int
    sid: str
    user_id: int
    email: str
    username: str
    orgs: tuple[str, ...]
    teams: tuple[str, ...]
    method: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cookie(claims: CookieClaims) -> str:
    body = json.dumps(
        [
            claims.app_id,
            claims.sid,
            claims.user_id,
            claims.email,
            claims.username,
            list(claims.orgs),
            list(claims.teams),
            claims.method,
            claims.issued_at,
            claims.expires_at,
        ],
        separators=(",", ":"),
    ).encode()
    payload = _b64(body)
    mac = hmac.new(_key(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


class _VerifiedCache:
    def __init__(self) -> None:
        self.items: OrderedDict[str, CookieClaims] = OrderedDict()
        self.lock = Lock()

    def get(self, value: str) -> CookieClaims | None:
        with self.lock:
            claims = self.items.get(value)
            if claims is not None:
                self.items.move_to_end(value)
            return claims

    def put(self, value: str, claims: CookieClaims) -> None:
        with self.lock:
            self.items[value] = claims
            if len(self.items) > _CACHE_SIZE:
                self.items.popitem(last=False)


_verified = _VerifiedCache()


def decode_cookie(value: str, app_id: int) -> CookieClaims | None:
    """Return the claims of a genuine, unexpired cookie for ``app_id``."""
    if not value or len(value) > 4096:
        return None
    claims = _verified.get(value)
    if claims is None:
        claims = _verify(value)
        if claims is None:
            return None
        _verified.put(value, claims)
    if claims.app_id != app_id or claims.expires_at <= _now():
        return None
    return claims


def _verify(value: str) -> CookieClaims | None:
    payload, sep, mac = value.partition(".")
    if not sep or not payload or not mac:
        return None
    expected = hmac.new(_key(), payload.encode(), hashlib.sha256).digest()
    # Compared as text: a lenient base64 decoder would accept many spellings
    # of one MAC (stray characters, other padding), making cookies malleable.
    if not hmac.compare_digest(mac.encode(), _b64(expected).encode()):
        return None
    try:
        fields = json.loads(_unb64(payload))
        app_id, sid, user_id, email, username, orgs, teams, method, iat, exp = fields
        return CookieClaims(
            app_id=int(app_id),
            sid=str(sid),
            user_id=int(user_id),
            email=str(email),
            username=str(username),
            orgs=tuple(str(o) for o in orgs),
            teams=tuple(str(t) for t in teams),
            method=str(method),
            issued_at=int(iat),
            expires_at=int(exp),
        )
    except (ValueError, TypeError):
        return None
