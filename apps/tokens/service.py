"""Issue, verify, rotate and revoke service tokens.

Secrets are 256 random bits, so a single SHA-256 is a sound hash: there is no
low-entropy password to protect with a slow key-derivation function, and the
hot path stays fast. Comparison is constant-time, and an unknown client id
costs the same work as a known one, so timing tells nothing about which ids
exist.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.tokens.models import ServiceToken

logger = logging.getLogger(__name__)

DEFAULT_LIFETIME = timedelta(days=365)
DEFAULT_GRACE = timedelta(hours=24)
_DUMMY_HASH = hashlib.sha256(b"no-such-token").hexdigest()


def _now() -> datetime:
    return timezone.now()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ServiceToken
    client_id: str
    secret: str


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def issue_token(
    name: str, lifetime: timedelta = DEFAULT_LIFETIME, actor: str = ""
) -> IssuedToken:
    from apps.audit.service import record_event

    client_id = f"{secrets.token_hex(16)}.access"
    secret = _new_secret()
    token = ServiceToken(
        name=name,
        client_id=client_id,
        secret_hash=hash_secret(secret),
        expires_at=_now() + lifetime,
        created_by=actor,
    )
    token.full_clean()
    token.save()
    logger.info("service token %s (%s) issued", token.pk, name)
    record_event(
        "token_issued",
        actor=actor,
        outcome="ok",
        detail={"token": name, "client_id": client_id},
    )
    return IssuedToken(token, client_id, secret)


@transaction.atomic
def rotate_token(
    token: ServiceToken, grace: timedelta = DEFAULT_GRACE, actor: str = ""
) -> str:
    """Give the token a new secret; the old one keeps working for ``grace``."""
    from apps.audit.service import record_event

    secret = _new_secret()
    token.previous_secret_hash = token.secret_hash
    token.previous_valid_until = _now() + grace
    token.secret_hash = hash_secret(secret)
    token.save()
    logger.info("service token %s rotated", token.pk)
    record_event(
        "token_rotated",
        actor=actor,
        outcome="ok",
        detail={"token": token.name, "grace_seconds": int(grace.total_seconds())},
    )
    return secret


def revoke_token(token: ServiceToken, actor: str = "") -> None:
    from apps.audit.service import record_event
    from apps.proxy.revocation import revoke_token_now

    if token.revoked_at is None:
        token.revoked_at = _now()
        token.save()
    revoke_token_now(token.pk)
    logger.info("service token %s revoked", token.pk)
    record_event(
        "token_revoked", actor=actor, outcome="ok", detail={"token": token.name}
    )


def check_secret(
    secret: str,
    current_hash: str,
    previous_hash: str,
    previous_until: datetime | None,
    now: datetime,
) -> bool:
    digest = hash_secret(secret)
    ok = hmac.compare_digest(digest, current_hash or _DUMMY_HASH)
    if previous_hash and previous_until is not None and now < previous_until:
        ok = hmac.compare_digest(digest, previous_hash) or ok
    else:
        hmac.compare_digest(digest, _DUMMY_HASH)
    return ok
