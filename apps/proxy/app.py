"""The proxy path: route, authenticate, decide, relay, record.

This is plain WSGI rather than a Django view: proxied traffic needs none of
Django's middleware (sessions, CSRF, messages, body-size limits, APPEND_SLASH
or frame options would all change what the upstream sees), and skipping it
keeps the hot path free of database queries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings

from apps.audit.service import defer_call, defer_event, record_event
from apps.policies.engine import Identity, Outcome, evaluate_access
from apps.policies.snapshot import AppSpec, Snapshot
from apps.proxy import keys, metrics, state
from apps.proxy.auth import BadTokenHeaders, authenticate
from apps.proxy.clientip import client_ip
from apps.proxy.headers import canonical, client_headers, response_headers
from apps.proxy.pages import error, json_answer, page, respond, wants_html
from apps.proxy.paths import BadPath, Target, parse_target, raw_target_from_environ
from apps.proxy.relay import (
    CHUNK,
    ClientBodyError,
    UpstreamError,
    relay_request,
    stream_body,
)
from apps.proxy.returnto import sign_return

logger = logging.getLogger(__name__)
access_log = logging.getLogger("accessportal.access")

TOKEN_TOUCH_SECONDS = 60
_token_touched: dict[int, float] = {}
_token_lock = threading.Lock()


def login_url(app: AppSpec, host: str, path: str, nonce: str = "") -> str:
    value = sign_return(app.id, host, path, nonce)
    return f"{settings.PORTAL_URL}/login/?next={quote(value)}"


def switch_url(app: AppSpec, host: str, path: str, nonce: str = "") -> str:
    """Sign out, then sign in again and come back to this same page."""
    value = sign_return(app.id, host, path, nonce)
    return f"{settings.PORTAL_URL}/logout/?switch=1&next={quote(value)}"


def _log(
    environ: dict,
    app: str,
    who: Identity | None,
    decision: str,
    status: int,
    upstream: float | None,
    started: float,
) -> None:
    total = time.perf_counter() - started
    metrics.observe(app, status, decision, upstream)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            json.dumps(
                {
                    "app": app,
                    "identity": who.sub if who and not who.is_anonymous else "",
                    "decision": decision,
                    "method": environ.get("REQUEST_METHOD", ""),
                    "status": status,
                    "upstream_ms": round(upstream * 1000, 2)
                    if upstream is not None
                    else None,
                    "total_ms": round(total * 1000, 2),
                },
                separators=(",", ":"),
            )
        )


def _touch_token(who: Identity, app: AppSpec, ip: str | None) -> None:
    """Record token use and ``last_seen`` at most once a minute per token."""
    token_id = who.token_id
    if token_id is None:
        return
    now = time.monotonic()
    with _token_lock:
        last = _token_touched.get(token_id)
        if last is not None and now - last < TOKEN_TOUCH_SECONDS:
            return
        _token_touched[token_id] = now

    def write() -> None:
        from django.core.cache import cache
        from django.utils import timezone

        from apps.tokens.models import ServiceToken

        # The per-process clock above only spares the queue; this shared
        # mark is what keeps every worker of every instance to one write (and
        # one audit event) per token and minute.
        if not cache.add(f"token-touch:{token_id}", 1, timeout=TOKEN_TOUCH_SECONDS):
            return
        ServiceToken.objects.filter(pk=token_id).update(last_seen=timezone.now())
        record_event(
            "token_used",
            actor=actor,
            application=slug,
            client_ip=ip,
            outcome="allow",
            detail={"token_id": token_id},
        )

    actor, slug = who.username, app.slug
    defer_call(write)


class ProxyHandler:
    def __call__(self, environ: dict, start_response, host: str, snap: Snapshot) -> Any:
        started = time.perf_counter()
        try:
            target = parse_target(raw_target_from_environ(environ))
        except BadPath as exc:
            _log(environ, "-", None, "bad-request", 400, None, started)
            return error(
                environ, start_response, 400, "bad_request", "Bad request", str(exc)
            )
        app = snap.route(host, target.literal)
        if app is not snap.route(host, target.liberal):
            _log(environ, "-", None, "bad-request", 400, None, started)
            return error(
                environ,
                start_response,
                400,
                "ambiguous_path",
                "Bad request",
                "This path could be read as belonging to two different applications.",
            )
        if app is None:
            _log(environ, "-", None, "no-route", 404, None, started)
            return error(
                environ,
                start_response,
                404,
                "not_found",
                "Not found",
                "No application is published at this address.",
            )
        return self.handle_app(
            environ, start_response, host, snap, app, target, started
        )

    def handle_app(self, environ, start_response, host, snap, app, target, started):
        method = environ.get("REQUEST_METHOD", "GET")
        if "websocket" in environ.get("HTTP_UPGRADE", "").lower():
            _log(environ, app.slug, None, "websocket", 501, None, started)
            return error(
                environ,
                start_response,
                501,
                "websocket_unsupported",
                "Not supported",
                "WebSocket connections are not supported yet.",
                app.name,
            )
        ip = client_ip(environ, settings.TRUSTED_PROXY_COUNT)
        ip_text = str(ip) if ip is not None else None

        if (
            method == "OPTIONS"
            and "HTTP_ORIGIN" in environ
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            return self.preflight(environ, start_response, app, target, started)

        try:
            who = authenticate(environ, app, snap)
        except BadTokenHeaders as exc:
            _log(environ, app.slug, None, "bad-token-headers", 400, None, started)
            return json_answer(
                start_response,
                400,
                {"error": "invalid_token_headers", "message": str(exc)},
            )
        decision = evaluate_access(app.policies, who, ip)

        if decision.outcome is Outcome.LOGIN:
            return self.ask_login(environ, start_response, app, host, target, started)
        if decision.outcome is Outcome.DENY:
            return self.deny(
                environ,
                start_response,
                app,
                who,
                decision,
                ip_text,
                started,
                host=host,
                path=target.raw,
            )
        if who.is_service:
            _touch_token(who, app, ip_text)
        bypass = decision.outcome is Outcome.BYPASS
        return self.relay(
            environ,
            start_response,
            snap,
            app,
            host,
            target,
            None if bypass else who,
            ip_text,
            decision,
            started,
        )

    def ask_login(self, environ, start_response, app, host, target, started):
        nonce = state.new_nonce()
        url = login_url(app, host, target.raw, nonce)
        bind = state.set_cookie_header(app, nonce)
        if wants_html(environ):
            _log(environ, app.slug, None, "login", 302, None, started)
            start_response(
                "302 Found",
                [
                    ("Location", url),
                    ("Cache-Control", "no-store"),
                    ("Content-Length", "0"),
                    bind,
                ],
            )
            return [b""]
        _log(environ, app.slug, None, "login", 401, None, started)
        return json_answer(
            start_response,
            401,
            {"error": "authentication_required", "login_url": url},
            [("WWW-Authenticate", 'Bearer realm="accessportal"'), bind],
        )

    def deny(
        self,
        environ,
        start_response,
        app,
        who,
        decision,
        ip_text,
        started,
        host="",
        path="/",
    ):
        defer_event(
            "denied",
            actor=who.display,
            application=app.slug,
            client_ip=ip_text,
            outcome="deny",
            detail={
                "reason": decision.reason,
                "method": environ.get("REQUEST_METHOD", ""),
            },
        )
        logger.warning("denied %s on %s: %s", who.sub, app.slug, decision.reason)
        _log(environ, app.slug, who, "deny", 403, None, started)
        if who.is_service or not wants_html(environ):
            return json_answer(
                start_response,
                403,
                {
                    "error": "access_denied",
                    "message": f"{who.display} may not use {app.name}.",
                },
            )
        nonce = state.new_nonce()
        switch = switch_url(app, host or app.hosts[0], path, nonce)
        return page(
            start_response,
            403,
            "errors/denied.html",
            {"who": who.display, "app_name": app.name, "switch_url": switch},
            [state.set_cookie_header(app, nonce)],
        )

    def preflight(self, environ, start_response, app, target, started):
        origin = environ["HTTP_ORIGIN"]
        if app.cors_mode == "portal":
            if origin not in app.cors_origins:
                _log(environ, app.slug, None, "cors-refused", 403, None, started)
                return json_answer(
                    start_response,
                    403,
                    {
                        "error": "cors_origin_not_allowed",
                        "message": "This origin may not call the application.",
                    },
                )
            headers = [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                (
                    "Access-Control-Allow-Methods",
                    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
                ),
                ("Access-Control-Max-Age", "600"),
                ("Vary", "Origin"),
            ]
            wanted = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
            if wanted:
                headers.append(("Access-Control-Allow-Headers", wanted[:1000]))
            _log(environ, app.slug, None, "cors-preflight", 204, None, started)
            start_response("204 No Content", headers)
            return [b""]
        return self.bare_preflight(environ, start_response, app, target, started)

    def bare_preflight(self, environ, start_response, app, target, started):
        """Ask the upstream about CORS without letting anything else through.

        The caller is anonymous, so only what a preflight needs goes up (the
        path, the origin, the requested method and headers; no body, no
        credentials, no identity) and only the CORS answer comes back: the
        status and the ``Access-Control-*`` headers, never a body, which could
        otherwise be any page of the application.
        """
        headers = {
            "Host": app.upstream.host_header,
            "Origin": environ["HTTP_ORIGIN"],
            "Access-Control-Request-Method": environ[
                "HTTP_ACCESS_CONTROL_REQUEST_METHOD"
            ],
            "X-Forwarded-Proto": settings.PORTAL.scheme,
            "Content-Length": "0",
        }
        wanted = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if wanted:
            headers["Access-Control-Request-Headers"] = wanted
        upstream_target = _upstream_target(app, target)
        upstream_started = time.perf_counter()
        try:
            response = relay_request(
                app, "OPTIONS", upstream_target, headers, None, False
            )
        except UpstreamError as exc:
            _log(environ, app.slug, None, "cors-preflight", exc.status, None, started)
            return json_answer(
                start_response,
                exc.status,
                {
                    "error": "upstream_unavailable",
                    "message": f"{app.name} did not answer.",
                },
            )
        upstream_time = time.perf_counter() - upstream_started
        response.abandon()
        kept = [
            (name, value)
            for name, value in response.headers
            if name.lower().startswith("access-control-") or name.lower() == "vary"
        ]
        status = response.status
        _log(environ, app.slug, None, "cors-preflight", status, upstream_time, started)
        start_response(
            f"{status} {response.reason or ''}".strip(),
            [*kept, ("Content-Length", "0"), ("Cache-Control", "no-store")],
        )
        return [b""]

    def relay(
        self,
        environ,
        start_response,
        snap,
        app,
        host,
        target,
        who,
        ip_text,
        decision,
        started,
    ):
        method = environ.get("REQUEST_METHOD", "GET")
        drop = [app.identity_header] if app.identity_header else []
        headers = client_headers(environ, drop)
        # The public host and port come from configuration (the routed host
        # and PORTAL_URL), never from the client's Host header as sent.
        public_netloc = app.public_origin(host).split("://", 1)[1]
        headers["Host"] = (
            public_netloc if app.preserve_host else app.upstream.host_header
        )
        headers["X-Forwarded-For"] = ip_text or environ.get("REMOTE_ADDR", "")
        headers["X-Forwarded-Proto"] = settings.PORTAL.scheme
        headers["X-Forwarded-Host"] = public_netloc
        if who is not None:
            headers["X-Auth-Request-Email"] = who.email
            headers["X-Auth-Request-User"] = who.username or who.email
            headers["X-Auth-Request-Groups"] = ",".join(who.groups)
            if app.identity_header and not who.is_service:
                headers[app.identity_header] = (
                    who.username
                    if who.method == "github" and who.username
                    else who.email
                )
            version = snap.version if snap is not None else ""
            headers["X-Access-Jwt-Assertion"] = keys.assertion_for(
                who, app.audience, version
            )
            if who.is_service:
                headers.pop("X-Auth-Request-Email", None)
        upstream_target = _upstream_target(app, target)

        body, chunked = _request_body(environ, headers)
        if body is not None:
            # See relay_request: a connection that carried a body is closed.
            headers["Connection"] = "close"
        upstream_started = time.perf_counter()
        try:
            response = relay_request(
                app,
                method,
                upstream_target,
                headers,
                body,
                chunked,
                caller=who.sub if who is not None else "anonymous",
            )
        except ClientBodyError as exc:
            logger.warning("bad request body for %s: %s", app.slug, exc)
            _log(environ, app.slug, who, "bad-request", 400, None, started)
            return json_answer(
                start_response,
                400,
                {
                    "error": "bad_request_body",
                    "message": "The request body was cut short or badly framed.",
                },
            )
        except UpstreamError as exc:
            upstream_time = time.perf_counter() - upstream_started
            status = exc.status
            logger.warning("upstream of %s failed: %s", app.slug, exc.reason)
            _log(
                environ,
                app.slug,
                who,
                decision.outcome.value,
                status,
                upstream_time,
                started,
            )
            if status == 504:
                return error(
                    environ,
                    start_response,
                    504,
                    "upstream_timeout",
                    "Upstream timed out",
                    f"{app.name} did not answer in time. Try again in a moment.",
                    app.name,
                )
            return error(
                environ,
                start_response,
                502,
                "upstream_unavailable",
                "Upstream unavailable",
                f"{app.name} could not be reached. Try again in a moment.",
                app.name,
            )
        upstream_time = time.perf_counter() - upstream_started

        out_headers = response_headers(response.headers)
        out_headers = [
            (
                n,
                self.rewrite_location(v, app, host) if n.lower() == "location" else v,
            )
            for n, v in out_headers
        ]
        origin = environ.get("HTTP_ORIGIN")
        if app.cors_mode == "portal" and origin and origin in app.cors_origins:
            # The portal answered the preflight, so it also owns the CORS
            # headers of the real answer; the browser needs them on both.
            out_headers = [
                (n, v)
                for n, v in out_headers
                if not n.lower().startswith("access-control-allow-")
            ]
            out_headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
        status = response.status
        _log(
            environ,
            app.slug,
            who,
            decision.outcome.value,
            status,
            upstream_time,
            started,
        )
        start_response(f"{status} {response.reason or ''}".strip(), out_headers)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            response.finish()
            return [b""]
        return _Body(stream_body(response, app.slug))

    def rewrite_location(self, value: str, app: AppSpec, host: str | None) -> str:
        # Built from configuration: echoing the request's Host would let a
        # client steer the redirect to any name it sends.
        public = app.public_origin(host)
        prefix = app.cookie_path.rstrip("/") if app.strip_prefix else ""
        rest = _upstream_relative(value, app)
        if rest is not None:
            return public + prefix + _strip_base(rest, app.upstream.base_path)
        if prefix and value.startswith("/") and not value.startswith("//"):
            return prefix + _strip_base(value, app.upstream.base_path)
        return value


def _upstream_relative(value: str, app: AppSpec) -> str | None:
    """The path part of ``value`` if it points at the upstream, else None.

    Scheme and host compare case-insensitively, and the port may be left out
    when it is the scheme's default, as an upstream may write either.
    """
    parts = urlsplit(value)
    up = app.upstream
    if parts.scheme.lower() != up.scheme or not parts.netloc:
        return None
    try:
        port = parts.port or (443 if up.scheme == "https" else 80)
    except ValueError:
        return None
    if (parts.hostname or "").lower() != up.host.lower() or port != up.port:
        return None
    if parts.username is not None:
        return None
    rest = value.split(parts.netloc, 1)[1] if parts.netloc in value else ""
    return rest if rest.startswith(("/", "?")) else "/" + rest


def _strip_base(path: str, base: str) -> str:
    """Remove the upstream's base path, only at a segment boundary."""
    if base and (path == base or path.startswith((base + "/", base + "?"))):
        return path[len(base) :] or "/"
    return path


class _Body:
    """A WSGI body whose ``close`` returns or drops the upstream connection."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def _request_body(environ: dict, headers: dict[str, str]) -> tuple[Any, bool]:
    stream = environ.get("wsgi.input")
    length_text = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    headers.pop("Content-Length", None)
    if chunked and stream is not None:
        return _read_all(stream), True
    if not length_text:
        return None, False
    try:
        length = int(length_text)
    except ValueError:
        return None, False
    if length <= 0 or stream is None:
        if length == 0:
            headers["Content-Length"] = "0"
        return None, False
    headers["Content-Length"] = str(length)
    return _read_exact(stream, length), False


def _upstream_target(app: AppSpec, target: Target) -> str:
    """The client's raw path and query, on the upstream's base path."""
    path = target.raw_path
    if app.strip_prefix:
        path = app.pattern.strip(path)
    upstream = app.upstream.base_path + path
    if target.query or target.raw.endswith("?"):
        upstream += "?" + target.query
    return upstream


def _read(stream: Any, size: int) -> bytes:
    try:
        return stream.read(size)
    except Exception as exc:  # noqa: BLE001 - the server's parse errors vary
        # gunicorn raises its own errors (not OSError) for broken chunked
        # framing; whatever the server says, the body is unusable.
        raise ClientBodyError(type(exc).__name__) from exc


def _read_all(stream: Any) -> Iterator[bytes]:
    while True:
        chunk = _read(stream, CHUNK)
        if not chunk:
            return
        yield chunk


def _read_exact(stream: Any, length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        chunk = _read(stream, min(CHUNK, left))
        if not chunk:
            raise ClientBodyError("client closed the request body early")
        left -= len(chunk)
        yield chunk


proxy = ProxyHandler()

__all__ = ["proxy", "login_url", "canonical", "respond"]
