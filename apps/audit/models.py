"""Security events, kept apart from the operators' log lines."""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    time = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=40, db_index=True)
    actor = models.CharField(max_length=320, blank=True, db_index=True)
    application = models.CharField(max_length=64, blank=True, db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=40, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.kind} {self.actor}"
