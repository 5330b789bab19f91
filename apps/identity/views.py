"""Pages of the portal host: login (PIN and GitHub), launcher, logout."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.service import record_event
from apps.identity import pin as pins
from apps.identity.admission import launcher_entries
from apps.identity.forms import EmailForm, PinForm
from apps.identity.middleware import csp_with_form_targets
from apps.identity.ratelimit import consume
from apps.identity.sessions import (
    end_request_session,
    establish_session,
    session_identity,
)
from apps.policies.snapshot import get_snapshot
from apps.proxy.clientip import client_ip
from apps.proxy.handoff import start_handoff
from apps.proxy.returnto import ReturnTo, read_return

logger = logging.getLogger(__name__)

# Wrong codes per client across all addresses: five per code already bound
# one address; this bounds a client guessing across many.
VERIFY_PER_CLIENT = (60, 3600)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(
        request,
        "errors/error.html",
        {
            "title": "Form expired",
            "message": "This form is no longer valid. "
            "Go back, reload the page and try again.",
        },
        status=403,
    )


def _ip(request: HttpRequest) -> str | None:
    found = client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
    return str(found) if found is not None else None


def _app_slug(ret: ReturnTo | None) -> str:
    if ret is None:
        return ""
    app = get_snapshot().apps.get(ret.app_id)
    return app.slug if app is not None else ""


def continue_after_login(
    request: HttpRequest, ret: ReturnTo | None, facts: dict[str, Any]
) -> HttpResponse:
    """Hand off to the application the member came from, else the launcher."""
    if ret is not None:
        response = start_handoff(ret, facts)
        if response is not None:
            return response
    return HttpResponseRedirect("/")


def _form_targets(response: HttpResponse, next_value: str) -> HttpResponse:
    """Let the page's forms lead to the handoff of the app in ``next``."""
    ret = read_return(next_value)
    app = get_snapshot().apps.get(ret.app_id) if ret is not None else None
    if ret is not None and app is not None and ret.host in app.hosts:
        response.headers["Content-Security-Policy"] = csp_with_form_targets(
            app.public_origin(ret.host)
        )
    return response


def _login_url(next_value: str) -> str:
    if read_return(next_value) is None:
        return "/login/"
    return f"/login/?next={quote(next_value, safe='')}"


def _login_context(next_value: str, **extra: Any) -> dict[str, Any]:
    ret = read_return(next_value)
    signed = next_value if ret is not None else ""
    return {
        "next": signed,
        "bad_next": bool(next_value) and ret is None,
        "github_next": f"/login/?next={quote(signed, safe='')}" if signed else "/",
        "app_name": _app_name(ret),
        **extra,
    }


def _app_name(ret: ReturnTo | None) -> str:
    if ret is None:
        return ""
    app = get_snapshot().apps.get(ret.app_id)
    return app.name if app is not None else ""


def _login_page(
    request: HttpRequest, next_value: str, status: int = 200, **extra: Any
) -> HttpResponse:
    context = _login_context(next_value, **extra)
    context.setdefault("form", EmailForm(initial={"next": context["next"]}))
    response = render(request, "identity/login.html", context, status=status)
    return _form_targets(response, context["next"])


@require_GET
def login_page(request: HttpRequest) -> HttpResponse:
    next_value = request.GET.get("next", "")
    facts = session_identity(request)
    if facts is not None:
        # Signed in already: this is how an application cookie that lapsed
        # is issued again without asking the member anything.
        return continue_after_login(request, read_return(next_value), facts)
    return _login_page(request, next_value)


@require_http_methods(["GET", "POST"])
def pin_request(request: HttpRequest) -> HttpResponse:
    if not settings.PIN_LOGIN_ENABLED:
        raise Http404
    if request.method == "GET":
        # A reload or a bookmark of the code page: start again.
        return HttpResponseRedirect(_login_url(request.GET.get("next", "")))
    form = EmailForm(request.POST)
    next_value = request.POST.get("next", "")
    if not form.is_valid():
        return _login_page(request, next_value, status=400, form=form)
    email = form.cleaned_data["email"]
    try:
        pins.request_pin(email, _ip(request))
    except pins.SendLimited:
        return _login_page(
            request,
            next_value,
            status=429,
            form=form,
            notice="Too many codes were asked for. Wait a while, then try again.",
        )
    return _pin_page(request, email, next_value)


def _pin_page(
    request: HttpRequest,
    email: str,
    next_value: str,
    status: int = 200,
    form: PinForm | None = None,
    error: str = "",
) -> HttpResponse:
    context = _login_context(next_value)
    context.update(
        {
            "email": email,
            "pin_form": form or PinForm(initial={"email": email}),
            "error": error,
        }
    )
    response = render(request, "identity/pin.html", context, status=status)
    return _form_targets(response, context["next"])


# One answer for every failure: saying "expired" or "too many tries" only
# ever happens for an address that was sent a code, so distinct messages
# would tell a stranger which addresses may sign in.
_PIN_FAILED = (
    "That code is not right, has expired, or was already used. Check the "
    "newest mail, or ask for a new code."
)


@require_POST
def pin_verify(request: HttpRequest) -> HttpResponse:
    if not settings.PIN_LOGIN_ENABLED:
        raise Http404
    form = PinForm(request.POST)
    next_value = request.POST.get("next", "")
    ip = _ip(request)
    if not form.is_valid():
        if "email" in form.errors:
            return _login_page(request, next_value, status=400, form=EmailForm())
        return _pin_page(
            request,
            form.cleaned_data["email"],
            next_value,
            status=400,
            form=form,
        )
    email = form.cleaned_data["email"]
    if not consume("pin-verify-client", ip or "unknown", *VERIFY_PER_CLIENT):
        logger.warning("PIN checks throttled for a client")
        return _pin_page(
            request,
            email,
            next_value,
            status=429,
            error="Too many tries from your network. Wait a while, then try again.",
        )

    device = pins.find_device(email)
    result = (
        pins.check_pin(device, form.cleaned_data["pin"])
        if device is not None
        else pins.PinCheck.NO_PIN
    )
    ret = read_return(next_value)
    if result is not pins.PinCheck.OK or device is None:
        record_event(
            "pin_failed",
            actor=email,
            application=_app_slug(ret),
            client_ip=ip,
            outcome="deny",
            detail={"reason": result.value},
        )
        return _pin_page(request, email, next_value, status=400, error=_PIN_FAILED)
    user = device.user
    if user.is_staff or user.is_superuser or not user.is_active:
        # A staff account cannot come into being through the member flows;
        # it can only have been made staff after its PIN was mailed.
        record_event(
            "login_failed",
            actor=email,
            client_ip=ip,
            outcome="deny",
            detail={"method": "pin", "reason": "staff-account"},
        )
        return _refused(request, "This address belongs to an administrator account.")

    facts = establish_session(request, user, "pin", client_ip=ip)
    record_event(
        "login_succeeded",
        actor=email,
        application=_app_slug(ret),
        client_ip=ip,
        outcome="ok",
        detail={"method": "pin"},
    )
    return continue_after_login(request, ret, facts)


def _refused(request: HttpRequest, message: str, status: int = 403) -> HttpResponse:
    return render(
        request,
        "identity/refused.html",
        {"message": message, "status": status},
        status=status,
    )


@require_GET
def launcher(request: HttpRequest) -> HttpResponse:
    facts = session_identity(request)
    if facts is None:
        return HttpResponseRedirect("/login/")
    found = client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
    return render(
        request,
        "identity/launcher.html",
        {"facts": facts, "entries": launcher_entries(facts, found)},
    )


def _signed_out(request: HttpRequest) -> HttpResponse:
    return render(request, "identity/signed_out.html")


def _end_session(request: HttpRequest, where: str) -> None:
    facts = request.session.get("accessportal.identity") or {}
    end_request_session(request)
    if facts:
        record_event(
            "logout",
            actor=facts.get("email", ""),
            client_ip=_ip(request),
            outcome="ok",
            detail={"where": where},
        )


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        _end_session(request, "portal")
        return _signed_out(request)
    if request.GET.get("switch"):
        # The 403 page's "use another account": leave this login at once and
        # offer the sign-in form. Signing someone out by a link is harmless
        # here; they can only sign in again.
        _end_session(request, "switch")
        return HttpResponseRedirect(_login_url(request.GET.get("next", "")))
    if request.GET.get("done") or session_identity(request) is None:
        return _signed_out(request)
    return render(request, "identity/logout.html", {"facts": session_identity(request)})
