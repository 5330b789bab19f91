"""One-time PINs: issuing, mailing and checking them.

A PIN is six digits, valid ``PIN_LIFETIME``, good for one sign-in, and dead
after ``MAX_FAILURES`` wrong guesses. Only a keyed hash is stored, so a
database dump does not reveal live codes.

Asking for a PIN (``request_pin``) does the same on the request path for
every well-formed address: count it against the rate limits and queue a
job. The job (``send_pin``) runs on a background thread and decides there
whether the address is admissible; only then is a member created and a mail
sent. That way neither the answer nor its timing tells a stranger which
addresses may sign in.

Limitations: a queued job is lost if the process dies before it runs; the
member then asks for another code. Five wrong tries kill one code, and the
per-address send limit bounds how many codes an address gets, so an attacker
has at most 25 guesses an hour at one address (a one-in-40,000 chance).
"""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from apps.audit.service import record_event
from apps.identity import background
from apps.identity.admission import is_admissible_email
from apps.identity.models import PinDevice
from apps.identity.ratelimit import consume

logger = logging.getLogger(__name__)

PIN_LIFETIME = timedelta(minutes=10)
MAX_FAILURES = 5
PIN_DIGITS = 6
# Per address: enough for a lost mail or two, too few to flood an inbox.
SENDS_PER_ADDRESS = (5, 3600)
# Per client: an office behind one NAT still gets through; a script does not.
SENDS_PER_CLIENT = (30, 3600)


def now() -> datetime:
    """The one clock of this module; tests replace it to move time."""
    return timezone.now()


class PinCheck(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    NO_PIN = "no-pin"


class SendLimited(Exception):
    """Too many PINs were asked for this address or from this client."""


def _hash(device_id: int, pin: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"pin:{device_id}:{pin}".encode(), sha256).hexdigest()


def issue_pin(device: PinDevice) -> str:
    """Replace the device's PIN with a fresh one and return it."""
    pin = f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"
    issued = now()
    device.pin_hash = _hash(device.pk, pin)
    device.valid_until = issued + PIN_LIFETIME
    device.failures = 0
    device.sent_at = issued
    device.save(update_fields=["pin_hash", "valid_until", "failures", "sent_at"])
    return pin


def check_pin(device: PinDevice, pin: str) -> PinCheck:
    """Spend one try on ``pin``; the right one works once.

    Both outcomes are single conditional UPDATEs, so two guesses racing on
    different workers cannot both win or slip past the failure limit.
    """
    with transaction.atomic():
        current = PinDevice.objects.select_for_update().get(pk=device.pk)
        if not current.pin_hash:
            return PinCheck.NO_PIN
        if current.failures >= MAX_FAILURES:
            return PinCheck.EXHAUSTED
        if current.valid_until is None or current.valid_until <= now():
            return PinCheck.EXPIRED
        if hmac.compare_digest(current.pin_hash, _hash(current.pk, pin)):
            used = PinDevice.objects.filter(
                pk=current.pk, pin_hash=current.pin_hash
            ).update(pin_hash="", valid_until=None)
            return PinCheck.OK if used else PinCheck.NO_PIN
        PinDevice.objects.filter(pk=current.pk).update(failures=F("failures") + 1)
        if current.failures + 1 >= MAX_FAILURES:
            return PinCheck.EXHAUSTED
        return PinCheck.WRONG


def find_device(email: str) -> PinDevice | None:
    return (
        PinDevice.objects.filter(user__username=email, user__is_active=True)
        .select_related("user")
        .first()
    )


def request_pin(email: str, client_ip: str | None) -> None:
    """Count the request and queue the send; the same work for every address.

    Raises ``SendLimited`` when the address or the client asked too often;
    the limits count every request, admissible or not, so hitting one says
    nothing about the address.
    """
    per_address = consume("pin-address", email, *SENDS_PER_ADDRESS)
    per_client = consume("pin-client", client_ip or "unknown", *SENDS_PER_CLIENT)
    if not (per_address and per_client):
        logger.warning(
            "PIN request throttled (%s)",
            "address" if not per_address else "client",
        )
        raise SendLimited
    background.submit(lambda: send_pin(email, client_ip))


def member_for(email: str) -> AbstractBaseUser | None:
    """The member account of ``email``, made on first use; None for staff.

    Administrator accounts never sign in through the member flows: a PIN or
    a GitHub login must not hand out a session that carries staff rights.
    """
    users = get_user_model()
    user, created = users.objects.get_or_create(
        username=email, defaults={"email": email, "is_staff": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        logger.info("member %s created", user.pk)
    account: Any = user
    if account.is_staff or account.is_superuser or not account.is_active:
        return None
    return user


def send_pin(email: str, client_ip: str | None) -> None:
    """Mail a fresh PIN if some policy could admit ``email``.

    Runs off the request path, on the background thread.
    """
    if not is_admissible_email(email):
        logger.info("PIN not sent: no policy could admit the address")
        return
    user = member_for(email)
    if user is None:
        logger.warning("PIN not sent: the account is staff or inactive")
        return
    device, _ = PinDevice.objects.get_or_create(
        user=user, defaults={"name": "e-mail PIN", "confirmed": False}
    )
    pin = issue_pin(device)
    context = {
        "pin": pin,
        "minutes": int(PIN_LIFETIME.total_seconds() // 60),
        "portal_url": settings.PORTAL_URL,
    }
    send_mail(
        subject="Your Access Portal sign-in code",
        message=render_to_string("identity/pin_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[email],
    )
    record_event("pin_sent", actor=email, client_ip=client_ip, outcome="ok", detail={})
