"""Portal endpoints of the proxy: handoff, app logout, identity, JWKS,
health and metrics."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from apps.audit.service import record_event
from apps.identity.sessions import end_session_by_sid
from apps.policies.engine import Outcome, evaluate_access, parse_ip
from apps.policies.patterns import PatternError, normalise_host
from apps.policies.snapshot import AppSpec, Snapshot, get_snapshot
from apps.proxy import metrics as metrics_mod
from apps.proxy import revocation, state
from apps.proxy.auth import BadTokenHeaders, authenticate
from apps.proxy.clientip import client_ip
from apps.proxy.cookies import CookieClaims, decode_cookie, encode_cookie
from apps.proxy.handoff import redeem_code
from apps.proxy.headers import read_cookie
from apps.proxy.keys import published_keys
from apps.proxy.paths import BadPath, parse_target

logger = logging.getLogger(__name__)


def _host(request: HttpRequest) -> str | None:
    raw = request.META.get("HTTP_HOST", "")
    name = (
        raw[1:].split("]")[0]
        if raw.startswith("[")
        else raw.rsplit(":", 1)[0]
        if raw.count(":") == 1
        else raw
    )
    try:
        return normalise_host(name)
    except PatternError:
        return None


def _ip(request: HttpRequest) -> str | None:
    found = client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
    return str(found) if found is not None else None


def _error(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    from django.shortcuts import render

    return render(
        request,
        "errors/error.html",
        {"title": title, "message": message, "status": status},
        status=status,
    )


@require_GET
def authorized(request: HttpRequest) -> HttpResponse:
    """Redeem a handoff code and set the application's cookie."""
    data = redeem_code(request.GET.get("code", ""))
    host = _host(request)
    if data is None:
        return _error(
            request,
            400,
            "Sign-in link expired",
            "This sign-in link was already used or has expired. "
            "Open the application again to sign in.",
        )
    snap = get_snapshot()
    app = snap.apps.get(int(data["app"]))
    if app is None or host is None or host != data["host"] or host not in app.hosts:
        return _error(
            request,
            400,
            "Wrong application",
            "This sign-in link belongs to another application.",
        )
    nonce = str(data.get("nonce") or "")
    # read_cookie treats a cookie sent twice as absent: a planted duplicate
    # must not be able to win over the browser's own.
    presented = read_cookie(
        request.META.get("HTTP_COOKIE", ""), state.state_cookie_name(app)
    )
    if nonce and not state.matches(nonce, presented):
        return _error(
            request,
            400,
            "Sign-in started elsewhere",
            "This sign-in link was opened in a different browser from the one "
            "that started signing in. Open the application again here to sign in.",
        )
    if revocation.is_session_revoked(data["sid"]):
        return _error(
            request, 400, "Signed out", "This session has ended. Sign in again."
        )
    now = int(time.time())
    who_kwargs = {
        "app_id": app.id,
        "sid": data["sid"],
        "user_id": int(data["uid"]),
        "email": data["email"],
        "username": data.get("username", ""),
        "orgs": tuple(data.get("orgs", [])),
        "teams": tuple(data.get("teams", [])),
        "method": data.get("method", ""),
        "issued_at": now,
    }
    from apps.policies.engine import Identity

    who = Identity(
        kind="user",
        sub=f"user:{data['uid']}",
        email=data["email"],
        username=data.get("username", ""),
        orgs=frozenset(who_kwargs["orgs"]),
        teams=frozenset(who_kwargs["teams"]),
        method=who_kwargs["method"],
    )
    decision = evaluate_access(app.policies, who, parse_ip(_ip(request)))
    lifetime = app.session_duration
    if decision.outcome is Outcome.ALLOW and decision.session_duration:
        lifetime = min(lifetime, decision.session_duration)
    seconds = max(60, int(lifetime.total_seconds()))
    cookie = encode_cookie(CookieClaims(expires_at=now + seconds, **who_kwargs))
    path = _path_on_app(snap, app, host, data.get("path") or "/")
    response = HttpResponseRedirect(path)
    response.set_cookie(
        app.cookie_name,
        cookie,
        max_age=seconds,
        path=app.cookie_path or "/",
        secure=settings.IS_HTTPS,
        httponly=True,
        samesite="Lax",
    )
    if nonce:
        response.delete_cookie(
            state.state_cookie_name(app), path=state.STATE_PATH, samesite="Lax"
        )
    response.headers["Cache-Control"] = "no-store"
    return response


def _path_on_app(snap: Snapshot, app: AppSpec, host: str, path: str) -> str:
    try:
        target = parse_target(path)
    except BadPath:
        return app.home_path
    if (
        snap.route(host, target.literal) is not app
        or snap.route(host, target.liberal) is not app
    ):
        return app.home_path
    return path


def _cookies_on_host(
    request: HttpRequest, host: str
) -> list[tuple[AppSpec, CookieClaims | None]]:
    snap = get_snapshot()
    header = request.META.get("HTTP_COOKIE", "")
    out = []
    for app in snap.routes.get(host, []):
        value = read_cookie(header, app.cookie_name) if header else None
        out.append((app, decode_cookie(value, app.id) if value else None))
    return out


@require_http_methods(["GET", "POST"])
def app_logout(request: HttpRequest) -> HttpResponse:
    """Sign out from an application host: ends the whole login everywhere."""
    host = _host(request)
    response = HttpResponseRedirect(f"{settings.PORTAL_URL}/logout/?done=1")
    if host is None:
        return response
    for app, claims in _cookies_on_host(request, host):
        if claims is not None:
            found = end_session_by_sid(claims.sid)
            record_event(
                "logout",
                actor=claims.email,
                application=app.slug,
                client_ip=_ip(request),
                outcome="ok",
                detail={"where": "application", "ended": found is not None},
            )
        response.delete_cookie(
            app.cookie_name, path=app.cookie_path or "/", samesite="Lax"
        )
    response.headers["Cache-Control"] = "no-store"
    return response


@require_GET
def identity(request: HttpRequest) -> HttpResponse:
    """What the portal knows of the caller on this application host."""
    host = _host(request)
    snap = get_snapshot()
    apps = snap.routes.get(host or "", [])
    for app in apps:
        try:
            who = authenticate(request.META, app, snap)
        except BadTokenHeaders as exc:
            return JsonResponse(
                {"error": "invalid_token_headers", "message": str(exc)}, status=400
            )
        if not who.is_anonymous:
            return JsonResponse(
                {
                    "authenticated": True,
                    "type": "service" if who.is_service else "user",
                    "sub": who.sub,
                    "email": who.email or None,
                    "user": who.username or who.email,
                    "groups": who.groups,
                    "method": who.method or ("token" if who.is_service else None),
                    "application": app.slug,
                },
                headers={"Cache-Control": "no-store"},
            )
    return JsonResponse({"authenticated": False}, headers={"Cache-Control": "no-store"})


@require_GET
def jwks(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({"keys": published_keys()})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # any failure means unhealthy; the reason goes to the log
        logger.error("health check: database unavailable", exc_info=True)
        checks["database"] = "unavailable"
    try:
        cache.get("healthz")
        checks["cache"] = "ok"
    except Exception:  # as above
        logger.error("health check: cache unavailable", exc_info=True)
        checks["cache"] = "unavailable"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if token and auth.startswith("Bearer "):
        if hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
            return True
    ip = client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
    if ip is None:
        return False
    for net in settings.METRICS_ALLOWED_NETWORKS:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return JsonResponse(
            {
                "error": "forbidden",
                "message": "Metrics are open only to configured networks "
                "or with the metrics token.",
            },
            status=403,
        )
    return HttpResponse(metrics_mod.render(), content_type="text/plain; version=0.0.4")
