"""Operator commands: rotate the signing key, prune the audit log."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.proxy.keys import current_key, published_keys

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_rotate_signing_key_keeps_previous_published() -> None:
    old = current_key()
    output = run("rotate_signing_key")
    new = current_key()
    assert new.kid != old.kid
    assert new.kid in output
    assert "PRIVATE" not in output
    assert [k["kid"] for k in published_keys()] == [new.kid, old.kid]
    assert AuditEvent.objects.get(kind="signing_key_rotated").detail["kid"] == new.kid


def make_event(age_days: int) -> AuditEvent:
    return AuditEvent.objects.create(
        time=timezone.now() - timedelta(days=age_days), kind="login"
    )


def test_prune_audit_default_retention(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUDIT_RETENTION_DAYS = 30
    old, recent = make_event(31), make_event(29)
    output = run("prune_audit")
    assert "Deleted 1 audit events older than 30 days." in output
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    assert AuditEvent.objects.get(kind="audit_pruned").detail == {
        "days": 30,
        "deleted": 1,
    }


def test_prune_audit_days_option() -> None:
    make_event(8)
    make_event(6)
    assert "Deleted 1 " in run("prune_audit", "--days", "7")
    assert AuditEvent.objects.filter(kind="login").count() == 1


@pytest.mark.parametrize("days", ["0", "-3"])
def test_prune_audit_days_below_one_refused(days: str) -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_audit", "--days", days, stdout=StringIO())
