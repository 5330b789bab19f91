"""Who sent a request to an application: a service token, a cookie, or nobody.

A malformed, expired, foreign or revoked credential makes the caller
anonymous; only a request that carries token headers in a shape no client
should send (half a pair, two kinds mixed, a doubled header) is refused
outright, since guessing which half was meant would be unsafe.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apps.policies.engine import ANONYMOUS, Identity
from apps.policies.snapshot import AppSpec, Snapshot
from apps.proxy import revocation
from apps.proxy.cookies import decode_cookie
from apps.proxy.headers import read_cookie
from apps.tokens.service import check_secret

logger = logging.getLogger(__name__)

_PAIRS = (
    ("HTTP_ACCESS_CLIENT_ID", "HTTP_ACCESS_CLIENT_SECRET"),
    ("HTTP_CF_ACCESS_CLIENT_ID", "HTTP_CF_ACCESS_CLIENT_SECRET"),
)


class BadTokenHeaders(ValueError):
    """Token headers that do not form one complete pair of one kind."""


def _now() -> datetime:
    return datetime.now(UTC)


def token_pair(environ: dict) -> tuple[str, str] | None:
    present = [(i, s) for i, s in _PAIRS if i in environ or s in environ]
    if not present:
        return None
    if len(present) > 1:
        raise BadTokenHeaders("send one pair of token headers, not both kinds")
    id_key, secret_key = present[0]
    client_id = environ.get(id_key, "")
    secret = environ.get(secret_key, "")
    if not client_id or not secret:
        raise BadTokenHeaders("a service token needs both the client id and the secret")
    if "," in client_id or "," in secret or len(client_id) > 200 or len(secret) > 500:
        raise BadTokenHeaders("a token header was sent more than once")
    return client_id.strip(), secret.strip()


def authenticate(environ: dict, app: AppSpec, snap: Snapshot) -> Identity:
    """Identify the caller; raises ``BadTokenHeaders`` for malformed pairs.

    Errors of the shared cache propagate, so that the caller answers 503
    instead of admitting someone whose revocation it could not check.
    """
    pair = token_pair(environ)
    if pair is not None:
        return _from_token(pair[0], pair[1], snap)
    cookies = environ.get("HTTP_COOKIE")
    if not cookies:
        return ANONYMOUS
    value = read_cookie(cookies, app.cookie_name)
    if value is None:
        return ANONYMOUS
    claims = decode_cookie(value, app.id)
    if claims is None:
        return ANONYMOUS
    if revocation.is_cookie_revoked(
        claims.sid, claims.user_id, app.id, claims.issued_at
    ):
        return ANONYMOUS
    return Identity(
        kind="user",
        sub=f"user:{claims.user_id}",
        email=claims.email,
        username=claims.username or claims.email,
        orgs=frozenset(claims.orgs),
        teams=frozenset(claims.teams),
        method=claims.method,
        session_id=claims.sid,
    )


def _from_token(client_id: str, secret: str, snap: Snapshot) -> Identity:
    now = _now()
    spec = snap.tokens.get(client_id)
    if spec is None:
        check_secret(secret, "", "", None, now)  # same work as a known id
        logger.warning("unknown service token id presented")
        return ANONYMOUS
    if not check_secret(
        secret, spec.secret_hash, spec.previous_hash, spec.previous_until, now
    ):
        logger.warning("wrong secret for service token %s", spec.id)
        return ANONYMOUS
    if spec.revoked or spec.expires_at <= now:
        logger.warning("expired or revoked service token %s presented", spec.id)
        return ANONYMOUS
    if revocation.is_token_revoked(spec.id):
        logger.warning("revoked service token %s presented", spec.id)
        return ANONYMOUS
    return Identity(
        kind="service",
        sub=f"token:{spec.client_id}",
        username=f"token:{spec.name}",
        token_id=spec.id,
        token_name=spec.name,
    )
