"""The admin site: staff only, TOTP outside demo mode, throttled sign-in.

``accessportal.admin_apps.PortalAdminConfig`` makes ``PortalAdminSite``
the default ``admin.site``, so every app's ``admin.py`` registers on it
unchanged. Outside demo mode the
login form asks for a one-time code from a device enrolled with
``manage.py enroll_totp``, and only a session verified by such a device may
use the admin (django-otp's ``OTPAdminSite``).
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import ModelAdmin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.sites import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from accessportal import admin_throttle
from apps.audit.adminlog import AuditMixin, request_ip
from apps.audit.service import record_event

logger = logging.getLogger(__name__)


class PortalOTPAuthenticationForm(OTPAdminAuthenticationForm):
    """Password plus a code; the device is picked from the code's shape.

    django-otp wants the device chosen explicitly (trying every device would
    count failures against unrelated ones). An admin typically has one
    authenticator and maybe backup codes, so a code of digits goes to the
    authenticator and any other code to the backup codes; the device list
    still wins when the admin picks one.
    """

    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": "Enter the six-digit code from your authenticator "
        "app, or one of your backup codes.",
    }

    def _chosen_device(self, user: Any) -> Any:
        chosen = super()._chosen_device(user)
        if chosen is not None:
            return chosen
        from django_otp.plugins.otp_static.models import StaticDevice
        from django_otp.plugins.otp_totp.models import TOTPDevice

        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            # Said plainly instead of django-otp's "select a device", which
            # the form offers no way to do.
            raise forms.ValidationError(
                "This account has no authenticator yet. An operator enrols one "
                "with: python manage.py enroll_totp USERNAME",
                code="no_device",
            )
        token = str(self.cleaned_data.get("otp_token") or "").strip()
        model = TOTPDevice if token.isdigit() else StaticDevice
        return model.objects.filter(user=user, confirmed=True).order_by("id").first()


class PortalAdminSite(OTPAdminSite):
    site_header = "Access Portal administration"
    site_title = "Access Portal admin"
    index_title = "Applications, policies, tokens and audit"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    # Read on every request (not fixed at import) so that the mode a process
    # runs in is the mode its admin enforces.
    @property  # type: ignore[override]
    def login_form(self) -> type[AdminAuthenticationForm]:
        if settings.DEMO:
            return AdminAuthenticationForm
        return PortalOTPAuthenticationForm

    @property  # type: ignore[override]
    def login_template(self) -> str:
        return "admin/login.html" if settings.DEMO else "otp/admin111/login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not AdminSite.has_permission(self, request):
            return False
        if settings.DEMO:
            return True
        # OTPMiddleware adds is_verified; a user object set by a login in this
        # very request lacks it and counts as unverified.
        is_verified = getattr(request.user, "is_verified", None)
        return callable(is_verified) and bool(is_verified())

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        username = str(request.POST.get("username", ""))[:150]
        ip = request_ip(request) or "unknown"
        if admin_throttle.is_blocked(username, ip):
            logger.warning("admin sign-in throttled for a name from %s", ip)
            record_event(
                "admin_login_throttled",
                actor=username,
                client_ip=request_ip(request),
                outcome="throttled",
            )
            context = {**self.each_context(request), "title": "Too many attempts"}
            return TemplateResponse(
                request, "admin/login_throttled.html", context, status=429
            )
        response = super().login(request, extra_context)
        if response.status_code in (301, 302) and request.user.is_authenticated:
            admin_throttle.clear_user(username, ip)
            logger.info("admin %s signed in", request.user.get_username())
            record_event(
                "admin_login",
                actor=request.user.get_username(),
                client_ip=request_ip(request),
                outcome="ok",
            )
        else:
            admin_throttle.register_failure(username, ip)
            logger.warning("admin sign-in failed from %s", ip)
            record_event(
                "admin_login_failed",
                actor=username,
                client_ip=request_ip(request),
                outcome="failed",
            )
        return response

    def register(
        self, model_or_iterable: Any, admin_class: Any = None, **options: Any
    ) -> None:
        admin_class = admin_class or ModelAdmin
        if not issubclass(admin_class, AuditMixin):
            admin_class = type(
                f"Audited{admin_class.__name__}", (AuditMixin, admin_class), {}
            )
        super().register(model_or_iterable, admin_class, **options)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from apps.policies.tester import policy_tester_view

        extra = [
            path(
                "policy-tester/",
                self.admin_view(policy_tester_view),
                name="policy_tester",
            )
        ]
        return extra + super().get_urls()
