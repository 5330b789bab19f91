"""Admin edits as audit events, beside Django's own LogEntry.

``AuditedAdmin`` hooks the three places Django's admin reports a change
(``log_addition``, ``log_change``, ``log_deletions``), so every add, change
and delete made through any admin page, inline included, leaves an
``AuditEvent`` naming the admin who made it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accessportal.admin_site import actor_of, request_ip
from apps.audit.service import record_event


def application_of(obj: Any) -> str:
    """The slug of the application an object belongs to, if any."""
    from apps.policies.models import Application, Policy, Rule

    if isinstance(obj, Application):
        return obj.slug
    if isinstance(obj, Policy):
        return obj.application.slug
    if isinstance(obj, Rule):
        return obj.policy.application.slug
    return ""


def record_admin_event(
    request: HttpRequest, kind: str, obj: Any = None, **detail: Any
) -> None:
    if obj is not None:
        detail = {
            "model": obj._meta.label_lower,
            "id": obj.pk,
            "object": str(obj),
            **detail,
        }
    record_event(
        kind,
        actor=actor_of(request),
        application=application_of(obj) if obj is not None else "",
        client_ip=request_ip(request),
        outcome="ok",
        detail=detail,
    )


class AuditedAdmin(admin.ModelAdmin):
    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        record_admin_event(request, "admin_add", obj, changes=message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        record_admin_event(request, "admin_change", obj, changes=message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            record_admin_event(request, "admin_delete", obj)
        return super().log_deletions(request, queryset)
