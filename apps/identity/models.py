"""A member's sign-in: one global session and the facts read at login."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
