"""Members, their sign-ins, and revoking them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.audit.adminlog import AuditedAdmin, ReadOnlyAdmin, record_admin_event
from apps.identity.models import LoginSession
from apps.identity.sessions import end_login, revoke_user_sessions

User = get_user_model()


class PortalUserAdmin(AuditedAdmin, UserAdmin):
    actions = ["revoke_sessions"]

    @admin.action(description="Revoke all sessions of the selected users")
    def revoke_sessions(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        total = 0
        for user in queryset:
            ended = revoke_user_sessions(user.pk)
            total += ended
            record_admin_event(
                request, "user_sessions_revoked", user, sessions_ended=ended
            )
        self.message_user(
            request,
            f"Sessions revoked for {queryset.count()} user(s); {total} sign-ins ended.",
            messages.SUCCESS,
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, PortalUserAdmin)


@admin.register(LoginSession)
class LoginSessionAdmin(ReadOnlyAdmin):
    list_display = ["user", "method", "client_ip", "created_at", "ended_at"]
    list_filter = ["method", "ended_at"]
    search_fields = ["user__username", "user__email", "client_ip"]
    list_select_related = ["user"]
    # The sid and Django session key are credentials' handles: not shown.
    fields = ["user", "method", "client_ip", "created_at", "ended_at"]
    readonly_fields = ["user", "method", "client_ip", "created_at", "ended_at"]
    actions = ["end_selected"]

    @admin.action(description="End the selected sign-ins")
    def end_selected(
        self, request: HttpRequest, queryset: QuerySet[LoginSession]
    ) -> None:
        count = 0
        for login_session in queryset.filter(ended_at__isnull=True):
            end_login(login_session)
            record_admin_event(request, "session_revoked", login_session)
            count += 1
        self.message_user(request, f"{count} sign-in(s) ended.", messages.SUCCESS)
