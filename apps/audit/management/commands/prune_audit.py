"""Delete audit events older than the retention period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.service import record_event


class Command(BaseCommand):
    help = "Delete audit events older than --days (default AUDIT_RETENTION_DAYS)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is None:
            days = settings.AUDIT_RETENTION_DAYS
        if days < 1:
            raise CommandError("--days must be at least 1")
        cutoff = timezone.now() - timedelta(days=days)
        deleted, _ = AuditEvent.objects.filter(time__lt=cutoff).delete()
        # The pruning itself is an event, so a gap in the log is explained.
        record_event(
            "audit_pruned",
            actor="cli",
            outcome="ok",
            detail={"days": days, "deleted": deleted},
        )
        self.stdout.write(f"Deleted {deleted} audit events older than {days} days.")
