"""Service tokens in the admin: issue, rotate and revoke.

A secret exists in clear only in the response that issues or rotates it:
that page is rendered straight from the view, never through messages, the
session or a redirect, and is sent with ``Cache-Control: no-store``. Hashes
are never displayed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from apps.audit.adminlog import AuditedAdmin, actor_of
from apps.proxy.revocation import revoke_token_now
from apps.tokens.models import ServiceToken
from apps.tokens.service import issue_token, revoke_token, rotate_token


class TokenIssueForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Used in service_token rules; letters, digits, '-', '_', '.'.",
    )
    expires_days = forms.IntegerField(
        label="Expires in (days)", min_value=1, max_value=3650, initial=365
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name or any(c.isspace() for c in name):
            raise ValidationError("a token name has no spaces")
        if ServiceToken.objects.filter(name=name).exists():
            raise ValidationError("a token with this name exists")
        return name


class TokenRotateForm(forms.Form):
    grace_hours = forms.IntegerField(
        label="Keep the old secret working for (hours)",
        min_value=0,
        max_value=24 * 30,
        initial=24,
    )


@admin.register(ServiceToken)
class ServiceTokenAdmin(AuditedAdmin):
    list_display = [
        "name",
        "client_id",
        "expires_at",
        "state",
        "last_seen",
        "created_by",
    ]
    search_fields = ["name", "client_id"]
    list_filter = ["revoked_at"]
    fields = [
        "name",
        "client_id",
        "expires_at",
        "revoked_at",
        "previous_valid_until",
        "last_seen",
        "created_at",
        "created_by",
    ]
    # The name is what service_token rules match, so renaming a token would
    # silently change which policies admit it; expiry is set when issuing.
    # Both stay as issued (issue a new token, or rotate, instead).
    readonly_fields = [
        "name",
        "expires_at",
        "client_id",
        "revoked_at",
        "previous_valid_until",
        "last_seen",
        "created_at",
        "created_by",
    ]
    actions = ["revoke_selected"]
    change_form_template = "admin/tokens/servicetoken/change_form.html"

    @admin.display(description="state")
    def state(self, obj: ServiceToken) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        from django.utils import timezone

        return "expired" if obj.expires_at <= timezone.now() else "active"

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:object_id>/rotate/",
                self.admin_site.admin_view(self.rotate_view),
                name="tokens_servicetoken_rotate",
            ),
            path(
                "<int:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="tokens_servicetoken_revoke",
            ),
        ]
        return extra + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }

    @method_decorator(never_cache)
    def add_view(
        self,
        request: HttpRequest,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TokenIssueForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                issued = issue_token(
                    form.cleaned_data["name"],
                    lifetime=timedelta(days=form.cleaned_data["expires_days"]),
                    actor=actor_of(request),
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                context = self._context(
                    request,
                    "Service token issued",
                    token=issued.token,
                    client_id=issued.client_id,
                    secret=issued.secret,
                )
                return TemplateResponse(
                    request, "admin/tokens/servicetoken/secret.html", context
                )
        context = self._context(request, "Issue a service token", form=form)
        return TemplateResponse(
            request, "admin/tokens/servicetoken/issue.html", context
        )

    @method_decorator(never_cache)
    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        token = get_object_or_404(ServiceToken, pk=object_id)
        if not self.has_change_permission(request, token):
            raise PermissionDenied
        if token.revoked_at is not None:
            self.message_user(
                request, "A revoked token cannot be rotated.", messages.ERROR
            )
            return HttpResponseRedirect(self._change_url(token))
        form = TokenRotateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            secret = rotate_token(
                token,
                grace=timedelta(hours=form.cleaned_data["grace_hours"]),
                actor=actor_of(request),
            )
            context = self._context(
                request,
                "Service token rotated",
                token=token,
                client_id=token.client_id,
                secret=secret,
                rotated=True,
            )
            return TemplateResponse(
                request, "admin/tokens/servicetoken/secret.html", context
            )
        context = self._context(
            request, f"Rotate the secret of {token.name}", form=form, token=token
        )
        return TemplateResponse(
            request, "admin/tokens/servicetoken/rotate.html", context
        )

    def revoke_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        token = get_object_or_404(ServiceToken, pk=object_id)
        if not self.has_change_permission(request, token):
            raise PermissionDenied
        if request.method == "POST":
            revoke_token(token, actor=actor_of(request))
            self.message_user(request, f"Token {token.name} revoked.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(token))
        context = self._context(request, f"Revoke {token.name}?", token=token)
        return TemplateResponse(
            request, "admin/tokens/servicetoken/revoke.html", context
        )

    def _change_url(self, token: ServiceToken) -> str:
        return reverse(
            f"{self.admin_site.name}:tokens_servicetoken_change", args=[token.pk]
        )

    def delete_model(self, request: HttpRequest, obj: ServiceToken) -> None:
        # Refuse the token at once everywhere, not at each instance's next
        # configuration poll.
        revoke_token_now(obj.pk)
        super().delete_model(request, obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[ServiceToken]
    ) -> None:
        for token_id in queryset.values_list("pk", flat=True):
            revoke_token_now(token_id)
        super().delete_queryset(request, queryset)

    @admin.action(description="Revoke the selected tokens")
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ServiceToken]
    ) -> None:
        count = 0
        for token in queryset:
            revoke_token(token, actor=actor_of(request))
            count += 1
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
