"""Signing keys for the assertion the portal sends upstream."""

from __future__ import annotations

from django.db import models


class SigningKey(models.Model):
    kid = models.CharField(max_length=64, unique=True, editable=False)
    private_pem = models.TextField(editable=False)
    public_jwk = models.JSONField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        state = "retired" if self.retired_at else "current"
        return f"{self.kid} ({state})"
