"""A member's sign-in: one global session and the facts read at login."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django_otp.models import Device


class LoginSession(models.Model):
    sid = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="login_sessions",
    )
    session_key = models.CharField(max_length=64, blank=True, db_index=True)
    method = models.CharField(max_length=16)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} via {self.method} at {self.created_at:%Y-%m-%d %H:%M}"


class PinDevice(Device):
    """Where a member's current one-time PIN lives, as a keyed hash.

    One device per member. ``confirmed`` stays False so that django-otp's own
    device listings (the admin's second factor) never offer an emailed PIN:
    this device is read only by the member sign-in in ``apps.identity.pin``.
    """

    pin_hash: models.CharField[str, str] = models.CharField(max_length=128, blank=True)
    valid_until: models.DateTimeField[datetime | None, datetime | None] = (
        models.DateTimeField(null=True, blank=True)
    )
    failures: models.PositiveSmallIntegerField[int, int] = (
        models.PositiveSmallIntegerField(default=0)
    )
    sent_at: models.DateTimeField[datetime | None, datetime | None] = (
        models.DateTimeField(null=True, blank=True)
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user"], name="identity_one_pin_device")
        ]

    def verify_token(self, token: object) -> bool:
        # Never a second factor: django-otp's admin form looks devices up by
        # id without regard to ``confirmed``, and an emailed PIN must not
        # stand in for an administrator's TOTP. Members sign in through
        # ``apps.identity.pin.check_pin``.
        return False
