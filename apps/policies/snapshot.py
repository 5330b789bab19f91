"""An in-memory copy of the routing table, policies and service tokens.

Every request is decided from this copy, so the hot path reads no database.
Saving an application, policy, rule or token bumps a version number in the
shared cache; each process compares its copy's version with the shared one at
most every ``ACCESSPORTAL_CONFIG_POLL_SECONDS`` and reloads when it changed.

Limitations: a change reaches a process only at its next poll, so for up to
the poll interval (2 s by default) an instance may still decide with the old
policies. Revocations of sessions and tokens do not wait for this: they are
checked in the shared cache on every request (see ``apps.proxy.auth``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

from apps.policies.engine import PolicySet, PolicySpec, make_rule
from apps.policies.patterns import PathPattern, parse_pattern

logger = logging.getLogger(__name__)

VERSION_KEY = "config-version"


class ConfigUnavailable(Exception):
    """The shared store could not be read, so no decision can be trusted."""


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}"

    @property
    def host_header(self) -> str:
        return self.origin.split("://", 1)[1]


@dataclass
class AppSpec:
    id: int
    slug: str
    name: str
    hosts: tuple[str, ...]
    pattern: PathPattern
    upstream: Upstream
    strip_prefix: bool
    preserve_host: bool
    session_duration: timedelta
    audience: str
    identity_header: str
    launcher: bool
    ca_bundle: str
    connect_timeout: float
    read_timeout: float
    cors_mode: str
    cors_origins: frozenset[str]
    policies: PolicySet
    cookie_name: str = "accessportal_app"
    cookie_path: str = "/"

    def public_origin(self, host: str | None = None) -> str:
        portal = settings.PORTAL
        name = host or self.hosts[0]
        if ":" in name:
            name = f"[{name}]"
        if portal.port:
            name = f"{name}:{portal.port}"
        return f"{portal.scheme}://{name}"

    @property
    def home_path(self) -> str:
        return (
            self.cookie_path
            if self.cookie_path.endswith("/")
            else self.cookie_path + "/"
        )


@dataclass(frozen=True)
class TokenSpec:
    id: int
    name: str
    client_id: str
    secret_hash: str
    previous_hash: str
    previous_until: datetime | None
    expires_at: datetime
    revoked: bool


@dataclass
class Snapshot:
    version: str
    apps: dict[int, AppSpec] = field(default_factory=dict)
    routes: dict[str, list[AppSpec]] = field(default_factory=dict)
    tokens: dict[str, TokenSpec] = field(default_factory=dict)
    apps_by_slug: dict[str, AppSpec] = field(default_factory=dict)

    def route(self, host: str, segments: list[str]) -> AppSpec | None:
        for app in self.routes.get(host, ()):
            if app.pattern.matches(segments):
                return app
        return None

    def has_host(self, host: str) -> bool:
        return host in self.routes


def _parse_upstream(raw: str) -> Upstream:
    parts = urlsplit(raw)
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    return Upstream(scheme, parts.hostname or "", port, parts.path.rstrip("/"))


def policy_spec(policy: Any) -> PolicySpec:
    """The engine's view of one ``Policy`` (its rules prefetched or not)."""
    rules = {"include": [], "require": [], "exclude": []}  # type: dict[str, list]
    try:
        for rule in policy.rules.all():
            rules[rule.kind].append(make_rule(rule.kind, rule.selector, rule.value))
    except ValueError:
        # A rule that cannot be read makes its policy match nobody, and a
        # block policy in that state still blocks nothing: log it loudly.
        logger.error("policy %s has an unreadable rule; it matches nobody", policy.pk)
        rules = {"include": [], "require": [], "exclude": []}
    return PolicySpec(
        name=policy.name,
        action=policy.action,
        precedence=policy.precedence,
        session_duration=policy.session_duration,
        include=tuple(rules["include"]),
        require=tuple(rules["require"]),
        exclude=tuple(rules["exclude"]),
    )


def build_snapshot(version: str) -> Snapshot:
    from apps.policies.models import Application, Policy
    from apps.tokens.models import ServiceToken

    snap = Snapshot(version=version)
    policies_by_app: dict[int, list[PolicySpec]] = {}
    for policy in Policy.objects.prefetch_related("rules").all():
        policies_by_app.setdefault(policy.application_id, []).append(
            policy_spec(policy)
        )
    for app in Application.objects.filter(enabled=True):
        pattern = parse_pattern(app.path)
        spec = AppSpec(
            id=app.pk,
            slug=app.slug,
            name=app.name,
            hosts=tuple(app.host_list),
            pattern=pattern,
            upstream=_parse_upstream(app.upstream),
            strip_prefix=app.strip_prefix,
            preserve_host=app.preserve_host,
            session_duration=app.session_duration,
            audience=app.audience_tag,
            identity_header=app.identity_header,
            launcher=app.launcher,
            ca_bundle=app.ca_bundle,
            connect_timeout=app.connect_timeout,
            read_timeout=app.read_timeout,
            cors_mode=app.cors_mode,
            cors_origins=frozenset(
                o.strip() for o in app.cors_origins.split() if o.strip()
            ),
            policies=PolicySet.build(policies_by_app.get(app.pk, [])),
        )
        literal = []
        for segment in pattern.segments:
            if segment == "*":
                break
            literal.append(segment)
        spec.cookie_path = "/" + "/".join(literal)
        snap.apps[spec.id] = spec
        snap.apps_by_slug[spec.slug] = spec
        for host in spec.hosts:
            snap.routes.setdefault(host, []).append(spec)
    for routed in snap.routes.values():
        routed.sort(key=lambda a: a.pattern.specificity, reverse=True)
        if len(routed) > 1:
            for shared in routed:
                shared.cookie_name = f"accessportal_app_{shared.slug.replace('-', '_')}"
    for token in ServiceToken.objects.all():
        snap.tokens[token.client_id] = TokenSpec(
            id=token.pk,
            name=token.name,
            client_id=token.client_id,
            secret_hash=token.secret_hash,
            previous_hash=token.previous_secret_hash,
            previous_until=token.previous_valid_until,
            expires_at=token.expires_at,
            revoked=token.revoked_at is not None,
        )
    return snap


class _Holder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None
        self.checked_at = 0.0


_holder = _Holder()


def _read_version() -> str:
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            version = uuid.uuid4().hex
            if not cache.add(VERSION_KEY, version, timeout=None):
                version = cache.get(VERSION_KEY) or version
    except Exception as exc:  # any backend error means the store is unreachable
        raise ConfigUnavailable(str(exc)) from exc
    return str(version)


def get_snapshot() -> Snapshot:
    """Return the current copy, reloading it if another process changed it."""
    now = time.monotonic()
    snap = _holder.snapshot
    if snap is not None and now - _holder.checked_at < settings.CONFIG_POLL_SECONDS:
        return snap
    with _holder.lock:
        snap = _holder.snapshot
        if snap is not None and now - _holder.checked_at < settings.CONFIG_POLL_SECONDS:
            return snap
        version = _read_version()
        if snap is None or snap.version != version:
            try:
                snap = build_snapshot(version)
            except Exception as exc:  # the database is down or half-migrated
                raise ConfigUnavailable(str(exc)) from exc
            _holder.snapshot = snap
        _holder.checked_at = time.monotonic()
        return snap


def bump_version() -> None:
    """Tell every process that the configuration changed."""
    cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    _holder.checked_at = 0.0
