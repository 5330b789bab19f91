"""Admin edits as audit events, beside Django's own LogEntry.

``AuditMixin`` hooks the three places Django's admin reports a change
(``log_addition``, ``log_change``, ``log_deletions``), so every add, change
and delete made through an admin page, inline included, leaves an
``AuditEvent`` naming the admin who made it. The portal's admin site mixes it
into every model admin it registers, third-party ones (django-otp's devices,
groups) included, so no page can change data unaudited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from apps.audit.service import record_event
from apps.proxy.clientip import client_ip


def request_ip(request: HttpRequest) -> str | None:
    address = client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
    return str(address) if address is not None else None


def actor_of(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None else ""


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


# Type-checked as a ModelAdmin, mixed in ahead of one at run time.
_Base = admin.ModelAdmin if TYPE_CHECKING else object


class AuditMixin(_Base):  # type: ignore[misc,valid-type]
    """Mixed into a ``ModelAdmin``: record its saves and deletions."""

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


class AuditedAdmin(AuditMixin, admin.ModelAdmin):
    pass


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list to read: records the system keeps, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
