"""Signing keys: public facts only, and a button to rotate."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from apps.audit.adminlog import ReadOnlyAdmin, record_admin_event
from apps.proxy.keys import rotate_signing_key
from apps.proxy.models import SigningKey


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    # The private key is neither listed nor on any form: only these fields.
    list_display = ["kid", "created_at", "retired_at", "is_current"]
    fields = ["kid", "created_at", "retired_at", "public_jwk"]
    readonly_fields = ["kid", "created_at", "retired_at", "public_jwk"]
    change_list_template = "admin/proxy/signingkey/change_list.html"

    @admin.display(boolean=True, description="current")
    def is_current(self, obj: SigningKey) -> bool:
        return obj.retired_at is None

    def get_urls(self) -> list[URLPattern]:
        rotate = path(
            "rotate/",
            self.admin_site.admin_view(require_POST(self.rotate_view)),
            name="proxy_signingkey_rotate",
        )
        return [rotate, *super().get_urls()]

    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_superuser:  # type: ignore[union-attr]
            raise PermissionDenied
        key = rotate_signing_key()
        record_admin_event(request, "signing_key_rotated", kid=key.kid)
        self.message_user(
            request,
            f"New signing key {key.kid}; the previous key stays published.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:proxy_signingkey_changelist"))
