"""ES256 keys for the assertion header, and the assertion itself.

The first key is made on first use, so a fresh database needs no set-up step.
``rotate_signing_key`` makes a new current key and keeps the previous one
published, so upstreams that cached the old key keep verifying assertions
signed just before the rotation.

Limitations: a signed assertion is reused for the same identity and
application until less than ``REUSE_MARGIN`` of its life is left, so ``iat``
can be up to a couple of minutes old; its ``exp`` is always in the future.
A rotation reaches other processes at their next configuration poll.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from apps.policies.engine import Identity
from apps.proxy.models import SigningKey

LIFETIME = 5 * 60
REUSE_MARGIN = 3 * 60
_CACHE_SIZE = 20_000


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def _new_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    x, y = _b64(numbers.x), _b64(numbers.y)
    kid = hashlib.sha256(f"{x}.{y}".encode()).hexdigest()[:16]
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }
    return SigningKey(kid=kid, private_pem=pem, public_jwk=jwk)


@transaction.atomic
def rotate_signing_key() -> SigningKey:
    """Make a new current key; the previous one stays published."""
    now = timezone.now()
    SigningKey.objects.filter(retired_at__isnull=True).update(retired_at=now)
    key = _new_key()
    key.save()
    _state.reset()
    from apps.policies.snapshot import bump_version

    transaction.on_commit(bump_version)
    return key


def _first_current() -> SigningKey | None:
    return (
        SigningKey.objects.filter(retired_at__isnull=True)
        .order_by("-created_at", "-id")
        .first()
    )


def current_key() -> SigningKey:
    """The key that signs now; made on first use of a fresh database.

    Every worker may get here at once on a fresh database. SQLite refuses a
    second writer with "database is locked" instead of waiting when a read
    transaction tries to write, so the key is written in a transaction of its
    own and a loser simply reads the winner's key. Two keys made in a tie are
    harmless: the newest signs and both are published.
    """
    for attempt in range(20):
        key = _first_current()
        if key is not None:
            return key
        try:
            with transaction.atomic():
                _new_key().save()
        except OperationalError:
            time.sleep(0.05 * (attempt + 1))
    key = _first_current()
    if key is None:
        raise OperationalError("could not create the first signing key")
    return key


def published_keys() -> list[dict[str, Any]]:
    current = current_key()
    previous = (
        SigningKey.objects.exclude(pk=current.pk).order_by("-created_at", "-id").first()
    )
    return [k.public_jwk for k in (current, previous) if k is not None]


@dataclass
class _Loaded:
    kid: str
    private: Any
    loaded_at: float


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: _Loaded | None = None
        self.tokens: OrderedDict[tuple, tuple[str, float]] = OrderedDict()

    def reset(self) -> None:
        with self.lock:
            self.loaded = None
            self.tokens.clear()


_state = _State()


def _signer(version: str) -> _Loaded:
    loaded = _state.loaded
    if loaded is not None and loaded.loaded_at == hash(version):
        return loaded
    key = current_key()
    private = serialization.load_pem_private_key(
        key.private_pem.encode(), password=None
    )
    loaded = _Loaded(key.kid, private, hash(version))
    with _state.lock:
        if _state.loaded is None or _state.loaded.kid != key.kid:
            _state.tokens.clear()
        _state.loaded = loaded
    return loaded


def assertion_for(who: Identity, audience: str, config_version: str) -> str:
    """A signed assertion for this identity and audience, reused briefly."""
    signer = _signer(config_version)
    cache_key = (who.sub, who.email, tuple(who.groups), audience, signer.kid)
    now = time.time()
    with _state.lock:
        hit = _state.tokens.get(cache_key)
        if hit is not None and hit[1] - now > REUSE_MARGIN:
            _state.tokens.move_to_end(cache_key)
            return hit[0]
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": settings.PORTAL_URL,
        "aud": audience,
        "sub": who.sub,
        "groups": who.groups,
        "type": "service" if who.is_service else "user",
        "iat": issued,
        "nbf": issued - 5,
        "exp": issued + LIFETIME,
    }
    if not who.is_service:
        claims["email"] = who.email
    token = jwt.encode(
        claims, signer.private, algorithm="ES256", headers={"kid": signer.kid}
    )
    with _state.lock:
        _state.tokens[cache_key] = (token, issued + LIFETIME)
        if len(_state.tokens) > _CACHE_SIZE:
            _state.tokens.popitem(last=False)
    return token
